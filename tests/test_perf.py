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
