"""SIGTERM is handled like SIGINT in every command.

Batch schedulers (SLURM, Kubernetes, torchrun's elastic agent) stop a job with SIGTERM. ``install()``
(called by ``pngan.cli.main``) routes SIGTERM to whatever SIGINT handler is active at that moment:
during training that is the trainers' "finish the step, write a checkpoint, stop" flag; elsewhere
Python's default handler, which raises ``KeyboardInterrupt`` (generation and synthesis then stop
between files: every file is written atomically and the manifest is completed by the next run).
``received()`` tells the CLI which signal stopped the command, so the exit status is 128 + signal
(130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import contextlib
import signal

_received: int | None = None


def received() -> int | None:
    """The last SIGINT/SIGTERM seen since :func:`install` (None if none)."""
    return _received


def _on_term(signum, frame):
    global _received
    _received = signum
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)  # the trainers' flag, or default_int_handler (KeyboardInterrupt)
    else:
        raise KeyboardInterrupt


def install() -> None:
    """Route SIGTERM through the SIGINT handler (main thread only; a no-op elsewhere)."""
    global _received
    _received = None
    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGTERM, _on_term)


def exit_status(default: int = 130) -> int:
    return 128 + _received if _received in (signal.SIGINT, signal.SIGTERM) else default


def worker_ignores_stop_signals(_worker_id: int = 0) -> None:
    """DataLoader ``worker_init_fn``: workers ignore SIGINT/SIGTERM (a scheduler signals the whole
    process group); the main process checkpoints, then shuts its workers down itself. Without this a
    worker killed by SIGTERM makes the main process fail with "DataLoader worker ... killed"."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, OSError):
            signal.signal(sig, signal.SIG_IGN)
