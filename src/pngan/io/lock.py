"""Exclusive folder locks: one pngan process per run / output folder at a time.

``folder_lock(path)`` takes a non-blocking ``flock`` on the folder itself (an ``O_RDONLY`` file
descriptor of the directory, so no lock file is added to the folder). The kernel releases it when
the process ends, however it ends (SIGKILL included), so a stale lock never blocks a later run. A
second process asking for the same folder gets a one-line :class:`~pngan.errors.PnganError`. Held
locks are process-wide and re-entrant (the same process may ask again for a folder it holds).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from pngan.errors import PnganError

_held: dict[str, tuple[int, int]] = {}  # resolved path -> (fd, depth)


def acquire(path: str | Path, what: str = "folder") -> None:
    """Lock ``path`` (created if missing) for this process, or raise PnganError if another has it."""
    p = Path(path)
    key = str(p.resolve())
    if key in _held:
        fd, depth = _held[key]
        _held[key] = (fd, depth + 1)
        return
    try:
        import fcntl
    except ImportError:  # not POSIX: no locking
        return
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd = os.open(p, os.O_RDONLY)
    except FileExistsError:
        raise PnganError(f"{what} is an existing file, not a folder", p) from None
    except OSError as e:
        raise PnganError(f"cannot create or open the {what} ({e.strerror})", p) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise PnganError(f"another pngan process is using this {what} right now (it holds its lock); wait for it "
                         "to finish or choose another folder", p) from None
    _held[key] = (fd, 1)


def release(path: str | Path) -> None:
    key = str(Path(path).resolve())
    if key not in _held:
        return
    fd, depth = _held[key]
    if depth > 1:
        _held[key] = (fd, depth - 1)
        return
    del _held[key]
    os.close(fd)  # closing the descriptor drops the flock


@contextlib.contextmanager
def folder_lock(path: str | Path, what: str = "folder") -> Iterator[Path]:
    """``with folder_lock(out): ...`` holds an exclusive lock on ``out`` for the block."""
    acquire(path, what)
    try:
        yield Path(path)
    finally:
        release(path)


def is_main_process() -> bool:
    """torchrun: rank 0 takes the folder locks (the other ranks work in the same folder with it)."""
    return int(os.environ.get("RANK", "0")) == 0
