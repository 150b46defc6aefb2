"""Learning-rate schedules as pure functions of the step (nothing to drift on resume)."""

from __future__ import annotations

import math


def cosine_lr(step: int, total: int, lr: float, lr_min: float) -> float:
    """Cosine annealing from ``lr`` at step 0 to ``lr_min`` at ``total`` (paper: 2e-4 -> 1e-6)."""
    t = min(max(step, 0), total) / max(total, 1)
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * t))
