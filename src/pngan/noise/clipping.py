"""The sensor's white point in generated images (``generator.keep_white``; not in the paper).

A clean sRGB value at 8-bit white (>= 254.5/255) is, in real pairs, mostly a value that was white in
the noisy captures too: SIDD's ground truth is estimated from many captures of a static scene, and
a highlight beyond the white point stays there in each of them. On the shared SIDD crops 76% of
the clean-white values are unchanged in the noisy image (47-98% per crop, fewer at high ISO), and
the fitted calibrated model's variance reaches zero there. A generator that learns a darkening
tone mean from the mid-tones carries it into highlights it cannot tell apart from bright grey
(measured: docs/experiments.md, "generator.keep_white"). With ``keep_white`` those values pass through, in
training (the losses never see them move) and in generation alike.
"""

from __future__ import annotations

import torch

WHITE = 254.5 / 255.0


def keep_white(fake: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """``fake`` with every value whose ``clean`` value is 8-bit white replaced by that clean value
    (per channel; same shapes; no gradient reaches ``fake`` there)."""
    if fake.shape != clean.shape:
        raise ValueError(f"keep_white: fake {tuple(fake.shape)} and clean {tuple(clean.shape)} differ in shape")
    return torch.where(clean >= WHITE, clean.to(fake.dtype), fake)


def finish(raw: torch.Tensor, clean: torch.Tensor | None, keep: bool, clamp: bool = True) -> torch.Tensor:
    """The one place a generator's raw output becomes an image: clamped to [0, 1] (``clamp``; training
    leaves it off, so that the losses' gradients reach every value) and, for a generator trained with
    ``generator.keep_white``, clean-white values put back (``clean`` is needed only then)."""
    fake = raw.clamp(0, 1) if clamp else raw
    if keep:
        if clean is None:
            raise ValueError("keep_white: the clean image is needed to put its white values back")
        fake = keep_white(fake, clean.to(fake.device, fake.dtype))
    return fake
