"""``pngan ablation table3|rho``: the paper's ablation tables, every row trained and evaluated.

``table3`` (paper Table 3): one PNGAN generator per row, cumulative as in the paper,

    loss / discriminator part             generator part (full loss)
    Baseline 1  naive L1(fake, real)      Baseline 2   single-scale SMNet, no FCA
    +D_R        L1(Dn(fake), Dn(real))    +Multi-scale three paths, bilinear down/up-sampling
    +D          + pixel discriminator     +SID         SID downsampling instead of bilinear
    +VGG        + perceptual loss         +FCA         + channel attention (= full PNGAN)

all at one config (``--config``, ``--steps``), then evaluated on held-out real pairs with the
realism metrics of ``pngan evaluate noise`` (KLD, AKLD, MMD; one generated sample per clean
image, seeded per image). Rows with the same configuration share one run (e.g. +FCA and +VGG).
Without ``--vgg`` the +VGG row is left out and the generator rows train without the perceptual
term (the table says so).

``rho`` (paper Table 4): one ``train-denoiser`` run per ratio rho of generated to real data
(``--ratio``; 0 = real only), evaluated by PSNR/SSIM on held-out real pairs.

Each writes ``OUT/<table>.md`` and ``OUT/<table>.json``; runs go to ``OUT/runs/<row>``. Rerunning
with the same ``--out`` reuses finished rows and resumes unfinished ones.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

# (name, overrides) in the paper's order; each row is cumulative
LOSS_ROWS: list[tuple[str, list[str]]] = [
    ("Baseline 1", ["loss.alignment=naive", "loss.discriminator=none", "loss.perceptual=off"]),
    ("+D_R", ["loss.alignment=denoiser", "loss.discriminator=none", "loss.perceptual=off"]),
    ("+D", ["loss.alignment=denoiser", "loss.discriminator=pixel", "loss.perceptual=off"]),
    ("+VGG", ["loss.alignment=denoiser", "loss.discriminator=pixel", "loss.perceptual=imagenet"]),
]
GENERATOR_ROWS: list[tuple[str, list[str]]] = [
    ("Baseline 2", ["generator.multiscale=false", "generator.fca=false"]),
    ("+Multi-scale", ["generator.multiscale=true", "generator.downsample=bilinear", "generator.fca=false"]),
    ("+SID", ["generator.multiscale=true", "generator.downsample=sid", "generator.fca=false"]),
    ("+FCA", ["generator.multiscale=true", "generator.downsample=sid", "generator.fca=true"]),
]
METRICS = ("kld_noiseflow", "kld_naflow", "akld", "mmd")


def _common_arguments(p: argparse.ArgumentParser) -> None:
    from pngan.validate import SEED, STEPS

    p.add_argument("--data", action="append", required=True, metavar="SPEC",
                   help="real noisy/clean training pairs (repeatable)")
    p.add_argument("--test", required=True, metavar="SPEC", help="held-out real noisy/clean pairs for the evaluation")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (tables + one run folder per row)")
    p.add_argument("--config", default=None, metavar="PRESET|FILE.yaml",
                   help="config of every row: cpu-small (default on CPU) or paper (default on GPU)")
    p.add_argument("--steps", type=STEPS, help="training steps of every row (overrides run.steps)")
    p.add_argument("--seed", type=SEED, default=0, help="run.seed of every row and the evaluation's sample seed")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides applied to every row")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="table", metavar="TABLE", required=True)
    from pngan.validate import COUNT, STEPS

    g = sub.add_parser("table3", help="loss and generator ablation (paper Table 3): one PNGAN run per row")
    _common_arguments(g)
    g.add_argument("--denoiser", metavar="NAME:CHECKPOINT", help="frozen real denoiser of the image-domain alignment")
    g.add_argument("--vgg", metavar="PATH", help="VGG16 weights for the perceptual loss (+VGG row and generator rows)")
    g.add_argument("--rows", metavar="NAME,...", help="only these rows (names as in the table, e.g. 'Baseline 1,+D')")
    g.add_argument("--samples", type=COUNT, default=1, help="generated samples per held-out clean image (default 1)")
    g.add_argument("--psnr-arch", metavar="ARCH", help="also train this denoiser (e.g. dncnn) on each row's generator "
                   "(on-the-fly gen: data from the --data clean images) and report its PSNR/SSIM on --test, as the "
                   "paper's Table 3 does")
    g.add_argument("--psnr-steps", type=STEPS, help="training steps of those denoisers (default: the preset's)")
    r = sub.add_parser("rho", help="generated:real mixing ratio sweep (paper Table 4): one train-denoiser run per rho")
    _common_arguments(r)
    r.add_argument("--generated", metavar="SPEC", required=True,
                   help="generated pairs (e.g. pairs:out/pairs, or synth:raw:clean:DIR)")
    r.add_argument("--arch", default="dncnn", help="denoiser architecture (default dncnn)")
    r.add_argument("--init", metavar="CHECKPOINT", help="fine-tune from this checkpoint (as the paper does)")
    r.add_argument("--ratios", default="0,0.2,0.4,0.6,0.8,1.0", metavar="RHO,...",
                   help="ratios rho of generated to real data (default 0,0.2,0.4,0.6,0.8,1.0)")


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "row"


def _table3_rows(args) -> list[tuple[str, list[str], str]]:
    """(name, overrides, note) of every row to run."""
    rows = []
    perceptual = "loss.perceptual=imagenet" if args.vgg else "loss.perceptual=off"
    full_loss = ["loss.alignment=denoiser", "loss.discriminator=pixel", perceptual]
    for name, ov in LOSS_ROWS:
        if name == "+VGG" and not args.vgg:
            rows.append((name, ov, "skipped: needs --vgg (VGG16 weights)"))
            continue
        rows.append((name, ov, ""))
    for name, ov in GENERATOR_ROWS:
        rows.append((name, full_loss + ov, "" if args.vgg else "without the perceptual term (no --vgg)"))
    if args.rows:
        from pngan.errors import PnganError

        want = [x.strip() for x in args.rows.split(",") if x.strip()]
        known = [n for n, _, _ in rows]
        bad = [w for w in want if w not in known]
        if bad:
            raise PnganError(f"unknown --rows {bad}; rows: {', '.join(known)}")
        rows = [r for r in rows if r[0] in want]
    return rows


def _config_key(cfg) -> str:
    """Equal for rows that train the same thing (generator.downsample unset == its sid/stride value)."""
    from pngan.config import config_hash

    g = cfg.generator
    if g.downsample == ("sid" if g.sid else "stride") or not g.multiscale:
        g.downsample = None
    return config_hash(cfg)


def _train_row(load, train, cfg_overrides: list[str], preset: str, run: Path, **kw) -> None:
    """Train one row's run, reusing a finished run and resuming an unfinished one."""
    from pngan.train.checkpoint import latest_checkpoint

    if (run / "config.yaml").is_file():
        cfg = load(str(run / "config.yaml"), cfg_overrides)
        latest = latest_checkpoint(run)
        if latest is not None and latest[0] >= cfg.run.steps:
            return
        train(cfg, run_resume=True, **kw)
        return
    train(load(preset, cfg_overrides), run_resume=False, **kw)


def _markdown(title: str, header: list[str], rows: list[list[str]], notes: list[str]) -> str:
    lines = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines + [""] + [f"- {n}" for n in notes] + [""])


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4g}"


def _table3(args, preset: str, common: list[str], out: Path) -> dict:
    from pngan.data.specs import open_dataset
    from pngan.errors import PnganError
    from pngan.eval.denoise_eval import evaluate_noise, generator_sampler
    from pngan.train.config import load_train_config
    from pngan.train.loop import train_pngan

    rows = _table3_rows(args)
    if any("loss.alignment=denoiser" in ov for _, ov, note in rows if not note.startswith("skipped")) \
            and not args.denoiser:
        raise PnganError("table3 needs --denoiser NAME:CHECKPOINT (the frozen real denoiser of every row but "
                         "Baseline 1)")
    test = open_dataset(args.test)
    results, by_config = [], {}
    for name, ov, note in rows:
        entry = {"row": name, "overrides": ov, "note": note}
        if note.startswith("skipped"):
            results.append(entry)
            continue
        overrides = common + ov
        key = _config_key(load_train_config(preset, overrides))
        if key in by_config:  # same configuration as an earlier row: same run
            entry.update({k: v for k, v in by_config[key].items() if k not in ("row", "overrides", "note")})
            entry["note"] = (note + "; " if note else "") + f"same run as {by_config[key]['row']}"
            results.append(entry)
            continue
        run = out / "runs" / _slug(name)

        def train(cfg, run_resume, _run=run):
            train_pngan(cfg, args.data, _run, denoiser=args.denoiser, vgg_weights=args.vgg, resume=run_resume,
                        progress=not args.quiet)

        _train_row(load_train_config, train, overrides, preset, run)
        res = evaluate_noise(test, sample_fn=generator_sampler(run, seed=args.seed), samples=args.samples)
        entry.update({"run": str(run), **{k: res["mean"][k] for k in METRICS}, "count": res["count"]})
        if args.psnr_arch:
            entry.update(_row_psnr(args, preset, load_train_config(preset, overrides), run, test))
        by_config[key] = entry
        results.append(entry)
    cols = [*METRICS, *(("psnr", "ssim_y") if args.psnr_arch else ())]
    md = _markdown(
        "PNGAN ablation (paper Table 3)", ["row", *cols, "note"],
        [[r["row"], *[_fmt(r.get(k)) for k in cols], r["note"]] for r in results],
        [f"config: {preset} {' '.join(common)}; training data: {' '.join(args.data)}; held-out: {args.test}",
         "realism metrics of `pngan evaluate noise` (lower is more realistic), one generated sample per "
         "held-out clean image, mean over images"])
    return {"table": "table3", "config": preset, "overrides": common, "data": args.data, "test": args.test,
            "rows": results, "markdown": md}


def _row_psnr(args, preset: str, gcfg, run: Path, test) -> dict:
    """A denoiser trained on the row's generator (fresh noise on the --data clean images every step),
    evaluated on the held-out real pairs."""
    from pngan.eval.denoise_eval import evaluate_denoiser
    from pngan.nets.loading import load_saved_network
    from pngan.train.denoiser import load_denoiser_config, train_denoiser

    dn_run = run / "denoiser"
    ov = [f"net.arch={args.psnr_arch}", f"run.seed={args.seed}", f"data.patch_size={gcfg.data.patch_size}",
          f"data.batch_size={gcfg.data.batch_size}", f"run.threads={gcfg.run.threads}"]
    if args.psnr_steps is not None:
        ov.append(f"run.steps={args.psnr_steps}")

    def train(cfg, run_resume):
        train_denoiser(cfg, [f"gen:{run}:{spec}" for spec in args.data], dn_run, resume=run_resume,
                       progress=not args.quiet)

    _train_row(load_denoiser_config, train, ov, preset, dn_run)
    net, _ = load_saved_network(dn_run / "denoiser.safetensors")
    res = evaluate_denoiser(net, test)
    return {"psnr": res["mean"]["psnr"], "ssim_y": res["mean"]["ssim_y"], "denoiser_run": str(dn_run)}


def _rho(args, preset: str, common: list[str], out: Path) -> dict:
    from pngan.data.specs import open_dataset
    from pngan.errors import PnganError
    from pngan.eval.denoise_eval import evaluate_denoiser
    from pngan.nets.loading import load_saved_network
    from pngan.train.denoiser import load_denoiser_config, train_denoiser

    if not args.generated:
        raise PnganError("rho needs --generated SPEC (the generated pairs, mixed with --data at each ratio)")
    try:
        ratios = [float(x) for x in args.ratios.split(",") if x.strip()]
    except ValueError:
        raise PnganError(f"--ratios must be numbers separated by commas, got '{args.ratios}'") from None
    test = open_dataset(args.test)
    results = []
    for rho in ratios:
        run = out / "runs" / f"rho-{rho:g}"
        overrides = common + [f"net.arch={args.arch}", f"data.ratio={rho}"]

        def train(cfg, run_resume, _run=run):
            train_denoiser(cfg, [args.generated, *args.data], _run, init=None if run_resume else args.init,
                           resume=run_resume, progress=not args.quiet)

        _train_row(load_denoiser_config, train, overrides, preset, run)
        net, _ = load_saved_network(run / "denoiser.safetensors")
        res = evaluate_denoiser(net, test)
        results.append({"rho": rho, "run": str(run), "psnr": res["mean"]["psnr"], "ssim_y": res["mean"]["ssim_y"],
                        "psnr_input": res["mean"]["psnr_input"], "count": res["count"]})
    md = _markdown(
        "Generated:real ratio rho (paper Table 4)", ["rho", "PSNR", "SSIM"],
        [[f"{r['rho']:g}", f"{r['psnr']:.2f}", f"{r['ssim_y']:.4f}"] for r in results],
        [f"{args.arch}, config {preset} {' '.join(common)}, {'fine-tuned from ' + args.init if args.init else 'from scratch'}; "
         f"generated: {args.generated}; real: {' '.join(args.data)}; held-out: {args.test}"])
    return {"table": "rho", "arch": args.arch, "config": preset, "overrides": common, "generated": args.generated,
            "data": args.data, "test": args.test, "init": args.init, "rows": results, "markdown": md}


def run(args: argparse.Namespace) -> int:
    import logging

    import torch

    from pngan.io.atomic import atomic_write_text

    logging.basicConfig(level=logging.INFO, format="pngan: %(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    preset = args.config or ("paper" if torch.cuda.is_available() else "cpu-small")
    common = list(args.overrides) + [f"run.seed={args.seed}"]
    if args.steps is not None:
        common.append(f"run.steps={args.steps}")
    res = (_table3 if args.table == "table3" else _rho)(args, preset, common, out)
    md = res.pop("markdown")
    name = "table3" if args.table == "table3" else "table4_rho"
    atomic_write_text(out / f"{name}.json", json.dumps(res, indent=2) + "\n")
    atomic_write_text(out / f"{name}.md", md)
    print(md)
    print(f"pngan: wrote {out / (name + '.md')} and {out / (name + '.json')}")
    return 0
