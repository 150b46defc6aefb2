"""Conditional marginal matching of the noise (not in the paper; ``loss.lambda_marginal``, default 0).

PNGAN's pixel-level discriminator is meant to teach the generator the real noise's per-pixel
distribution. At CPU budgets it does not: on the SIDD crops every run keeps a Gaussian shape while
real sRGB noise is heavier-tailed and skewed by the tone curve (docs/experiments.md, "What KLD and AKLD reward on SIDD"),
which is what the histogram KLDs measure. This term compares the distributions directly, on the
aligned pairs PNGAN trains on. For each image, each channel and each of ``groups`` equal-count
bands of clean intensity (the pixels sorted by the clean value and cut into ``groups`` runs), the
fake noise (fake - clean) and the real noise (real - clean) of those pixels are sorted and compared
pointwise:

    L = mean over images, channels, bands and ranks of | sort(n_fake)_k - sort(n_real)_k |

which is the 1-D Wasserstein-1 distance between the two empirical distributions of each band
(both have the same pixels, so the same count). It is blind to where in the band a value sits, so
it constrains the marginal distribution (level, mean, skew, tails per intensity) and nothing
spatial: the spatial structure is left to the discriminator and the input noise. Gradients flow
through ``sort`` to the fake. A pure function of tensors.
"""

from __future__ import annotations

import torch


def marginal_loss(fake: torch.Tensor, real: torch.Tensor, clean: torch.Tensor, groups: int = 4) -> torch.Tensor:
    """W1 between fake and real noise per (image, channel, clean-intensity band); see the module doc.
    All (B, C, H, W); ``groups`` bands of H*W // groups pixels each (the brightest remainder is
    dropped)."""
    if fake.shape != real.shape or fake.shape != clean.shape or fake.dim() != 4:
        raise ValueError(f"marginal_loss: fake, real and clean must be (B,C,H,W) of one shape, got "
                         f"{tuple(fake.shape)}, {tuple(real.shape)}, {tuple(clean.shape)}")
    b, c, h, w = clean.shape
    if groups < 1 or h * w < groups:
        raise ValueError(f"marginal_loss: {groups} intensity bands need at least {groups} pixels, got {h}x{w}")
    per = (h * w) // groups
    order = clean.detach().flatten(2).argsort(dim=2)[..., :groups * per]
    nf = (fake - clean).flatten(2).gather(2, order).reshape(b, c, groups, per)
    nr = (real - clean).detach().flatten(2).gather(2, order).reshape(b, c, groups, per)
    return (nf.sort(dim=-1).values - nr.sort(dim=-1).values).abs().mean()
