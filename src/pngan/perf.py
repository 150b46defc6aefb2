"""Measuring speed: counted FLOPs, robust timings, the machine's practical conv peak.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode``, which counts matrix multiplications
and convolutions (forward and backward) and ignores element-wise ops, pooling, interpolation and
normalisation; for conv networks those are a small share of the arithmetic but not of the memory
traffic. One multiply-add counts as 2 FLOPs.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable

import torch
import torch.nn as nn


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of whatever ``fn()`` runs (forward, and backward if it calls it)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_fn(fn: Callable[[], object], device="cpu", warmup: int = 1, repeat: int = 3) -> float:
    """Median wall time of ``fn()`` in seconds after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def conv_peak(device="cpu", dtype=torch.float32, size: int = 128, batch: int = 4, repeat: int = 5) -> dict:
    """GFLOP/s of a plain 64->64 3x3 convolution (forward): the practical peak to compare against."""
    conv = nn.Conv2d(64, 64, 3, padding=1).to(device=device, dtype=dtype)
    x = torch.randn(batch, 64, size, size, device=device, dtype=dtype)
    out = {}
    for fmt, mf in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
        c, xi = conv.to(memory_format=mf), x.contiguous(memory_format=mf)
        with torch.inference_mode():
            flops = count_flops(lambda: c(xi))
            t = time_fn(lambda: c(xi), device, warmup=2, repeat=repeat)
        out[fmt] = flops / t / 1e9
    return {"gflops": max(out.values()), "by_format": out, "shape": [batch, 64, size, size]}


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM) in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def tune_allocator() -> bool:
    """Keep freed tensor memory in the process instead of returning it to the OS (glibc only).

    PyTorch's CPU allocator uses malloc; glibc serves every block above its mmap threshold (128 KB
    to 32 MB, adjusted dynamically) with a fresh ``mmap`` and returns it with ``munmap`` on free,
    so each large activation of a conv network is page-faulted in again on every layer. Raising the
    mmap threshold to 1 GiB and the trim threshold to 1 GiB lets freed blocks be reused: on the
    2-core CPU this makes the paper SMNet's 512x512 forward ~2x faster (benchmarks/README.md).
    The same as ``MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824``.
    Disable with ``PNGAN_TUNE_MALLOC=0``. Returns True when applied.
    """
    if os.environ.get("PNGAN_TUNE_MALLOC", "1") == "0" or platform.system() != "Linux":
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30) == 1
        return libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30) == 1 and ok
    except (OSError, AttributeError):  # not glibc (musl, macOS): leave the allocator alone
        return False
