"""Perceptual loss (paper Eq. 12) on VGG16 features.

We take VGG16's last feature map before the final max-pool (``features[:30]``, i.e. conv5_3 after
its ReLU): the deepest feature map at 1/16 resolution, which is what "the last feature map" of
VGG16's convolutional part most plausibly means for an L1 feature distance. Inputs are normalised
with ImageNet mean/std as torchvision's VGG16 expects.

Without a weights file the perceptual term is off (``build_perceptual`` returns None and logs one
warning), unless a fixed, seeded random-init VGG is explicitly asked for (``mode="random"``).
"""

from __future__ import annotations

import logging

import torch
import torch.nn as nn
import torch.nn.functional as F

log = logging.getLogger("pngan")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PerceptualFeatures(nn.Module):
    """Frozen VGG16 features[:30] with ImageNet normalisation."""

    def __init__(self, vgg_features: nn.Module):
        super().__init__()
        self.features = vgg_features
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True):  # always frozen
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features((x - self.mean) / self.std)


def build_perceptual(weights: str | None, mode: str = "imagenet") -> PerceptualFeatures | None:
    """``mode``: ``imagenet`` (needs ``weights``), ``random`` (fixed seeded init), ``off``."""
    from pngan.nets.registry import build

    if mode == "off":
        return None
    if mode == "random":
        g = torch.random.fork_rng(devices=[])
        with g:
            torch.manual_seed(0)
            vgg = build("vgg16")
        log.warning("perceptual loss uses a fixed random-init VGG16 (perceptual: random)")
        return PerceptualFeatures(vgg.last_feature_map())
    if mode != "imagenet":
        from pngan.errors import PnganError

        raise PnganError(f"perceptual mode must be imagenet, random or off, got '{mode}'")
    if not weights:
        log.warning("no VGG16 weights given (--vgg PATH): the perceptual loss term is off")
        return None
    from pngan.nets.loading import load_network

    vgg = load_network("vgg16", weights)
    return PerceptualFeatures(vgg.last_feature_map())


def perceptual_loss(features: nn.Module, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        target = features(real)
    return F.l1_loss(features(fake), target)
