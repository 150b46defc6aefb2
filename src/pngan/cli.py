"""The ``pngan`` command line: one subcommand per job.

Each subcommand lives in ``pngan.commands.<module>`` and provides ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their command runs, so ``pngan --help``
is fast. User errors (:class:`~pngan.errors.PnganError`) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pngan import __version__

# name -> (module, one-line help, example)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "synth": (
        "pngan.commands.synth",
        "add synthetic noise (setting 1: AWGN; setting 2: RAW Poisson-Gaussian) to clean images",
        "pngan synth --setting raw --input clean:photos --output out/raw --seed 0",
    ),
    "train": (
        "pngan.commands.train",
        "train the PNGAN generator (SMNet) against real noisy/clean pairs",
        "pngan train --data sidd:SIDD_Medium_Srgb --denoiser dncnn:dncnn.pth --config cpu-small --out runs/sidd",
    ),
    "generate": (
        "pngan.commands.generate",
        "turn clean images into realistic noisy/clean pairs with a trained generator",
        "pngan generate --generator runs/sidd --input clean:photos --output out/pairs --samples 2 --seed 0",
    ),
    "train-denoiser": (
        "pngan.commands.train_denoiser",
        "train or fine-tune a denoiser on real, generated or mixed pairs",
        "pngan train-denoiser --arch dncnn --data pairs:out/pairs --data sidd:SIDD --ratio 0.5 --out runs/dn",
    ),
    "ablation": (
        "pngan.commands.ablation",
        "train and evaluate every row of the paper's ablation tables (Table 3, Table 4's rho sweep)",
        "pngan ablation table3 --data camera:builtin --test camera:builtin@test --denoiser dncnn:dn.pth --out abl",
    ),
    "benchmark": (
        "pngan.commands.benchmark",
        "the downstream benchmark: denoisers trained on each source of pairs, over seeds, on held-out real pairs",
        "pngan benchmark denoise --train pairs:sidd@train --test pairs:sidd@test --source gen:runs/sidd --out bench",
    ),
    "evaluate": (
        "pngan.commands.evaluate",
        "evaluate a denoiser (PSNR/SSIM), noise realism (KLD/AKLD/MMD) or the PSNR gap",
        "pngan evaluate noise --real pairs:real --generated out/pairs/noisy --json noise.json",
    ),
    "report": (
        "pngan.commands.report",
        "write an HTML report with figures from runs and metric JSON files",
        "pngan report runs/sidd noise.json --out report/",
    ),
    "demo": (
        "pngan.commands.demo",
        "run the whole pipeline end to end on built-in (or given) data and write a report",
        "pngan demo --out demo-out",
    ),
    "info": (
        "pngan.commands.info",
        "show the networks, presets, data formats and the shared folder pngan knows about",
        "pngan info",
    ),
}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``pngan CMD: error: MESSAGE (see 'pngan CMD --help')``, exit 2."""

    def error(self, message: str):  # noqa: D102
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pngan",
        description="Learn a camera's real noise from noisy/clean pairs and generate realistic "
        "noisy/clean training pairs (PNGAN, Cai et al., NeurIPS 2021).",
        epilog="Data sets are given as FORMAT:PATH, e.g. pairs:DIR, polyu:DIR, nam:DIR, sidd:DIR, "
        "sidd-mat:DIR, dnd:DIR, clean:DIR, camera:builtin. Run 'pngan COMMAND --help' for details.",
    )
    parser.add_argument("--version", action="version", version=f"pngan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_, example) in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=help_,
            description=help_,
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(_module=module)
        # Arguments are added lazily (see main) so that 'pngan --help' imports no torch.
        p.set_defaults(_name=name)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``parse_args``, but KEY=VALUE overrides may stand anywhere among the options (argparse takes
    only the first run of them as the ``overrides`` positional; later ones come back unrecognised
    and are appended here, in the order given, so a later override still wins)."""
    args, rest = parser.parse_known_args(argv)
    if rest and hasattr(args, "overrides"):
        late = [a for a in rest if "=" in a and not a.startswith("-")]
        rest = [a for a in rest if a not in late]
        args.overrides = list(args.overrides or []) + late
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return args


def main(argv: list[str] | None = None) -> int:
    from pngan.errors import PnganError

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Find the command first, then let its module add its own arguments.
    cmd = next((a for a in argv if not a.startswith("-")), None)
    if cmd in COMMANDS:
        sub_action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        module = importlib.import_module(COMMANDS[cmd][0])
        module.add_arguments(sub_action.choices[cmd])
    try:
        args = _parse(parser, argv)  # every option's range is checked here (pngan.validate)
    except SystemExit as e:  # a one-line usage error: exit 2 (--help and --version still exit)
        if not e.code:
            raise
        return e.code if isinstance(e.code, int) else 2
    if not getattr(args, "_module", None):
        parser.print_help()
        return 1
    module = importlib.import_module(args._module)
    from pngan.perf import tune_allocator

    from pngan import signals

    tune_allocator()  # reuse freed activation memory (2x faster CPU inference here; PNGAN_TUNE_MALLOC=0 disables)
    signals.install()  # SIGTERM (batch schedulers) is handled like SIGINT
    import warnings

    # warnings as one line each ("pngan: warning: ..."), not Python's two-line source listing
    warnings.formatwarning = lambda msg, cat, *a, **k: f"pngan: warning: {msg}\n"
    try:
        rc = int(module.run(args) or 0)
        return signals.exit_status() if rc == 130 else rc
    except PnganError as e:
        print(f"pngan: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pngan: interrupted" if signals.received() != 15 else "pngan: terminated (SIGTERM)", file=sys.stderr)
        return signals.exit_status()
    except OSError as e:  # disk full, read-only file system, permission denied: one line, exit 1
        where = f"{e.filename}: " if e.filename else ""
        print(f"pngan: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
