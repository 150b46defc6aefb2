"""Synthetic noise settings of the paper: the generator's input (Sec. 3.1 / 4.1).

``build_synthetic("awgn", sigma=50)`` (setting 1, aliases "1", "setting1") or
``build_synthetic("raw")`` (setting 2, aliases "2", "setting2") or
``build_synthetic("calibrated", a=..., b=..., kernel=..., mix=...)`` (a noise model fitted on the
user's pairs, ``noise/calibrated.py``; ``fit_calibrated(imageset)`` fits it). Every setting keeps
one contract (:class:`pngan.noise.base.NoiseSetting`): ``forward(clean, generator=None, gain=None,
return_params=False)``, ``describe()`` and ``from_description()``; :data:`REGISTRY` names them.
``from_description(module.describe())`` rebuilds the same setting (how checkpoints store it).
"""

from __future__ import annotations

import importlib

import torch

from pngan.errors import PnganError
from pngan.noise.base import NoiseSetting

# name -> "module:class", imported on first use (setting 2 pulls in the camera pipeline)
REGISTRY = {"awgn": "pngan.noise.awgn:AWGN", "raw": "pngan.noise.raw:RawNoise",
            "calibrated": "pngan.noise.calibrated:CalibratedNoise"}
SETTINGS = {"awgn": "awgn", "1": "awgn", "setting1": "awgn", "raw": "raw", "2": "raw", "setting2": "raw",
            "calibrated": "calibrated"}


def canonical_setting(setting: str | int) -> str:
    key = str(setting).strip().lower()
    if key not in SETTINGS:
        raise PnganError(f"unknown synthetic setting {setting!r}: use awgn (1), raw (2) or calibrated")
    return SETTINGS[key]


def setting_class(setting: str | int) -> type[NoiseSetting]:
    module, _, name = REGISTRY[canonical_setting(setting)].partition(":")
    return getattr(importlib.import_module(module), name)


def build_synthetic(setting: str | int, **kwargs) -> NoiseSetting:
    """The setting named ``setting`` built from ``kwargs`` (its ``describe()`` keys)."""
    cls = setting_class(setting)
    if cls.takes_gain and "a" not in kwargs and "b" not in kwargs:  # the calibrated setting is fitted
        raise PnganError("the calibrated setting is fitted on noisy/clean pairs: give the pairs to fit on "
                         "(--fit SPEC) or a calibration file (calibrated:FILE.json)")
    return cls.from_description(kwargs)


def from_description(d: dict) -> NoiseSetting:
    """The setting a ``describe()`` dict (``{"setting": NAME, ...}``) describes."""
    if not isinstance(d, dict) or "setting" not in d:
        raise PnganError(f"a synthetic setting's description needs a 'setting' key, got {d!r}")
    return build_synthetic(d["setting"], **{k: v for k, v in d.items() if k != "setting"})


def check_gain(setting: NoiseSetting, what: str = "--gain") -> None:
    """A noise-level gain scales a setting that takes one (the calibrated setting; settings 1 and 2
    draw their own levels)."""
    if not getattr(setting, "takes_gain", False):
        raise PnganError(f"{what} sets the level of the calibrated setting; this one is "
                         f"'{getattr(setting, 'setting', type(setting).__name__)}'")


def synthesize(setting: NoiseSetting, x, generator=None, *, gain=None, return_params: bool = False):
    """``setting(x, generator, gain, return_params)``, with ``gain`` checked first (:func:`check_gain`;
    a number, or one per image). With ``return_params`` each image's parameters record its gain."""
    if gain is None:
        return setting(x, generator=generator, return_params=return_params)
    check_gain(setting)
    g = gain_value(gain)  # a string or a bool is one clear error, not a TypeError from inside torch
    out = setting(x, generator=generator, gain=gain, return_params=return_params)
    if not return_params:
        return out
    noisy, params = out
    return noisy, [{**p, "gain": float(v)} for p, v in zip(params, g.expand(len(params)))]


def gain_value(gain) -> torch.Tensor:
    """A noise-level gain checked (see :func:`pngan.noise.calibrated.gain_value`)."""
    from pngan.noise.calibrated import gain_value as check

    return check(gain)


def resolve_setting(spec: str, fit: str | None = None, levels: bool = False, **kwargs) -> NoiseSetting:
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


__all__ = ["NoiseSetting", "REGISTRY", "from_description", "setting_class", "LevelPolicy", "parse_level", "resolve_level", "build_synthetic", "canonical_setting", "check_gain", "gain_value", "resolve_setting", "synthesize", "SETTINGS"]
