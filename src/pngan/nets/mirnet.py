"""MIRNet (Zamir et al., "Learning Enriched Features for Real Image Restoration and Enhancement",
ECCV 2020) in the exact layout of the published code (swz30/MIRNet ``networks/MIRNet_model.py``,
also used by PNGAN's released fine-tuned MIRNet). Self-contained: imports only torch and the registry.

Structure (defaults n_feat=64, 3 recursive residual groups (RRG) x 2 multi-scale residual blocks
(MSRB), 3 scales, 2 columns): ``conv_in`` -> ``body`` (RRGs) -> ``conv_out`` and a global residual,
``forward(x) = x + net(x)``.

Two quirks of the published code are reproduced on purpose because they decide the parameter count
(31,787,419) and the meaning of a released checkpoint:

* each MSRB row is built as ``ModuleList([DAU(...)] * width)``, i.e. the *same* dual-attention unit
  is used in every column of a row (weights shared; ``state_dict`` still lists ``blocks.j.0`` and
  ``blocks.j.1`` as two entries of one tensor);
* the DAU's activation is a default argument ``act=nn.PReLU()``, evaluated once, so a single PReLU
  slope is shared by every DAU of the network. We share it per network instance (the published code
  shares it even across instances in one process, which is an accident of Python, not a design).

The antialiased downsampler (binomial [1,2,1] filter, reflect pad 1, stride 2; Zhang ICML 2019)
keeps its filter in a persistent buffer ``filt`` as published, so it appears in ``state_dict``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from pngan.nets.registry import register


def _conv(cin: int, cout: int, k: int, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias)


class _BlurDown(nn.Module):
    """Antialiased stride-2 downsampling: depthwise 3x3 binomial blur after reflect padding."""

    def __init__(self, channels: int):
        super().__init__()
        a = torch.tensor([1.0, 2.0, 1.0])
        k = a[:, None] * a[None, :]
        k = k / k.sum()
        self.register_buffer("filt", k.expand(channels, 1, 3, 3).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


class _SpatialConv(nn.Module):
    def __init__(self, kernel_size: int = 5):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _SpatialAttention(nn.Module):
    """Gate from [channel max, channel mean] -> 5x5 conv -> sigmoid."""

    def __init__(self):
        super().__init__()
        self.spatial = _SpatialConv(5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


class _ChannelAttention(nn.Module):
    def __init__(self, channels: int, reduction: int = 8, bias: bool = False):
        super().__init__()
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1, bias=bias),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1, bias=bias),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(x.mean(dim=(2, 3), keepdim=True))


class _DAU(nn.Module):
    """Dual attention unit: conv-act-conv, then spatial and channel attention fused by a 1x1 conv."""

    def __init__(self, channels: int, act: nn.Module, reduction: int = 8, bias: bool = False):
        super().__init__()
        self.body = nn.Sequential(_conv(channels, channels, 3, bias), act, _conv(channels, channels, 3, bias))
        self.SA = _SpatialAttention()
        self.CA = _ChannelAttention(channels, reduction, bias)
        self.conv1x1 = nn.Conv2d(2 * channels, channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.body(x)
        return x + self.conv1x1(torch.cat([self.SA(r), self.CA(r)], dim=1))


class _SKFF(nn.Module):
    """Selective kernel feature fusion of ``height`` same-sized streams (softmax over streams)."""

    def __init__(self, channels: int, height: int = 3, reduction: int = 8, bias: bool = False):
        super().__init__()
        self.height = height
        d = max(channels // reduction, 4)
        self.conv_du = nn.Sequential(nn.Conv2d(channels, d, 1, bias=bias), nn.PReLU())
        self.fcs = nn.ModuleList(nn.Conv2d(d, channels, 1, bias=bias) for _ in range(height))

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        stack = torch.stack(feats, dim=1)  # B, height, C, H, W
        z = self.conv_du(stack.sum(dim=1).mean(dim=(2, 3), keepdim=True))
        w = torch.softmax(torch.stack([fc(z) for fc in self.fcs], dim=1), dim=1)  # B, height, C, 1, 1
        return (stack * w).sum(dim=1)


class _ResDown(nn.Module):
    """Residual x2 downsampler, C -> 2C: [1x1, PReLU, 3x3, PReLU, blur-down, 1x1] + [blur-down, 1x1]."""

    def __init__(self, c: int, bias: bool = False):
        super().__init__()
        self.top = nn.Sequential(
            nn.Conv2d(c, c, 1, bias=bias), nn.PReLU(), nn.Conv2d(c, c, 3, padding=1, bias=bias), nn.PReLU(),
            _BlurDown(c), nn.Conv2d(c, 2 * c, 1, bias=bias),
        )
        self.bot = nn.Sequential(_BlurDown(c), nn.Conv2d(c, 2 * c, 1, bias=bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.top(x) + self.bot(x)


class _ResUp(nn.Module):
    """Residual x2 upsampler, C -> C/2: [1x1, PReLU, 3x3 transposed stride 2, PReLU, 1x1] + [bilinear, 1x1]."""

    def __init__(self, c: int, bias: bool = False):
        super().__init__()
        self.top = nn.Sequential(
            nn.Conv2d(c, c, 1, bias=bias), nn.PReLU(),
            nn.ConvTranspose2d(c, c, 3, stride=2, padding=1, output_padding=1, bias=bias), nn.PReLU(),
            nn.Conv2d(c, c // 2, 1, bias=bias),
        )
        self.bot = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                 nn.Conv2d(c, c // 2, 1, bias=bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.top(x) + self.bot(x)


class _Chain(nn.Module):
    """``log2(scale)`` resampling steps in a ``body`` Sequential (published key names)."""

    def __init__(self, c: int, scale: int, step: type[nn.Module], stride: int = 2):
        super().__init__()
        mods = []
        for _ in range(scale.bit_length() - 1):
            mods.append(step(c))
            c = c * stride if step is _ResDown else c // stride
        self.body = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class _MSRB(nn.Module):
    """Multi-scale residual block: ``height`` parallel streams (C, 2C, 4C at 1, 1/2, 1/4 resolution),
    ``width`` columns of DAUs with all-to-all SKFF exchange between columns, SKFF of the upsampled
    streams, 3x3 conv and a residual connection."""

    def __init__(self, n_feat: int, height: int, width: int, stride: int, bias: bool, act: nn.Module):
        super().__init__()
        self.n_feat, self.height, self.width = n_feat, height, width
        # the published ModuleList([DAU]*width): one DAU per row, reused in every column
        self.blocks = nn.ModuleList(
            nn.ModuleList([_DAU(n_feat * stride**i, act, bias=bias)] * width) for i in range(height))
        feats = [n_feat * stride**i for i in range(height)]
        scales = [2**i for i in range(1, height)][::-1]
        self.last_up = nn.ModuleDict({str(i): _Chain(feats[i], 2**i, _ResUp, stride) for i in range(1, height)})
        self.down = nn.ModuleDict()
        for r, c in enumerate(feats):
            for s in scales[r:]:
                self.down[f"{c}_{s}"] = _Chain(c, s, _ResDown, stride)
        self.up = nn.ModuleDict()
        for r, c in enumerate(feats[::-1]):
            for s in scales[r:]:
                self.up[f"{c}_{s}"] = _Chain(c, s, _ResUp, stride)
        self.conv_out = nn.Conv2d(n_feat, n_feat, 3, padding=1, bias=bias)
        self.selective_kernel = nn.ModuleList(_SKFF(n_feat * stride**i, height) for i in range(height))

    def _resample(self, t: torch.Tensor, to_row: int, from_row: int) -> torch.Tensor:
        if to_row == from_row:
            return t
        key = f"{t.shape[1]}_{2 ** abs(to_row - from_row)}"
        return self.up[key](t) if to_row < from_row else self.down[key](t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = []
        h = x
        for j in range(self.height):  # first column, each row fed by the row above, downsampled x2
            h = self.blocks[j][0](h if j == 0 else self.down[f"{h.shape[1]}_2"](h))
            rows.append(h)
        for i in range(1, self.width):  # the published code always uses the "mesh" exchange
            fused = [self.selective_kernel[j]([self._resample(rows[k], j, k) for k in range(self.height)])
                     for j in range(self.height)]
            rows = [self.blocks[j][i](fused[j]) for j in range(self.height)]
        out = [rows[0]] + [self.last_up[str(k)](rows[k]) for k in range(1, self.height)]
        return x + self.conv_out(self.selective_kernel[0](out))


class _RRG(nn.Module):
    def __init__(self, n_feat: int, n_msrb: int, height: int, width: int, stride: int, bias: bool, act: nn.Module):
        super().__init__()
        mods: list[nn.Module] = [_MSRB(n_feat, height, width, stride, bias, act) for _ in range(n_msrb)]
        mods.append(_conv(n_feat, n_feat, 3))
        self.body = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@register("mirnet", role="denoiser")
class MIRNet(nn.Module):
    def __init__(self, *, in_channels: int = 3, out_channels: int = 3, n_feat: int = 64, kernel_size: int = 3,
                 stride: int = 2, n_RRG: int = 3, n_MSRB: int = 2, height: int = 3, width: int = 2,
                 bias: bool = False):
        super().__init__()
        if stride != 2:
            raise ValueError("MIRNet: only stride=2 is supported (the resampling modules are x2)")
        self.multiple = 2 ** (height - 1)
        act = nn.PReLU()  # one slope shared by every DAU (see module docstring); not registered here
        self.conv_in = nn.Conv2d(in_channels, n_feat, kernel_size, padding=(kernel_size - 1) // 2, bias=bias)
        self.body = nn.Sequential(*[_RRG(n_feat, n_MSRB, height, width, stride, bias, act) for _ in range(n_RRG)])
        self.conv_out = nn.Conv2d(n_feat, out_channels, kernel_size, padding=(kernel_size - 1) // 2, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Restored image ``x + residual``; H and W must be multiples of ``self.multiple`` (4)."""
        return x + self.conv_out(self.body(self.conv_in(x)))

    def denoise(self, x: torch.Tensor) -> torch.Tensor:
        """Clean estimate of the same size as ``x``: pads right/bottom to a multiple of 4 (reflect;
        replicate when the image is too small to reflect), runs ``forward``, crops back."""
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.multiple, (-w) % self.multiple
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        return self.forward(x)[..., :h, :w]
