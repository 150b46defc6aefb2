"""Relativistic average GAN losses (paper Eq. 5-6; Jolicoeur-Martineau 2019, as ESRGAN/BasicSR).

With critic logits C(.), D_Ra(a, b) = sigmoid(C(a) - E_b[C(b)]):

    L_D = -E[log D_Ra(x_r, x_f)] - E[log(1 - D_Ra(x_f, x_r))]
    L_G = -E[log D_Ra(x_f, x_r)] - E[log(1 - D_Ra(x_r, x_f))]

For the pixel-level discriminator the logits are per-pixel maps (B, 1, H, W). The expectation
E_b[C(b)] is taken per pixel position over the batch (a mean over dim 0), so each pixel is judged
relative to the average opposite score at the same position; the outer E averages over batch and
pixels. For image-level logits (B, 1) this is the usual relativistic average loss. Computed from
logits with ``binary_cross_entropy_with_logits`` (numerically stable).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _rel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a - b.mean(dim=0, keepdim=True)


def ra_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    r, f = _rel(real_logits, fake_logits), _rel(fake_logits, real_logits)
    return (F.binary_cross_entropy_with_logits(r, torch.ones_like(r))
            + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f)))


def ra_g_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    r, f = _rel(real_logits, fake_logits), _rel(fake_logits, real_logits)
    return (F.binary_cross_entropy_with_logits(f, torch.ones_like(f))
            + F.binary_cross_entropy_with_logits(r, torch.zeros_like(r)))
