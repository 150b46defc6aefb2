"""One registry for every network: ``build("smnet", channels=64)``.

Each network file registers its class(es) with ``@register("name", role=...)``. Roles:
``generator``, ``discriminator``, ``denoiser`` (has ``.denoise(x)`` returning the clean estimate),
``features``, ``isp`` (CycleISP's camera networks for setting 2). ``build`` imports all network modules on first use.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

import torch.nn as nn

from pngan.errors import PnganError

_REGISTRY: dict[str, tuple[type[nn.Module], str]] = {}
_MODULES = [
    "pngan.nets.simnet",
    "pngan.nets.smnet",
    "pngan.nets.dense_discriminator",
    "pngan.nets.discriminator",
    "pngan.nets.dncnn",
    "pngan.nets.ridnet",
    "pngan.nets.mirnet",
    "pngan.nets.mprnet",
    "pngan.nets.vgg",
    "pngan.nets.cycleisp",
]
_loaded = False


def register(name: str, role: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        _REGISTRY[name] = (cls, role)
        cls.registry_name = name  # type: ignore[attr-defined]
        return cls

    return deco


def _load_all() -> None:
    global _loaded
    if not _loaded:
        for m in _MODULES:
            try:
                importlib.import_module(m)
            except ModuleNotFoundError as e:  # a network file not written yet
                if e.name != m:
                    raise
        _loaded = True


def available(role: str | None = None) -> list[str]:
    _load_all()
    return sorted(n for n, (_, r) in _REGISTRY.items() if role is None or r == role)


def role_of(name: str) -> str:
    _load_all()
    return _REGISTRY[name][1]


def check_kwargs(name: str, kwargs: dict, what: str = "network arguments") -> None:
    """Refuse arguments network ``name`` does not take, or of another type than its default's: an
    integer where an integer is (not true/false; at least 1 where the default is), true/false where
    a flag is, a finite number where a number is. Catches a YAML ``{depth:2}`` (no space: one key
    'depth:2') and widths such as 0 or -4 before a run folder is made."""
    import inspect
    import math

    _load_all()
    if name not in _REGISTRY:
        raise PnganError(f"unknown network '{name}' (known: {', '.join(available())})")
    params = inspect.signature(_REGISTRY[name][0].__init__).parameters
    known = [k for k, p in params.items() if k != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for k, v in kwargs.items():
        if k not in known:
            hint = (f" (write '{k.split(':')[0]}: {k.split(':', 1)[1]}' with a space after the colon: YAML reads "
                    f"'{k}' as one key)") if ":" in str(k) else ""
            raise PnganError(f"{what}: '{name}' takes no argument '{k}'{hint}; it takes {', '.join(known)}")
        d = params[k].default
        if d is inspect.Parameter.empty or d is None:
            continue
        if isinstance(d, bool):
            ok, want = isinstance(v, bool), "true or false"
        elif isinstance(d, int):
            ok = isinstance(v, int) and not isinstance(v, bool) and (v >= 1 or d < 1)
            want = "an integer >= 1" if d >= 1 else "an integer"
        elif isinstance(d, float):
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            want = "a finite number"
        else:
            continue
        if not ok:
            raise PnganError(f"{what}: '{name}' argument '{k}' must be {want}, got {v!r}")


def network_class(name: str) -> type[nn.Module]:
    _load_all()
    if name not in _REGISTRY:
        raise PnganError(f"unknown network '{name}' (known: {', '.join(available())})")
    return _REGISTRY[name][0]


def build(name: str, **kwargs: Any) -> nn.Module:
    check_kwargs(name, kwargs)
    cls, _ = _REGISTRY[name]
    try:
        net = cls(**kwargs)
    except (TypeError, ValueError, RuntimeError) as e:
        raise PnganError(f"bad arguments for network '{name}': {e}") from None
    net.build_kwargs = dict(kwargs)  # type: ignore[attr-defined]
    return net
