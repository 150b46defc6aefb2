"""``pngan generate``: clean images in, realistic noisy/clean pairs out."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--generator", required=True, metavar="RUN_OR_WEIGHTS",
                   help="a pngan train run folder, or its generator .safetensors file")
    p.add_argument("--input", required=True, metavar="SPEC",
                   help="clean images: clean:DIR (a plain DIR means clean:DIR), or any pair set (its clean images)")
    p.add_argument("--output", required=True, metavar="DIR", help="output folder (a pairs: data set); re-running completes it")
    p.add_argument("--samples", type=int, default=1, help="noisy samples per clean image (default 1)")
    p.add_argument("--seed", type=int, default=0, help="run seed; each (image, sample) derives its own")
    p.add_argument("--tile", type=int, default=512, help="tile size for large images (default 512)")
    p.add_argument("--overlap", type=int, default=32, help="tile halo in pixels (default 32)")
    p.add_argument("--fast-tiles", action="store_true",
                   help="pool channel attention per tile (one pass, approximate) instead of exact whole-image statistics")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: autocast (for GPUs; output written as 8/16-bit images either way; default fp32)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pngan.errors import PnganError
    from pngan.infer.api import NoiseGenerator
    from pngan.infer.generate import generate
    from pngan.train.distributed import init, resolve_device, shutdown

    if args.samples < 1:
        raise PnganError("--samples must be at least 1")
    spec = args.input if ":" in args.input and not Path(args.input).exists() else f"clean:{args.input}"
    dist = init(args.device)
    device = resolve_device(args.device, dist)
    if device.type == "cuda":
        import torch

        torch.backends.cudnn.benchmark = True  # tiles share one shape, so the tuned algorithm is reused
    gen = NoiseGenerator.load(args.generator, device=device, tile=args.tile, overlap=args.overlap,
                              exact_tiles=not args.fast_tiles, precision=args.precision)
    res = generate(gen, spec, args.output, samples=args.samples, seed=args.seed, rank=dist.rank,
                   world_size=dist.world_size, progress=not args.quiet, barrier=dist.barrier)
    if dist.enabled:  # each rank counted its own images: report the totals
        import torch
        import torch.distributed as td

        t = torch.tensor([res["written"], res["skipped"]], dtype=torch.int64, device=device)
        td.all_reduce(t)
        res["written"], res["skipped"] = (int(v) for v in t.tolist())
    if dist.is_main:
        print(f"pngan: wrote {res['written']} noisy images ({res['skipped']} already there) to {args.output}")
    shutdown()
    return 0
