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


def build(name: str, **kwargs: Any) -> nn.Module:
    _load_all()
    if name not in _REGISTRY:
        raise PnganError(f"unknown network '{name}' (known: {', '.join(available())})")
    cls, _ = _REGISTRY[name]
    try:
        net = cls(**kwargs)
    except TypeError as e:
        raise PnganError(f"bad arguments for network '{name}': {e}") from None
    net.build_kwargs = dict(kwargs)  # type: ignore[attr-defined]
    return net
