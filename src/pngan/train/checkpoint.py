"""Run folders and checkpoints, shared by ``pngan train`` and ``pngan train-denoiser``.

A checkpoint is a folder ``RUN/checkpoints/NNNNNNNN/`` (the step, zero-padded) holding one
safetensors file per network (``<name>.safetensors``, with pngan metadata) and ``state.pt``: the
training state (optimizers, schedulers, step, RNG state) as plain tensors and containers, read back
with ``torch.load(weights_only=True)``. It is written into a hidden temporary folder, every file
fsynced, then renamed into place in one step, so a kill at any moment leaves either the complete new
checkpoint or none; the last ``keep`` checkpoints are kept. ``RUN/<latest>.safetensors`` (e.g.
``generator.safetensors``) is then replaced atomically by the newest network.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from pngan.errors import PnganError

CKPT_DIR = "checkpoints"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    d = Path(run_dir) / CKPT_DIR
    if not d.is_dir():
        return []
    out = []
    for p in d.iterdir():
        if p.is_dir() and p.name.isdigit() and (p / "state.pt").is_file():
            out.append((int(p.name), p))
    return sorted(out)


def latest_checkpoint(run_dir: str | Path) -> tuple[int, Path] | None:
    cks = list_checkpoints(run_dir)
    return cks[-1] if cks else None


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    nets: dict[str, nn.Module],
    state: dict[str, Any],
    metadata: dict[str, dict[str, str]] | None = None,
    keep: int = 2,
    latest: str | None = None,
) -> Path:
    """Write checkpoint ``step`` atomically; ``metadata[name]`` goes into that network's file;
    ``latest`` names the network copied to ``RUN/<latest>.safetensors``."""
    from pngan.io.atomic import atomic_path
    from pngan.nets.loading import save_network

    run_dir = Path(run_dir)
    root = run_dir / CKPT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{step:08d}"
    tmp = root / f".tmp-{step:08d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    for name, net in nets.items():
        save_network(net, tmp / f"{name}.safetensors", (metadata or {}).get(name))
    with atomic_path(tmp / "state.pt") as t:
        torch.save(state, t)
    _fsync_dir(tmp)
    if _hook := os.environ.get("PNGAN_TEST_SLEEP_BEFORE_RENAME"):  # reliability tests: a kill lands here
        import time

        time.sleep(float(_hook))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    if latest is not None:
        with atomic_path(run_dir / f"{latest}.safetensors") as t:
            shutil.copyfile(final / f"{latest}.safetensors", t)
    for _, old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def clean_partial(run_dir: str | Path) -> None:
    """Remove temporary folders left by a checkpoint write that was killed."""
    root = Path(run_dir) / CKPT_DIR
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(".tmp-"):
                shutil.rmtree(p, ignore_errors=True)


def load_state(ckpt: Path) -> dict[str, Any]:
    try:
        return torch.load(ckpt / "state.pt", map_location="cpu", weights_only=True)
    except Exception as e:
        raise PnganError(f"cannot read training state ({type(e).__name__}: {e})", ckpt / "state.pt") from None


def load_weights_into(net: nn.Module, path: Path) -> None:
    from pngan.nets.loading import load_state_dict_strict, read_state_dict

    target = getattr(net, "module", net)
    target = getattr(target, "_orig_mod", target)
    load_state_dict_strict(target, read_state_dict(path), path, getattr(target, "registry_name", ""))


FROZEN_DENOISER_DIR = "frozen-denoiser"  # RUN/frozen-denoiser: the denoiser `pngan train` trained for this run


def check_new_run_folder(out: str | Path, kind: str | None = None) -> None:
    """Refuse ``out`` as a new run's folder unless it is absent, empty, or holds only what a run of
    ``kind`` that stopped before its first config.yaml leaves: its own ``run.json`` (a pngan run
    record of that kind) and, for ``pngan train``, its ``frozen-denoiser/`` folder (itself such a
    folder, or a started train-denoiser run). A user's file of the same name is never replaced."""
    from pngan.train import runid

    out = Path(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise PnganError("run folder is an existing file, not a folder", out)
    if (out / "config.yaml").is_file():
        raise PnganError("run folder exists: pass --resume to continue it, or choose another --out", out)
    for p in sorted(out.iterdir()):
        if p.name.startswith("."):  # hidden files (a lock, a file system's own): not content
            continue
        if p.name == runid.RUN_FILE and p.is_file():
            try:
                rec = runid.read(out)
            except PnganError:
                rec = None
            ident = (rec or {}).get("identity")
            got = ident.get("kind") if isinstance(ident, dict) else None
            if got is not None and (kind is None or got == kind):
                continue
            what = "another command's run record" if got else "a run.json that pngan did not write"
            raise PnganError(f"output folder holds {what} ({p.name}); choose an empty or new folder", out)
        if p.name == FROZEN_DENOISER_DIR and p.is_dir() and kind in (None, "train"):
            if not (p / "config.yaml").is_file():
                check_new_run_folder(p, "train-denoiser")
            continue
        raise PnganError(f"output folder exists and is not empty (it has {p.name}, and it is not a pngan run); "
                         "choose an empty or new folder", out)


def prepare_run_dir(out: str | Path, resume: bool, kind: str | None = None) -> Path:
    """Create ``out`` for a new run, or check it is a run to resume. Never clobbers."""
    out = Path(out)
    if resume:
        if not (out / "config.yaml").is_file():
            raise PnganError("--resume given but this is not a pngan run folder (no config.yaml)", out)
        return out
    check_new_run_folder(out, kind)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise PnganError(f"cannot write to the run folder ({e.strerror})", out) from None
    return out


def rng_state() -> dict[str, Any]:
    st = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict[str, Any]) -> None:
    if "torch" in st:
        torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])
