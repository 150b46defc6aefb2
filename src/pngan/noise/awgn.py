"""Setting 1 of the paper: additive white Gaussian noise (AWGN), sigma on the 0-255 scale.

The paper trains the generator on AWGN with sigma = 50 (Sec. 3.1). ``sigma=(lo, hi)`` draws a
sigma per image uniformly from [lo, hi] (a blind variant). The noisy image is not clipped by
default: the paper writes the synthetic input as x_clean + n with n ~ N(0, sigma^2), and a clipped
image would have biased, non-Gaussian noise near black and white; ``clip=True`` clips to [0, 1].
"""

from __future__ import annotations

import torch

from pngan.errors import PnganError
from pngan.noise.base import NoiseSetting


def _check_sigma(sigma) -> float | tuple[float, float]:
    if isinstance(sigma, (list, tuple)):
        if len(sigma) != 2:
            raise PnganError(f"awgn: sigma range must be (lo, hi), got {sigma!r}")
        lo, hi = float(sigma[0]), float(sigma[1])
        if not 0 <= lo <= hi:
            raise PnganError(f"awgn: sigma range must satisfy 0 <= lo <= hi, got {sigma!r}")
        return (lo, hi)
    try:
        s = float(sigma)
    except (TypeError, ValueError):
        raise PnganError(f"awgn: sigma must be a number or (lo, hi), got {sigma!r}") from None
    if not s >= 0:
        raise PnganError(f"awgn: sigma must be >= 0 (0-255 scale), got {sigma!r}")
    return s


class AWGN(NoiseSetting):
    """x + N(0, (sigma/255)^2), sigma fixed or per-image uniform in a range."""

    setting = "awgn"

    def __init__(self, sigma: float | tuple[float, float] = 50.0, clip: bool = False):
        super().__init__()
        self.sigma = _check_sigma(sigma)
        self.clip = bool(clip)

    def describe(self) -> dict:
        s = list(self.sigma) if isinstance(self.sigma, tuple) else self.sigma
        return {"setting": "awgn", "sigma": s, "clip": self.clip}

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None, gain=None,
                return_params: bool = False):
        self.check_input(x)
        self.refuse_gain(gain)
        b = x.shape[0]
        # Randomness is drawn on the generator's device (CPU for a CPU generator, even when x is on
        # CUDA), then moved: the same seed gives the same noise wherever x lives. Order: sigmas
        # (only for a range), then the noise field.
        gdev = generator.device if generator is not None else x.device
        wdt = torch.float64 if x.dtype == torch.float64 else torch.float32
        if isinstance(self.sigma, tuple):
            lo, hi = self.sigma
            sig = lo + (hi - lo) * torch.rand(b, generator=generator, device=gdev, dtype=torch.float64)
        else:
            sig = torch.full((b,), self.sigma, dtype=torch.float64, device=gdev)
        n = torch.randn(x.shape, generator=generator, device=gdev, dtype=wdt).to(x.device)
        noisy = x.to(wdt) + n * (sig.to(device=x.device, dtype=wdt) / 255.0)[:, None, None, None]
        if self.clip:
            noisy = noisy.clamp(0.0, 1.0)
        noisy = noisy.to(x.dtype)
        if return_params:
            return noisy, [{"setting": "awgn", "sigma": float(s)} for s in sig.cpu()]
        return noisy
