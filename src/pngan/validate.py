"""Typed validation of every user-given value, in one place.

* **Command-line options**: argparse ``type=`` callables (:func:`int_range`, :func:`float_range`,
  :func:`tile_size`, :func:`device_name`) reject a value at parse time, before any work, with a
  one-line error and exit 2 (``pngan.cli`` makes argparse errors one line).
* **Config fields**: a field declared with :func:`ranged` carries its range; every float field is
  also required to be finite. :func:`validate_config` runs them (and the cross-field checks of
  :data:`CROSS_CHECKS`) and is called by :func:`pngan.config.load_config` after every load.
* **Output paths**: :func:`writable_file` / :func:`writable_dir` check, before the work starts,
  that an output can be created (not an existing folder where a file is wanted, not under a file,
  parent writable).
* **Network roles**: :func:`check_role` reads a checkpoint's ``pngan.network`` metadata (or the
  NAME of NAME:CHECKPOINT) and refuses a file holding a network of another role.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
from pathlib import Path
from typing import Any, Callable

from pngan.errors import PnganError

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


# ---------------------------------------------------------------- command-line types
def _num(text: str, kind: type) -> float | int:
    try:
        v = int(text) if kind is int else float(text)  # integers are written as integers ("1.0" is refused)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return v


def _range_text(lo, hi, lo_open=False) -> str:
    if hi is None:
        return f"{'>' if lo_open else '>='} {lo}"
    return f"in {'(' if lo_open else '['}{lo}, {hi}]"


def int_range(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """argparse type: an integer in [lo, hi] (None: unbounded)."""

    def parse(text: str) -> int:
        v = _num(text, int)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"must be an integer {_range_text(lo, hi) if lo is not None else f'<= {hi}'}, got {v}")
        return v

    parse.__name__ = "integer"
    return parse


def float_range(lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> Callable[[str], float]:
    """argparse type: a finite number in [lo, hi] ((lo, hi] with ``lo_open``)."""

    def parse(text: str) -> float:
        v = _num(text, float)
        if lo is not None and (v < lo or (lo_open and v == lo)):
            raise argparse.ArgumentTypeError(f"must be a number {_range_text(lo, hi, lo_open)}, got {text}")
        if hi is not None and v > hi:
            raise argparse.ArgumentTypeError(f"must be a number {_range_text(lo, hi, lo_open)}, got {text}")
        return v

    parse.__name__ = "number"
    return parse


MIN_TILE = 8  # tiles are whole multiples of the generator's downsampling (SMNet: 4); smaller ones only crawl


def tile_size(text: str) -> int:
    """argparse type for --tile: 0 (whole image, no tiling) or >= MIN_TILE."""
    v = _num(text, int)
    if v != 0 and not MIN_TILE <= v <= 1 << 16:
        raise argparse.ArgumentTypeError(f"must be 0 (no tiling) or a size in [{MIN_TILE}, 65536], got {v}")
    return v


def device_name(text: str) -> str:
    """argparse type: auto, cpu, cuda, cuda:N or mps (availability is checked by :func:`check_device`)."""
    if not _DEVICE.match(str(text)):
        raise argparse.ArgumentTypeError(f"must be auto, cpu, cuda, cuda:N or mps, got {text!r}")
    return text


# common option types, shared by every command
STEPS = int_range(1, 10**9)
COUNT = int_range(1, 10**6)  # --samples, --max-images
SEED = int_range(0, 2**63 - 1)
OVERLAP = int_range(0, 4096)
GAIN = float_range(0.0, 100.0)  # --gain: the calibrated setting's noise level (1: the fit's)


def check_device(device: str) -> None:
    """Refuse an unknown device name, or CUDA / MPS on a machine without it (one line, no traceback)."""
    if not _DEVICE.match(str(device)):
        raise PnganError(f"unknown device '{device}' (use auto, cpu, cuda, cuda:N or mps)")
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise PnganError(f"device '{device}' requested but CUDA is not available on this machine (use cpu or auto)")
        if ":" in device and int(device.split(":")[1]) >= torch.cuda.device_count():
            raise PnganError(f"device '{device}' does not exist ({torch.cuda.device_count()} CUDA device(s))")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise PnganError("device 'mps' requested but MPS is not available on this machine")


# ---------------------------------------------------------------- output paths
def writable_dir(path: str | Path, what: str = "output folder") -> Path:
    """``path`` is (or can be created as) a writable folder. Creates nothing (but a probe file, removed at once)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise PnganError(f"{what} is an existing file, not a folder", p)
    q = p
    while not q.exists():
        q = q.parent if q.parent != q else q
        if q == q.parent:
            break
    if q.exists() and not q.is_dir():
        raise PnganError(f"{what} lies under {q}, which is a file", p)
    if q.exists() and not os.access(q, os.W_OK | os.X_OK):
        raise PnganError(f"{what}: {q} is not writable", p)
    if q.is_dir():  # what access() cannot tell (root, read-only or virtual file systems): a probe file
        import tempfile

        try:
            fd, probe = tempfile.mkstemp(prefix=".pngan-probe-", dir=q)
            os.close(fd)
        except OSError as e:
            raise PnganError(f"{what}: cannot create files in {q} ({e.strerror or e})", p) from None
        try:
            os.unlink(probe)
        except OSError:
            pass
    return p


def writable_file(path: str | Path, what: str = "output file") -> Path:
    """``path`` can be written as a file: not a folder, not under a file, parent writable."""
    p = Path(path)
    if p.is_dir():
        raise PnganError(f"{what} is an existing folder, not a file", p)
    if p.exists() and not os.access(p, os.W_OK):
        raise PnganError(f"{what} exists and is not writable", p)
    writable_dir(p.parent if str(p.parent) else Path("."), f"{what}'s folder")
    return p


# ---------------------------------------------------------------- image tensors (Python API)
class ImageInputError(PnganError, ValueError):
    """A tensor given to the Python API breaks its contract (also a ValueError)."""


def image_batch(x: Any, what: str = "clean images", lo: float = 0.0, hi: float = 1.0):
    """The Python API's input contract, shared with the CLI's reader: a float tensor (or numpy array)
    of shape (3, H, W) or (B, 3, H, W), B, H, W >= 1, finite, values in [lo, hi] (1e-3 tolerance).
    Returns ``(tensor, batched)``; integer input (e.g. uint8 0-255) is refused, not guessed."""
    import numpy as np
    import torch

    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise ImageInputError(f"{what} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if not (x.is_floating_point()):
        hint = " (0-255 values? use x.float() / 255)" if x.dtype == torch.uint8 else ""
        raise ImageInputError(f"{what} must hold floating-point values in [{lo:g}, {hi:g}], got dtype {x.dtype}{hint}")
    batched = x.ndim == 4
    if x.ndim not in (3, 4) or x.shape[-3] != 3:
        raise ImageInputError(f"{what} must have shape (3, H, W) or (B, 3, H, W), got {tuple(x.shape)}")
    if x.numel() == 0:
        raise ImageInputError(f"{what} are empty: shape {tuple(x.shape)}")
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise ImageInputError(f"{what} hold {bad} NaN/Inf value(s)")
    mn, mx = float(x.min()), float(x.max())
    if mn < lo - 1e-3 or mx > hi + 1e-3:
        hint = " (0-255 values? divide by 255)" if mx > 2 else ""
        raise ImageInputError(f"{what} must lie in [{lo:g}, {hi:g}], got [{mn:.4g}, {mx:.4g}]{hint}")
    return x, batched


# ---------------------------------------------------------------- network roles
def check_role(spec: str | Path, role: str, option: str) -> None:
    """Refuse ``spec`` (NAME:CHECKPOINT or a pngan safetensors file) if it holds a network of a role
    other than ``role`` (e.g. a generator given where a frozen denoiser is expected)."""
    from pngan.nets.loading import parse_net_spec, read_metadata
    from pngan.nets.registry import available, role_of

    name, path = parse_net_spec(str(spec))
    if name is not None and name in available() and role_of(name) != role:
        raise PnganError(f"{option}: '{name}' is a {role_of(name)} network, not a {role}")
    if not Path(path).is_file():
        raise PnganError(f"{option}: no such checkpoint file", path)
    meta = read_metadata(path)
    stored = meta.get("pngan.network")
    if stored is not None and stored in available() and role_of(stored) != role:
        raise PnganError(f"{option}: this file holds a '{stored}' network ({role_of(stored)}), not a {role}", path)


# ---------------------------------------------------------------- config fields
@dataclasses.dataclass(frozen=True)
class Rule:
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    allow: tuple = ()  # extra values accepted outside the range (e.g. -1 meaning "auto")
    note: str = ""
    hi_open: bool = False

    def check(self, key: str, v: Any) -> None:
        if v is None or isinstance(v, bool) or not isinstance(v, (int, float)) or v in self.allow:
            return
        bad = (self.lo is not None and (v < self.lo or (self.lo_open and v == self.lo))) or \
              (self.hi is not None and (v > self.hi or (self.hi_open and v == self.hi)))
        if bad:
            rng = _range_text(self.lo, self.hi, self.lo_open) if self.lo is not None else f"<= {self.hi}"
            rng = rng[:-1] + ")" if self.hi_open and rng.endswith("]") else rng
            extra = f" or {', '.join(map(str, self.allow))}" if self.allow else ""
            raise PnganError(f"config key '{key}' must be {rng}{extra}{self.note}, got {v!r}")


def ranged(default: Any, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           hi_open: bool = False, allow: tuple = (), note: str = "") -> Any:
    """A config dataclass field whose value must lie in [lo, hi] (``lo_open``: (lo, hi]; ``allow``:
    extra values such as -1 for "auto"), checked by :func:`validate_config`: the range is written
    next to the field it applies to."""
    return dataclasses.field(default=default, metadata={"range": Rule(lo, hi, lo_open, allow, note, hi_open)})


# field names checked as device names wherever they appear
_DEVICE_FIELDS = {"device"}


def _check_level(cfg: Any) -> None:
    syn = getattr(cfg, "synthetic", None)
    if syn is not None and getattr(syn, "level", "fixed") == "match":
        from pngan.noise import canonical_setting

        if canonical_setting(syn.setting) != "calibrated":
            raise PnganError(f"synthetic.level=match needs synthetic.setting=calibrated (got {syn.setting!r}): "
                             "only the calibrated setting's level is scaled to the real noise")


def _check_lowpass(cfg: Any) -> None:
    loss = getattr(cfg, "loss", None)
    if loss is not None and getattr(loss, "lambda_lowpass", 0) > 0 and getattr(loss, "align_lowpass", 0) <= 0:
        raise PnganError("loss.lambda_lowpass compares low-passed noisy images: it needs loss.align_lowpass > 0 "
                         "(the low-pass std in pixels)")


def _check_generator_options(cfg: Any) -> None:
    g = getattr(cfg, "generator", None)
    if g is None or getattr(g, "name", None) != "simnet":
        return
    # the released SIMNet is single-scale: the multi-scale options would be silently ignored
    bad = [k for k, v in (("multiscale", not g.multiscale), ("downsample", g.downsample is not None)) if v]
    if bad:
        raise PnganError(f"generator.{bad[0]} applies to generator.name=smnet (the multi-scale SMNet) only; "
                         "generator.name=simnet (the released network) is single-scale")


def _check_learning_rates(cfg: Any) -> None:
    optim = getattr(cfg, "optim", None)
    lr_min = getattr(optim, "lr_min", None)
    for key in ("lr", "d_lr"):
        lr = getattr(optim, key, None)
        if lr is not None and lr_min is not None and lr_min > lr:
            raise PnganError(f"optim.lr_min ({lr_min:g}) is above optim.{key} ({lr:g}): the cosine schedule anneals "
                             f"from optim.{key} down to optim.lr_min")


CROSS_CHECKS: list[Callable[[Any], None]] = [_check_level, _check_lowpass, _check_generator_options,
                                             _check_learning_rates]


def validate_config(cfg: Any, prefix: str = "") -> None:
    """Check every field of a (nested) config dataclass against its :func:`ranged` range; every float
    must be finite; device fields must name a device. Raises :class:`PnganError` naming the key."""
    _validate_fields(cfg, prefix)
    if not prefix:
        for check in CROSS_CHECKS:
            check(cfg)


def _validate_fields(cfg: Any, prefix: str) -> None:
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        key = prefix + f.name
        if dataclasses.is_dataclass(v):
            _validate_fields(v, key + ".")
            continue
        if isinstance(v, float) and not math.isfinite(v):
            raise PnganError(f"config key '{key}' must be a finite number, got {v!r}")
        if f.name in _DEVICE_FIELDS and isinstance(v, str) and not _DEVICE.match(v):
            raise PnganError(f"config key '{key}' must be auto, cpu, cuda, cuda:N or mps, got {v!r}")
        rule = f.metadata.get("range")  # ranged(): the field's own range
        if rule is not None:
            rule.check(key, v)
