"""VGG16 ``features`` in torchvision's state-dict layout (no torchvision needed). Self-contained.

Keys ``features.<i>.weight/bias`` for the 13 convolutions, exactly as torchvision's
``vgg16-397923af.pth``; a full torchvision checkpoint (with ``classifier.*``) loads through
``select_state_dict``, which keeps the ``features.*`` entries.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from pngan.nets.registry import register

CFG_D = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


@register("vgg16", role="features")
class VGG16Features(nn.Module):
    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for v in CFG_D:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
                c = v
        self.features = nn.Sequential(*layers)

    @staticmethod
    def select_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        feats = {k: v for k, v in sd.items() if k.startswith("features.")}
        return feats if feats else sd

    def last_feature_map(self) -> nn.Sequential:
        """features[:30]: up to conv5_3 + ReLU (before the last max-pool)."""
        return self.features[:30]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
