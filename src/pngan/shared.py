"""Locate the ``shared/`` folder beside the project (real data, small weights, reference layouts).

It is never part of the package: tests and benchmarks read it in place and skip when absent.
``$PNGAN_SHARED`` overrides the default ``<project root>/../shared``.
"""

from __future__ import annotations

import os
from pathlib import Path


def shared_dir() -> Path | None:
    env = os.environ.get("PNGAN_SHARED")
    if env:
        p = Path(env)
        return p if p.is_dir() else None
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file():
            cand = parent.parent / "shared"
            return cand if cand.is_dir() else None
    return None
