import torch
import torch.nn as nn

from pngan.perf import count_flops, time_fn


def test_flop_count_of_a_conv_is_exact():
    conv = nn.Conv2d(8, 16, 3, padding=1, bias=False)
    x = torch.randn(2, 8, 10, 12)
    assert count_flops(lambda: conv(x)) == 2 * 2 * 16 * 10 * 12 * 8 * 9
    # backward: grad input + grad weight, each the same again
    assert count_flops(lambda: conv(x.requires_grad_()).sum().backward()) == 3 * 2 * 2 * 16 * 10 * 12 * 8 * 9


def test_time_fn_positive():
    assert time_fn(lambda: sum(range(1000)), repeat=2) > 0


_FAULTS = r"""
import resource, sys
from pngan.perf import tune_allocator
print(int(tune_allocator()))
import torch
def loop():
    for _ in range(20):
        t = torch.empty(16 * 2**20)  # 64 MB, touched
        t.fill_(1.0)
        del t
loop()  # warm-up: thread pools and the heap settle
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
loop()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_tune_allocator_reuses_freed_tensor_memory():
    """Untuned glibc maps and unmaps every 64 MB tensor (page-faulting all of it each time); tuned,
    the freed block is reused. Measured as minor page faults in fresh processes."""
    import os
    import platform
    import subprocess
    import sys

    import pytest

    if platform.system() != "Linux":
        pytest.skip("glibc allocator tuning is Linux-only")
    runs = {}
    for flag in ("1", "0"):
        env = {**os.environ, "PNGAN_TUNE_MALLOC": flag}
        out = subprocess.run([sys.executable, "-c", _FAULTS], env=env, capture_output=True, text=True, check=True)
        applied, faults = (int(v) for v in out.stdout.split())
        runs[flag] = (applied, faults)
    if not runs["1"][0]:
        pytest.skip("not glibc: mallopt unavailable")
    assert runs["0"][0] == 0  # PNGAN_TUNE_MALLOC=0 leaves it alone
    pages = 64 * 2**20 // 4096
    assert runs["0"][1] > 10 * pages  # re-faulted on (nearly) every allocation
    assert runs["1"][1] < pages  # reused: not faulted in again
