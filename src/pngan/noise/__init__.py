"""Synthetic noise settings of the paper: the generator's input (Sec. 3.1 / 4.1).

``build_synthetic("awgn", sigma=50)`` (setting 1, aliases "1", "setting1") or
``build_synthetic("raw")`` (setting 2, aliases "2", "setting2"): modules with
``forward(x (B,3,H,W) in [0,1], generator=None, return_params=False)`` and ``describe()``.
``build_synthetic(**module.describe())`` rebuilds the same setting (this is how checkpoints store
it).
"""

from __future__ import annotations

from torch import nn

from pngan.errors import PnganError

SETTINGS = {"awgn": "awgn", "1": "awgn", "setting1": "awgn", "raw": "raw", "2": "raw", "setting2": "raw"}


def canonical_setting(setting: str | int) -> str:
    key = str(setting).strip().lower()
    if key not in SETTINGS:
        raise PnganError(f"unknown synthetic setting {setting!r}: use awgn (1) or raw (2)")
    return SETTINGS[key]


def build_synthetic(setting: str | int, **kwargs) -> nn.Module:
    name = canonical_setting(setting)
    try:
        if name == "awgn":
            from pngan.noise.awgn import AWGN

            return AWGN(**kwargs)
        from pngan.noise.raw import RawNoise

        return RawNoise(**kwargs)
    except TypeError as e:
        raise PnganError(f"synthetic setting {name}: bad arguments {sorted(kwargs)}: {e}") from None


__all__ = ["build_synthetic", "canonical_setting", "SETTINGS"]
