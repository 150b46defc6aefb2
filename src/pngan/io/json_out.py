"""Single-file outputs (``--json FILE``, ``--plot FILE``): marked as pngan's own, never written over
a file pngan did not write.

Every ``--json`` output carries ``"pngan": {"command": ..., "version": ...}``; every figure pngan
draws carries a PNG text chunk with the keyword ``pngan`` (:data:`PNG_KEYWORD`). Before any work,
:func:`check_json_target` / :func:`check_plot_target` refuse an existing file without that marker
(a saved calibration, a photo, another command's metrics), saying what the file holds: re-running
an evaluation replaces its own earlier output, and nothing else is lost. :func:`distinct_outputs`
refuses one path given to two outputs.
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


PNG_KEYWORD = "pngan"
MAX_RECORD_BYTES = 64 << 20
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_text(path: str | Path) -> dict[str, str] | None:
    """The tEXt chunks of a PNG file (keyword -> text), or None when it is not a PNG file."""
    import struct

    try:
        with open(path, "rb") as f:
            if f.read(8) != _PNG_SIGNATURE:
                return None
            out: dict[str, str] = {}
            while True:
                head = f.read(8)
                if len(head) < 8:
                    return out
                n, kind = struct.unpack(">I4s", head)
                if kind == b"IDAT" or kind == b"IEND":  # the text written before the image data is enough
                    return out
                data = f.read(n)
                f.read(4)  # CRC
                if kind == b"tEXt" and b"\0" in data:
                    key, _, text = data.partition(b"\0")
                    out[key.decode("latin-1")] = text.decode("latin-1")
    except OSError:
        return None


def json_or_none(path: str | Path):
    """The JSON value in ``path``, or None when it cannot be read as JSON (or is too large to be a record)."""
    p = Path(path)
    try:
        if not p.is_file() or p.stat().st_size > MAX_RECORD_BYTES:
            return None
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def file_kind(path: str | Path) -> str:
    """What an existing file holds, in words, for a refusal ("a PNG image that pngan did not draw")."""
    p = Path(path)
    text = png_text(p)
    if text is not None:
        if PNG_KEYWORD not in text:
            return "a PNG image that pngan did not draw"
        maker = text[PNG_KEYWORD]
        # "figure": the marker of a pngan from before markers named the command that drew them
        return f"a figure drawn by 'pngan {maker}'" if maker != "figure" else \
            "a figure drawn by an older pngan, which did not record which command drew it"
    rec = json_or_none(p)
    if rec is None:
        try:
            with open(p, "rb") as f:
                head = f.read(4096)
        except OSError:
            return "a file that cannot be read"
        if not head:
            return "an empty file"
        return "a text file that is not JSON" if b"\0" not in head else "a binary file that is not JSON"
    mark = rec.get(MARKER) if isinstance(rec, dict) else None
    if isinstance(mark, dict) and isinstance(mark.get("command"), str):
        return f"the output of 'pngan {mark['command']}'"
    if is_calibration(rec):
        return "a pngan calibration"
    if isinstance(rec, dict) and "identity" in rec and "resumes" in rec:
        return "a pngan run record (run.json)"
    if isinstance(rec, dict) and isinstance(rec.get("command"), str):
        return f"the job record of 'pngan {rec['command']}'"
    return "a JSON file that pngan did not write"


def is_calibration(rec) -> bool:
    """A JSON record that is a saved calibration (``save_calibration``: ``"setting": "calibrated"`` with
    the fitted ``a`` and ``b``); a job record that names the calibrated setting (``"command"``) is not one."""
    return isinstance(rec, dict) and rec.get("setting") == "calibrated" and "a" in rec and "b" in rec \
        and "command" not in rec and MARKER not in rec


def check_plot_target(path: str | Path, maker: str, what: str = "--plot file") -> None:
    """Refuse ``path`` when it exists and is not a figure that ``maker`` (the PNG text marker
    :func:`pngan.eval.plots._save` writes, e.g. ``"evaluate noise --plot"``) drew: another command's
    figure (a benchmark's, a report's) is not replaced either."""
    from pngan.validate import writable_file

    writable_file(path, what)
    p = Path(path)
    if not (p.exists() or p.is_symlink()):
        return
    text = png_text(p)
    if text is not None and text.get(PNG_KEYWORD) == maker:
        return
    raise PnganError(f"{what} exists and holds {file_kind(p)}; it is not replaced: choose another file name, or "
                     "remove it first", p)


def distinct_outputs(paths: dict[str, str | Path | None]) -> None:
    """Refuse one path given to two outputs (e.g. ``--plot X --json X``: the second would replace the first)."""
    seen: dict[Path, str] = {}
    for opt, path in paths.items():
        if not path:
            continue
        key = Path(path).expanduser().resolve()
        if key in seen:
            raise PnganError(f"{seen[key]} and {opt} name the same path; give each output its own", path)
        seen[key] = opt


def check_json_target(path: str | Path, command: str, what: str = "--json file") -> None:
    """Refuse ``path`` when it exists and is not this command's own earlier ``--json`` output."""
    from pngan.validate import writable_file

    writable_file(path, what)
    p = Path(path)
    if not (p.exists() or p.is_symlink()):
        return
    if p.is_dir():
        raise PnganError(f"{what} is a folder", p)
    rec = json_or_none(p)
    mark = rec.get(MARKER) if isinstance(rec, dict) else None
    if isinstance(mark, dict) and mark.get("command") == command:
        return
    kind = file_kind(p)
    raise PnganError(f"{what} exists and holds {kind}; it is not replaced: choose another file name, or "
                     "remove it first", p)


def write_json(path: str | Path, obj: dict, command: str) -> None:
    """Write ``obj`` (strict JSON) with the pngan marker, atomically."""
    from pngan.io.atomic import atomic_write_text

    out = {MARKER: _marker(command), **{k: v for k, v in obj.items() if k != MARKER}}
    atomic_write_text(path, json.dumps(_finite(out), indent=2, allow_nan=False) + "\n")
