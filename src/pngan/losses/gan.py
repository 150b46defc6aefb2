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

from typing import Callable

import torch
import torch.nn.functional as F

BatchMean = Callable[[torch.Tensor], torch.Tensor]

RA_MEANS = ("batch", "batch_hw")


def ra_mean_dims(t: torch.Tensor, mean: str = "batch") -> tuple[int, ...]:
    """The dimensions E_b[C(b)] averages over (see the module docstring)."""
    if mean == "batch":
        return (0,)
    if mean == "batch_hw":
        return (0, *range(2, t.dim()))
    raise ValueError(f"unknown relativistic average '{mean}' (known: {', '.join(RA_MEANS)})")


def _rel(a: torch.Tensor, b: torch.Tensor, mean: str, batch_mean: BatchMean | None) -> torch.Tensor:
    dims = ra_mean_dims(b, mean)
    if batch_mean is None:
        return a - b.mean(dim=dims, keepdim=True)
    # every process's slice has the same H and W, so the global mean over (batch, H, W) is the
    # global batch mean of the per-image spatial means
    return a - batch_mean(b.mean(dim=dims[1:], keepdim=True) if dims[1:] else b)


def ra_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, mean: str = "batch",
              batch_mean: BatchMean | None = None) -> torch.Tensor:
    """L_D (Eq. 5). ``batch_mean``: a differentiable mean over dim 0 of the GLOBAL batch (under
    torchrun, ``Dist.batch_mean``), so that N processes optimise the loss of one; None: this batch."""
    r, f = _rel(real_logits, fake_logits, mean, batch_mean), _rel(fake_logits, real_logits, mean, batch_mean)
    return (F.binary_cross_entropy_with_logits(r, torch.ones_like(r))
            + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f)))


def ra_g_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, mean: str = "batch",
              batch_mean: BatchMean | None = None) -> torch.Tensor:
    """L_G (Eq. 6); ``batch_mean`` as in :func:`ra_d_loss`."""
    r, f = _rel(real_logits, fake_logits, mean, batch_mean), _rel(fake_logits, real_logits, mean, batch_mean)
    return (F.binary_cross_entropy_with_logits(f, torch.ones_like(f))
            + F.binary_cross_entropy_with_logits(r, torch.zeros_like(r)))
