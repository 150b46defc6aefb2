"""RIDNet (Anwar & Barnes, "Real Image Denoising with Feature Attention", ICCV 2019). Self-contained.

State-dict layout equal, entry for entry, to the RIDNet used by PNGAN
(``../shared/reference/ridnet_state_dict_keys.tsv``, 1,499,371 parameters). Forward, as PNGAN's
test code runs it: ``tail(b4(b3(b2(b1(head(x)))))) + x``; the MeanShift layers ``sub_mean`` /
``add_mean`` are present (so checkpoints load strictly) but unused.

Each of the four Enhancement Attention Modules (EAM) ``b1..b4`` is:
``r1`` merge-and-run unit (two dilated branches: dilation 1 then 2, and 3 then 4; concatenated;
3x3 conv; plus identity) -> ``r2`` residual block (conv-ReLU-conv, + identity, ReLU) -> ``r3``
enhanced residual block (conv-ReLU-conv-ReLU-conv1x1, + identity, ReLU) -> ``ca`` feature
(channel) attention (global average pool, 1x1 conv 64->4 + ReLU, 1x1 conv 4->64 + sigmoid, scale).

``rgb_range``: the value range the weights expect; ``denoise`` scales inputs in [0, 1] to it and
back (1.0 by default).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from pngan.nets.registry import register


class _MeanShift(nn.Conv2d):
    def __init__(self, rgb_range: float, sign: int, mean=(0.4488, 0.4371, 0.4040)):
        super().__init__(3, 3, 1)
        with torch.no_grad():
            self.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.bias.copy_(sign * rgb_range * torch.tensor(mean))
        for p in self.parameters():
            p.requires_grad_(False)


class _ConvReLU(nn.Module):  # keys: body.0.*
    def __init__(self, cin: int, cout: int, k: int, act: nn.Module):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), act)

    def forward(self, x):
        return self.body(x)


class _MergeRun(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body1 = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, dilation=1), nn.ReLU(inplace=True),
                                   nn.Conv2d(c, c, 3, padding=2, dilation=2), nn.ReLU(inplace=True))
        self.body2 = nn.Sequential(nn.Conv2d(c, c, 3, padding=3, dilation=3), nn.ReLU(inplace=True),
                                   nn.Conv2d(c, c, 3, padding=4, dilation=4), nn.ReLU(inplace=True))
        self.body3 = nn.Sequential(nn.Conv2d(2 * c, c, 3, padding=1), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.body3(torch.cat([self.body1(x), self.body2(x)], dim=1)) + x


class _Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x):
        return torch.relu(self.body(x) + x)


class _EResidual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(c, c, 1))

    def forward(self, x):
        return torch.relu(self.body(x) + x)


class _ChannelAttention(nn.Module):
    def __init__(self, c: int, reduction: int = 16):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.c1 = _ConvReLU(c, c // reduction, 1, nn.ReLU(inplace=True))
        self.c2 = _ConvReLU(c // reduction, c, 1, nn.Sigmoid())

    def forward(self, x):
        return x * self.c2(self.c1(self.pool(x)))


class _EAM(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.r1, self.r2, self.r3 = _MergeRun(c), _Residual(c), _EResidual(c)
        self.ca = _ChannelAttention(c)

    def forward(self, x):
        return self.ca(self.r3(self.r2(self.r1(x))))


@register("ridnet", role="denoiser")
class RIDNet(nn.Module):
    def __init__(self, *, channels: int = 64, rgb_range: float = 1.0):
        super().__init__()
        self.rgb_range = rgb_range
        self.sub_mean = _MeanShift(rgb_range, -1)
        self.add_mean = _MeanShift(rgb_range, +1)
        self.head = _ConvReLU(3, channels, 3, nn.ReLU(inplace=True))
        self.b1, self.b2, self.b3, self.b4 = (_EAM(channels) for _ in range(4))
        self.tail = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.b4(self.b3(self.b2(self.b1(self.head(x)))))) + x

    def denoise(self, x: torch.Tensor) -> torch.Tensor:
        if self.rgb_range == 1.0:
            return self.forward(x)
        return self.forward(x * self.rgb_range) / self.rgb_range
