"""Gaussian filtering shared by the losses and the metrics."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_kernel1d(radius: int, sigma: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian of std ``sigma`` on ``[-radius, radius]`` (2 radius + 1 taps)."""
    r = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    k = torch.exp(-0.5 * (r / sigma) ** 2)
    return k / k.sum()


def gaussian_lowpass(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B,C,H,W) ``x`` (std ``sigma`` pixels, radius ceil(3 sigma), same
    size out; reflect padding, replicate where the image is not larger than the radius);
    ``sigma == 0`` returns ``x``."""
    if sigma <= 0:
        return x
    r = max(1, math.ceil(3 * sigma))
    k = gaussian_kernel1d(r, sigma, x.dtype, x.device)
    c = x.shape[1]
    y = F.pad(x, (r, r, r, r), mode="reflect" if r < min(x.shape[-2:]) else "replicate")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
