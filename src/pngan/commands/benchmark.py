"""``pngan benchmark denoise|augment``: the downstream benchmark (pngan.eval.benchmark).

``denoise``: the same denoiser, config, budget and clean images for every source of training pairs
(the real ``--train`` pairs; setting 1, setting 2 and the calibrated fit applied on the fly to
their clean images; each ``--source gen:RUN`` generator on the same clean images), over ``--seeds``
seeds, scored on each held-out real ``--test`` set: PSNR / SSIM (Y) mean ± standard error per row,
the PGap to the real-pairs row and the difference to the calibrated row, both paired by seed.

``augment`` (paper Table 4): the real ``--train`` pairs alone (rho 0) against the real pairs plus
``--extra`` generated pairs (from other clean images) at each ratio rho of ``--ratios``.

One ``--out`` holds one benchmark (its training data, denoiser and config: ``OUT/job.json``);
rows and seeds may be added by later runs, a finished run is reused and an unfinished one resumed
(``OUT/runs/<row>/seed<k>``), and each run's scores are cached by its weights' and the test
files' hashes. Writes ``OUT/benchmark.md``, ``OUT/benchmark.json`` and ``OUT/benchmark.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pngan.errors import PnganError

NAMED = {"real": "real", "setting1": "setting 1", "awgn": "setting 1", "1": "setting 1",
         "setting2": "setting 2", "raw": "setting 2", "2": "setting 2", "calibrated": "calibrated"}
DEFAULT_SOURCES = ("real", "setting1", "setting2", "calibrated")


def _common(p: argparse.ArgumentParser) -> None:
    from pngan.validate import STEPS

    p.add_argument("--train", action="append", required=True, metavar="SPEC",
                   help="real noisy/clean training pairs (repeatable); every source uses their clean images")
    p.add_argument("--test", action="append", required=True, metavar="SPEC",
                   help="held-out real pairs, scene-disjoint from --train (repeatable: one table each)")
    p.add_argument("--out", required=True, metavar="DIR", help="benchmark folder (tables, plot, one run per row and seed)")
    p.add_argument("--seeds", default="3", metavar="N|S1,S2,..",
                   help="seeds of every row: N (0..N-1) or a list (default 3)")
    p.add_argument("--arch", default="dncnn", help="denoiser architecture (default dncnn)")
    p.add_argument("--config", default=None, metavar="PRESET|FILE.yaml",
                   help="train-denoiser config: bench-cpu (default on CPU) or paper (default on GPU), or a YAML file")
    p.add_argument("--steps", type=STEPS, help="training steps of every run (overrides run.steps)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="train-denoiser config overrides of every run")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="mode", metavar="MODE", required=True)
    d = sub.add_parser("denoise", help="one row per source of training pairs on the same clean images "
                       "(real, setting 1, setting 2, calibrated, generators)")
    _common(d)
    d.add_argument("--source", action="append", metavar="NAME|gen:RUN|LABEL=SPEC",
                   help="a row (repeatable): real, setting1, setting2, calibrated (fitted on --train), gen:RUN (a "
                        "'pngan train' run on --train's clean images), or LABEL=SPEC (any train-denoiser --data "
                        f"spec). Default: {', '.join(DEFAULT_SOURCES)}, and any gen:RUN given is added to them")
    a = sub.add_parser("augment", help="real pairs alone against real plus generated pairs at ratio rho "
                       "(paper Table 4)")
    _common(a)
    a.add_argument("--extra", required=True, metavar="SPEC",
                   help="generated pairs from OTHER clean images, e.g. gen:RUN:clean:kodak24 or pairs:out/pairs")
    a.add_argument("--ratios", default="0,0.5,1", metavar="RHO,...",
                   help="ratios rho of generated to real data (0 = real only, always run; default 0,0.5,1)")


def _effective(config: str, overrides: list[str], arch: str) -> str:
    """A hash of the config the runs train with, but the keys that may differ between its runs
    (run settings, steps: each run records its own) and the seed (one per run)."""
    from pngan.config import to_dict
    from pngan.io.records import json_sha256
    from pngan.train.denoiser_config import load_denoiser_config
    from pngan.train.runid import SAFE_ON_RESUME, _flat

    flat = _flat(to_dict(load_denoiser_config(config, [*overrides, f"net.arch={arch}"])))
    return "sha256:" + json_sha256({k: v for k, v in flat.items() if k not in SAFE_ON_RESUME and k != "run.seed"})


def parse_seeds(text: str) -> list[int]:
    t = str(text).strip()
    try:
        if "," not in t:
            n = int(t)
            if not 1 <= n <= 1000:
                raise ValueError
            return list(range(n))
        if any(not x.strip() for x in t.split(",")):  # '3,': a count or the seed 3? neither is guessed
            raise PnganError(f"--seeds: an empty item in '{text}': give a count N (seeds 0..N-1) or a list "
                             "S1,S2,... without empty items")
        seeds = [int(x) for x in t.split(",")]
    except ValueError:
        raise PnganError(f"--seeds takes a count N (1-1000) or a list of seeds S1,S2,..., got '{text}'") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise PnganError(f"--seeds: give distinct seeds >= 0, got '{text}'")
    return seeds


def _sources(args) -> list[str]:
    given = list(args.source or [])
    if not given or all(s.strip().startswith("gen:") for s in given):
        # the calibrated row fits one set of pairs: with several --train it is asked for explicitly
        defaults = [d for d in DEFAULT_SOURCES if d != "calibrated" or len(args.train) == 1]
        given = defaults + given
    return given


def _rows(args, out: Path) -> tuple[list, list[str]]:
    """The rows of ``denoise`` (and the notes that say how each was made), checked before the
    folder is claimed; the calibrated row names OUT/calibration.json, fitted by :func:`_calibration`."""
    from pngan.eval.benchmark import Row
    from pngan.train.runid import generator_file

    rows, notes, seen = [], [], set()
    for text in _sources(args):
        src = text.strip()
        label, _, spec = src.partition("=") if "=" in src.split(":", 1)[0] else ("", "", src)
        key = spec.lower()
        if key in NAMED:
            label = label or NAMED[key]
            name = NAMED[key]
            if name == "real":
                data = tuple(args.train)
            elif name == "calibrated":
                if len(args.train) > 1:
                    raise PnganError("--source calibrated fits one set of pairs: give one --train (or fit it with "
                                     "'pngan synth --save-fit FILE.json' and give calibrated=synth:FILE.json:SPEC)")
                cal = out / CALIBRATION
                data = tuple(f"synth:{cal}:{t}" for t in args.train)
                notes.append(f"calibrated: fitted on {' '.join(args.train)} ({cal})")
            else:
                data = tuple(f"synth:{'awgn' if name == 'setting 1' else 'raw'}:{t}" for t in args.train)
        elif key.startswith("gen:") and not label:
            run = spec[4:]
            generator_file(run, "--source gen:RUN")  # a run folder that has weights, checked before any work
            label = f"pngan ({Path(run).name})"
            data = tuple(f"gen:{run}:{t}" for t in args.train)
        elif label:
            data = (spec,)
        else:
            raise PnganError(f"--source {text!r}: give real, setting1, setting2, calibrated, gen:RUN or LABEL=SPEC")
        if label in seen:
            raise PnganError(f"--source: two rows are labelled '{label}'; give each its own (LABEL=SPEC)")
        seen.add(label)
        rows.append(Row(label, data))
    return rows, notes


CALIBRATION = "calibration.json"


def _calibration(train: str, out: Path) -> None:
    """The calibrated fit on the --train pairs, saved once in OUT/calibration.json (the job records
    the training files, so a later run of this --out fits the same pairs)."""
    from pngan.noise import resolve_setting
    from pngan.noise.calibrated import load_calibration, save_calibration

    path = out / CALIBRATION
    if path.is_file():
        load_calibration(path)  # checked
        return
    save_calibration(resolve_setting("calibrated", fit=train), path)


def _config_identity(config: str) -> str:
    """A preset by name, a YAML file by its SHA-256 (however its path is spelled)."""
    p = Path(config).expanduser()
    if p.is_file():
        from pngan.io.records import file_sha256

        return "sha256:" + file_sha256(p)
    return config


def _ratios(text: str) -> list[float]:
    from pngan.commands.ablation import parse_ratios as parse

    r = parse(text)
    return sorted({0.0, *r})


def run(args: argparse.Namespace) -> int:
    import logging

    import torch

    from pngan.eval import benchmark as bm
    from pngan.io import outdir
    from pngan.io.atomic import atomic_write_text
    from pngan.io.json_out import write_json
    from pngan.train.runid import data_content, normalize_spec

    logging.basicConfig(level=logging.INFO, format="pngan: %(message)s")
    seeds = parse_seeds(args.seeds)
    config = args.config or ("paper" if torch.cuda.is_available() else "bench-cpu")
    overrides = list(args.overrides)
    from pngan.train.denoiser_config import load_denoiser_config

    load_denoiser_config(config, [*overrides, f"net.arch={args.arch}"])  # a bad config: refused before any work
    if args.steps is not None:
        overrides.append(f"run.steps={args.steps}")
    out = Path(args.out)
    if args.mode == "augment":
        ratios = _ratios(args.ratios)
    from pngan.train.runid import SAFE_ON_RESUME

    # what defines the benchmark: not the run settings (threads, device, steps...), which may differ
    # between its runs (each row records its own steps); a config file by its contents, not its path
    job = {"command": f"benchmark {args.mode}", "train": [normalize_spec(t) for t in args.train],
           "content": [data_content(t) for t in args.train], "arch": args.arch,
           "config": _config_identity(config),
           # KEY=VALUE however it is spaced ("a = 1" is "a=1"); shown in the table's notes
           "overrides": [f"{k.strip()}={v.strip()}" for k, _, v in (o.partition("=") for o in overrides)
                         if k.strip() not in SAFE_ON_RESUME],
           # what the overrides make of the config defines the benchmark, not their text (another order,
           # {channels: 4, depth: 2} for {depth: 2, channels: 4} are the same benchmark)
           "effective_config": _effective(config, overrides, args.arch), "_safe": ["overrides"]}
    if args.mode == "augment":
        job["extra"] = normalize_spec(args.extra)
        job["extra_content"] = data_content(args.extra)
    from pngan.data.specs import refuse_overlap, warn_overlap

    refuse_overlap([*args.train, *([args.extra] if args.mode == "augment" else [])], args.test)
    if args.mode == "augment":
        warn_overlap([args.extra], args.train, "--extra", "--train", "the augmentation adds no new clean images")
    if args.mode == "denoise":  # every row is checked before the folder is claimed
        rows, notes = _rows(args, out)
        real = "real" if any(r.label == "real" for r in rows) else None
        reference = "calibrated" if any(r.label == "calibrated" for r in rows) else None
        title = "Downstream benchmark: denoisers trained on each source of pairs"
    else:
        rows = [bm.Row(f"rho {r:g}", (args.extra, *args.train), (f"data.ratio={r}",)) for r in ratios]
        notes = [f"generated pairs: {args.extra}; real pairs: {' '.join(args.train)}; rho = generated:real"]
        real, reference = None, "rho 0"
        title = "Augmentation (paper Table 4): real pairs plus generated pairs at ratio rho"
    earlier = outdir.claim(out, job, owned=(outdir.JOB_FILE,), advice="choose another --out (a benchmark folder "
                           "holds one benchmark: its training data, denoiser and config)")
    try:
        if any(str(out / CALIBRATION) in d for r in rows for d in r.data):
            _calibration(args.train[0], out)
        raw = bm.run_rows(rows, args.test, out, seeds=seeds, arch=args.arch, config=config, overrides=overrides,
                          progress=not args.quiet, log=lambda m: print(f"pngan: {m}", flush=True))
        summary = bm.summarize(rows, args.test, raw, real=real, reference=reference)
        notes = [f"{args.arch}, config {config} {' '.join(job['overrides'])}".strip() + f", seeds {seeds}; training "
                 f"clean images: {' '.join(args.train)}", *notes,
                 "± is the standard error over seeds; differences are paired by seed; 'resolved': the difference "
                 "exceeds its 95% confidence half-width (t(0.975, n-1) standard errors)"]
        md = bm.markdown(title, summary, notes, real=real, reference=reference)
        write_json(out / "benchmark.json", {"mode": args.mode, "job": job, "seeds": seeds, "tests": args.test,
                                            "summary": summary, "raw": raw}, f"benchmark {args.mode}")
        atomic_write_text(out / "benchmark.md", md)
        from pngan.eval.plots import plot_benchmark

        plot_benchmark(out / "benchmark.png", summary, title)
    except BaseException:
        if earlier is None:  # a new benchmark that failed before training anything: nothing left behind
            outdir.undo_new_claim(out, [out / "runs"], (CALIBRATION,))
        raise
    finally:
        outdir.release(out)
    print(md)
    print(f"pngan: wrote {out / 'benchmark.md'}, {out / 'benchmark.json'} and {out / 'benchmark.png'}")
    return 0
