"""Noise power-spectrum matching (not in the paper; ``loss.lambda_spectrum``, default 0).

A pixel-level discriminator sees a small neighbourhood (the CPU presets' four 3x3 convolutions
9x9, the released one 7x7), so it cannot see how much noise power a fake has at low spatial
frequencies (row banding, JPEG blocks, demosaicking), and the image-domain alignment of Eq. 2 is
built to ignore noise altogether. Measured on ``camera:builtin`` (docs/experiments.md), training therefore learns the fine structure
of real noise but lets its level sink ~5% below its start. This loss anchors the level and the
spectrum's shape: on aligned pairs, the noise of the fake (fake - clean) and of the real image
(real - clean) are compared through their radial power spectra, averaged over the batch (one
spectrum per image would be too noisy an estimate):

    S_x(c, k) = mean over images and over the frequencies in ring k of |FFT(x - clean)_c|^2
    L_spec = mean over c, k of | log S_fake(c, k) - log S_real(c, k) |

for c in R, G, B and their mean (which carries the cross-channel correlation), rings k evenly
spaced in radial frequency from DC (excluded) to the corner. Logarithms make every ring count
the same whatever its power. It is a pure function of tensors.
"""

from __future__ import annotations

from typing import Callable

import torch

RINGS = 8


def _ring_index(h: int, w: int, rings: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    fy = torch.fft.fftfreq(h, device=device)[:, None]
    fx = torch.fft.rfftfreq(w, device=device)[None, :]
    r = torch.sqrt(fy**2 + fx**2) / (0.5 * 2**0.5)  # 0 at DC, 1 at the corner (0.5, 0.5)
    idx = (r * rings).long().clamp(max=rings - 1)
    keep = r > 0
    return idx[keep], keep


def _mean0(t: torch.Tensor) -> torch.Tensor:
    return t.mean(dim=0, keepdim=True)


def radial_power(noise: torch.Tensor, rings: int = RINGS,
                 batch_mean: Callable[[torch.Tensor], torch.Tensor] = _mean0) -> torch.Tensor:
    """Batch-averaged radial power spectrum of ``noise`` (B, 3, H, W): (4, rings) for R, G, B and
    their mean; power in variance units (orthonormal FFT: a white field of std s has power s^2).
    ``batch_mean`` takes the mean over dim 0 (keepdim); multi-process training passes a global one."""
    x = torch.cat([noise, noise.mean(dim=1, keepdim=True)], dim=1).float()
    p = batch_mean(torch.fft.rfft2(x, norm="ortho").abs().square())[0]  # (4, H, W//2+1)
    idx, keep = _ring_index(x.shape[-2], x.shape[-1], rings, x.device)
    v = p[:, keep]  # (4, N)
    total = torch.zeros(x.shape[1], rings, device=x.device, dtype=v.dtype).index_add_(1, idx, v)
    count = torch.zeros(rings, device=x.device, dtype=v.dtype).index_add_(0, idx, torch.ones_like(idx, dtype=v.dtype))
    return total / count.clamp_min(1)


def spectrum_loss(fake: torch.Tensor, real: torch.Tensor, clean: torch.Tensor, rings: int = RINGS,
                  eps: float = 1e-10, batch_mean: Callable[[torch.Tensor], torch.Tensor] = _mean0) -> torch.Tensor:
    """Mean absolute log-ratio of the batch-averaged radial noise power spectra of ``fake`` and
    ``real`` (both noisy versions of ``clean``, (B, 3, H, W)); gradients flow to ``fake`` only.
    ``batch_mean``: see :func:`radial_power` (the global batch under torchrun)."""
    if fake.shape != real.shape or fake.shape != clean.shape or fake.dim() != 4:
        raise ValueError(f"fake, real and clean must be (B,3,H,W) of one shape, got {tuple(fake.shape)}, "
                         f"{tuple(real.shape)}, {tuple(clean.shape)}")
    with torch.no_grad():
        s_real = radial_power(real.float() - clean.float(), rings, batch_mean)
    s_fake = radial_power(fake.float() - clean.float(), rings, batch_mean)
    return (torch.log(s_fake + eps) - torch.log(s_real + eps)).abs().mean()
