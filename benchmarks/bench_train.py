"""Training-step benchmark (issue 6): where a PNGAN training step spends its time.

For each config (``paper``: SMNet C=64 3x2, 128x128 patches, batch 8; ``cpu-small``: C=32 2x1,
48x48, batch 8), with the pixel discriminator, a frozen DnCNN as the real denoiser and VGG16 (random
weights: timing does not depend on the values):

1. each network's own forward/backward, exactly as a step uses it, timed alone:
   - ``G``: forward + backward to its weights (batch B);
   - ``D (D step)``: forward on real and fake (2 x B) + backward to its weights;
   - ``D (G step)``: forward on real without autograd + forward on fake + backward to the input;
   - ``denoiser``: the same pattern (real without autograd, fake with backward to the input);
   - ``VGG``: the same pattern;
   each with its counted FLOPs, GFLOP/s and fraction of the conv peak measured in the same run;
2. the real training loop (``pngan.train.loop.train_pngan`` on ``camera:builtin``), whose per-phase
   times (data + synthetic input, G forward, D step, G step) are read from its stats.jsonl;
3. the ratio of the loop's step time to the sum of (1): the target is <= 1.25.

    python benchmarks/bench_train.py [--configs paper cpu-small] [--steps 5] [--device cuda]
    PNGAN_TUNE_MALLOC=0 python benchmarks/bench_train.py --reference-smnet   # the step before issue 6

Writes benchmarks/results/train-<device>[-before].json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from pngan.perf import tune_allocator

TUNED = tune_allocator()  # as the pngan CLI does, before torch allocates anything

import torch  # noqa: E402

from pngan.perf import conv_peak, count_flops, machine, time_fn  # noqa: E402


def _pattern_frozen(net, real, fake):
    """Frozen network in the G step: real branch without autograd, fake branch backpropagated to
    the input (fake comes from G)."""
    with torch.no_grad():
        net(real)
    out = net(fake)
    out.float().abs().mean().backward()


def components(cfg, dev, repeat: int) -> dict:
    from pngan.losses.perceptual import build_perceptual
    from pngan.nets.registry import build

    mf = torch.channels_last
    B, P = cfg.data.batch_size, cfg.data.patch_size
    G = build("smnet", **cfg.generator.kwargs()).to(dev, memory_format=mf)
    D = build("pixel_discriminator", channels=cfg.loss.d_channels).to(dev, memory_format=mf)
    Dn = build("dncnn").to(dev, memory_format=mf).eval().requires_grad_(False)
    vgg = build_perceptual(None, "random").to(dev, memory_format=mf).requires_grad_(False)
    x = torch.rand(B, 3, P, P, device=dev).contiguous(memory_format=mf)
    real = torch.rand(B, 3, P, P, device=dev).contiguous(memory_format=mf)

    def g_step():
        G.zero_grad(set_to_none=True)
        G(x).abs().mean().backward()

    def d_dstep():
        D.zero_grad(set_to_none=True)
        (D(real).mean() - D(x).mean()).backward()

    def d_gstep():
        D.requires_grad_(False)
        try:
            _pattern_frozen(D, real, x.clone().requires_grad_(True))
        finally:
            D.requires_grad_(True)

    fns = {
        "G fwd+bwd": g_step,
        "D fwd+bwd (D step)": d_dstep,
        "D fwd+bwd-to-input (G step)": d_gstep,
        "denoiser fwd+bwd-to-input": lambda: _pattern_frozen(Dn, real, x.clone().requires_grad_(True)),
        "VGG fwd+bwd-to-input": lambda: _pattern_frozen(vgg, real, x.clone().requires_grad_(True)),
    }
    out = {}
    for name, fn in fns.items():
        flops = count_flops(fn)
        t = time_fn(fn, dev, warmup=1, repeat=repeat)
        out[name] = {"s": t, "gflop": flops / 1e9, "gflops_per_s": flops / t / 1e9}
        print(f"  {name:32s} {t:8.3f} s  {flops / 1e9:8.1f} GFLOP  {flops / t / 1e9:7.1f} GFLOP/s", flush=True)
    return out


def loop(cfg_name: str, dev, steps: int, denoiser_path: Path, work: Path) -> dict:
    from pngan.train.config import load_train_config
    from pngan.train.loop import train_pngan

    cfg = load_train_config(cfg_name, [f"run.steps={steps}", "run.log_every=1", f"run.ckpt_every={steps}",
                                       f"run.sample_every={steps}", f"run.device={dev.type}",
                                       "loss.perceptual=random", "run.time_phases=true"])
    run = work / f"run-{cfg_name}"
    train_pngan(cfg, ["camera:builtin"], run, denoiser=f"dncnn:{denoiser_path}", progress=False)
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    rows = rows[1:] if len(rows) > 2 else rows  # the first step warms up (allocations, oneDNN kernels)
    keys = ["sec_per_step", "sec_data", "sec_g_forward", "sec_d_step", "sec_g_step"]
    return {k: statistics.median(r[k] for r in rows) for k in keys} | {"steps_measured": len(rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", nargs="+", default=["cpu-small", "paper"])
    ap.add_argument("--steps", type=int, default=5, help="loop steps per config (the first is not counted)")
    ap.add_argument("--repeat", type=int, default=3, help="timed repeats of each component (median)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reference-smnet", action="store_true",
                    help="SMNet's literal formulation (MAB.forward_reference), as before issue 6's optimisation")
    args = ap.parse_args()
    if args.reference_smnet:
        from pngan.nets.smnet import MAB

        MAB.forward = MAB.forward_reference
    dev = torch.device(args.device)
    from pngan.nets.registry import build
    from pngan.train.config import load_train_config

    peak = conv_peak(dev)
    res = {"machine": machine(), "device": str(dev), "allocator_tuned": TUNED,
           "smnet_forward": "reference" if args.reference_smnet else "fast", "conv_peak": peak, "configs": {}}
    print(f"conv peak {peak['gflops']:.1f} GFLOP/s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        dn = Path(tmp) / "dncnn.pth"
        torch.manual_seed(0)
        torch.save(build("dncnn").state_dict(), dn)
        for name in args.configs:
            cfg = load_train_config(name)
            print(f"{name}: batch {cfg.data.batch_size} x {cfg.data.patch_size}^2", flush=True)
            comp = components(cfg, dev, args.repeat)
            lp = loop(name, dev, args.steps, dn, Path(tmp))
            total_s = sum(c["s"] for c in comp.values())
            total_f = sum(c["gflop"] for c in comp.values())
            for c in comp.values():
                c["fraction_of_peak"] = c["gflops_per_s"] / peak["gflops"]
            sums = {
                "d_step_networks_s": comp["D fwd+bwd (D step)"]["s"],
                # G's forward is its own phase in the loop; its backward is in the G step
                "g_fwd_bwd_plus_frozen_networks_s": total_s - comp["D fwd+bwd (D step)"]["s"],
            }
            r = {
                "batch": cfg.data.batch_size, "patch": cfg.data.patch_size,
                "generator": cfg.generator.kwargs(), "components": comp, "loop": lp,
                "sum_of_networks_s": total_s, "step_gflop": total_f,
                "step_gflops_per_s": total_f / lp["sec_per_step"],
                "step_fraction_of_peak": total_f / lp["sec_per_step"] / peak["gflops"],
                "step_over_sum_of_networks": lp["sec_per_step"] / total_s, "target_ratio": 1.25,
                "d_step_over_its_networks": lp["sec_d_step"] / sums["d_step_networks_s"],
                "g_forward_plus_g_step_over_their_networks": (lp["sec_g_forward"] + lp["sec_g_step"])
                / sums["g_fwd_bwd_plus_frozen_networks_s"],
            }
            res["configs"][name] = r
            print(f"  loop: {lp['sec_per_step']:.3f} s/step (data {lp['sec_data']:.3f}, G fwd "
                  f"{lp['sec_g_forward']:.3f}, D step {lp['sec_d_step']:.3f}, G step {lp['sec_g_step']:.3f}); "
                  f"sum of networks {total_s:.3f} s; ratio {r['step_over_sum_of_networks']:.2f} (target <= 1.25); "
                  f"{r['step_gflops_per_s']:.1f} GFLOP/s = {100 * r['step_fraction_of_peak']:.0f}% of peak", flush=True)
    before = args.reference_smnet and not TUNED
    out = Path(__file__).parent / "results" / f"train-{dev.type}{'-before' if before else ''}.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
