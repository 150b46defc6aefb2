"""Network benchmark (issue 3): parameters, counted GFLOPs per megapixel, forward and
forward+backward time, achieved GFLOP/s as a fraction of a plain 64->64 3x3 conv measured in the
same run. Writes benchmarks/results/nets-<device>.json.

    python benchmarks/bench_nets.py                 # CPU, every network (a few minutes on 2 cores)
    python benchmarks/bench_nets.py --device cuda
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from pngan.nets.registry import available, build
from pngan.perf import conv_peak, count_flops, machine, time_fn

SHAPES = {"128x128 b8": (8, 128, 128), "512x512 b1": (1, 512, 512)}
# MIRNet/MPRNet (16-32M parameters) take ~9 s per 128x128 forward on a 2-core CPU: the required
# shapes would take many minutes per measurement, so on CPU they are measured at 128x128 batch 1,
# forward only, and the skipped measurements are recorded as skipped.
HEAVY = {"mirnet", "mprnet"}
HEAVY_CPU_SHAPES = {"128x128 b1": (1, 128, 128)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--nets", nargs="*", default=None)
    ap.add_argument("--channels-last", action="store_true", default=True)
    ap.add_argument("--out", default=None)
    ap.add_argument("--default-allocator", action="store_true",
                    help="leave glibc's allocator as it is (default: tune it, as the pngan CLI does)")
    args = ap.parse_args()
    from pngan.perf import tune_allocator

    tuned = False if args.default_allocator else tune_allocator()
    dev = torch.device(args.device)
    mf = torch.channels_last if args.channels_last else torch.contiguous_format
    peak = conv_peak(dev)
    res = {"machine": machine(), "device": str(dev), "memory_format": str(mf), "allocator_tuned": tuned,
           "conv_peak": peak, "nets": {}}
    print(f"conv 64->64 3x3 peak: {peak['gflops']:.1f} GFLOP/s {peak['by_format']}")
    for name in args.nets or available():
        net = build(name).to(dev, memory_format=mf)
        params = sum(p.numel() for p in net.parameters())  # unique parameters (shared tensors once)
        entry = {"params": params}
        run = (lambda m: m.denoise) if hasattr(net, "denoise") else (lambda m: m)
        heavy = dev.type == "cpu" and name in HEAVY
        if heavy:
            entry.update({k: "skipped on CPU (about 9 s per 128x128 image forward; minutes per measurement)"
                          for k in SHAPES})
        for label, (b, h, w) in (HEAVY_CPU_SHAPES if heavy else SHAPES).items():
            x = torch.rand(b, 3, h, w, device=dev).contiguous(memory_format=mf)
            net.eval()
            with torch.no_grad():
                f = count_flops(lambda: run(net)(x))
                t = time_fn(lambda: run(net)(x), dev, warmup=0 if heavy else 1, repeat=1 if heavy else (2 if dev.type == "cpu" else 10))
            r = {"gflops_per_mp": f / 1e9 / (b * h * w / 1e6), "fwd_s": t, "fwd_gflops_per_s": f / t / 1e9,
                 "fwd_fraction_of_peak": f / t / 1e9 / peak["gflops"]}
            if heavy:
                r["fwd_bwd"] = "skipped on CPU (minutes per step)"
            else:
                net.train()
                xg = x.clone().requires_grad_(True)

                def step():
                    out = run(net)(xg)
                    (out[0] if isinstance(out, (list, tuple)) else out).float().mean().backward()

                fb = count_flops(step)
                tb = time_fn(step, dev, warmup=1, repeat=2 if dev.type == "cpu" else 10)
                r.update({"fwd_bwd_s": tb, "fwd_bwd_gflops_per_s": fb / tb / 1e9,
                          "fwd_bwd_fraction_of_peak": fb / tb / 1e9 / peak["gflops"]})
                net.zero_grad(set_to_none=True)
            entry[label] = r
            print(f"{name:20s} {label}: {r['gflops_per_mp']:.1f} GFLOP/MP, fwd {t:.3f}s "
                  f"({r['fwd_fraction_of_peak']:.0%} of peak)" + (f", fwd+bwd {r['fwd_bwd_s']:.3f}s" if "fwd_bwd_s" in r else ""))
        res["nets"][name] = entry
    out = Path(args.out or Path(__file__).parent / "results" / f"nets-{dev.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
