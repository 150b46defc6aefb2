"""SMNet, PNGAN's generator (Cai et al. 2021, Sec. 2.3, Eq. 9-11). Self-contained.

    fake = x + tail(SRG_3(SRG_2(SRG_1(head(x)))))
    SRG(f) = f + conv(MAB_2(MAB_1(f)))                              (Simple Residual Group)
    MAB(f) = f + conv1x1([bottom-up fusion, top-down fusion])       (Multi-scale Attention Block)

Multi-scale Attention Block, wiring chosen where the paper's figure leaves details open:

* three parallel paths at full, 1/2 and 1/4 resolution; x2 = SID(x1), x3 = SID(x2) where SID is the
  shift-invariant downsample of Zhang (ICML 2019): a fixed binomial [1, 2, 1] x [1, 2, 1] / 16
  depthwise blur (reflect padding) followed by stride-2 subsampling (parameter-free);
* each path: y_i = FCA(ReLU(conv3x3(x_i)));
* bottom-up fusion (Eq. 9), coarse to fine: b3 = y3, b2 = y2 + U(b3), b1 = y1 + U(b2), where U is
  bilinear x2 upsampling followed by a 1x1 conv ("lower paths come back by bilinear upsampling
  followed by a conv");
* top-down fusion (Eq. 10), fine to coarse: t1 = y1, t2 = y2 + SID(t1), t3 = y3 + SID(t2), brought
  back to full resolution by bilinear x4 upsampling followed by a 1x1 conv;
* the two fused maps are concatenated and a last 1x1 conv gives the block output, plus the identity.

Fast Channel Attention (Eq. 11): global average pool -> 1D conv (kernel 3, no bias) across
channels -> sigmoid -> channel scaling (ECA-style). The pooling is the submodule ``pool`` so that
exact tiled inference can supply whole-image statistics through forward hooks.

Any input size: the input is padded at the bottom/right to a multiple of 4 by edge replication
(``F.pad(mode="replicate")``) and the output cropped back. Global statistics therefore include the
padded rows/columns, which the tiler reproduces.

Ablations (paper Table 3): ``multiscale=False`` keeps only the full-resolution path (b1 = t1 = y1);
``fca=False`` removes channel attention; ``downsample`` chooses how the paths are downsampled:
``"sid"`` (default, the paper's SMNet), ``"stride"`` (plain stride-2 subsampling; the older
``sid=False``) or ``"bilinear"`` (bilinear interpolation to half size, the paper's "+Multi-scale"
row of Table 3 before SID is added). Parameter-free in every case (same state dict).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from pngan.nets.registry import register


class FCA(nn.Module):
    """Fast Channel Attention: GAP -> Conv1d(k) over channels -> sigmoid -> scale."""

    def __init__(self, kernel_size: int = 3):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(x)  # (B, C, 1, 1)
        y = self.conv(y.flatten(2).transpose(1, 2))  # (B, 1, C)
        y = torch.sigmoid(y).transpose(1, 2).unsqueeze(-1)  # (B, C, 1, 1)
        # without autograd, scale in place (x is a fresh activation; saves a full-size buffer)
        return x.mul_(y) if not torch.is_grad_enabled() else x * y


DOWNSAMPLE_MODES = ("sid", "stride", "bilinear")


class SID(nn.Module):
    """Shift-invariant (anti-aliased) downsampling: binomial blur, then stride 2. No parameters."""

    def __init__(self, channels: int, anti_alias: bool = True, mode: str | None = None):
        super().__init__()
        mode = mode or ("sid" if anti_alias else "stride")
        if mode not in DOWNSAMPLE_MODES:
            raise ValueError(f"SMNet downsample must be one of {DOWNSAMPLE_MODES}, got {mode!r}")
        self.mode = mode
        self.anti_alias = mode == "sid"
        self.channels = channels
        k = torch.tensor([1.0, 2.0, 1.0])
        k = torch.outer(k, k)
        self.register_buffer("kernel", (k / k.sum()).expand(channels, 1, 3, 3).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.mode == "stride":
            return x[:, :, ::2, ::2].clone()  # a copy: MAB adds into SID outputs in place
        if self.mode == "bilinear":  # half size (ceil, as the other modes); 2x2 means for even sizes
            return F.interpolate(x, size=((h + 1) // 2, (w + 1) // 2), mode="bilinear", align_corners=False)
        k = self.kernel.to(x.dtype)
        if h % 2 or w % 2 or h * w < 256 * 256:
            x = F.pad(x, (1, 1, 1, 1), mode="reflect" if min(h, w) > 1 else "replicate")
            return F.conv2d(x, k, stride=2, groups=self.channels)
        # Large even sizes (every SID inside SMNet, whose input is padded to a multiple of 4): the
        # bottom/right padding is never read at stride 2, and the top/left reflection (row -1 =
        # row 1, column -1 = column 1) is added as a correction to a zero-padded conv instead of
        # copying the whole map into a padded buffer. Same values up to rounding, less memory traffic.
        out = F.conv2d(x, k, stride=2, padding=1, groups=self.channels)
        v = k[:, :, 1:2, :] / k[:, :, 1:2, :].sum(dim=-1, keepdim=True)  # the 1D [1, 2, 1] / 4
        row = F.conv2d(F.pad(x[:, :, 1:2, :], (1, 1, 0, 0), mode="reflect"), v, stride=(1, 2), groups=self.channels)
        col = F.conv2d(F.pad(x[:, :, :, 1:2], (0, 0, 1, 1), mode="reflect"), v.transpose(-1, -2),
                       stride=(2, 1), groups=self.channels)
        out[:, :, :1, :] += 0.25 * row
        out[:, :, :, :1] += 0.25 * col
        out[:, :, :1, :1] -= x[:, :, 1:2, 1:2] / 16  # the corner tap, counted by both corrections
        return out


def _up(x: torch.Tensor, size) -> torch.Tensor:
    """Bilinear resize (align_corners=False) to ``size``."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class Up(nn.Module):
    """Bilinear upsampling to a target size, then a 1x1 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return self.conv(_up(x, size))


class MAB(nn.Module):
    def __init__(self, channels: int, multiscale: bool = True, sid: bool = True, fca: bool = True,
                 downsample: str | None = None):
        super().__init__()
        self.multiscale = multiscale
        n = 3 if multiscale else 1
        self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(n))
        self.fcas = nn.ModuleList((FCA() if fca else nn.Identity()) for _ in range(n))
        if multiscale:
            self.down = SID(channels, anti_alias=sid, mode=downsample)
            self.up32 = Up(channels)
            self.up21 = Up(channels)
            self.up31 = Up(channels)
            self.fuse = nn.Conv2d(2 * channels, channels, 1)
        else:
            self.fuse = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.multiscale:
            y1 = self.fcas[0](F.relu(self.convs[0](x), inplace=True))
            return self.fuse(y1).add_(x)
        x1 = x
        x2 = self.down(x1)
        x3 = self.down(x2)
        y1, y2, y3 = (fca(F.relu(conv(xi), inplace=True))
                      for conv, fca, xi in zip(self.convs, self.fcas, (x1, x2, x3)))
        s1, s2 = y1.shape[-2:], y2.shape[-2:]
        # The same function as the module docstring's, evaluated in a cheaper order (for speed):
        # bilinear interpolation commutes with any per-pixel affine map (its weights sum to 1 at
        # every output pixel, edges included), so each "upsample, then 1x1 conv" runs its conv
        # at the LOW resolution; and the fuse conv on cat([b1, t]) is W_a b1 + W_b t + bias, so W_a
        # and W_b are applied before upsampling too and no full-resolution concatenation is made.
        # Same parameters, same gradients; only float rounding differs (tests/test_networks.py
        # checks it against the literal formulation, ``forward_reference``).
        c = y1.shape[1]
        wa, wb = self.fuse.weight[:, :c], self.fuse.weight[:, c:]
        # bottom-up (coarse -> fine): b2 = y2 + U(y3); b1 = y1 + U(b2)
        b2 = _up(self.up32.conv(y3), s2).add_(y2)
        # top-down (fine -> coarse): t2 = y2 + SID(y1); t3 = y3 + SID(t2); t = U4(t3)
        t3 = self.down(self.down(y1).add_(y2)).add_(y3)
        # x + fuse([b1, t]) = x + W_a y1 + bias + U(W_a conv21(b2)) + U4(W_b conv31(t3))
        out = F.conv2d(y1, wa, self.fuse.bias)
        p, q = F.conv2d(self.up21.conv(b2), wa), F.conv2d(self.up31.conv(t3), wb)
        del y1, y2, y3, b2, t3, x2, x3  # free before the full-resolution upsamplings (tile memory)
        out += _up(p, s1)
        out += _up(q, s1)
        return out.add_(x)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """The block exactly as written in the module docstring (upsample, then conv; concat, then
        fuse). Slower; kept as the specification that ``forward`` is tested against."""
        if not self.multiscale:
            return x + self.fuse(self.fcas[0](F.relu(self.convs[0](x))))
        x1 = x
        x2 = self.down(x1)
        x3 = self.down(x2)
        y1, y2, y3 = (fca(F.relu(conv(xi))) for conv, fca, xi in zip(self.convs, self.fcas, (x1, x2, x3)))
        s1, s2 = y1.shape[-2:], y2.shape[-2:]
        b2 = y2 + self.up32(y3, s2)
        b1 = y1 + self.up21(b2, s1)
        t2 = y2 + self.down(y1)
        t3 = y3 + self.down(t2)
        t = self.up31(t3, s1)
        return x + self.fuse(torch.cat([b1, t], dim=1))


class SRG(nn.Module):
    """Simple Residual Group: blocks, then a 3x3 conv, plus the group's identity (the residual
    group of RCAN without its channel-attention blocks). A conv before the blocks as well would add
    111k parameters (1.01M in all), further from the paper's 0.8M; we leave it out."""

    def __init__(self, channels: int, blocks: int, **mab_kwargs):
        super().__init__()
        self.blocks = nn.Sequential(*(MAB(channels, **mab_kwargs) for _ in range(blocks)))
        self.tail = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.blocks(x)).add_(x)


@register("smnet", role="generator")
class SMNet(nn.Module):
    """PNGAN's generator. Defaults are the paper's: C=64, 3 groups x 2 blocks."""

    def __init__(
        self,
        *,
        in_channels: int = 3,
        channels: int = 64,
        groups: int = 3,
        blocks: int = 2,
        multiscale: bool = True,
        sid: bool = True,
        fca: bool = True,
        downsample: str | None = None,  # sid | stride | bilinear; None: sid if sid else stride
    ):
        super().__init__()
        if downsample is not None and downsample not in DOWNSAMPLE_MODES:
            raise ValueError(f"SMNet downsample must be one of {DOWNSAMPLE_MODES}, got {downsample!r}")
        self.multiple = 4 if multiscale else 1
        self.head = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.body = nn.Sequential(
            *(SRG(channels, blocks, multiscale=multiscale, sid=sid, fca=fca, downsample=downsample)
              for _ in range(groups))
        )
        self.tail = nn.Conv2d(channels, in_channels, 3, padding=1)

    def identity_init(self) -> None:
        """Start as the identity of the input: the tail conv at zero (residual zero-init)."""
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.multiple, (-w) % self.multiple
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        xp = self.pad(x)
        out = self.tail(self.body(self.head(xp))).add_(xp)
        return out[..., :h, :w]
