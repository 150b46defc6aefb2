"""CycleISP's camera networks (Zamir et al., "CycleISP: Real Image Restoration via Improved Data
Synthesis", CVPR 2020), which PNGAN uses to make setting 2. Self-contained.

Re-written from the published ``networks/cycleisp.py`` of swz30/CycleISP so that ``state_dict()``
has the published keys, shapes and order, and the released ISP checkpoints (``rgb2raw_joint.pth``,
``raw2rgb_joint.pth``, ``ccm_joint.pth``; ``{"state_dict": ...}``, sometimes with a ``module.``
prefix) load strictly through :func:`pngan.nets.loading.load_network`:

* ``cycleisp_rgb2raw`` (``Rgb2Raw``): sRGB (B,3,H,W) -> packed RGGB (B,4,H/2,W/2). conv 3->96,
  three recursive residual groups (RRG) of five dual attention blocks (DAB), conv, PReLU, conv
  96->3, then the RGGB mosaic (R at (0,0), G at (0,1) and (1,0), B at (1,1)).
* ``cycleisp_ccm`` (``CCM``, the colour-correction branch): sRGB (B,3,H,W) -> attention features
  (B,96,H/2,W/2): reflect pad 10 + a fixed 21x21 Gaussian blur (sigma 12, stored in the state
  dict as ``blur.weight``), conv 3->96, 2x2 max pool, two RRGs of two DABs, conv, PReLU,
  conv 96->96, sigmoid.
* ``cycleisp_raw2rgb`` (``Raw2Rgb``): packed RAW (B,4,H/2,W/2) and the CCM features ->
  sRGB (B,3,H,W): conv 4->96, three RRGs and a conv; ``x = x * ccm + x``; PReLU; conv + PReLU;
  1x1 conv 96->12; pixel shuffle x2. ``conv1x1`` (192->96) is in the published state dict but
  unused by its forward pass; kept so checkpoints load strictly.

Published quirks kept because they decide the state-dict layout and the meaning of the weights:
one ``nn.PReLU(96)`` per network is shared by every DAB body, the body's last layer and the tail
(the state dict lists that one tensor under each of those names); the spatial-attention conv has no
bias; DAB's channel attention uses a reduction of 8.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from pngan.nets.registry import register

N_FEATS = 96
REDUCTION = 8


def _conv(cin: int, cout: int, k: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias)


def mosaic_rggb(x: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) -> (B,4,H/2,W/2): R (0,0), G (0,1), G (1,0), B (1,1), as CycleISP's ``mosaic``."""
    return torch.stack((x[:, 0, 0::2, 0::2], x[:, 1, 0::2, 1::2], x[:, 1, 1::2, 0::2], x[:, 2, 1::2, 1::2]), dim=1)


class _CALayer(nn.Module):  # keys: conv_du.0.*, conv_du.2.*
    def __init__(self, c: int, reduction: int):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(nn.Conv2d(c, c // reduction, 1), nn.ReLU(inplace=True),
                                     nn.Conv2d(c // reduction, c, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.conv_du(self.avg_pool(x))


class _BasicConv(nn.Module):  # keys: conv.weight (no bias, no BN, no ReLU in the spatial attention)
    def __init__(self, cin: int, cout: int, k: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=(k - 1) // 2, bias=False)

    def forward(self, x):
        return self.conv(x)


class _SpatialAttention(nn.Module):  # keys: spatial.conv.weight
    def __init__(self, k: int = 3):
        super().__init__()
        self.spatial = _BasicConv(2, 1, k)

    def forward(self, x):
        pooled = torch.cat((x.max(dim=1, keepdim=True)[0], x.mean(dim=1, keepdim=True)), dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


class _DAB(nn.Module):
    """Dual attention block: conv, act, conv -> [spatial attn, channel attn] -> 1x1 conv, + x."""

    def __init__(self, c: int, act: nn.Module):
        super().__init__()
        # registration order as published (SA, CA, body, conv1x1): it is the state-dict order
        self.SA = _SpatialAttention()
        self.CA = _CALayer(c, REDUCTION)
        self.body = nn.Sequential(_conv(c, c, 3), act, _conv(c, c, 3))
        self.conv1x1 = nn.Conv2d(2 * c, c, 1)

    def forward(self, x):
        r = self.body(x)
        return self.conv1x1(torch.cat([self.SA(r), self.CA(r)], dim=1)) + x


class _RRG(nn.Module):
    """Recursive residual group: ``num_dab`` DABs and a conv, plus the group's identity."""

    def __init__(self, c: int, act: nn.Module, num_dab: int):
        super().__init__()
        self.body = nn.Sequential(*[_DAB(c, act) for _ in range(num_dab)], _conv(c, c, 3))

    def forward(self, x):
        return self.body(x) + x


def _body(c: int, act: nn.Module, num_rrg: int, num_dab: int) -> nn.Sequential:
    return nn.Sequential(*[_RRG(c, act, num_dab) for _ in range(num_rrg)], _conv(c, c, 3), act)


@register("cycleisp_rgb2raw", role="isp")
class CycleISPRgb2Raw(nn.Module):
    """CycleISP's RGB2RAW branch: sRGB (B,3,H,W), H and W even -> packed RGGB (B,4,H/2,W/2)."""

    def __init__(self):
        super().__init__()
        act = nn.PReLU(N_FEATS)
        self.head = nn.Sequential(_conv(3, N_FEATS, 3))
        self.body = _body(N_FEATS, act, num_rrg=3, num_dab=5)
        self.tail = nn.Sequential(_conv(N_FEATS, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mosaic_rggb(self.tail(self.body(self.head(x))))


def _gaussian_kernel(size: int = 21, sigma: float = 12.0, channels: int = 3) -> torch.Tensor:
    """CycleISP's ``get_gaussian_kernel``: 2-D Gaussian on a size x size grid, normalised."""
    r = torch.arange(size, dtype=torch.float32)
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    mean = (size - 1) / 2.0
    k = torch.exp(-((xx - mean) ** 2 + (yy - mean) ** 2) / (2 * sigma**2)) / (2 * math.pi * sigma**2)
    k = k / k.sum()
    return k.view(1, 1, size, size).repeat(channels, 1, 1, 1)


@register("cycleisp_ccm", role="isp")
class CycleISPCCM(nn.Module):
    """CycleISP's colour-correction branch: clean sRGB (B,3,H,W) -> features (B,96,H/2,W/2)."""

    BLUR_SIZE, BLUR_SIGMA = 21, 12.0

    def __init__(self):
        super().__init__()
        act = nn.PReLU(N_FEATS)
        self.head = nn.Sequential(_conv(3, N_FEATS, 3))
        self.downsample = nn.Sequential(nn.MaxPool2d(kernel_size=2))
        self.body = _body(N_FEATS, act, num_rrg=2, num_dab=2)
        self.tail = nn.Sequential(_conv(N_FEATS, N_FEATS, 3), nn.Sigmoid())
        self.blur = nn.Conv2d(3, 3, self.BLUR_SIZE, groups=3, bias=False)
        with torch.no_grad():
            self.blur.weight.copy_(_gaussian_kernel(self.BLUR_SIZE, self.BLUR_SIGMA))
        self.blur.weight.requires_grad_(False)
        self.pad = self.BLUR_SIZE // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) <= self.pad:
            from pngan.errors import PnganError

            raise PnganError(f"CycleISP's colour-correction branch reflect-pads by {self.pad}: images must be at "
                             f"least {self.pad + 1} pixels a side, got {tuple(x.shape[-2:])}")
        x = self.blur(F.pad(x, (self.pad,) * 4, mode="reflect"))
        return self.tail(self.body(self.downsample(self.head(x))))


@register("cycleisp_raw2rgb", role="isp")
class CycleISPRaw2Rgb(nn.Module):
    """CycleISP's RAW2RGB branch: packed RAW (B,4,h,w) + CCM features (B,96,h,w) -> sRGB (B,3,2h,2w)."""

    def __init__(self):
        super().__init__()
        act = nn.PReLU(N_FEATS)
        self.head = nn.Sequential(_conv(4, N_FEATS, 3))
        self.body = _body(N_FEATS, act, num_rrg=3, num_dab=5)
        self.tail = nn.Sequential(_conv(N_FEATS, N_FEATS, 3), act)
        self.tail_rgb = nn.Sequential(_conv(N_FEATS, 3 * 4, 1))
        self.conv1x1 = nn.Sequential(_conv(2 * N_FEATS, N_FEATS, 1))  # published, unused in forward

    def forward(self, raw: torch.Tensor, ccm_feat: torch.Tensor) -> torch.Tensor:
        x = self.head(raw)
        for layer in list(self.body)[:-1]:  # RRGs and the conv; the final PReLU after the attention
            x = layer(x)
        x = x * ccm_feat + x
        x = self.body[-1](x)
        x = self.tail_rgb(self.tail(x))
        return F.pixel_shuffle(x, 2)


class CycleISPPipeline(nn.Module):
    """The three branches as setting 2 uses them (``pngan.noise.raw.RawNoise(isp="networks")``):
    ``rgb2raw(x)`` -> packed RAW clamped to [0, 1] (as CycleISP's ``generate_rgb_data.py``), and
    ``raw2rgb(noisy_raw, clean_rgb)`` = RAW2RGB(clamp(noisy_raw, 0, 1), CCM(clean_rgb)) clamped to
    [0, 1]."""

    def __init__(self, rgb2raw: CycleISPRgb2Raw, raw2rgb_net: CycleISPRaw2Rgb, ccm: CycleISPCCM):
        super().__init__()
        self.rgb2raw_net, self.raw2rgb_net, self.ccm = rgb2raw, raw2rgb_net, ccm

    def rgb2raw(self, x: torch.Tensor) -> torch.Tensor:
        return self.rgb2raw_net(x).clamp(0, 1)

    def raw2rgb(self, raw: torch.Tensor, clean_rgb: torch.Tensor) -> torch.Tensor:
        return self.raw2rgb_net(raw.clamp(0, 1), self.ccm(clean_rgb)).clamp(0, 1)


def load_cycleisp(rgb2raw_path, raw2rgb_path, ccm_path, device: str | torch.device = "cpu") -> CycleISPPipeline:
    """The released CycleISP ISP checkpoints, loaded strictly, frozen, in eval mode."""
    from pngan.nets.loading import load_network

    nets = [load_network(name, p) for name, p in (("cycleisp_rgb2raw", rgb2raw_path),
                                                  ("cycleisp_raw2rgb", raw2rgb_path), ("cycleisp_ccm", ccm_path))]
    pipe = CycleISPPipeline(*nets).to(device).eval()
    for p in pipe.parameters():
        p.requires_grad_(False)
    return pipe


__all__ = ["CycleISPRgb2Raw", "CycleISPRaw2Rgb", "CycleISPCCM", "CycleISPPipeline", "load_cycleisp", "mosaic_rggb"]
