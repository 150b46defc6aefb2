"""Relativistic average GAN losses (paper Eq. 5-6; Jolicoeur-Martineau 2019, as ESRGAN/BasicSR).

With critic logits C(.), D_Ra(a, b) = sigmoid(C(a) - E_b[C(b)]):

    L_D = -E[log D_Ra(x_r, x_f)] - E[log(1 - D_Ra(x_f, x_r))]
    L_G = -E[log D_Ra(x_f, x_r)] - E[log(1 - D_Ra(x_r, x_f))]

For the pixel-level discriminator the logits are per-pixel maps (B, 1, H, W). Where the average
E_b[C(b)] is taken is ``mean``:

- ``"batch"`` (pngan's default): per pixel position over the batch (a mean over dim 0), so each
  pixel is judged relative to the average opposite score at the same position;
- ``"batch_hw"`` (BasicSR/ESRGAN's ``torch.mean(pred)``): one scalar over batch, height and width.

The outer E averages over batch and pixels in both cases. For image-level logits (B, 1) both are
the usual relativistic average loss. Computed from logits with ``binary_cross_entropy_with_logits``
(numerically stable).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

RA_MEANS = ("batch", "batch_hw")


def ra_mean_dims(t: torch.Tensor, mean: str = "batch") -> tuple[int, ...]:
    """The dimensions E_b[C(b)] averages over (see the module docstring)."""
    if mean == "batch":
        return (0,)
    if mean == "batch_hw":
        return (0, *range(2, t.dim()))
    raise ValueError(f"unknown relativistic average '{mean}' (known: {', '.join(RA_MEANS)})")


def _rel(a: torch.Tensor, b: torch.Tensor, mean: str) -> torch.Tensor:
    return a - b.mean(dim=ra_mean_dims(b, mean), keepdim=True)


def ra_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, mean: str = "batch") -> torch.Tensor:
    r, f = _rel(real_logits, fake_logits, mean), _rel(fake_logits, real_logits, mean)
    return (F.binary_cross_entropy_with_logits(r, torch.ones_like(r))
            + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f)))


def ra_g_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, mean: str = "batch") -> torch.Tensor:
    r, f = _rel(real_logits, fake_logits, mean), _rel(fake_logits, real_logits, mean)
    return (F.binary_cross_entropy_with_logits(f, torch.ones_like(f))
            + F.binary_cross_entropy_with_logits(r, torch.zeros_like(r)))
