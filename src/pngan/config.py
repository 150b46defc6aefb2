"""Typed configuration: dataclasses loaded from YAML, unknown keys rejected, ``key=value`` overrides.

A config class is a (possibly nested) dataclass whose fields have defaults. ``load_config``
builds it from, in order: the class defaults, a named preset (a dict registered by the owning
module, e.g. ``paper`` / ``cpu-small``) or a YAML file, then ``a.b=value`` overrides parsed as
YAML scalars. Every key is checked against the dataclass fields; an unknown or mistyped key is a
:class:`~pngan.errors.PnganError` that names it and suggests the nearest valid key.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Mapping, TypeVar

import yaml

from pngan.errors import PnganError

T = TypeVar("T")

# Keys pngan had and no longer has: (why, the value that meant "off"). Every config.yaml written
# before the removal holds the key, almost always at that value, which trains exactly as today: it
# is dropped with one warning, so such runs still resume. A config setting one to anything else is
# refused with the reason (a run folder holding it cannot be resumed: its training would not be the
# same), while generate/evaluate, which read the network files, still use its generator or denoiser.
REMOVED_KEYS: dict[str, tuple[str, Any]] = {
    "run.debug_nan_at_step": ("it was a test hook; the tests now set pngan.train.engine.Engine.nan_at_step", -1),
    "synthetic.sigma_max": ("setting 1 with a range of levels was used by no preset or experiment", None),
    "optim.g_warmup": ("a linear warm-up of G's learning rate did not help a generator started at its input "
                       "(docs/experiments.md, 'What else moves the generator away')", 0),
    "optim.ema": ("a moving average of G's weights scored worse than the trained weights on the SIDD "
                  "validation split (docs/experiments.md, 'Checks that found nothing')", 0.0),
    "generator.sid": ("generator.downsample says the same (stride: what generator.sid=false meant)", True),
    "loss.d_input": ("D judging the noise, alone or beside the clean image, did no better than the paper's noisy "
                     "images in any experiment (docs/experiments.md)", "noisy"),
}


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _describe_type(tp: Any) -> str:
    """A field type in words for an error: ``Optional[Literal['a', 'b']]`` -> ``one of a, b (or null)``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        words = " or ".join(_describe_type(a) for a in args if a is not type(None))
        return words + (" (or null)" if type(None) in args else "")
    if origin in (list, tuple):
        return "a list"
    if origin is dict:
        return "a mapping"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise PnganError(f"config key '{key}' must be a mapping, got {value!r}", source)
        return _build(tp, value, key + ".", source)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key, source)
            except PnganError as e:
                errors.append(str(e))
        raise PnganError(f"config key '{key}' must be {_describe_type(tp)}, got {value!r}", source)
    if origin is typing.Literal:
        if isinstance(value, bool) and ("off" if not value else "on") in args:
            value = "off" if not value else "on"  # YAML 1.1 reads a bare off/on as a boolean
        if value not in args:
            raise PnganError(f"config key '{key}' must be one of {list(args)}, got {value!r}", source)
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise PnganError(f"config key '{key}' must be a list, got {value!r}", source)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise PnganError(f"config key '{key}' needs {len(args)} items, got {value!r}", source)
            return tuple(_coerce(v, a, key, source) for v, a in zip(value, args))
        inner = args[0] if args else Any
        out = [_coerce(v, inner, key, source) for v in value]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, Mapping):
            raise PnganError(f"config key '{key}' must be a mapping, got {value!r}", source)
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise PnganError(f"config key '{key}' must be true/false, got {value!r}", source)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise PnganError(f"config key '{key}' must be an integer, got {value!r}", source)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
            raise PnganError(f"config key '{key}' must be a number, got {value!r}", source)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise PnganError(f"config key '{key}' must be a string, got {value!r}", source)
        return value
    return value


def _build(cls: type[T], data: Mapping[str, Any], prefix: str, source: str, base: T | None = None) -> T:
    types_ = _field_types(cls)
    removed = [k for k in data if f"{prefix}{k}" in REMOVED_KEYS]
    for k in removed:
        why, off = REMOVED_KEYS[f"{prefix}{k}"]
        if data[k] == off:
            logging.getLogger("pngan").warning("%s: config key '%s%s' was removed from pngan (%s); its value %r "
                                               "is what pngan now always does, so it is ignored", source, prefix, k,
                                               why, off)
            continue
        resume = "; this run cannot be resumed: start a new one" if source.endswith("config.yaml") else ""
        raise PnganError(f"config key '{prefix}{k}' was removed from pngan ({why}){resume}", source)
    data = {k: v for k, v in data.items() if k not in removed}
    for k in data:
        if k not in types_:
            near = difflib.get_close_matches(str(k), list(types_), n=1)
            hint = f" (did you mean '{prefix}{near[0]}'?)" if near else ""
            raise PnganError(f"unknown config key '{prefix}{k}'{hint}", source)
    obj = base if base is not None else cls()
    kwargs = {}
    for name, tp in types_.items():
        cur = getattr(obj, name)
        if name in data:
            v = data[name]
            if dataclasses.is_dataclass(tp) and isinstance(v, Mapping):
                kwargs[name] = _build(tp, v, prefix + name + ".", source, base=cur)
            else:
                kwargs[name] = _coerce(v, tp, prefix + name, source)
        else:
            kwargs[name] = cur
    return cls(**kwargs)


def from_dict(cls: type[T], data: Mapping[str, Any], source: str = "<config>", base: T | None = None) -> T:
    """Build (or update ``base`` of) dataclass ``cls`` from a nested mapping, rejecting unknown keys."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise PnganError("a config must be a YAML mapping at the top level", source)
    return _build(cls, data, "", source, base=base)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["train.lr=1e-4", "model.channels=32"]`` -> nested dict; values parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise PnganError(f"override '{item}' must look like key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str) and _looks_float(value):
            value = float(value)
        cur = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
            if not isinstance(cur, dict):
                raise PnganError(f"override '{item}' conflicts with an earlier override")
        cur[parts[-1]] = value
    return out


def _looks_float(s: str) -> bool:
    try:
        float(s)
        return any(c in s.lower() for c in "e.")
    except ValueError:
        return False


def load_config(
    cls: type[T],
    preset_or_path: str | None,
    overrides: list[str] | None = None,
    presets: Mapping[str, Mapping[str, Any]] | None = None,
) -> T:
    """Resolve a config: defaults <- preset name or YAML file <- overrides."""
    presets = presets or {}
    cfg = cls()
    if preset_or_path:
        if preset_or_path in presets:
            cfg = from_dict(cls, presets[preset_or_path], f"preset '{preset_or_path}'", base=cfg)
        else:
            path = Path(preset_or_path)
            if not path.is_file():
                names = ", ".join(sorted(presets)) or "none"
                raise PnganError(f"no such config file or preset (presets: {names})", path)
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except UnicodeDecodeError as e:
                raise PnganError(f"not a UTF-8 text file (byte {e.start}: {e.reason})", path) from None
            except yaml.YAMLError as e:
                raise PnganError(f"not valid YAML: {str(e).splitlines()[0]}", path) from None
            except OSError as e:
                raise PnganError(f"cannot read config file ({e.strerror})", path) from None
            base_name = (data or {}).pop("base", None) if isinstance(data, dict) else None
            if base_name is not None:
                if not isinstance(base_name, str) or base_name not in presets:
                    names = ", ".join(sorted(presets)) or "none"
                    raise PnganError(f"unknown base preset {base_name!r} (presets: {names})", path)
                cfg = from_dict(cls, presets[base_name], f"preset '{base_name}'", base=cfg)
            cfg = from_dict(cls, data or {}, str(path), base=cfg)
    if overrides:
        cfg = from_dict(cls, parse_overrides(overrides), "command-line override", base=cfg)
    from pngan.validate import validate_config

    validate_config(cfg)  # every field's range (declared with pngan.validate.ranged), finite floats, devices
    return cfg


def to_dict(cfg: Any) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    return json.loads(json.dumps(d, default=list))  # tuples -> lists, plain types only


def config_hash(cfg: Any, exclude: Iterable[str] = ()) -> str:
    """16 hex digits of SHA-256 over the config; ``exclude``: dotted keys left out."""
    d = to_dict(cfg)
    for key in exclude:
        *path, last = key.split(".")
        sub = d
        for p in path:
            sub = sub.get(p, {})
        sub.pop(last, None)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def save_yaml(cfg: Any, path: str | Path) -> None:
    from pngan.io.atomic import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
