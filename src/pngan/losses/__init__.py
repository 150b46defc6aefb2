"""PNGAN's losses as pure functions (paper Eq. 2-6, 12, 13; spectrum and marginal matching are ours)."""

from pngan.losses.alignment import alignment_l1, lowpass_l1, naive_l1
from pngan.losses.gan import ra_d_loss, ra_g_loss
from pngan.losses.marginal import marginal_loss
from pngan.losses.perceptual import perceptual_loss
from pngan.losses.spectrum import spectrum_loss

__all__ = ["alignment_l1", "lowpass_l1", "marginal_loss", "naive_l1", "ra_d_loss", "ra_g_loss", "perceptual_loss", "spectrum_loss"]
