"""``Discriminator_dense``, the pixel-level discriminator the PNGAN authors released. Self-contained.

Published only as a compiled file; its layout is written down in
``shared/reference/pngan_official/README.md`` and ``tests/test_official_nets.py`` checks this file
against the reference weights and outputs stored there:

    net = Conv3x3(3, 64) - LReLU(0.2) - Conv3x3(64, 128) - BatchNorm(128) - LReLU(0.2)
          - Conv3x3(128, 256) - LReLU(0.2) - Conv1x1(256, 1)          (biases on, stride 1, 'same')
    score = sigmoid(net(x))                                           one score per pixel, (B, 1, H, W)

Four convolutions with LeakyReLU, one score per pixel: the paper's Fig. 2. Its receptive field is
7x7 (three 3x3 convs and a 1x1); 371,329 parameters at the release's widths.

``forward`` returns the logits ``net(x)``, not the sigmoid score: the relativistic losses compare
logits (``C(a) - E[C(b)]`` inside the sigmoid, paper Eq. 5-6), and a sigmoid before them would
squash the critic. :meth:`score` is the released output, for checking against the reference.

The BatchNorm layer uses the statistics of each call's batch while training (real and fake
batches are separate calls in :mod:`pngan.train.loop`, as in BasicSR's GAN step). Under torchrun on
CUDA it is converted to SyncBatchNorm, so N processes see the global batch's statistics; on CPU
(gloo, no SyncBatchNorm) each process normalises its own part of the batch.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from pngan.nets.registry import register


@register("dense_discriminator", role="discriminator")
class DenseDiscriminator(nn.Module):
    def __init__(self, *, in_channels: int = 3, channels: int = 64, slope: float = 0.2):
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, c, 3, padding=1),
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(c, 2 * c, 3, padding=1),
            nn.BatchNorm2d(2 * c),
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(2 * c, 4 * c, 3, padding=1),
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(4 * c, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # logits, (B, 1, H, W)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """The released network's output: the per-pixel probability ``sigmoid(logits)``."""
        return torch.sigmoid(self.net(x))
