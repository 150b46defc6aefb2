"""``pngan ablation table3|rho``: the paper's ablation tables, every row trained and evaluated.

``table3`` (paper Table 3): one PNGAN generator per row, cumulative as in the paper,

    loss / discriminator part             generator part (full loss; our multi-scale SMNet)
    Baseline 1  naive L1(fake, real)      Baseline 2   single-scale SMNet, no FCA
    +D_R        L1(Dn(fake), Dn(real))    +Multi-scale three paths, bilinear down/up-sampling
    +D          + pixel discriminator     +SID         SID downsampling instead of bilinear
    +VGG        + perceptual loss         +FCA         + channel attention (= full PNGAN)
                                          SIMNet       the authors' released generator (full loss)

The pixel discriminator of every row with one is the released ``dense`` one; the loss rows use the
config's generator (the released SIMNet in ``paper``). The generator rows are our multi-scale
reading of the paper's figure: the released network is single-scale, so it has no "+Multi-scale"
row of its own; its row is added last.

all at one config (``--config``, ``--steps``), then evaluated on held-out real pairs with the
realism metrics of ``pngan evaluate noise`` (KLD, AKLD, MMD; one generated sample per clean
image, seeded per image). Rows with the same configuration share one run (e.g. +FCA and +VGG).
Without ``--vgg`` the +VGG row is left out and the generator rows train without the perceptual
term (the table says so).

``rho`` (paper Table 4): one ``train-denoiser`` run per ratio rho of generated to real data
(``--ratio``; 0 = real only), evaluated by PSNR/SSIM on held-out real pairs.

Each writes ``OUT/<table>.md`` and ``OUT/<table>.json``; runs go to ``OUT/runs/<row>``. Rerunning
with the same ``--out`` reuses finished rows and resumes unfinished ones, and the table keeps the
rows of earlier runs that were not run again (``--rows`` / ``--ratios`` add rows to it). One ``--out``
holds one ablation: another config, other data, test set or networks are refused (choose another
``--out``), and a row's run trained with another config or data is never reused (``RUN/run.json`` and
its ``config.yaml`` are compared, as ``--resume`` does).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from pngan.train import runid

# (name, overrides) in the paper's order; each row is cumulative
LOSS_ROWS: list[tuple[str, list[str]]] = [
    ("Baseline 1", ["loss.alignment=naive", "loss.discriminator=none", "loss.perceptual=off"]),
    ("+D_R", ["loss.alignment=denoiser", "loss.discriminator=none", "loss.perceptual=off"]),
    ("+D", ["loss.alignment=denoiser", "loss.discriminator=dense", "loss.perceptual=off"]),
    ("+VGG", ["loss.alignment=denoiser", "loss.discriminator=dense", "loss.perceptual=imagenet"]),
]
GENERATOR_ROWS: list[tuple[str, list[str]]] = [
    ("Baseline 2", ["generator.name=smnet", "generator.multiscale=false", "generator.fca=false"]),
    ("+Multi-scale", ["generator.name=smnet", "generator.multiscale=true", "generator.downsample=bilinear",
                      "generator.fca=false"]),
    ("+SID", ["generator.name=smnet", "generator.multiscale=true", "generator.downsample=sid", "generator.fca=false"]),
    ("+FCA", ["generator.name=smnet", "generator.multiscale=true", "generator.downsample=sid", "generator.fca=true"]),
    ("SIMNet", ["generator.name=simnet", "generator.fca=true"]),
]
# Keys that set a run's scale or bookkeeping, not its method: a CPU row differs from the paper's row in
# these by design. Every other key that differs is printed in the table ("beyond the paper's row").
SCALE_KEYS = ("generator.channels", "generator.groups", "generator.blocks", "loss.d_channels",
              "loss.perceptual_missing", "data.", "run.")
METRICS = ("kld_noiseflow", "kld_naflow", "akld", "mmd")


def _common_arguments(p: argparse.ArgumentParser) -> None:
    from pngan.validate import SEED, STEPS

    p.add_argument("--data", action="append", required=True, metavar="SPEC",
                   help="real noisy/clean training pairs (repeatable)")
    p.add_argument("--test", required=True, metavar="SPEC", help="held-out real noisy/clean pairs for the evaluation")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (tables + one run folder per row); "
                   "a later run into it reuses finished rows and adds its rows to the table (rows not run again are "
                   "kept); another config, data or test set in the same folder is refused")
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
    full_loss = ["loss.alignment=denoiser", "loss.discriminator=dense", perceptual]
    for name, ov in LOSS_ROWS:
        if name == "+VGG" and not args.vgg:
            rows.append((name, ov, "skipped: needs --vgg (VGG16 weights)"))
            continue
        rows.append((name, ov, ""))
    for name, ov in GENERATOR_ROWS:
        rows.append((name, full_loss + ov, "" if args.vgg else "without the perceptual term (no --vgg)"))
    if args.rows is not None:
        from pngan.errors import PnganError

        want = [x.strip() for x in args.rows.split(",") if x.strip()]
        known = [n for n, _, _ in rows]
        if not want:
            raise PnganError(f"--rows names no row; give some of: {', '.join(known)} (or leave --rows out for all)")
        bad = [w for w in want if w not in known]
        if bad:
            raise PnganError(f"unknown --rows {bad}; rows: {', '.join(known)}")
        rows = [r for r in rows if r[0] in want]
    return rows


def _beyond_paper(cfg, paper) -> list[str]:
    """``KEY=VALUE`` for every method key in which a row's config differs from the paper's row (the
    ``paper`` preset with the row's own overrides): what the row adds beyond the paper's row."""
    from pngan.config import to_dict

    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    a, b = flat(to_dict(cfg)), flat(to_dict(paper))
    return [f"{k}={a[k]}" for k in a if a[k] != b.get(k) and not k.startswith(SCALE_KEYS)]


def _config_key(cfg) -> str:
    """Equal for rows that train the same thing (generator.downsample unset == sid)."""
    from pngan.config import config_hash

    g = cfg.generator
    if g.downsample == "sid" or not g.multiscale:
        g.downsample = None
    return config_hash(cfg)


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
        entry["beyond_paper"] = _beyond_paper(load_train_config(preset, overrides), load_train_config("paper", ov))
        key = _config_key(load_train_config(preset, overrides))
        if key in by_config:  # same configuration as an earlier row: same run
            entry.update({k: v for k, v in by_config[key].items() if k not in ("row", "overrides", "note", "beyond_paper")})
            entry["note"] = (note + "; " if note else "") + f"same run as {by_config[key]['row']}"
            results.append(entry)
            continue
        run = out / "runs" / _slug(name)

        def train(cfg, run_resume, _run=run):
            return train_pngan(cfg, args.data, _run, denoiser=args.denoiser, vgg_weights=args.vgg,
                               resume=run_resume, progress=not args.quiet)

        steps = runid.train_or_reuse(load_train_config, train, overrides, preset, run, kind="train", data=args.data,
                                     networks={"denoiser": args.denoiser, "vgg": args.vgg}, row=name,
                                     what="the ablation row")
        res = evaluate_noise(test, sample_fn=generator_sampler(run, seed=args.seed), samples=args.samples)
        entry.update({"run": str(run), **{k: res["mean"][k] for k in METRICS}, "count": res["count"],
                      "steps": steps, "config_sha256": key})
        if args.psnr_arch:
            entry.update(_row_psnr(args, preset, load_train_config(preset, overrides), run, test))
        by_config[key] = entry
        results.append(entry)
    return {"table": "table3", "config": preset, "overrides": common, "data": args.data, "test": args.test,
            "rows": results}


def _steps_note(rows: list[dict], label) -> str:
    steps = {label(r): r["steps"] for r in rows if r.get("steps") is not None}
    if len(set(steps.values())) <= 1:
        return f"steps: {next(iter(steps.values()), '-')}"
    return "steps per row: " + ", ".join(f"{k} {v}" for k, v in steps.items())


def _table3_markdown(res: dict, job: dict) -> str:
    cols = [*METRICS, *(("psnr", "ssim_y") if job.get("psnr_arch") else ())]
    rows = res["rows"]
    return _markdown(
        "PNGAN ablation (paper Table 3)", ["row", *cols, "beyond the paper's row", "note"],
        [[r["row"], *[_fmt(r.get(k)) for k in cols], ", ".join(r.get("beyond_paper") or []) or "-", r["note"]]
         for r in rows],
        [f"config: {job['config']} {' '.join(job['overrides'])}; {_steps_note(rows, lambda r: r['row'])}; "
         f"training data: {' '.join(res['data'])}; held-out: {res['test']}",
         "realism metrics of `pngan evaluate noise` (lower is more realistic), one generated sample per "
         "held-out clean image, mean over images",
         "'beyond the paper's row': every setting of the row that is not the paper's (the `paper` preset with "
         "the row's own changes), scale (widths, patches, steps) aside; '-' is the paper's row at this scale"])


def _row_psnr(args, preset: str, gcfg, run: Path, test) -> dict:
    """A denoiser trained on the row's generator (fresh noise on the --data clean images every step),
    evaluated on the held-out real pairs."""
    from pngan.eval.denoise_eval import evaluate_denoiser
    from pngan.nets.loading import load_saved_network
    from pngan.train.denoiser import train_denoiser
    from pngan.train.denoiser_config import load_denoiser_config

    dn_run = run / "denoiser"
    ov = [f"net.arch={args.psnr_arch}", f"run.seed={args.seed}", f"data.patch_size={gcfg.data.patch_size}",
          f"data.batch_size={gcfg.data.batch_size}", f"run.threads={gcfg.run.threads}"]
    if args.psnr_steps is not None:
        ov.append(f"run.steps={args.psnr_steps}")

    data = [f"gen:{run}:{spec}" for spec in args.data]

    def train(cfg, run_resume):
        return train_denoiser(cfg, data, dn_run, resume=run_resume, progress=not args.quiet)

    _forget_if_generator_changed(dn_run, data)
    runid.train_or_reuse(load_denoiser_config, train, ov, preset, dn_run, kind="train-denoiser", data=data,
                         networks={"init": None}, row=f"{run.name}/denoiser", what="the ablation row")
    net, _ = load_saved_network(dn_run / "denoiser.safetensors")
    res = evaluate_denoiser(net, test)
    return {"psnr": res["mean"]["psnr"], "ssim_y": res["mean"]["ssim_y"], "denoiser_run": str(dn_run)}


def _forget_if_generator_changed(dn_run: Path, data: list[str]) -> None:
    """A row's PSNR denoiser is derived from the row's generator: when that generator trained on
    (more steps), the denoiser trained on the old one is removed so that it is trained again."""
    import logging
    import shutil

    rec = runid.read(dn_run) if dn_run.is_dir() else None
    old = [c.get("generator") for c in ((rec or {}).get("identity") or {}).get("content") or []]
    if old and old != [runid.data_content(d).get("generator") for d in data]:
        logging.getLogger("pngan").info("%s: its row's generator changed since it was trained: training it again",
                                        dn_run)
        shutil.rmtree(dn_run)


def _rho(args, preset: str, common: list[str], out: Path) -> dict:
    from pngan.data.specs import open_dataset
    from pngan.errors import PnganError
    from pngan.eval.denoise_eval import evaluate_denoiser
    from pngan.nets.loading import load_saved_network
    from pngan.train.denoiser import train_denoiser
    from pngan.train.denoiser_config import load_denoiser_config

    if not args.generated:
        raise PnganError("rho needs --generated SPEC (the generated pairs, mixed with --data at each ratio)")
    ratios = parse_ratios(args.ratios)
    test = open_dataset(args.test)
    results = []
    for rho in ratios:
        run = out / "runs" / f"rho-{rho:g}"
        overrides = common + [f"net.arch={args.arch}", f"data.ratio={rho}"]

        def train(cfg, run_resume, _run=run):
            return train_denoiser(cfg, [args.generated, *args.data], _run,
                                  init=None if run_resume else args.init, resume=run_resume, progress=not args.quiet)

        steps = runid.train_or_reuse(load_denoiser_config, train, overrides, preset, run, kind="train-denoiser",
                                     data=[args.generated, *args.data], networks={"init": args.init},
                                     row=f"rho {rho:g}", what="the ablation row")
        net, _ = load_saved_network(run / "denoiser.safetensors")
        res = evaluate_denoiser(net, test)
        results.append({"rho": rho, "run": str(run), "psnr": res["mean"]["psnr"], "ssim_y": res["mean"]["ssim_y"],
                        "psnr_input": res["mean"]["psnr_input"], "count": res["count"], "steps": steps})
    return {"table": "rho", "arch": args.arch, "config": preset, "overrides": common, "generated": args.generated,
            "data": args.data, "test": args.test, "init": args.init, "rows": results}


def _rho_markdown(res: dict, job: dict) -> str:
    rows = res["rows"]
    return _markdown(
        "Generated:real ratio rho (paper Table 4)", ["rho", "PSNR", "SSIM"],
        [[f"{r['rho']:g}", f"{r['psnr']:.2f}", f"{r['ssim_y']:.4f}"] for r in rows],
        [f"{res['arch']}, config {job['config']} {' '.join(job['overrides'])}, "
         f"{_steps_note(rows, lambda r: 'rho ' + format(r['rho'], 'g'))}, "
         f"{'fine-tuned from ' + res['init'] if res['init'] else 'from scratch'}; "
         f"generated: {res['generated']}; real: {' '.join(res['data'])}; held-out: {res['test']}"])


def parse_ratios(text: str) -> list[float]:
    import math

    from pngan.errors import PnganError

    items = [x.strip() for x in text.split(",")]
    if any(items) and not all(items):
        raise PnganError(f"--ratios: an empty item in '{text}': give ratios separated by commas, e.g. 0,0.5,1")
    try:
        ratios = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise PnganError(f"--ratios must be numbers separated by commas, got '{text}'") from None
    if not ratios:
        raise PnganError("--ratios names no ratio; give e.g. 0,0.5,1")
    bad = [r for r in ratios if not (math.isfinite(r) and 0 <= r <= 1e6)]
    if bad:
        raise PnganError(f"--ratios: each ratio must be a finite number in [0, 1e6], got {bad[0]:g}")
    seen: set[str] = set()
    for r in ratios:
        if f"{r:g}" in seen:  # rows (and their run folders rho-R) are named by f"{rho:g}"
            raise PnganError(f"--ratios lists {r:g} twice (as {text!r}); give each ratio once")
        seen.add(f"{r:g}")
    return ratios


def _job(args, preset: str, common: list[str]) -> dict:
    """What one --out's table is about: every row in it was trained and evaluated with this.
    Training steps may differ per row (each row records its own)."""
    from pngan.train.runid import data_content, network_identity, normalize_spec

    job = {"table": args.table, "config": preset,
           "overrides": [o for o in common if not o.startswith("run.steps=")],
           "data": [normalize_spec(d) for d in args.data], "test": normalize_spec(args.test)}
    # the files behind the specs, not only their paths: a kept row was trained and scored on these
    content = {"data": [data_content(d, strict=False) for d in args.data], "test": data_content(args.test, strict=False)}
    if args.table == "table3":
        job.update(denoiser=network_identity(args.denoiser), vgg=network_identity(args.vgg), samples=args.samples,
                   psnr_arch=args.psnr_arch)
    else:
        job.update(generated=normalize_spec(args.generated), arch=args.arch, init=network_identity(args.init))
        content["generated"] = data_content(args.generated, strict=False)
    job["content"] = content
    return job


def _earlier_rows(path: Path, job: dict) -> list[dict]:
    """The rows of the table an earlier run wrote in this --out (refused when it is another ablation)."""
    from pngan.errors import PnganError
    from pngan.io.outdir import _fmt as fmt
    from pngan.io.records import read_json_record

    old = read_json_record(path, "ablation table")
    if old is None:
        return []
    if not isinstance(old.get("job"), dict):  # written by an older pngan: its own fields say what it was
        old["job"] = _older_job(old, job, path)
    if "content" not in old["job"]:  # an older pngan recorded no content hashes: this run's are adopted
        import warnings

        warnings.warn(f"{path} records no content hashes of the data and test set (written by an older pngan): "
                      "whether their files changed cannot be checked this time; they are recorded now")
        old["job"]["content"] = job["content"]
    # a network given to one run and not to another (e.g. --denoiser, which Baseline 1 alone does not
    # use) is no difference here: each row's own run records and checks the networks it trained with
    optional = {"denoiser", "vgg", "init"}
    for k in optional:
        if job.get(k) is None:
            job[k] = old["job"].get(k)
    diffs = [f"{k}: {fmt(old['job'].get(k))} -> {fmt(job.get(k))}" for k in sorted(set(old["job"]) | set(job))
             if k != "content" and old["job"].get(k) != job.get(k) and not (k in optional and old["job"].get(k) is None)]
    was, now = old["job"].get("content") or {}, job["content"]
    opt = {"data": "--data", "test": "--test", "generated": "--generated"}
    diffs += [f"the files behind {opt.get(k, k)} changed since its rows were run" for k in sorted(set(was) | set(now))
              if was.get(k) != now.get(k)]
    if diffs:
        raise PnganError("--out holds an ablation of another config or data (" + "; ".join(diffs[:4]) + "); its rows "
                         "would be mixed with these: choose another --out", path)
    return list(old.get("rows") or [])


def _older_job(old: dict, job: dict, path: Path) -> dict:
    """The job of a table written by an older pngan, from the config, overrides, data and test set it
    lists (it recorded no networks: those of this run are taken; each row's run still checks its own)."""
    from pngan.errors import PnganError
    from pngan.train.runid import normalize_spec

    try:
        older = {**job, "config": old["config"],
                 "overrides": [o for o in old["overrides"] if not str(o).startswith("run.steps=")],
                 "data": [normalize_spec(d) for d in old["data"]], "test": normalize_spec(old["test"])}
        if job["table"] == "rho":
            older.update(generated=normalize_spec(old["generated"]), arch=old["arch"])
    except (KeyError, TypeError, PnganError):
        raise PnganError("unreadable ablation table of an older pngan; move it away or choose another --out",
                         path) from None
    return older


def _check_new_folder(out: Path, name: str) -> None:
    """An --out without this table's record may hold only the row runs of an interrupted first run
    (``runs/``) and the other ablation table: a user's files are never written over. (A user's own
    table3.md beside no table3.json is refused: only a table with its record is pngan's.)"""
    from pngan.errors import PnganError

    if not out.is_dir():
        return
    other = "table4_rho" if name == "table3" else "table3"
    ours = {"runs", *((f"{other}.json", f"{other}.md") if (out / f"{other}.json").is_file() else ())}
    foreign = sorted(p.name for p in out.iterdir() if not p.name.startswith(".") and p.name not in ours)
    if foreign:
        raise PnganError(f"--out is not empty and holds no earlier '{name}' ablation (it has {', '.join(foreign[:4])}"
                         f"{'...' if len(foreign) > 4 else ''}); its files are not replaced: choose an empty or new "
                         "folder", out)


def _merge(earlier: list[dict], new: list[dict], key, order) -> list[dict]:
    """Rows run now replace the same rows of the earlier table; the other earlier rows are kept."""
    done = {key(r) for r in new}
    return sorted([r for r in earlier if key(r) not in done] + new, key=lambda r: order(key(r)))


def run(args: argparse.Namespace) -> int:
    import logging

    import torch

    logging.basicConfig(level=logging.INFO, format="pngan: %(message)s")
    out = Path(args.out)
    preset = args.config or ("paper" if torch.cuda.is_available() else "cpu-small")
    common = list(args.overrides) + [f"run.seed={args.seed}"]
    if args.steps is not None:
        common.append(f"run.steps={args.steps}")
    from pngan.io.lock import folder_lock
    from pngan.validate import writable_dir

    writable_dir(out, "--out folder")
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with folder_lock(out, "ablation folder"):  # two ablations into one folder would each write half a table
            return _run_locked(args, out, preset, common)
    except BaseException:
        if made and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise


def _run_locked(args, out: Path, preset: str, common: list[str]) -> int:
    from pngan.io.atomic import atomic_write_text

    job = _job(args, preset, common)
    name = "table3" if args.table == "table3" else "table4_rho"
    earlier = _earlier_rows(out / f"{name}.json", job)  # refused before any training
    if not (out / f"{name}.json").exists():
        _check_new_folder(out, name)
    from pngan.data.specs import refuse_overlap

    refuse_overlap([*args.data, *([args.generated] if args.table == "rho" else [])], [args.test])
    if getattr(args, "denoiser", None):
        from pngan.data.specs import network_training_data, warn_overlap

        warn_overlap(network_training_data(args.denoiser), [args.test], f"the frozen denoiser {args.denoiser}",
                     "--test", "the alignment term then pulls towards the held-out pairs' own noise")
    if getattr(args, "init", None):
        from pngan.data.specs import network_training_data, warn_overlap

        warn_overlap(network_training_data(args.init), [args.test], f"the --init network {args.init}", "--test",
                     "every row starts from weights that saw the held-out pairs")
    if args.table == "rho":  # the options are checked before anything is made
        parse_ratios(args.ratios)
    else:
        _table3_rows(args)
    res = (_table3 if args.table == "table3" else _rho)(args, preset, common, out)
    if args.table == "table3":
        names = [n for n, _ in LOSS_ROWS + GENERATOR_ROWS]
        res["rows"] = _merge(earlier, res["rows"], lambda r: r["row"],
                             lambda k: names.index(k) if k in names else len(names))
        md = _table3_markdown(res, job)
    else:
        res["rows"] = _merge(earlier, res["rows"], lambda r: float(r["rho"]), lambda k: k)
        md = _rho_markdown(res, job)
    res["job"] = job
    res["overrides"] = job["overrides"]
    atomic_write_text(out / f"{name}.json", json.dumps(res, indent=2) + "\n")
    atomic_write_text(out / f"{name}.md", md)
    print(md)
    print(f"pngan: wrote {out / (name + '.md')} and {out / (name + '.json')}")
    return 0
