"""``pngan generate``: clean images in, realistic noisy/clean pairs out."""

from __future__ import annotations

import argparse

from pngan.validate import COUNT, OVERLAP, SEED, device_name, tile_size


def level_arg(text: str):
    """argparse type of --gain: a level policy checked at parse time (pngan.noise.level)."""
    from pngan.errors import PnganError
    from pngan.noise.level import parse_level

    try:
        return parse_level(text)
    except PnganError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--gain: ")) from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--generator", required=True, metavar="RUN_OR_WEIGHTS",
                   help="a pngan train run folder, or its generator .safetensors file")
    p.add_argument("--input", required=True, metavar="SPEC",
                   help="clean images: clean:DIR (a plain DIR means clean:DIR), or any pair set (its clean images)")
    p.add_argument("--output", required=True, metavar="DIR", help="output folder (a pairs: data set); re-running the same job completes it, "
                   "another job (generator, input, seed, tiling) is refused")
    p.add_argument("--overwrite", action="store_true",
                   help="delete --output's noisy/ and clean/ folders, manifest.jsonl and job.json, with "
                   "everything in them, then write this job")
    p.add_argument("--samples", type=COUNT, default=1, help="noisy samples per clean image (default 1)")
    p.add_argument("--seed", type=SEED, default=0, help="run seed; each (image, sample) derives its own")
    p.add_argument("--gain", type=level_arg, default=None, metavar="G|G1,G2,..|LO-HI|fitted",
                   help="noise level, for a generator fed by the calibrated setting: its input noise std times G "
                   "(1: the level fitted on its training pairs; e.g. 0.4 or 1.7 for SIDD's low and high ISOs); "
                   "0.5,1,2: each output image draws one of these; 0.3-2.3: each draws log-uniformly in the "
                   "range; fitted: each draws one of the levels of the pairs it was fitted on. Default: fitted "
                   "for a generator trained with synthetic.level=match on pairs of several levels, else 1. The "
                   "level of each image is drawn from (seed, image, sample) and recorded in manifest.jsonl")
    p.add_argument("--reference", metavar="NOISY_SPEC",
                   help="instead of --gain: noisy images of the camera to match (noisy:DIR or a plain DIR, or any pair "
                   "set's noisy "
                   "images). The noise level of each is estimated without a clean image (relative to the "
                   "generator's calibrated input), and each output image draws one of these levels from (seed, "
                   "image, sample); the levels are recorded in job.json, each image's in manifest.jsonl")
    p.add_argument("--tile", type=tile_size, default=512,
                   help="tile size for large images (default 512; 0: whole image; else >= 8)")
    p.add_argument("--overlap", type=OVERLAP, default=None,
                   help="tile halo in pixels (default: with exact tiles, the generator's receptive field plus the "
                   "seam blend, the least that makes tiles equal the whole image, and smaller is refused; with "
                   "--fast-tiles 32)")
    p.add_argument("--fast-tiles", action="store_true",
                   help="pool channel attention per tile (one pass, approximate) instead of exact whole-image statistics")
    p.add_argument("--device", type=device_name, default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: autocast (for GPUs; output written as 8/16-bit images either way; default fp32)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _same_default_gain(job: dict):
    """A job.json of an older pngan recorded ``--gain 1`` as 1.0: where that is the default level, it is
    recorded as no gain now."""
    def upgrade(old: dict, _out) -> dict:
        return {k: v for k, v in old.items() if k != "gain"} if old.get("gain") == 1.0 and "gain" not in job else old
    return upgrade


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pngan.errors import PnganError
    from pngan.infer.api import NoiseGenerator
    from pngan.infer.generate import generate
    from pngan.train.distributed import init, resolve_device, shutdown

    from pngan.data.specs import parse_spec
    from pngan.infer.api import resolve_generator_path
    from pngan.infer.generate import check_output
    from pngan.io import outdir
    from pngan.io.records import file_sha256
    from pngan.train.runid import normalize_spec
    from pngan.validate import check_device

    check_device(args.device)
    spec = args.input if ":" in args.input and not Path(args.input).exists() else f"clean:{args.input}"
    fmt, in_path, _ = parse_spec(spec)
    from pngan.train.runid import generator_file

    # the generator is checked before the output folder is made
    gen_file = resolve_generator_path(generator_file(args.generator, "--generator"))
    gen = NoiseGenerator.load(gen_file, device="cpu", tile=args.tile, overlap=32 if args.overlap is None else args.overlap,
                              exact_tiles=not args.fast_tiles, precision=args.precision)
    if not args.fast_tiles and args.tile:
        from pngan.infer.tiling import min_exact_overlap

        # exact tiles equal the whole image only with a halo covering the generator's receptive field
        need = min_exact_overlap(gen.net)
        if need is not None and args.overlap is not None and args.overlap < need:
            raise PnganError(f"--overlap {args.overlap} is smaller than this generator's receptive field: exact tiles "
                             f"need --overlap {need} or more (or leave --overlap out)")
        gen.overlap = max(gen.overlap, need or 0) if args.overlap is None else args.overlap
    if args.overlap is None:
        args.overlap = gen.overlap
    from pngan.noise.level import resolve_level

    if args.reference is not None:
        if args.gain is not None:
            raise PnganError("--gain and --reference both set the noise level: give one")
        from pngan.noise.level import reference_policy

        if ":" not in args.reference or Path(args.reference).exists():  # a plain folder: its noisy images
            args.reference = f"noisy:{args.reference}"
        policy = reference_policy(gen.synthetic, args.reference)  # read before the output folder is made
    else:
        policy = resolve_level(args.gain, gen.synthetic, gen.metadata)  # a level for awgn/raw: refused here
        if policy is not None and policy.kind == "fixed" and policy.values[0] == 1.0 \
                and resolve_level(None, gen.synthetic, gen.metadata) is None:
            policy = None  # the default spelled out (the setting's own level): the same job as leaving it out
    check_output(Path(args.output), None if fmt == "camera" else Path(in_path))  # before anything is written
    from pngan.data.specs import open_dataset
    from pngan.infer.generate import check_sample_names

    check_sample_names(list(open_dataset(spec).names))
    job = {"command": "generate", "generator_sha256": file_sha256(gen_file), "input": normalize_spec(spec),
           "seed": args.seed, "fast_tiles": args.fast_tiles, "precision": args.precision,
           "tiling": [args.tile, args.overlap] if args.fast_tiles else None,
           "samples": args.samples, "_safe": ["samples"],
           # the level policy defines the output (a fixed G is recorded as the number, as before; the
           # default policy of a multi-level generator as "fitted", the same job as --gain fitted)
           **({"gain": policy.job_value()} if policy is not None else {}),
           **({"levels": policy.job_levels()} if args.reference is not None else {}),
           # the reference images' levels define the output (above), not where the images are
           **({"reference": normalize_spec(args.reference), "_safe": ["samples", "reference"]}
              if args.reference is not None else {})}
    dist = init(args.device)
    device = resolve_device(args.device, dist)
    if device.type == "cuda":
        import torch

        torch.backends.cudnn.benchmark = True  # tiles share one shape, so the tuned algorithm is reused
    gen = gen.to(device)
    refused = None
    if dist.is_main:  # rank 0 claims (locks, checks, records) the output folder for every rank
        try:
            outdir.claim(args.output, job, overwrite=args.overwrite, upgrade=_same_default_gain(job),
                         inputs={"--reference": args.reference, "--generator": gen_file})
        except PnganError as e:
            refused = e
    if dist.enabled and dist.any_flag(refused is not None, device) or refused is not None:
        raise refused or PnganError("the output folder was refused by rank 0 (see its message)", args.output)
    try:
        res = generate(gen, spec, args.output, samples=args.samples, seed=args.seed, rank=dist.rank,
                       world_size=dist.world_size, progress=not args.quiet, barrier=dist.barrier,
                       generator_id=job["generator_sha256"][:16], gain=policy)
    finally:
        if dist.is_main:
            outdir.release(args.output)
    if dist.enabled:  # each rank counted its own images: report the totals
        import torch
        import torch.distributed as td

        t = torch.tensor([res["written"], res["skipped"]], dtype=torch.int64, device=device)
        td.all_reduce(t)
        res["written"], res["skipped"] = (int(v) for v in t.tolist())
    if dist.is_main:
        print(f"pngan: wrote {res['written']} noisy images ({res['skipped']} already there) to {args.output}")
        if res["removed"]:
            gone = res["removed"]
            print(f"pngan: removed {len(gone)} noisy image(s) of an earlier run that this job no longer defines "
                  f"(input image gone, or a sample beyond --samples {args.samples}): {', '.join(gone[:3])}"
                  f"{' ...' if len(gone) > 3 else ''}")
        foreign = [f for f in res["foreign"] if f"noisy/{f}" not in res["left"]]
        if foreign:
            print(f"pngan: {args.output}/noisy also holds {len(foreign)} file(s) this job did not write: "
                  f"{', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}; they are read as part of "
                  f"pairs:{args.output}: move them out")
        if res["left"]:
            print(f"pngan: left {len(res['left'])} file(s) that this job no longer defines, because they changed "
                  f"since pngan wrote them: {', '.join(res['left'][:3])}{' ...' if len(res['left']) > 3 else ''}; "
                  f"they are read as part of pairs:{args.output}: remove them yourself")
    shutdown()
    return 0
