"""Generation benchmark (issue 6): paper SMNet megapixels/s and GFLOP/s vs the conv peak measured
in the same run (untiled 512x512; channels_last vs contiguous), the cost of exact tiling (stats
passes) vs per-tile pooling, and the peak resident memory of tiled generation of a 6000x4000
image (in a fresh subprocess). Writes benchmarks/results/generate-<device>.json.

    python benchmarks/bench_generate.py [--device cuda] [--big 6000x4000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from pngan.nets.registry import build
from pngan.perf import conv_peak, count_flops, machine, time_fn

MEM_SNIPPET = r"""
import sys, time, torch
from pngan.nets.registry import build
from pngan.infer.tiling import tiled_forward
from pngan.perf import peak_rss_mb
h, w, exact = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
torch.manual_seed(0)
net = build("smnet").eval().to(memory_format=torch.channels_last)
base = peak_rss_mb()
x = torch.rand(1, 3, h, w)
t = time.perf_counter()
with torch.inference_mode():
    y = tiled_forward(net, x, tile=512, overlap=32, exact=exact)
dt = time.perf_counter() - t
print(base, peak_rss_mb(), dt)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--big", default="6000x4000")
    ap.add_argument("--big-exact", action="store_true", help="measure the big image with exact tiling (7 passes)")
    args = ap.parse_args()
    dev = torch.device(args.device)
    peak = conv_peak(dev)
    res = {"machine": machine(), "device": str(dev), "conv_peak": peak}
    torch.manual_seed(0)
    net = build("smnet").eval().to(dev)
    x = torch.rand(1, 3, 512, 512, device=dev)
    with torch.inference_mode():
        flops = count_flops(lambda: net(x))
    res["smnet_gflops_per_mp"] = flops / 1e9 / (512 * 512 / 1e6)
    for fmt, mf in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
        n, xi = net.to(memory_format=mf), x.contiguous(memory_format=mf)
        for mode in ("no_grad", "inference_mode"):
            ctx = torch.no_grad if mode == "no_grad" else torch.inference_mode
            with ctx():
                t = time_fn(lambda: n(xi), dev, warmup=1, repeat=3)
            res[f"untiled_512_{fmt}_{mode}"] = {"s": t, "mp_per_s": 0.262144 / t, "gflops_per_s": flops / t / 1e9,
                                                "fraction_of_peak": flops / t / 1e9 / peak["gflops"]}
            print(fmt, mode, res[f"untiled_512_{fmt}_{mode}"])
    from pngan.infer.tiling import tiled_forward

    net = net.to(memory_format=torch.channels_last)
    xb = torch.rand(1, 3, 1024, 1024, device=dev)
    with torch.inference_mode():
        for exact in (False, True):
            t = time_fn(lambda: tiled_forward(net, xb, tile=512, overlap=32, exact=exact), dev, warmup=0, repeat=1)
            res[f"tiled_1024_{'exact' if exact else 'fast'}"] = {"s": t, "mp_per_s": 1.048576 / t}
            print("tiled 1024", "exact" if exact else "fast", t)
    h, w = (int(v) for v in args.big.split("x"))
    if dev.type == "cpu":
        out = subprocess.run([sys.executable, "-c", MEM_SNIPPET, str(h), str(w), "1" if args.big_exact else "0"],
                             capture_output=True, text=True, check=True).stdout.split()
        base, hwm, dt = (float(v) for v in out)
        res[f"tiled_{h}x{w}_memory"] = {"exact": args.big_exact, "peak_rss_mb": hwm, "rss_before_image_mb": base,
                                         "s": dt, "mp_per_s": h * w / 1e6 / dt, "target_mb": 2048}
        print("big", res[f"tiled_{h}x{w}_memory"])
    out = Path(__file__).parent / "results" / f"generate-{dev.type}.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
