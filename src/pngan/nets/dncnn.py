"""DnCNN (Zhang et al. TIP 2017) in KAIR's colour layout. Self-contained.

``model`` is one ``nn.Sequential``: conv(3->nc)+ReLU, (nb-2) x [conv(nc->nc) + BatchNorm + ReLU],
conv(nc->3); every conv has a bias (KAIR's ``mode='CBR'``), so the keys are ``model.<i>.<param>``
exactly as ``../shared/reference/dncnn_kair_state_dict_keys.tsv``. The network predicts the noise:
``denoise(x) = x - net(x)``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from pngan.nets.registry import register


@register("dncnn", role="denoiser")
class DnCNN(nn.Module):
    def __init__(self, *, in_channels: int = 3, channels: int = 64, depth: int = 20, batch_norm: bool = True):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers.append(nn.Conv2d(channels, channels, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(channels, momentum=0.9, eps=1e-4))
            layers.append(nn.ReLU(inplace=True))
        layers.append(nn.Conv2d(channels, in_channels, 3, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The predicted noise (KAIR's DnCNN returns ``x - noise``; we keep the two apart)."""
        return self.model(x)

    def denoise(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.model(x)
