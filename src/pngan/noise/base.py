"""The contract every synthetic noise setting keeps (the generator's input, and a baseline).

A setting is an ``nn.Module`` with

* ``forward(clean, generator=None, gain=None, return_params=False)``: noisy versions of ``clean``
  (B, 3, H, W) in [0, 1], every random number drawn from ``generator`` (a ``torch.Generator``;
  the same seed gives the same noise on any device). ``gain`` scales the noise level (a number, or
  one per image); a setting that draws its own levels (``takes_gain = False``) refuses it.
  ``return_params`` adds one dict per image describing what was drawn.
* ``describe()``: a JSON-able dict with the key ``setting`` (the registry name) from which
  :meth:`from_description` rebuilds the same setting: how checkpoints, job records and run
  identities store it.
* ``pair_gains``: the level of each pair a fitted setting was fitted on, relative to the fit
  (``None`` for a setting that was not fitted on pairs): what the ``fitted`` level policy draws from.

Settings register by name in :data:`pngan.noise.REGISTRY`.
"""

from __future__ import annotations

import torch
from torch import nn

from pngan.errors import PnganError


class NoiseSetting(nn.Module):
    setting: str = ""  # the registry name, also the ``setting`` key of describe()
    takes_gain: bool = False  # whether forward's ``gain`` scales this setting's level
    pair_gains: list[float] | None = None

    def describe(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_description(cls, d: dict) -> "NoiseSetting":
        """The setting ``describe()`` wrote (``d`` without its ``setting`` key, or with this one's)."""
        kwargs = {k: v for k, v in d.items() if k != "setting"}
        try:
            return cls(**kwargs)
        except TypeError as e:
            raise PnganError(f"synthetic setting {cls.setting}: bad arguments {sorted(kwargs)}: {e}") from None

    def refuse_gain(self, gain) -> None:
        if gain is not None and not self.takes_gain:
            raise PnganError(f"a noise-level gain sets the level of the calibrated setting; this one is "
                             f"'{self.setting}' (it draws its own levels)")

    @staticmethod
    def check_input(x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (B,3,H,W) tensor, got {tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        if not x.is_floating_point():  # uint8 images would be read as 0-255 and get noise of 1/255 the level
            raise ValueError(f"expected a floating-point image in [0, 1], got {x.dtype}")
        if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
            raise ValueError(f"expected at least one image of at least 1x1 pixels, got {tuple(x.shape)}")
