"""Generation benchmark (issue 6): the paper SMNet's megapixels/s and GFLOP/s vs a plain 64->64 3x3
conv's GFLOP/s measured in the same process (the machine's practical peak), before and after each
optimisation; the cost of exact tiling (stats passes) vs per-tile pooling; and the peak resident
memory of tiled generation of a 6000x4000 image.

Each untiled variant runs in a fresh subprocess (the allocator setting is per process and cannot be
undone), which measures its own conv peak first:

- ``forward``: ``reference`` (the paper's formulation as written: upsample then 1x1 conv, concat
  then fuse) or ``fast`` (the same function in a cheaper order; what SMNet runs now);
- ``format``: contiguous or channels_last; ``allocator``: glibc default or ``tune_allocator()``
  (what the ``pngan`` CLI does). ``pngan generate`` before issue 6 = reference/contiguous/default;
  now = fast/channels_last/tuned.

GFLOP/s is counted on the executed graph (``fast`` executes 896 GFLOP per megapixel, ``reference``
1,022); "equivalent" GFLOP/s divides the reference FLOPs by the time (a throughput figure).

    python benchmarks/bench_generate.py [--device cuda] [--big 6000x4000] [--big-exact]
    python benchmarks/bench_generate.py --compile      # eager vs torch.compile only
    python benchmarks/bench_generate.py --cli-memory   # the real command on a 6000x4000 PNG: peak memory

Writes benchmarks/results/generate-<device>.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

UNTILED_SNIPPET = r"""
import json, sys
from pngan.perf import tune_allocator
device, fwd, fmt, tune, size = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1", int(sys.argv[5])
compiled = len(sys.argv) > 6 and sys.argv[6] == "1"
tuned = tune_allocator() if tune else False
import torch
from pngan.nets.registry import build
from pngan.nets.smnet import MAB
from pngan.perf import conv_peak, count_flops, time_fn
dev = torch.device(device)
peak = conv_peak(dev)
torch.manual_seed(0)
mf = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
net = build("smnet").eval().to(dev, memory_format=mf)
if fwd == "reference":
    for m in net.modules():
        if isinstance(m, MAB):
            m.forward = m.forward_reference
x = torch.rand(1, 3, size, size, device=dev).contiguous(memory_format=mf)
with torch.inference_mode():
    flops = count_flops(lambda: net(x))
    run = torch.compile(net) if compiled else net
    t = time_fn(lambda: run(x), dev, warmup=2 if compiled else 1, repeat=5)
print(json.dumps({"forward": fwd, "format": fmt, "allocator_tuned": tuned, "compiled": compiled, "size": size, "s": t,
                  "mp_per_s": size * size / 1e6 / t, "gflop": flops / 1e9, "gflops_per_s": flops / t / 1e9,
                  "conv_peak_gflops": peak["gflops"], "fraction_of_peak": flops / t / 1e9 / peak["gflops"]}))
"""

MEM_SNIPPET = r"""
import sys, time
from pngan.perf import tune_allocator
tuned = tune_allocator() if sys.argv[4] == "1" else False  # as the pngan CLI does
import torch
from pngan.nets.registry import build
from pngan.infer.tiling import tiled_forward
from pngan.perf import peak_rss_mb
h, w, exact = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
torch.manual_seed(0)
net = build("smnet").eval().to(memory_format=torch.channels_last)
base = peak_rss_mb()
x = torch.rand(1, 3, h, w).contiguous(memory_format=torch.channels_last)
t = time.perf_counter()
with torch.inference_mode():
    y = tiled_forward(net, x, tile=512, overlap=32, exact=exact)
dt = time.perf_counter() - t
print(base, peak_rss_mb(), dt, int(tuned))
"""

TILED_SNIPPET = r"""
import json, sys
from pngan.perf import tune_allocator
tune_allocator()
import torch
from pngan.nets.registry import build
from pngan.infer.tiling import tiled_forward
from pngan.perf import time_fn
dev = torch.device(sys.argv[1])
torch.manual_seed(0)
net = build("smnet").eval().to(dev, memory_format=torch.channels_last)
xb = torch.rand(1, 3, 1024, 1024, device=dev).contiguous(memory_format=torch.channels_last)
res = {}
with torch.inference_mode():
    for exact in (False, True):
        t = time_fn(lambda: tiled_forward(net, xb, tile=512, overlap=32, exact=exact), dev, warmup=0, repeat=1)
        res["tiled_1024_" + ("exact" if exact else "fast")] = {"s": t, "mp_per_s": 1.048576 / t}
print(json.dumps(res))
"""

VARIANTS = [  # (forward, format, tuned allocator): the path before issue 6 first, then one change at a time
    ("reference", "contiguous", False),
    ("reference", "channels_last", False),
    ("reference", "channels_last", True),
    ("fast", "channels_last", False),
    ("fast", "channels_last", True),
]
REFERENCE_GFLOP_PER_MP = 1021.92


def _run(snippet: str, *args: str) -> str:
    return subprocess.run([sys.executable, "-c", snippet, *args], capture_output=True, text=True,
                          check=True).stdout.strip().splitlines()[-1]


def cli_memory(args) -> None:
    """Peak resident memory and time of the real command, ``pngan generate`` on one smooth WxH
    clean PNG with a paper-size (random-weight) generator, in a child process."""
    import tempfile
    import time

    import numpy as np
    import torch

    from pngan.io.images import write_image
    from pngan.nets.loading import save_network
    from pngan.nets.registry import build
    from pngan.perf import machine

    w, h = (int(v) for v in args.big.split("x"))
    res = {"machine": machine(), "device": args.device, "image": [w, h], "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "in").mkdir()
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        img = np.stack([0.5 + 0.4 * np.sin(xx / 97), 0.5 + 0.4 * np.cos(yy / 53), 0.5 + 0.3 * np.sin((xx + yy) / 211)])
        write_image(root / "in" / "big.png", torch.from_numpy(img))
        del yy, xx, img
        torch.manual_seed(0)
        save_network(build("smnet"), root / "g.safetensors", {"pngan.synthetic": {"setting": "awgn", "sigma": 50.0}})
        for exact in (False, True):
            out = root / f"out-{int(exact)}"
            cmd = [sys.executable, "-m", "pngan", "generate", "--generator", str(root / "g.safetensors"),
                   "--input", f"clean:{root / 'in'}", "--output", str(out), "--quiet", "--device", args.device]
            if not exact:
                cmd.append("--fast-tiles")
            # a wrapper process per run, so that its children's maximum RSS is this run's alone
            wrap = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
                    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
            t = time.perf_counter()
            peak_kb = int(subprocess.run([sys.executable, "-c", wrap, *cmd], check=True, capture_output=True,
                                         text=True).stdout.split()[-1])
            dt = time.perf_counter() - t
            r = {"exact_tiles": exact, "peak_rss_mb": peak_kb / 1024, "s": dt, "mp_per_s": w * h / 1e6 / dt,
                 "target_mb": 2048}
            res["runs"].append(r)
            print(r, flush=True)
    out = Path(__file__).parent / "results" / f"generate-{args.device.split(':')[0]}-cli-memory.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")


def compare_compile(args) -> None:
    from pngan.perf import machine

    res = {"machine": machine(), "device": args.device, "untiled": []}
    for c in ("0", "1"):
        r = json.loads(_run(UNTILED_SNIPPET, args.device, "fast", "channels_last", "1", str(args.size), c))
        res["untiled"].append(r)
        print(f"{'compiled' if c == '1' else 'eager'}: {r['s']:.3f} s, {r['gflops_per_s']:.1f} GFLOP/s = "
              f"{100 * r['fraction_of_peak']:.0f}% of {r['conv_peak_gflops']:.1f}", flush=True)
    res["speedup_compiled"] = res["untiled"][0]["s"] / res["untiled"][1]["s"]
    out = Path(__file__).parent / "results" / f"generate-{args.device.split(':')[0]}-compile.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=512, help="untiled image side (default 512)")
    ap.add_argument("--big", default="6000x4000", help="WxH of the memory measurement ('' to skip)")
    ap.add_argument("--big-exact", action="store_true", help="measure the big image with exact tiling (7 passes)")
    ap.add_argument("--compile", action="store_true",
                    help="only compare eager with torch.compile (fast/channels_last/tuned) -> generate-<device>-compile.json")
    ap.add_argument("--cli-memory", action="store_true",
                    help="only measure the real 'pngan generate' command on a --big image (fast, then exact tiles)")
    args = ap.parse_args()
    if args.cli_memory:
        return cli_memory(args)
    if args.compile:
        return compare_compile(args)
    from pngan.perf import machine

    res = {"machine": machine(), "device": args.device, "untiled": []}
    for fwd, fmt, tune in VARIANTS:
        r = json.loads(_run(UNTILED_SNIPPET, args.device, fwd, fmt, "1" if tune else "0", str(args.size)))
        r["equivalent_gflops_per_s"] = REFERENCE_GFLOP_PER_MP * r["mp_per_s"]
        res["untiled"].append(r)
        print(f"{fwd:9s} {fmt:13s} allocator {'tuned' if tune else 'default'}: {r['s']:.3f} s, "
              f"{r['mp_per_s']:.3f} MP/s, {r['gflops_per_s']:.1f} GFLOP/s = {100 * r['fraction_of_peak']:.0f}% of "
              f"{r['conv_peak_gflops']:.1f}", flush=True)
    base, now = res["untiled"][0], res["untiled"][-1]
    res["speedup_now_vs_before"] = base["s"] / now["s"]
    res.update(json.loads(_run(TILED_SNIPPET, args.device)))
    print("tiled 1024:", res["tiled_1024_fast"], res["tiled_1024_exact"], flush=True)
    if args.big and args.device == "cpu":
        w, h = (int(v) for v in args.big.split("x"))
        for tune in ("1", "0"):
            out = _run(MEM_SNIPPET, str(h), str(w), "1" if args.big_exact else "0", tune).split()
            b, hwm, dt = (float(v) for v in out[:3])
            key = f"tiled_{w}x{h}_memory_{'tuned' if tune == '1' else 'default'}_allocator"
            res[key] = {"exact": args.big_exact, "peak_rss_mb": hwm, "rss_before_image_mb": b, "s": dt,
                        "mp_per_s": h * w / 1e6 / dt, "target_mb": 2048}
            print(key, res[key], flush=True)
    out = Path(__file__).parent / "results" / f"generate-{args.device.split(':')[0]}.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
