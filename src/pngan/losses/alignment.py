"""Image-domain alignment (paper Eq. 2) and Baseline 1's naive L1.

``alignment_l1(denoiser, fake, real)`` = || Dn(fake) - Dn(real) ||_1 with a frozen pretrained real
denoiser Dn: both are mapped to a nearly noise-free space where they can be compared. Dn's
parameters must be frozen (``requires_grad=False``, eval mode) by the caller; the real branch runs
under ``torch.no_grad``; gradients flow through Dn to ``fake`` only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pngan.filters import gaussian_lowpass


def _denoise(net, x):
    fn = getattr(net, "denoise", None)
    return fn(x) if fn is not None else net(x)


def alignment_l1(denoiser, fake: torch.Tensor, real: torch.Tensor, real_denoised: torch.Tensor | None = None,
                 lowpass: float = 0.0) -> torch.Tensor:
    """|| Dn(fake) - Dn(real) ||_1 (Eq. 2). ``lowpass`` > 0 (not in the paper; ``loss.align_lowpass``)
    compares Gaussian-blurred denoised images: a weak Dn leaves residual noise in both, independent
    between fake and real, and a pointwise L1 between independent noise is smallest when the fake's
    residual is zero, i.e. it rewards weaker, smoother fake noise (measured: docs/experiments.md).
    Blurring both sides keeps the content (low-frequency) anchoring and removes most of that bias."""
    if real_denoised is None:
        with torch.no_grad():
            real_denoised = _denoise(denoiser, real)
    return F.l1_loss(gaussian_lowpass(_denoise(denoiser, fake), lowpass),
                     gaussian_lowpass(real_denoised.detach(), lowpass))


def naive_l1(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Baseline 1 (Table 3): L1 directly between the fake and the real noisy image."""
    return F.l1_loss(fake, real)


def lowpass_l1(fake: torch.Tensor, real: torch.Tensor, sigma: float) -> torch.Tensor:
    """L1 between the Gaussian-low-passed (std ``sigma`` pixels) fake and real noisy images (not in
    the paper; ``loss.lambda_lowpass``). The low-pass is linear: LP(fake) - LP(real) = LP(clean
    difference) + LP(noise_fake - noise_real), so the term anchors content and the noise's local
    mean without the frozen denoiser's response to the noise's structure, which differs between
    synthetic and real noise of the same mean. Like every pointwise L1 between independent noises
    it still prefers less noise power where the low-pass lets it through (its lowest frequencies)."""
    if sigma <= 0:
        raise ValueError("lowpass_l1 needs a positive sigma (loss.align_lowpass)")
    return F.l1_loss(gaussian_lowpass(fake, sigma), gaussian_lowpass(real, sigma))
