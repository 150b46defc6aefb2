"""``pngan train``: train PNGAN's generator against real noisy/clean pairs."""

from __future__ import annotations

import argparse

from pngan.validate import STEPS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", action="append", required=True, metavar="SPEC",
                   help="real noisy/clean pairs, FORMAT:PATH (repeatable), e.g. sidd:SIDD_Medium_Srgb, camera:builtin")
    p.add_argument("--denoiser", metavar="NAME:CHECKPOINT",
                   help="frozen pretrained real denoiser for the image-domain alignment, e.g. "
                        "dncnn:../shared/weights/dncnn_sidd_naflow.pth or a pngan .safetensors file; without it, "
                        "a DnCNN is first trained on the same --data pairs into RUN/frozen-denoiser (resumable); "
                        "not needed when the alignment term has no weight (loss.lambda_align=0, as in cpu-sidd)")
    p.add_argument("--denoiser-config", metavar="PRESET|FILE.yaml",
                   help="train-denoiser config of that frozen denoiser (default: frozen-cpu on CPU, paper on GPU)")
    p.add_argument("--setting", choices=["awgn", "raw", "calibrated"], help="synthetic setting of the generator's "
                   "input (awgn: setting 1, sigma 50; raw: setting 2; calibrated: a noise model fitted on the "
                   "--data pairs); default from the config")
    p.add_argument("--config", default=None, metavar="PRESET|FILE.yaml",
                   help="paper (the paper's full setting; default on GPU), cpu-small (minutes on 2 CPU cores; "
                        "default on CPU), cpu-sidd (cpu-small's recipe for sRGB pairs of many ISOs such as SIDD: "
                        "each input at its patch's level, a per-intensity noise-distribution term, 2400 steps, "
                        "no frozen denoiser needed), or a YAML file (may start with 'base: PRESET')")
    p.add_argument("--vgg", metavar="PATH", help="VGG16 weights (torchvision vgg16-397923af.pth layout) for the "
                   "perceptual loss; without it the perceptual term is off unless loss.perceptual=random")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder (created; must not exist unless --resume)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint; "
                   "refused if --data, --denoiser, --setting, --config or an override would change the run "
                   "(run.steps and other run.* execution keys may change: see README)")
    p.add_argument("--steps", type=STEPS, help="override run.steps (>= 1; safe to change on --resume)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. data.batch_size=16 run.seed=1")


def frozen_denoiser(args: argparse.Namespace, cfg) -> str | None:
    """Train (or finish, or reuse) the frozen real denoiser of the run ``args.out`` on its own
    --data pairs, in RUN/frozen-denoiser; returns its weights file, or None when interrupted."""
    import logging
    import os
    from pathlib import Path

    import torch

    from pngan.errors import PnganError
    from pngan.train import checkpoint as ck
    from pngan.train.denoiser import train_denoiser
    from pngan.train.denoiser_config import load_denoiser_config

    log = logging.getLogger("pngan")
    out = Path(args.out)
    dn_dir = out / ck.FROZEN_DENOISER_DIR
    weights = dn_dir / "denoiser.safetensors"
    if args.denoiser_config and (dn_dir / "config.yaml").is_file():  # the recorded one is what continues
        from pngan.train import runid

        recorded = load_denoiser_config(str(dn_dir / "config.yaml"), None)
        given = load_denoiser_config(args.denoiser_config, [f"run.seed={cfg.run.seed}", f"run.device={cfg.run.device}"])
        diff = [k for k in runid.config_changes(recorded, given) if k not in runid.SAFE_ON_RESUME]
        if diff:
            raise PnganError(f"--denoiser-config {args.denoiser_config} differs from the config this run's frozen "
                             f"denoiser was started with ({', '.join(diff[:4])}): leave --denoiser-config out to "
                             "continue it, or start a new run (another --out)", out)
    # under torchrun after the check above: every process refuses another --denoiser-config alike
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if not (dn_dir / "done").is_file():
            raise PnganError("under torchrun, train the frozen denoiser first (the same command in one process, "
                             "or 'pngan train-denoiser') and pass --denoiser", out)
        return str(weights)
    if (dn_dir / "done").is_file():
        return str(weights)
    if not args.resume:
        ck.check_new_run_folder(out, "train")
    if (dn_dir.exists() and not (dn_dir / "config.yaml").is_file()):
        ck.check_new_run_folder(dn_dir, "train-denoiser")
    preset = args.denoiser_config or ("paper" if torch.cuda.is_available() else "frozen-cpu")
    again = (dn_dir / "config.yaml").is_file()
    dcfg = load_denoiser_config(str(dn_dir / "config.yaml") if again else preset,
                                [f"run.seed={cfg.run.seed}", f"run.device={cfg.run.device}"])
    from pngan.train import runid

    # the frozen denoiser learns from the run's --data: continuing it on other files is refused
    ident = runid.identity("train-denoiser", list(args.data), {"init": None})
    if again:
        runid.check_resume(dn_dir, dcfg, dcfg, ident, refusal="the frozen denoiser of this run was started on "
                           "other data", hint="Give the --data it started with, or start a new run (another --out)")
        rec = runid.read(dn_dir)
        if rec is None or "content" not in (rec.get("identity") or {}) or "config" not in rec:  # an older pngan's
            from pngan.config import to_dict

            runid.write(dn_dir, {**(rec or {}), "identity": ident, "resumes": (rec or {}).get("resumes", []),
                                 "config": to_dict(dcfg)})
    else:
        runid.record_new(dn_dir, ident, dcfg)
    log.info("no --denoiser given: %s the frozen real denoiser (%s, %s, %d steps) on %s into %s",
             "continuing" if again else "training", dcfg.net.arch, preset, dcfg.run.steps, ", ".join(args.data), dn_dir)
    res = train_denoiser(dcfg, list(args.data), dn_dir, resume=again, progress=not args.quiet)
    if res.interrupted:
        return None
    (dn_dir / "done").write_text(f"{res.step}\n")
    return str(weights)


def run(args: argparse.Namespace) -> int:
    import logging

    import torch

    from pngan.errors import PnganError
    from pngan.train.config import load_train_config
    from pngan.train.loop import train_pngan

    logging.basicConfig(level=logging.INFO, format="pngan: %(message)s")
    overrides = list(args.overrides)
    if args.setting:
        overrides.append(f"synthetic.setting={args.setting}")
    if args.steps is not None:
        overrides.append(f"run.steps={args.steps}")
    from pathlib import Path

    from pngan.train import runid
    from pngan.train.checkpoint import FROZEN_DENOISER_DIR
    from pngan.train.loop import check_perceptual
    from pngan.validate import check_device, check_role, writable_dir

    runid.refuse_duplicate_data(args.data)
    if args.denoiser:
        check_role(args.denoiser, "denoiser", "--denoiser")
    if args.vgg:
        check_role(args.vgg, "features", "--vgg")
    preset = "paper" if torch.cuda.is_available() else "cpu-small"
    out = Path(args.out)
    # --resume of a run stopped while its frozen denoiser was training: PNGAN itself starts fresh
    resume = args.resume and (out / "config.yaml").is_file()
    if args.resume and not resume and not (out / FROZEN_DENOISER_DIR / "config.yaml").is_file():
        why = "does not exist" if not out.exists() else "has no config.yaml (it never started training)"
        raise PnganError(f"--resume: not a pngan run folder: it {why}; start the run without --resume", out)
    denoiser = args.denoiser
    if not resume:  # a new run: everything that can be refused is refused before anything is made
        cfg0 = load_train_config(args.config or preset, overrides)
        check_perceptual(cfg0, args.vgg)
        if cfg0.synthetic.setting == "calibrated" and cfg0.synthetic.calibration:
            from pngan.noise.calibrated import load_calibration

            load_calibration(cfg0.synthetic.calibration)  # a bad file is refused before any folder is made
        check_device(cfg0.run.device)
        writable_dir(out, "run folder")
        # a frozen denoiser is needed only for a weighted alignment term (cpu-sidd has none)
        if denoiser is None and cfg0.loss.alignment == "denoiser" and cfg0.loss.lambda_align > 0:
            denoiser = frozen_denoiser(args, cfg0)
            if denoiser is None:
                print("pngan: interrupted while training the frozen denoiser; checkpoint written; continue with --resume")
                return 130
    elif args.denoiser_config and (out / FROZEN_DENOISER_DIR / "config.yaml").is_file():
        # a resumed run keeps the frozen denoiser it trained: another --denoiser-config is refused, not ignored
        frozen_denoiser(args, load_train_config(str(out / "config.yaml"), None))
    with runid.run_folder("train", args.out, args.data, {"denoiser": denoiser, "vgg": args.vgg},
                          resume=resume, load=load_train_config, config=args.config, default_config=preset,
                          overrides=overrides) as (cfg, nets):
        res = train_pngan(cfg, args.data, args.out, denoiser=nets["denoiser"], vgg_weights=nets["vgg"],
                          resume=resume, progress=not args.quiet)
    import os

    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: rank 0 speaks
        return 130 if res.interrupted else 0
    if res.interrupted:
        print(f"pngan: interrupted at step {res.step}; checkpoint written; continue with --resume")
        return 130
    print(f"pngan: trained to step {res.step}; generator: {res.run_dir / 'generator.safetensors'}")
    return 0
