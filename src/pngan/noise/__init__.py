"""Synthetic noise settings of the paper: the generator's input (Sec. 3.1 / 4.1).

``build_synthetic("awgn", sigma=50)`` (setting 1, aliases "1", "setting1") or
``build_synthetic("raw")`` (setting 2, aliases "2", "setting2") or
``build_synthetic("calibrated", a=..., b=..., kernel=..., mix=...)`` (a noise model fitted on the
user's pairs, ``noise/calibrated.py``; ``fit_calibrated(imageset)`` fits it): modules with
``forward(x (B,3,H,W) in [0,1], generator=None, return_params=False)`` and ``describe()``.
``build_synthetic(**module.describe())`` rebuilds the same setting (this is how checkpoints store
it).
"""

from __future__ import annotations

import torch
from torch import nn

from pngan.errors import PnganError

SETTINGS = {"awgn": "awgn", "1": "awgn", "setting1": "awgn", "raw": "raw", "2": "raw", "setting2": "raw",
            "calibrated": "calibrated"}


def canonical_setting(setting: str | int) -> str:
    key = str(setting).strip().lower()
    if key not in SETTINGS:
        raise PnganError(f"unknown synthetic setting {setting!r}: use awgn (1), raw (2) or calibrated")
    return SETTINGS[key]


def build_synthetic(setting: str | int, **kwargs) -> nn.Module:
    name = canonical_setting(setting)
    try:
        if name == "awgn":
            from pngan.noise.awgn import AWGN

            return AWGN(**kwargs)
        if name == "calibrated":
            from pngan.noise.calibrated import calibration_from_dict

            if "a" not in kwargs and "b" not in kwargs:
                raise PnganError("the calibrated setting is fitted on noisy/clean pairs: give the pairs to fit on "
                                 "(--fit SPEC) or a calibration file (calibrated:FILE.json)")
            return calibration_from_dict(kwargs)  # every key checked by name, type and range
        from pngan.noise.raw import RawNoise

        return RawNoise(**kwargs)
    except TypeError as e:
        raise PnganError(f"synthetic setting {name}: bad arguments {sorted(kwargs)}: {e}") from None


def check_gain(setting: nn.Module, what: str = "--gain") -> None:
    """A noise-level gain scales the calibrated setting only (settings 1 and 2 draw their own levels)."""
    if getattr(setting, "setting", None) != "calibrated":
        raise PnganError(f"{what} sets the level of the calibrated setting; this one is "
                         f"'{getattr(setting, 'setting', type(setting).__name__)}'")


def synthesize(setting: nn.Module, x, generator=None, *, gain=None, return_params: bool = False):
    """``setting(x, generator, return_params)``, at noise level ``gain`` when one is given (the
    calibrated setting only: :func:`check_gain`; a number, or one per image). With ``return_params``
    each image's parameters record its gain."""
    if gain is None:
        return setting(x, generator=generator, return_params=return_params)
    check_gain(setting)
    gain_value(gain)  # a string or a bool is one clear error, not a TypeError from inside torch
    out = setting(x, generator=generator, return_params=return_params, gain=gain)
    if not return_params:
        return out
    noisy, params = out
    g = [float(v) for v in gain_value(gain).expand(len(params))]
    return noisy, [{**p, "gain": v} for p, v in zip(params, g)]


def gain_value(gain) -> torch.Tensor:
    """A noise-level gain checked (see :func:`pngan.noise.calibrated.gain_value`)."""
    from pngan.noise.calibrated import gain_value as check

    return check(gain)


def resolve_setting(spec: str, fit: str | None = None, levels: bool = False, **kwargs) -> nn.Module:
    """A synthetic setting from a command-line spec: ``awgn``/``1``, ``raw``/``2``,
    ``calibrated:FILE.json`` (a saved calibration), or ``calibrated`` fitted on the pairs ``fit``
    (a data spec such as ``polyu:DIR@train``; ``levels``: with one noise level per pair,
    :func:`pngan.noise.calibrated.fit_calibrated`)."""
    s = str(spec).strip()
    if s.lower().startswith("calibrated:"):
        from pngan.noise.calibrated import load_calibration

        return load_calibration(s.split(":", 1)[1])
    name = canonical_setting(s)
    if name == "calibrated":
        if not fit:
            raise PnganError("the calibrated setting needs the pairs to fit it on (--fit SPEC, e.g. "
                             "polyu:DIR@train) or a saved calibration (calibrated:FILE.json)")
        from pngan.data.specs import open_dataset
        from pngan.noise.calibrated import fit_calibrated

        return fit_calibrated(open_dataset(fit), levels=levels)
    return build_synthetic(name, **kwargs)


def __getattr__(name):
    # the level policy (pngan.noise.level) is reachable from here without importing it eagerly
    if name in ("LevelPolicy", "parse_level", "resolve_level"):
        from pngan.noise import level

        return getattr(level, name)
    raise AttributeError(name)


__all__ = ["LevelPolicy", "parse_level", "resolve_level", "build_synthetic", "canonical_setting", "check_gain", "gain_value", "resolve_setting", "synthesize", "SETTINGS"]
