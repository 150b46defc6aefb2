"""The one checkpoint loader for every network, and the safetensors writer.

Reading never unpickles arbitrary objects: safetensors files are read as tensors, and torch files
only with ``torch.load(weights_only=True)``, which refuses any pickled object that is not a tensor
or a plain container. A refused file is a :class:`PnganError`; its payload never runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from pngan.errors import PnganError

_NESTED_KEYS = ("state_dict", "model_state_dict", "params_ema", "params", "model", "net", "generator")


def _find_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
        for k in _NESTED_KEYS:
            if k in obj and isinstance(obj[k], dict):
                return _find_state_dict(obj[k], path)
    raise PnganError("no state dict found (looked for a dict of tensors, or one under "
                     f"{', '.join(_NESTED_KEYS)})", path)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint (safetensors or torch file), with any ``module.`` prefix removed."""
    path = Path(path)
    if not path.is_file():
        raise PnganError("no such checkpoint file", path)
    with open(path, "rb") as f:
        head = f.read(16)
    is_safetensors = path.suffix == ".safetensors" or (len(head) >= 9 and head[8:9] == b"{")
    if is_safetensors:
        from safetensors.torch import load_file

        try:
            sd = load_file(str(path))
        except Exception as e:
            raise PnganError(f"cannot read safetensors file ({type(e).__name__}: {e})", path) from None
    else:
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as e:
            with open(path, "rb") as fh:
                head = fh.read(4)
            if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):  # torch's zip, or a legacy pickle
                raise PnganError("not a PyTorch checkpoint (neither torch's zip archive nor a pickle): give a .pth/.pt "
                                 "state dict or a .safetensors file", path) from None
            if "weights_only" in str(e) or "Unsupported global" in str(e):
                raise PnganError("the checkpoint holds objects other than tensors and plain containers; pngan reads "
                                 "checkpoints with weights_only=True and never runs code from them: re-save its state "
                                 "dict (torch.save(model.state_dict(), path))", path) from None
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise PnganError(f"unreadable torch checkpoint ({first[:160]})", path) from None
        sd = _find_state_dict(obj, path)
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def load_state_dict_strict(net: nn.Module, sd: dict[str, torch.Tensor], path: str | Path, name: str = "") -> None:
    own = net.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if shapes:
            parts.append(f"{len(shapes)} mis-shaped (e.g. {'; '.join(shapes[:2])})")
        raise PnganError(f"checkpoint does not fit network '{name}': " + "; ".join(parts), path)
    # A module used in several places (SIMNet's CAU applied twice, its one PReLU) is listed under
    # each of its names; loading would silently keep the last copy, so the copies must agree.
    shared: dict[int, list[str]] = {}
    for k, v in own.items():
        if v.numel():
            shared.setdefault(v.data_ptr(), []).append(k)
    for keys in shared.values():
        if len(keys) > 1 and any(not torch.equal(sd[keys[0]], sd[k]) for k in keys[1:]):
            diff = next(k for k in keys[1:] if not torch.equal(sd[keys[0]], sd[k]))
            raise PnganError(f"checkpoint does not fit network '{name}': {keys[0]} and {diff} are one shared weight "
                             "in the network but differ in the file", path)
    net.load_state_dict(sd, strict=True)


def parse_net_spec(spec: str) -> tuple[str | None, Path]:
    """``"dncnn:weights.pth"`` -> ``("dncnn", Path("weights.pth"))``; a bare pngan safetensors path
    gives ``(None, path)`` (the network name is then read from its metadata)."""
    from pngan.nets.registry import available

    if ":" in spec:
        name, path = spec.split(":", 1)
        if name in available():
            return name, Path(path)
        if len(name) > 1:  # not a Windows drive letter
            raise PnganError(f"unknown network '{name}' in '{spec}' (known: {', '.join(available())})")
    return None, Path(spec)


def load_network(name: str | None, path: str | Path, **kwargs: Any) -> nn.Module:
    """Build network ``name`` (registry) and load ``path`` into it strictly.

    With ``name=None`` the file must be a pngan safetensors file whose metadata names the network.
    For pngan safetensors files the constructor kwargs stored in the metadata are used unless given.
    """
    from pngan.nets.registry import build

    path = Path(path)
    meta = read_metadata(path)
    if name is None:
        if "pngan.network" not in meta:
            raise PnganError("give the network as NAME:CHECKPOINT (this file carries no pngan metadata)", path)
        name = meta["pngan.network"]
    if "pngan.network" in meta and meta["pngan.network"] != name:
        raise PnganError(f"checkpoint holds a '{meta['pngan.network']}' network, not '{name}'", path)
    if "pngan.kwargs" in meta and not kwargs:
        kwargs = json.loads(meta["pngan.kwargs"])
    net = build(name, **kwargs)
    sd = read_state_dict(path)
    select = getattr(net, "select_state_dict", None)  # e.g. VGG16: keep features.* of a full checkpoint
    if select is not None:
        sd = select(sd)
    load_state_dict_strict(net, sd, path, name)
    return net


def read_metadata(path: str | Path) -> dict[str, str]:
    path = Path(path)
    if not path.is_file():
        raise PnganError("no such checkpoint file", path)
    with open(path, "rb") as f:
        head = f.read(16)
    if not (path.suffix == ".safetensors" or (len(head) >= 9 and head[8:9] == b"{")):
        return {}
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as e:
        raise PnganError(f"cannot read safetensors header ({e})", path) from None


def save_network(net: nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write ``net``'s weights as safetensors (atomically) with pngan metadata."""
    from safetensors.torch import save_file

    from pngan import __version__
    from pngan.io.atomic import atomic_path

    base = getattr(net, "module", net)  # DDP / compiled wrappers
    base = getattr(base, "_orig_mod", base)
    sd = {k: v.detach().to("cpu").contiguous().clone() for k, v in base.state_dict().items()}
    meta = {"pngan.version": __version__}
    name = getattr(base, "registry_name", None)
    if name:
        meta["pngan.network"] = name
        meta["pngan.kwargs"] = json.dumps(getattr(base, "build_kwargs", {}), sort_keys=True)
    for k, v in (metadata or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(sd, str(tmp), metadata=meta)
    return path


def load_saved_network(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, str]]:
    """Rebuild a network written by :func:`save_network` from its metadata; returns (net, metadata)."""
    net = load_network(None, path)
    return net.to(map_location), read_metadata(path)
