"""``pngan demo``: the whole PNGAN loop end to end, on built-in data unless --data is given."""

from __future__ import annotations

import argparse

from pngan.validate import SEED, STEPS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="pngan-demo", help="output folder (default ./pngan-demo; must be new or empty, "
                   "or a stopped demo's with --resume)")
    p.add_argument("--data", metavar="SPEC", help="real pairs to use instead of camera:builtin, e.g. polyu:../shared/data/real/polyu "
                   "(split by scene into train and held-out test)")
    p.add_argument("--denoiser", metavar="NAME:CKPT", help="frozen real denoiser (default: train a small DnCNN here)")
    p.add_argument("--config", metavar="PRESET|FILE", help="PNGAN config (default cpu-small on CPU, paper on GPU)")
    p.add_argument("--steps", type=STEPS, help="PNGAN training steps (default: 200 with cpu-small on CPU, else the config's)")
    p.add_argument("--denoiser-steps", type=STEPS, help="steps of each small denoiser (default: frozen-cpu's 800)")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--resume", action="store_true", help="continue a demo stopped in --out (same options): "
                   "finished stages are kept, an interrupted training continues from its checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="PNGAN config overrides")


def run(args: argparse.Namespace) -> int:
    import logging

    from pngan.demo import demo_configs, run_demo, summary_table

    from pngan.io.lock import folder_lock
    from pngan.validate import check_role, writable_dir

    logging.basicConfig(level=logging.INFO, format="pngan: %(message)s")
    # --config, KEY=VALUE, the data spec's form: one-line errors before the folder or any work
    demo_configs(args.data, args.config, args.overrides, args.steps, args.denoiser_steps, args.seed)
    writable_dir(args.out, "demo folder")
    if args.denoiser:
        check_role(args.denoiser, "denoiser", "--denoiser")
    with folder_lock(args.out, "demo folder"):
        res = run_demo(args.out, data=args.data, denoiser=args.denoiser, config=args.config, overrides=args.overrides,
                       steps=args.steps, denoiser_steps=args.denoiser_steps, seed=args.seed,
                       progress=not args.quiet, resume=args.resume)
    print(summary_table(res))
    return 0
