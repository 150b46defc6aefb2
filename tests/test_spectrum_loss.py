"""Known answers for the noise power-spectrum matching term (pngan.losses.spectrum)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from pngan.losses import spectrum_loss
from pngan.losses.spectrum import radial_power


def _pair(seed=0, b=8, s=48):
    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(b, 3, s, s, generator=g)
    return g, clean


def test_white_noise_power_is_its_variance_in_every_ring():
    g, clean = _pair()
    p = radial_power(0.03 * torch.randn(64, 3, 32, 32, generator=g))
    assert p.shape == (4, 8)
    assert torch.allclose(p[:3], torch.full_like(p[:3], 0.03**2), rtol=0.15)
    assert torch.allclose(p[3], torch.full_like(p[3], 0.03**2 / 3), rtol=0.15)  # independent channels


def test_level_error_scores_its_log_ratio_and_same_noise_scores_near_zero():
    g, clean = _pair()
    real = clean + 0.02 * torch.randn(clean.shape, generator=g)
    same = clean + 0.02 * torch.randn(clean.shape, generator=g)
    half = clean + 0.01 * torch.randn(clean.shape, generator=g)
    assert spectrum_loss(same, real, clean) < 0.1
    assert spectrum_loss(half, real, clean).item() == pytest.approx(2 * math.log(2), rel=0.05)


def test_right_level_wrong_spectrum_is_seen():
    """White noise of the real level against spatially correlated real noise: large loss, although
    the per-pixel histograms agree."""
    g, clean = _pair()
    k = torch.ones(3, 1, 3, 3) / 3.0  # 3x3 box: keeps the variance, moves power to low frequencies
    corr = F.conv2d(F.pad(torch.randn(clean.shape, generator=g), (1, 1, 1, 1), mode="circular"), k, groups=3)
    real = clean + 0.02 * corr
    white = clean + 0.02 * torch.randn(clean.shape, generator=g)
    assert (real - clean).std().item() == pytest.approx((white - clean).std().item(), rel=0.05)
    assert spectrum_loss(white, real, clean) > 1.0
    # a blurred copy of the clean image (no noise at all) is far from any noise spectrum
    blurred = F.avg_pool2d(F.pad(clean, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    assert spectrum_loss(blurred, real, clean) > 2.0


def test_gradient_reaches_fake_only_and_shapes_are_checked():
    g, clean = _pair(b=2, s=16)
    real = (clean + 0.02 * torch.randn(clean.shape, generator=g)).requires_grad_()
    fake = (clean + 0.01 * torch.randn(clean.shape, generator=g)).requires_grad_()
    spectrum_loss(fake, real, clean).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0 and real.grad is None
    with pytest.raises(ValueError, match="one shape"):
        spectrum_loss(fake[:, :, :8], real, clean)
