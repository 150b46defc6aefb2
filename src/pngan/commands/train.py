"""``pngan train``: train PNGAN's generator against real noisy/clean pairs."""

from __future__ import annotations

import argparse

from pngan.validate import STEPS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", action="append", required=True, metavar="SPEC",
                   help="real noisy/clean pairs, FORMAT:PATH (repeatable), e.g. sidd:SIDD_Medium_Srgb, camera:builtin")
    p.add_argument("--denoiser", metavar="NAME:CHECKPOINT",
                   help="frozen pretrained real denoiser for the image-domain alignment, e.g. "
                        "dncnn:../shared/weights/dncnn_sidd_naflow.pth or a pngan .safetensors file")
    p.add_argument("--setting", choices=["awgn", "raw"], help="synthetic setting of the generator's input "
                   "(awgn: setting 1, sigma 50; raw: setting 2); default from the config (awgn)")
    p.add_argument("--config", default=None, metavar="PRESET|FILE.yaml",
                   help="paper (the paper's full setting; default on GPU) or cpu-small (minutes on 2 CPU cores; "
                        "default on CPU), or a YAML file (may start with 'base: PRESET')")
    p.add_argument("--vgg", metavar="PATH", help="VGG16 weights (torchvision vgg16-397923af.pth layout) for the "
                   "perceptual loss; without it the perceptual term is off unless loss.perceptual=random")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder (created; must not exist unless --resume)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint; "
                   "refused if --data, --denoiser, --setting, --config or an override would change the run "
                   "(run.steps and other run.* execution keys may change: see README)")
    p.add_argument("--steps", type=STEPS, help="override run.steps (>= 1; safe to change on --resume)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. data.batch_size=16 run.seed=1")


def run(args: argparse.Namespace) -> int:
    import logging

    import torch

    from pngan.train.config import load_train_config
    from pngan.train.loop import train_pngan

    logging.basicConfig(level=logging.INFO, format="pngan: %(message)s")
    overrides = list(args.overrides)
    if args.setting:
        overrides.append(f"synthetic.setting={args.setting}")
    if args.steps is not None:
        overrides.append(f"run.steps={args.steps}")
    from pngan.train import runid
    from pngan.validate import check_role

    if args.denoiser:
        check_role(args.denoiser, "denoiser", "--denoiser")
    if args.vgg:
        check_role(args.vgg, "features", "--vgg")
    preset = "paper" if torch.cuda.is_available() else "cpu-small"
    with runid.run_folder("train", args.out, args.data, {"denoiser": args.denoiser, "vgg": args.vgg},
                          resume=args.resume, load=load_train_config, config=args.config, default_config=preset,
                          overrides=overrides) as (cfg, nets):
        res = train_pngan(cfg, args.data, args.out, denoiser=nets["denoiser"], vgg_weights=nets["vgg"],
                          resume=args.resume, progress=not args.quiet)
    import os

    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: rank 0 speaks
        return 130 if res.interrupted else 0
    if res.interrupted:
        print(f"pngan: interrupted at step {res.step}; checkpoint written; continue with --resume")
        return 130
    print(f"pngan: trained to step {res.step}; generator: {res.run_dir / 'generator.safetensors'}")
    return 0
