"""Small JSON record files (run.json, job.json) and file hashes, shared by runs and output folders."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pngan.errors import PnganError


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_json_record(path: Path, what: str, hint: str = "") -> dict | None:
    """The JSON object in ``path``, or None when there is no such file. An unreadable file or one
    that is not a JSON object is an error naming ``what`` (e.g. "run record"), plus ``hint``."""
    if not path.is_file():
        return None
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise PnganError(f"unreadable {what} ({e}){hint}", path) from None
    if not isinstance(rec, dict):
        raise PnganError(f"not a pngan {what}{hint}", path)
    return rec


def json_sha256(obj) -> str:
    """SHA-256 of a JSON-able object in canonical form (sorted keys): equal for equal contents,
    however they were written or ordered (e.g. a noise model's ``describe()``)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()
