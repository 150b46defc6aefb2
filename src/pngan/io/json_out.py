"""``--json FILE`` outputs: marked as pngan's own, never written over a file pngan did not write.

Every ``--json`` output carries ``"pngan": {"command": ..., "version": ...}``. Before any work,
:func:`check_json_target` refuses an existing file that is not a JSON object with that marker for
the same command (a saved calibration, an image, another command's metrics): re-running an
evaluation replaces its own earlier JSON, and nothing else is lost.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from pngan.errors import PnganError

MARKER = "pngan"


def _marker(command: str) -> dict:
    from pngan import __version__

    return {"command": command, "version": __version__}


def _finite(obj):
    """Strict JSON: a non-finite number is written as the string "inf" / "-inf" / "nan"."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def check_json_target(path: str | Path, command: str, what: str = "--json file") -> None:
    """Refuse ``path`` when it exists and is not this command's own earlier ``--json`` output."""
    from pngan.validate import writable_file

    writable_file(path, what)
    p = Path(path)
    if not (p.exists() or p.is_symlink()):
        return
    if p.is_dir():
        raise PnganError(f"{what} is a folder", p)
    try:
        rec = json.loads(p.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        rec = None
    mark = rec.get(MARKER) if isinstance(rec, dict) else None
    if isinstance(mark, dict) and mark.get("command") == command:
        return
    if isinstance(mark, dict) and isinstance(mark.get("command"), str):
        kind = f"the output of 'pngan {mark['command']}'"
    elif isinstance(rec, dict) and "setting" in rec:
        kind = "a calibration or other JSON that pngan did not write as metrics"
    elif rec is None:
        kind = "a file that is not JSON"
    else:
        kind = "a JSON file that is not a 'pngan " + command + "' output"
    raise PnganError(f"{what} exists and holds {kind}; it is not replaced: choose another file name, or "
                     "remove it first", p)


def write_json(path: str | Path, obj: dict, command: str) -> None:
    """Write ``obj`` (strict JSON) with the pngan marker, atomically."""
    from pngan.io.atomic import atomic_write_text

    out = {MARKER: _marker(command), **{k: v for k, v in obj.items() if k != MARKER}}
    atomic_write_text(path, json.dumps(_finite(out), indent=2, allow_nan=False) + "\n")
