"""The generator's objective (paper Eq. 13, plus our optional terms) as data.

An :class:`Objective` is a list of named :class:`Term` s, each a weight and a function of the
batch (``clean``, ``real`` noisy, ``fake`` = G(synthetic)). :func:`build_objective` builds it from
``loss.*`` of the training config in one place: adding a term means adding one entry to its list
(and the config field holding its weight).

The value of the objective is  sum_k weight_k * term_k(batch), summed in list order. A term whose
weight is 0 is not computed, with one exception: the alignment term (Eq. 2, or Baseline 1's naive
L1) is still computed and logged at weight 0 whenever it can be (naive, or a frozen denoiser
given), without an autograd graph and without entering the sum, so that runs with and without it
can be compared on the paper's main term. Each computed term is logged as ``loss_<name>`` in
``stats.jsonl``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from pngan.losses.alignment import alignment_l1, lowpass_l1, naive_l1
from pngan.losses.gan import BatchMean, ra_g_loss
from pngan.losses.marginal import marginal_loss
from pngan.losses.perceptual import perceptual_loss
from pngan.losses.spectrum import spectrum_loss


@dataclass
class GanBatch:
    """What every term sees: (B, 3, H, W) tensors of one batch (this process's slice)."""

    clean: torch.Tensor
    real: torch.Tensor
    fake: torch.Tensor


@dataclass(frozen=True)
class Term:
    name: str  # logged as loss_<name>
    weight: float
    fn: Callable[[GanBatch], torch.Tensor]
    logged_at_zero: bool = False  # computed (without a graph) and logged even at weight 0
    available: bool = True  # False: a network it needs is absent, so the term is left out


class Objective:
    def __init__(self, terms: list[Term]):
        self.terms = [t for t in terms if t.available and (t.weight != 0 or t.logged_at_zero)]

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.terms]

    def __call__(self, batch: GanBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """(the weighted sum as a float32 scalar, {loss_<name>: value} of every computed term)."""
        total = batch.fake.new_zeros((), dtype=torch.float32)
        logged: dict[str, float] = {}
        for t in self.terms:
            with torch.set_grad_enabled(t.weight != 0 and torch.is_grad_enabled()):
                value = t.fn(batch)
            if t.weight != 0:
                total = total + t.weight * value
            logged[f"loss_{t.name}"] = float(value.detach())
        return total, logged


def build_objective(loss, *, denoiser: nn.Module | None = None, perceptual: nn.Module | None = None,
                    discriminator: nn.Module | None = None, batch_mean: BatchMean | None = None) -> Objective:
    """The generator's objective from ``loss`` (a ``LossConfig``) and the frozen networks it needs.

    A term whose network is absent is left out (no frozen denoiser: no Eq. 2 term; no VGG weights:
    no perceptual term; ``loss.discriminator=none``: no adversarial term). ``batch_mean``: the
    differentiable global-batch mean over dim 0 under torchrun (``Dist.batch_mean``), so that N
    processes optimise the loss of one; None: this process's batch."""

    def align(b: GanBatch) -> torch.Tensor:
        if loss.alignment == "naive":
            return naive_l1(b.fake.float(), b.real)
        return alignment_l1(denoiser, b.fake.float(), b.real, lowpass=loss.align_lowpass)

    def adversarial(b: GanBatch) -> torch.Tensor:
        with torch.no_grad():  # the plain module, not DDP's wrapper: D takes no gradient in G's step
            real_logits = discriminator(b.real).float()
        fake_logits = discriminator(b.fake).float()
        return ra_g_loss(real_logits, fake_logits, loss.ra_mean, batch_mean)

    spectrum_mean = {} if batch_mean is None else {"batch_mean": batch_mean}
    return Objective([
        # Eq. 2 (or Baseline 1's naive L1), weight 1 in the paper
        Term("align", loss.lambda_align, align, logged_at_zero=True,
             available=loss.alignment == "naive" or denoiser is not None),
        # Eq. 12, VGG16 features
        Term("perceptual", loss.lambda_p, lambda b: perceptual_loss(perceptual, b.fake.float(), b.real),
             available=perceptual is not None),
        # not in the paper: the noise's local mean, without the denoiser
        Term("lowpass", loss.lambda_lowpass, lambda b: lowpass_l1(b.fake.float(), b.real, loss.align_lowpass)),
        # not in the paper: the noise's per-intensity distribution
        Term("marginal", loss.lambda_marginal,
             lambda b: marginal_loss(b.fake.float(), b.real, b.clean, loss.marginal_groups)),
        # not in the paper: the noise's radial power spectrum, averaged over the global batch
        Term("spectrum", loss.lambda_spectrum, lambda b: spectrum_loss(b.fake, b.real, b.clean, **spectrum_mean)),
        # Eq. 6, the generator's relativistic average loss
        Term("adv", loss.lambda_ra, adversarial, available=discriminator is not None),
    ])
