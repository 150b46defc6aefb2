"""``pngan train-denoiser``: train or fine-tune a denoiser on real, generated or mixed pairs."""

from __future__ import annotations

import argparse

from pngan.validate import STEPS, float_range


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", required=True, help="denoiser network: dncnn, ridnet, mirnet, mprnet (see 'pngan info')")
    p.add_argument("--data", action="append", required=True, metavar="SPEC",
                   help="noisy/clean pairs, FORMAT:PATH (repeatable), or synth:SETTING:SPEC for the clean images of "
                        "SPEC with fresh synthetic noise every step (SETTING awgn = setting 1, raw = setting 2; paper "
                        "Table 2; or a saved calibration, synth:FILE.json:SPEC, written by 'pngan synth --setting "
                        "calibrated --fit PAIRS --save-fit FILE.json'), or gen:RUN:SPEC (a 'pngan train' run's "
                        "generator). With --ratio the FIRST --data is the generated set and the others the real sets")
    p.add_argument("--ratio", type=float_range(0.0, 1e6), metavar="RHO",
                   help="generated:real samples = rho:1 exactly over training (paper Table 4; 0 = real only)")
    p.add_argument("--init", metavar="CHECKPOINT", help="fine-tune from this checkpoint (NAME:PATH or pngan "
                   "safetensors); uses optim.finetune_lr (paper: 1e-6)")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder (created; must not exist unless --resume)")
    p.add_argument("--config", default=None, metavar="PRESET|FILE.yaml",
                   help="paper (default on GPU) or cpu-small (default on CPU), or a YAML file")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--steps", type=STEPS, help="override run.steps (>= 1; safe to change on --resume)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. data.batch_size=16")


def run(args: argparse.Namespace) -> int:
    import logging
    import torch

    from pngan.train.denoiser import train_denoiser
    from pngan.train.denoiser_config import load_denoiser_config

    logging.basicConfig(level=logging.INFO, format="pngan: %(message)s")
    overrides = list(args.overrides) + [f"net.arch={args.arch}"]
    if args.ratio is not None:
        overrides.append(f"data.ratio={args.ratio}")
    if args.steps is not None:
        overrides.append(f"run.steps={args.steps}")
    from pngan.train import runid
    from pngan.validate import check_role

    if args.ratio is None:  # with --ratio the first set plays the generated part: the same files may be both
        runid.refuse_duplicate_data(args.data)
    if args.init:
        check_role(args.init, "denoiser", "--init")
    if args.init and not args.resume:
        # the checkpoint's shape goes into the run's config from the start (run.json and config.yaml
        # agree, so a resume after any stop compares like with like)
        import json

        from pngan.train.denoiser import init_network

        cfg0 = load_denoiser_config(args.config or ("paper" if torch.cuda.is_available() else "cpu-small"), overrides)
        overrides.append(f"net.kwargs={json.dumps(init_network(cfg0, args.init)[1])}")
    elif args.resume and not any(o.split("=", 1)[0].strip() == "net.kwargs" for o in overrides):
        # a run started from --init has the checkpoint's shape (recorded in its config): a resume that
        # names a preset again keeps it rather than meeting "net.kwargs {...} -> {}"
        import json
        from pathlib import Path

        try:
            rec = runid.read(Path(args.out)) or {}
        except Exception:  # an unreadable run.json is reported by the checks that need it
            rec = {}
        if ((rec.get("identity") or {}).get("networks") or {}).get("init"):
            kw = ((rec.get("config") or {}).get("net") or {}).get("kwargs")
            if isinstance(kw, dict) and kw:
                overrides.append(f"net.kwargs={json.dumps(kw)}")
    preset = "paper" if torch.cuda.is_available() else "cpu-small"
    with runid.run_folder("train-denoiser", args.out, args.data, {"init": args.init}, resume=args.resume,
                          load=lambda c, o: load_denoiser_config(c, o, check_net=not args.resume),
                          config=args.config, default_config=preset,
                          overrides=overrides) as (cfg, nets):
        # --init is applied once, when the run starts; a resumed run continues from its own checkpoint
        res = train_denoiser(cfg, args.data, args.out, init=None if args.resume else nets["init"],
                             resume=args.resume, progress=not args.quiet)
    import os

    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: rank 0 speaks
        return 130 if res.interrupted else 0
    if res.interrupted:
        print(f"pngan: interrupted at step {res.step}; checkpoint written; continue with --resume")
        return 130
    print(f"pngan: trained to step {res.step}; denoiser: {res.run_dir / 'denoiser.safetensors'}")
    return 0
