"""PNGAN's discriminators (paper Sec. 2.2, Fig. 2). Self-contained.

``pixel_discriminator``: four 3x3 convolutions, stride 1, 'same' padding, LeakyReLU(0.2) between
them (widths 64, 128, 128 -> 1 logit): a score map the size of the input, one logit per pixel, so
the adversarial loss judges every pixel (the paper's pixel-level noise-aware training). The widths
are our choice (the paper gives only "4 convolutions with LeakyReLU").

``image_discriminator``: the image-level discriminator of the ablation (Table 3): three 4x4
convolutions with stride 2 (widths 64, 128, 256), then a 3x3 convolution, stride 1, to 1 channel,
averaged to one logit per image.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from pngan.nets.registry import register


@register("pixel_discriminator", role="discriminator")
class PixelDiscriminator(nn.Module):
    def __init__(self, *, in_channels: int = 3, channels: int = 64, slope: float = 0.2):
        super().__init__()
        c = channels
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, c, 3, padding=1),
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(c, 2 * c, 3, padding=1),
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(2 * c, 2 * c, 3, padding=1),
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(2 * c, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # (B, 1, H, W)


@register("image_discriminator", role="discriminator")
class ImageDiscriminator(nn.Module):
    def __init__(self, *, in_channels: int = 3, channels: int = 64, slope: float = 0.2):
        super().__init__()
        c = channels
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, c, 4, stride=2, padding=1),
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1),
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(2 * c, 4 * c, 4, stride=2, padding=1),
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(4 * c, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))  # (B, 1)
