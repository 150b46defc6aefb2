"""SIMNet, the generator the PNGAN authors released (the paper's SMNet, "only 0.8M parameters").

The authors published this network only as a compiled file; the facts an implementation must
reproduce (layout, shared weights, the attention's residual form) are written down in
``shared/reference/pngan_official/README.md``, and ``tests/test_official_nets.py`` checks this file
against the reference weights and outputs stored there. Self-contained.

    out = x + conv_out(body(conv_in(x)))                 3x3 convs, no bias, 3 -> C -> ... -> 3
    body = RRG_1 ... RRG_groups
    RRG(f) = f + conv3x3(MSRB_blocks(... MSRB_1(f)))     (Recursive Residual Group)
    MSRB(f) = f + conv3x3(CAU(CAU(f)))                   one CAU applied ``width`` times, shared weights
    CAU(f) = f + conv1x1(CA(conv3x3(PReLU(conv3x3(f)))))
    CA(f) = f * sigmoid(conv1d_k5(avgpool(f))) + f       ECA-style channel attention, plus the identity

Two details decide the parameter count and must be kept to load the released layout strictly:

* the CAU inside an MSRB is ONE module listed ``width`` times (``[CAU] * width`` in the released
  code), so the state dict names the same tensors under ``blocks.0.0`` and ``blocks.0.1``;
* the PReLU is a default argument of the CAU constructor in the released code, evaluated once, so a
  single PReLU (one slope) is shared by every CAU of the network.

At the released defaults (C=64, 3 groups x 2 blocks, width 2) this is 802,207 parameters, the
paper's 0.8M. The released file's constructor also takes ``height`` (multi-scale paths); at its
default 1 they are empty, and their wiring is not recoverable from the released model, so only
height 1 is built here; :mod:`pngan.nets.smnet` is our multi-scale reading of the paper's figure.

``attention=False`` removes the channel attention (CAU = f + conv1x1(body(f))): the "no FCA" row of
the paper's Table 3 on this network. The pooling is the submodule ``CA.pool`` so that exact tiled
inference can supply whole-image statistics (:mod:`pngan.infer.tiling`, which handles a module
that runs more than once per forward).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from pngan.nets.registry import register


class CA(nn.Module):
    """Channel attention: GAP -> Conv1d(k=5) across channels -> sigmoid; returns ``x * y + x``."""

    def __init__(self, kernel_size: int = 5):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(x)  # (B, C, 1, 1)
        y = self.conv(y.flatten(2).transpose(1, 2))  # (B, 1, C)
        y = torch.sigmoid(y).transpose(1, 2).unsqueeze(-1)  # (B, C, 1, 1)
        return x * y + x


class CAU(nn.Module):
    """Channel Attention Unit: ``x + conv1x1(CA(conv(PReLU(conv(x)))))``; ``act`` is shared."""

    def __init__(self, channels: int, act: nn.PReLU, attention: bool = True):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), act,
                                  nn.Conv2d(channels, channels, 3, padding=1, bias=False))
        self.CA = CA() if attention else nn.Identity()
        self.conv1x1 = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1x1(self.CA(self.body(x)))


class MSRB(nn.Module):
    """One CAU applied ``width`` times in a row (the same module: shared weights), a 3x3 conv, plus
    the identity. ``blocks`` is a list of rows (one row: height 1) to keep the released keys."""

    def __init__(self, channels: int, act: nn.PReLU, width: int = 2, attention: bool = True):
        super().__init__()
        cau = CAU(channels, act, attention)
        self.blocks = nn.ModuleList([nn.ModuleList([cau] * width)])
        self.conv_out = nn.Conv2d(channels, channels, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for unit in self.blocks[0]:
            h = unit(h)
        return x + self.conv_out(h)


class RRG(nn.Module):
    """``x + Sequential(MSRB, ..., conv3x3)(x)``."""

    def __init__(self, channels: int, act: nn.PReLU, blocks: int = 2, width: int = 2, attention: bool = True):
        super().__init__()
        body: list[nn.Module] = [MSRB(channels, act, width, attention) for _ in range(blocks)]
        body.append(nn.Conv2d(channels, channels, 3, padding=1, bias=False))
        self.body = nn.Sequential(*body)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@register("simnet", role="generator")
class SIMNet(nn.Module):
    """PNGAN's released generator. Defaults are the release's: C=64, 3 RRGs x 2 MSRBs, width 2."""

    multiple = 1  # any input size, no padding (single scale)

    def __init__(self, *, in_channels: int = 3, channels: int = 64, groups: int = 3, blocks: int = 2,
                 width: int = 2, attention: bool = True):
        super().__init__()
        act = nn.PReLU()  # one slope for the whole network (see the module docstring)
        self.conv_in = nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)
        self.body = nn.Sequential(*(RRG(channels, act, blocks, width, attention) for _ in range(groups)))
        self.conv_out = nn.Conv2d(channels, in_channels, 3, padding=1, bias=False)

    def identity_init(self) -> None:
        """Start as the identity of the input: the last conv at zero (residual zero-init)."""
        nn.init.zeros_(self.conv_out.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_out(self.body(self.conv_in(x)))
