"""``pngan evaluate noise|denoiser``: noise realism (KLD/AKLD/MMD) and denoiser PSNR/SSIM."""

from __future__ import annotations

import argparse
import json

from pngan.validate import COUNT, SEED, tile_size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="what", metavar="WHAT", required=True)
    n = sub.add_parser("noise", help="realism of generated noise against real pairs (KLD, AKLD, MMD)")
    n.add_argument("--real", required=True, metavar="SPEC", help="real noisy/clean pairs, e.g. pairs:DIR or sidd:DIR")
    src = n.add_mutually_exclusive_group(required=True)
    src.add_argument("--generated", metavar="DIR_OR_SPEC",
                     help="generated noisy images for the same clean images, matched by name (X or X_K)")
    src.add_argument("--generator", metavar="RUN_OR_WEIGHTS", help="generate with a trained generator (run folder "
                     "or generator .safetensors), seeded per image like 'pngan generate'")
    src.add_argument("--setting", help="score a synthetic baseline instead: awgn (1), raw (2), calibrated (fitted on "
                     "--fit pairs) or calibrated:FILE.json")
    n.add_argument("--fit", metavar="SPEC", help="with --setting calibrated: the real training pairs to fit it on "
                   "(e.g. polyu:DIR@train; never the --real pairs you score on); with --checkpoints: also score "
                   "the calibrated baseline fitted on these pairs, for comparison")
    n.add_argument("--checkpoints", action="store_true",
                   help="with --generator RUN: score every checkpoint the run kept (metrics against training "
                   "steps: time to quality); keep more with run.keep_checkpoints / run.ckpt_every when training")
    n.add_argument("--plot", metavar="PNG", help="with --checkpoints: draw the metrics against steps")
    n.add_argument("--samples", type=COUNT, default=None, metavar="L",
                   help="generated samples per image, L: AKLD is averaged over them (DANet's protocol uses 50: "
                   "--samples 50). With --generator/--setting default 1 (CPU-friendly); with --generated the first "
                   "L samples X_0..X_{L-1} of each image (default: all found)")
    n.add_argument("--level", choices=("fixed", "match", "reference"), default="fixed",
                   help="fixed (default): every image at the level the model was fitted/trained at. match: each "
                   "model is given each --real pair's noise level, one number per image (the gain of the "
                   "calibrated fit that the pair's noise has; for SIDD, whose images span ISO 100-3200, this is "
                   "the part the ISO plays for NoiseFlow), so the metrics compare the noise's shape, not a level "
                   "no model can see in a clean image. reference: each model is given the level estimated from "
                   "the --real pair's noisy image alone (no clean image: as 'generate --reference' matches a noisy "
                   "image you have), so the model is not handed the pair's own noise. For --setting calibrated and "
                   "generators fed by it")
    n.add_argument("--seed", type=SEED, default=0)
    n.add_argument("--json", metavar="OUT", help="write per-image and mean metrics as JSON")

    d = sub.add_parser("denoiser", help="PSNR/SSIM of a denoiser on pairs (or a DND submission bundle)")
    d.add_argument("--model", required=True, metavar="NAME:CHECKPOINT",
                   help="e.g. dncnn:dncnn.pth, or a pngan safetensors (network read from its metadata)")
    d.add_argument("--data", required=True, action="append", metavar="SPEC",
                   help="test pairs; repeat for several sets (one row each in the printed table)")
    d.add_argument("--ssim", choices=("y", "rgb"), default="y",
                   help="SSIM in the printed table: y (luma, PNGAN's test code and the paper's tables; default) or "
                   "rgb (mean over R, G, B); the JSON holds both as ssim_y / ssim_rgb")
    d.add_argument("--json", metavar="OUT")
    d.add_argument("--save-images", metavar="DIR",
                   help="write the denoised images here (a new or empty folder, or one this same evaluation wrote "
                   "before: it records itself in DIR/job.json); never a folder of the evaluated data")
    d.add_argument("--overwrite", action="store_true",
                   help="with --save-images: write into a folder that holds other files (same-named files are "
                   "replaced; never the evaluated data's own folders)")
    d.add_argument("--tile", type=tile_size, default=512, help="tile size for large images (0: whole image; else >= 8)")
    d.add_argument("--out", metavar="DIR", help="DND only: where the submission bundle goes (default dnd-submission)")

    g = sub.add_parser("pgap", help="PSNR gap: denoiser trained on real minus trained on generated pairs")
    g.add_argument("--real-train", action="append", required=True, metavar="SPEC")
    g.add_argument("--generated-train", action="append", required=True, metavar="SPEC")
    g.add_argument("--test", required=True, metavar="SPEC", help="held-out real pairs")
    g.add_argument("--arch", default="dncnn")
    g.add_argument("--config", default="cpu-small", metavar="PRESET|FILE.yaml", help="train-denoiser config (both runs)")
    g.add_argument("--out", required=True, metavar="DIR", help="folder for the two training runs")
    g.add_argument("--resume", action="store_true", help="continue unfinished runs in --out")
    g.add_argument("--json", metavar="OUT")
    g.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="train-denoiser config overrides")


def _write_json(path, obj, command: str) -> None:
    """Strict JSON (a non-finite metric is written as "inf" / "-inf" / "nan"), marked as this command's
    output (pngan.io.json_out), so that a rerun replaces it and nothing else is written over."""
    from pngan.io.json_out import write_json

    write_json(path, obj, command)


def _check_outputs(args) -> None:
    """Every output path is checked before any work (an evaluation can take hours)."""
    from pngan.io.json_out import check_json_target, check_plot_target, distinct_outputs
    from pngan.validate import writable_dir

    distinct_outputs({"--json": getattr(args, "json", None), "--plot": getattr(args, "plot", None),
                      "--save-images": getattr(args, "save_images", None), "--out": getattr(args, "out", None)})
    from pngan.data.specs import refuse_file_in_data

    inputs = [getattr(args, k, None) for k in ("real", "generated", "fit", "reference")] + \
        list(getattr(args, "data", None) or [])
    for opt in ("json", "plot"):  # never a file inside the data read (it would join the data set)
        refuse_file_in_data(getattr(args, opt, None), inputs, f"--{opt}")
    if getattr(args, "json", None):
        check_json_target(args.json, f"evaluate {args.what}")
    if getattr(args, "plot", None):
        from pngan.eval.plots import TRAJECTORY_MAKER

        check_plot_target(args.plot, TRAJECTORY_MAKER)
    if getattr(args, "save_images", None):
        writable_dir(args.save_images, "--save-images folder")
    if getattr(args, "out", None):
        writable_dir(args.out, "--out folder")


def _adopt_content(old: dict, job: dict, out) -> dict:
    """A pgap job.json of an older pngan records no content hashes: adopt this run's, with a warning."""
    if "content" in old:
        return old
    import warnings

    warnings.warn(f"{out}/job.json records no content hashes of the data (written by an older pngan): whether its "
                  "files changed cannot be checked this time; they are recorded now")
    return {**old, "content": job["content"]}


def _print_noise(res: dict) -> None:
    from pngan.eval.noise_metrics import METRIC_LABELS

    n = res.get("samples")
    n = f"{n['min']}-{n['max']}" if isinstance(n, dict) else n
    print(f"generated samples per image (L): {n}")
    for k, v in res["mean"].items():
        print(f"{k:>14}: {v:.4f}   {METRIC_LABELS.get(k, '')}")


def denoiser_table(sets: list[dict], which: str = "y") -> str:
    """The paper's table layout (Tables 1/4): one markdown row per test set, PSNR and the chosen
    SSIM (``y``: luma, PNGAN's test code; ``rgb``: mean over R, G, B)."""
    label = "SSIM (Y)" if which == "y" else "SSIM (RGB)"
    lines = [f"| set | PSNR | {label} |", "|---|---|---|"]
    for r in sets:
        m = r["mean"]
        lines.append(f"| {r['data']} | {m['psnr']:.2f} | {m['ssim_' + which]:.4f} |")
    return "\n".join(lines)


def _trajectory(args: argparse.Namespace) -> int:
    """``evaluate noise --generator RUN --checkpoints``: every kept checkpoint on the --real pairs."""
    from pngan.data.specs import open_dataset
    from pngan.errors import PnganError
    from pngan.eval import denoise_eval as de
    from pngan.eval.plots import TRAJECTORY_KEYS as TRAJECTORY_COLUMNS  # the plot's panels are the table's columns

    if not args.checkpoints:
        raise PnganError("--plot draws a checkpoint trajectory: add --checkpoints")
    if args.generator is None:
        raise PnganError("--checkpoints needs --generator RUN (a 'pngan train' run folder)")
    from pathlib import Path

    from pngan.train.checkpoint import list_checkpoints

    # everything that can be refused is refused before the table's header is printed
    real = open_dataset(args.real)
    samples = args.samples or 1
    kept = [d / "generator.safetensors" for _, d in list_checkpoints(args.generator)]
    kept = [f for f in kept if f.is_file()]
    if not kept:
        what = "a folder" if Path(args.generator).is_dir() else "not a run folder"
        raise PnganError(f"--checkpoints: no generator checkpoints here ({what}); give a 'pngan train' run folder",
                         args.generator)
    de.generator_sampler(kept[-1], seed=args.seed, level=args.level)  # a generator, at a level it can take
    baseline = de.synthetic_sampler("calibrated", args.seed, fit=args.fit, level=args.level) if args.fit else None
    head = "| step | " + " | ".join(TRAJECTORY_COLUMNS) + " |"
    print(head + "\n|" + "---|" * (len(TRAJECTORY_COLUMNS) + 1), flush=True)

    def row(label, mean):
        print(f"| {label} | " + " | ".join(f"{mean[k]:.4f}" for k in TRAJECTORY_COLUMNS) + " |", flush=True)

    baselines = {}
    if baseline is not None:  # the same baseline as '--setting calibrated --fit SPEC'
        b = de.evaluate_noise(real, sample_fn=baseline, samples=samples)
        baselines["calibrated (fitted on --fit)"] = b["mean"]
        row("calibrated", b["mean"])
    res = de.checkpoint_trajectory(args.generator, real, seed=args.seed, samples=samples, level=args.level,
                                   progress=lambda r: row(r["step"], r["mean"]))
    res["baselines"] = baselines
    res["fit"] = args.fit
    print("best step: " + ", ".join(f"{k} {v}" for k, v in res["best_step"].items())
          + "  (chosen on --real: select on a validation split, not on your test pairs)")
    if args.plot:
        from pngan.eval.plots import plot_trajectory

        plot_trajectory(args.plot, res["checkpoints"], baselines)
        print(f"plot: {args.plot}")
    if args.json:
        _write_json(args.json, res, f"evaluate {args.what}")
    return 0


def run(args: argparse.Namespace) -> int:
    import logging

    from tqdm import tqdm

    from pngan.data.specs import open_dataset
    from pngan.errors import PnganError
    from pngan.eval import denoise_eval as de

    logging.basicConfig(level=logging.INFO, format="pngan: %(message)s")
    _check_outputs(args)
    if args.what == "noise" and args.setting is not None:
        from pngan.commands.synth import check_setting_options

        check_setting_options(args.setting, fit=args.fit, level=args.level)
    if args.what == "noise":  # the fit and the generator must not have seen the pairs scored
        from pngan.data.specs import generator_training_data, refuse_overlap, warn_overlap

        if args.fit and (args.setting is not None or args.checkpoints):  # where --fit is used
            refuse_overlap([args.fit], [args.real], "--real")
        if args.generator:
            warn_overlap(generator_training_data(args.generator), [args.real], f"the generator {args.generator}",
                         "--real", "the generator learned the scored pairs' own noise (directly, or through the frozen "
                         "denoiser it was trained with)")
        if str(args.setting or "").lower().startswith("calibrated:"):  # a saved fit: what it was fitted on
            from pngan.noise.calibrated import load_calibration

            fitted_on = load_calibration(args.setting.split(":", 1)[1]).fitted_on.split(" ")[0]
            if ":" in fitted_on:
                warn_overlap([fitted_on], [args.real], f"the calibration {args.setting}", "--real",
                             "it was fitted on the scored pairs' own noise")
    if args.what == "denoiser":
        from pngan.data.specs import network_training_data, warn_overlap

        warn_overlap(network_training_data(args.model), list(args.data), f"the model {args.model}", "--data",
                     "it is scored on its own training pairs (directly, or through the --init it was "
                     "fine-tuned from)")
    if args.what == "noise" and (args.checkpoints or args.plot):
        return _trajectory(args)
    if args.what == "noise":
        if args.setting is None and args.fit:
            raise PnganError("--fit fits the calibrated baseline: use it with --setting calibrated, or with "
                             "--generator RUN --checkpoints (to score that baseline beside the checkpoints)")
        fn = None  # the generator (or setting) is checked before the data are read
        if args.level != "fixed" and args.generated is not None:
            raise PnganError(f"--level {args.level} generates at each real pair's level: use it with --generator or "
                             "--setting, not --generated")
        if args.generator is not None:
            from pngan.train.runid import generator_file

            generator_file(args.generator, "--generator")  # a denoiser's run folder is named as such
            fn = de.generator_sampler(args.generator, seed=args.seed, level=args.level)
        elif args.setting is not None:
            fn = de.synthetic_sampler(args.setting, seed=args.seed, fit=args.fit, level=args.level)
        real = open_dataset(args.real)
        if args.generated is not None:
            res = de.evaluate_noise(real, generated=de.collect_generated(args.generated), samples=args.samples,
                                    progress=tqdm)
            res["generated"] = args.generated
        else:
            res = de.evaluate_noise(real, sample_fn=fn, samples=args.samples or 1, progress=tqdm)
            res["generated"] = args.generator or f"setting:{args.setting}"
            res["level"] = args.level
        res["kind"] = "noise"
        _print_noise(res)
    elif args.what == "pgap":
        from pathlib import Path

        from pngan.io import outdir
        from pngan.train.runid import normalize_spec

        # one PSNR-gap job per --out: --resume continues only the same data, test set, arch and config
        job = {"command": "pgap", "real_train": [normalize_spec(x) for x in args.real_train],
               "generated_train": [normalize_spec(x) for x in args.generated_train],
               "test": normalize_spec(args.test), "arch": args.arch, "config": args.config,
               "overrides": list(args.overrides)}
        from pngan.train.runid import data_content

        # the files behind the training specs (and a synth:FILE.json / gen:RUN), not only their paths
        job["content"] = [data_content(x, strict=False) for x in [*args.real_train, *args.generated_train]]
        out = Path(args.out)
        if args.resume and out.is_dir() and not (out / outdir.JOB_FILE).exists():  # a folder of an older pngan
            from pngan.io.atomic import atomic_write_text

            atomic_write_text(out / outdir.JOB_FILE, json.dumps(job, indent=1, sort_keys=True) + "\n")
        from pngan.data.specs import refuse_overlap
        from pngan.train.denoiser_config import load_denoiser_config

        # the config is checked before the folder is claimed (pgap has no --overwrite to undo a claim)
        load_denoiser_config(args.config, list(args.overrides) + [f"net.arch={args.arch}"])
        refuse_overlap([*args.real_train, *args.generated_train], [args.test])
        _refuse_in_data(out, [*args.real_train, *args.generated_train, args.test], "--out", roots_only=True)
        earlier = outdir.claim(out, job, upgrade=lambda old, _out: _adopt_content(old, job, _out),
                               advice="choose another --out (evaluate pgap has no --overwrite)")
        try:
            res = de.pgap(args.real_train, args.generated_train, args.test, args.out, arch=args.arch,
                          config=args.config, overrides=args.overrides, resume=args.resume, progress=True)
        except BaseException:
            if earlier is None:
                outdir.undo_new_claim(out, [out / "real", out / "generated"])
            raise
        finally:
            outdir.release(out)
    else:
        from pngan.data.specs import parse_spec
        from pngan.nets.loading import load_network, parse_net_spec
        from pngan.validate import check_role

        name, path = parse_net_spec(args.model)
        if path.is_dir():
            hint = [p.name for p in sorted(path.glob("*.safetensors"))][:1]
            raise PnganError("--model takes a weights file, not a folder" + (
                f" (this one holds {hint[0]}: give {path / hint[0]})" if hint else ""), path)
        if not path.is_file():
            raise PnganError("model checkpoint not found", path)
        check_role(args.model, "denoiser", "--model")
        net = load_network(name, path)
        net.eval()
        if args.save_images is not None and all(parse_spec(spec)[0] == "dnd" for spec in args.data):
            raise PnganError("--save-images saves the denoised images of sets with clean images; a dnd: set's "
                             "results go into its submission bundle (--out)")  # else: a folder with no image
        dnd_out = _claim_dnd_out(args, path)  # its checks (one set, --out only for DND) before any claim
        if args.save_images is not None:
            _claim_save_images(args, path)
        try:
            return _evaluate_denoiser(args, net, tqdm)
        finally:
            from pngan.io import outdir

            if args.save_images is not None:
                outdir.release(args.save_images)
            if dnd_out is not None:
                outdir.release(dnd_out)
    if res["kind"] != "noise":
        for k, v in res["mean"].items():
            print(f"{k:>14}: {v:.4f}")
    if args.json:
        _write_json(args.json, res, f"evaluate {args.what}")
    return 0


def _refuse_in_data(out, specs: list[str], opt: str, roots_only: bool = False) -> None:
    """An output folder that is a folder of the evaluated data or lies inside one: refused.
    ``roots_only``: only the specs' own folders (no data set is opened: a bad one is reported later)."""
    from pngan.data.specs import folder_in_data
    from pngan.errors import PnganError

    hit = folder_in_data(out, specs, roots_only)
    if hit is not None:
        raise PnganError(f"{opt} must not be a folder of the evaluated data {hit[0]} or inside it "
                         f"({hit[1]}): its files would be replaced; choose another folder", out)


def _claim_dnd_out(args, model_path):
    """--out DIR (DND's submission bundle): one DND set per command, never inside the evaluated data,
    and, like every output folder, new, empty or this same evaluation's (DIR/job.json); another model
    or set refused without --overwrite. Returns the claimed folder (None: no DND set)."""
    from pngan.data.specs import parse_spec
    from pngan.errors import PnganError
    from pngan.io import outdir
    from pngan.io.records import file_sha256
    from pngan.train.runid import normalize_spec

    dnd = [s for s in args.data if parse_spec(s)[0] == "dnd"]
    if not dnd:
        if args.out:
            raise PnganError("--out is where a DND submission bundle goes; --data holds no dnd: set (use --json or "
                             "--save-images for other sets)")
        return None
    if len(dnd) > 1:
        raise PnganError("one dnd: set per command: a submission bundle holds one set's results (run the command "
                         "once per set, each with its own --out)")
    out = args.out or "dnd-submission"
    _refuse_in_data(out, args.data, "--out")
    job = {"command": "evaluate denoiser --out", "model_sha256": file_sha256(model_path),
           "data": normalize_spec(dnd[0])}
    outdir.claim(out, job, overwrite=args.overwrite, owned=("bundled", outdir.JOB_FILE, "[0-9][0-9][0-9][0-9]_[0-9][0-9].mat"),
                 advice="pass --overwrite to replace its submission")
    return out


def _claim_save_images(args, model_path) -> None:
    """--save-images DIR: never a folder of the evaluated data (the test set's own clean/ or noisy/ would be
    replaced by the denoised images), and, like generate/synth output folders, a new or empty folder or one
    this same evaluation wrote (DIR/job.json); a folder holding other files is refused without --overwrite."""
    from pathlib import Path

    from pngan.io import outdir
    from pngan.io.records import file_sha256
    from pngan.train.runid import normalize_spec

    save = Path(args.save_images)
    _refuse_in_data(save, args.data, "--save-images")
    job = {"command": "evaluate denoiser --save-images", "model_sha256": file_sha256(model_path),
           "data": [normalize_spec(x) for x in args.data]}
    outdir.claim(save, job, overwrite=args.overwrite, owned=(outdir.JOB_FILE,),
                 advice="pass --overwrite to write into it anyway (same-named files are replaced)")


def _evaluate_denoiser(args, net, tqdm) -> int:
    from pngan.data.specs import open_dataset
    from pngan.eval import denoise_eval as de

    sets = []
    for spec in args.data:
        data = open_dataset(spec)
        if data.kind == "dnd":
            from pngan.data.dnd import denoise_dnd

            fn = lambda x: de.tiled_denoise(de._denoise_fn(net), x, args.tile)  # noqa: E731
            out = denoise_dnd(data, fn, args.out or "dnd-submission", progress=tqdm)
            print(f"DND submission bundle written to {out} (DND has no public clean images: "
                  "submit the bundle for PSNR/SSIM)")
            continue
        save = args.save_images if len(args.data) == 1 or args.save_images is None else \
            f"{args.save_images}/{len(sets)}"
        r = de.evaluate_denoiser(net, data, tile=args.tile, save_images=save, progress=tqdm)
        r["model"] = args.model
        r["kind"] = "denoiser"
        sets.append(r)
    if not sets:
        return 0
    print(denoiser_table(sets, args.ssim))
    res = sets[0] if len(sets) == 1 else {"kind": "denoiser", "model": args.model, "sets": sets}
    if args.json:
        _write_json(args.json, res, f"evaluate {args.what}")
    return 0
