"""Output folders of ``pngan generate`` / ``pngan synth``: one job per folder, locked, never clobbered.

``claim(out, job, overwrite)`` locks ``out`` (:mod:`pngan.io.lock`, held until :func:`release` or
the process ends) and compares ``job`` (what defines the output: command, generator hash, input,
seed, settings) with ``OUT/job.json`` from an earlier run:

* a new or empty folder: ``job.json`` is written and the job starts;
* the same job: it continues (``generate`` verifies the files already there against the SHA-256
  recorded in its manifest and redoes any that do not match);
* another job, or a folder holding files pngan did not record (e.g. a copy of a real ``pairs:``
  folder): refused with a one-line error naming the differences, unless ``overwrite`` is given,
  which first deletes what pngan writes there (``noisy/``, ``clean/``, ``manifest.jsonl``,
  ``job.json``) and nothing else.

Keys listed in ``job["_safe"]`` (e.g. ``samples``) may differ between runs of one job; they are
informational and updated.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

from pngan.errors import PnganError
from pngan.io.records import read_json_record

JOB_FILE = "job.json"
OWNED = ("noisy", "clean", "manifest.jsonl", JOB_FILE)
OVERWRITE_ADVICE = "pass --overwrite to replace it"  # generate/synth's; a command without --overwrite gives its own


def _fmt(v: Any) -> str:
    s = json.dumps(v) if not isinstance(v, str) else v
    return s if len(s) <= 80 else s[:38] + "..." + s[-38:]


def _diff(key: str, old: Any, new: Any) -> str:
    """One difference between two job records, in words; content hashes are not shown as hex."""
    if _hashes(old) and _hashes(new):
        return f"{key}: different contents (their hashes differ)"
    return f"{key}: {_fmt(old)} -> {_fmt(new)}"


def _hashes(v: Any) -> bool:
    """A content hash (64 hex digits, optionally 'sha256:'), or a dict / list holding only such (or None)."""
    import re

    if isinstance(v, str):
        return re.fullmatch(r"(sha256:)?[0-9a-f]{64}", v) is not None
    if isinstance(v, dict):
        return bool(v) and all(x is None or _hashes(x) for x in v.values())
    if isinstance(v, list):
        return bool(v) and all(x is None or _hashes(x) for x in v)
    return False


def read_job(out: Path) -> dict | None:
    return read_json_record(out / JOB_FILE, "job record", "; pass --overwrite to start this folder afresh")


def _remove_owned(out: Path, owned: tuple[str, ...] = OWNED) -> None:
    for name in [n for n in owned if "*" not in n] + [p.name for n in owned if "*" in n for p in out.glob(n)]:
        p = out / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
    for p in out.glob(".manifest.rank*.jsonl"):
        p.unlink()


def _foreign_advice(advice: str) -> str:
    """What gets past a folder of foreign files: --overwrite, where the command has it."""
    if advice == OVERWRITE_ADVICE:  # generate / synth: --overwrite deletes only what they write
        return ", or pass --overwrite to replace noisy/, clean/ and manifest.jsonl"
    return ", or " + advice if advice.startswith("pass --overwrite") else ""


def input_path(spec: str | Path | None) -> Path | None:
    """The file or folder a data spec (``pairs:DIR@train``, ``noisy:DIR``) or a plain path reads from."""
    if spec is None:
        return None
    text = str(spec)
    if ":" in text and not Path(text).exists():
        from pngan.data.specs import parse_spec

        try:
            fmt, path, _ = parse_spec(text)
        except PnganError:
            return None
        return None if fmt == "camera" else Path(path).expanduser()
    return Path(text).expanduser()


def refuse_inputs_inside(out: Path, inputs: dict[str, str | Path | None], owned: tuple[str, ...] = OWNED) -> None:
    """Refuse an input (a data spec or file, by option) that lies where this command writes (and
    --overwrite deletes): ``OUT/noisy``, ``OUT/clean``, ... -- it would be replaced while, or after,
    being read."""
    for opt, spec in inputs.items():
        path = input_path(spec)
        if path is None:
            continue
        reads = [path.resolve()]
        if ":" in str(spec) and not Path(str(spec)).exists():  # a data spec: the folders its files are in
            from pngan.data.specs import data_folders

            try:
                reads += [f.resolve() for f in data_folders(str(spec))]
            except PnganError:
                pass  # an unreadable set is reported by the command that reads it
        for name in owned:
            if "*" in name:
                continue
            target = (out / name).resolve()
            # the input (or a folder its files are in, e.g. --fit pairs:OUT) inside what is written
            if any(p == target or target in p.parents for p in reads):
                raise PnganError(f"{opt} {spec} reads files inside the output's {name}{'/' if '.' not in name else ''}, "
                                 "which this command writes (and --overwrite deletes); move it out or choose another "
                                 "--output", out)


def _pngan_records(out: Path) -> str | None:
    """What pngan records (other than a job.json) a folder holds, in words: a training run, a
    report, another command's marked JSON output; None when it holds none."""
    from pngan.io.json_out import file_kind

    if (out / "run.json").is_file() or (out / "config.yaml").is_file() and (out / "stats.jsonl").is_file():
        return "a pngan training run (run.json, config.yaml)"
    kinds = sorted({file_kind(p) for p in out.glob("*.json") if p.is_file()})
    kinds = [k for k in kinds if k.startswith(("the output of 'pngan", "a pngan", "the job record"))]
    return (", ".join(kinds[:2]) + " (not this command's job)") if kinds else None


def claim(out: str | Path, job: dict[str, Any], overwrite: bool = False, lock: bool = True,
          upgrade: Callable[[dict, Path], dict] | None = None, owned: tuple[str, ...] = OWNED,
          advice: str | None = None, inputs: dict[str, str | Path | None] | None = None) -> dict | None:
    """Lock ``out`` and make sure it holds nothing but this job's output; returns the earlier job record
    (None for a new folder). ``inputs``: what the command reads (option -> spec or path), refused
    inside what it writes (:func:`refuse_inputs_inside`). ``upgrade(old, out)`` fills in keys that a record written by an older
    pngan lacks (from what else the folder holds), so that it compares with ``job``. ``owned``: what
    ``overwrite`` deletes (default: what generate/synth write); ``advice``: how to get past a refusal,
    for a command without --overwrite. See the module docstring."""
    from pngan.io import lock as lk
    from pngan.io.atomic import atomic_write_text
    from pngan.validate import writable_dir

    advice = advice or OVERWRITE_ADVICE
    out = Path(out)
    refuse_inputs_inside(out, inputs or {}, owned)
    writable_dir(out, "output folder")
    if lock:
        lk.acquire(out, "output folder")
    try:
        old = read_job(out)
        if old is not None and upgrade is not None:
            old = upgrade(old, out)
        safe = set(job.get("_safe", ()))
        if overwrite and old is None and any((out / n).is_file() for n in ("run.json", "config.yaml", "report.json")):
            raise PnganError("output folder is a pngan run or report folder; --overwrite replaces only this command's "
                             "own output: choose another folder", out)
        if old is not None and overwrite and old.get("command") != job.get("command"):
            # --overwrite replaces this command's own output only: another command's job (a benchmark,
            # a pgap run, a synth folder) would be left unable to continue
            cmd = {"pgap": "evaluate pgap"}.get(old.get("command"), old.get("command") or "another command")
            raise PnganError(f"output folder holds the output of 'pngan {cmd}', "
                             f"not of 'pngan {job.get('command')}'; --overwrite replaces only this command's own "
                             "output: choose another folder", out)
        for name in owned:  # a symlink where pngan writes would send its files (or --overwrite) elsewhere
            if not overwrite and (out / name).is_symlink():
                raise PnganError(f"{name} in the output folder is a symbolic link; pngan writes only into what it "
                                 "made: remove the link or choose another folder", out)
        if old is not None:
            diffs = [_diff(k, old.get(k), job.get(k)) for k in sorted(set(old) | set(job))
                     if k != "_safe" and k not in safe and old.get(k) != job.get(k)]
            if diffs and not overwrite:
                way = advice if advice.startswith("choose another") else f"choose another folder, or {advice}"
                raise PnganError("output folder holds the output of another job (" + "; ".join(diffs[:4])
                                 + f"); {way}", out)
        else:
            foreign = sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) if out.is_dir() else []
            if foreign and not overwrite:
                held = _pngan_records(out)
                if held:  # another pngan command's folder: say which, not "no job record"
                    raise PnganError(f"output folder holds {held}; choose an empty or new folder", out)
                raise PnganError(f"output folder is not empty and holds no pngan job record (it has "
                                 f"{', '.join(foreign[:4])}{'...' if len(foreign) > 4 else ''}); choose an empty or "
                                 "new folder" + _foreign_advice(advice), out)
        if overwrite:
            _remove_owned(out, owned)
            old = None
        atomic_write_text(out / JOB_FILE, json.dumps({k: v for k, v in job.items() if k != "_safe"},
                                                       indent=1, sort_keys=True) + "\n")
        return old
    except BaseException:
        if lock:
            lk.release(out)
        raise


def _trained(run: Path) -> bool:
    """Whether a training run folder holds a step's work (stats, a checkpoint, weights)."""
    stats = run / "stats.jsonl"
    return (stats.is_file() and stats.stat().st_size > 0) or (run / "checkpoints").is_dir() \
        or any(run.glob("*.safetensors"))


def removable(out: str | Path, rel: str, kept: dict[str, Path]) -> Path | None:
    """``OUT/rel`` (``noisy/NAME`` or ``clean/NAME``, from a manifest, which may have been edited) when a
    rerun of the job may remove it: a plain file directly in that folder (never a link, never outside),
    and not, on a case-insensitive file system, the same file as one the job keeps (``kept``: each
    kept output's lower-cased ``sub/NAME`` -> its path)."""
    import os

    sub, _, name = rel.partition("/")
    p = Path(out) / sub / name
    try:
        if not name or "/" in name or p.is_symlink() or not p.is_file() or p.resolve().parent != (Path(out) / sub).resolve():
            return None
        twin = kept.get(rel.lower())
        if twin is not None and twin != p and twin.exists() and os.path.samefile(twin, p):
            return None
    except OSError:
        return None
    return p


def undo_new_claim(out: str | Path, runs: list[Path], files: tuple[str, ...] = ()) -> None:
    """A new job (its folder was empty when claimed) that failed before any training step leaves
    nothing behind, so that the corrected rerun starts afresh instead of meeting "another job": its
    run folders ``runs`` (searched one level down for runs of runs), ``files`` and job.json are
    removed, and ``out`` itself when that leaves it empty. Once a step was trained everything stays."""
    out = Path(out)
    found = [r for r in runs if r.is_dir()]
    found += [c for r in found for c in r.iterdir() if c.is_dir()]
    found += [c for r in found for c in r.iterdir() if c.is_dir()]
    if any(_trained(r) for r in found):
        return
    for r in runs:
        if r.is_dir() and not r.is_symlink():
            shutil.rmtree(r, ignore_errors=True)
    for name in (*files, JOB_FILE):
        (out / name).unlink(missing_ok=True)
    try:
        out.rmdir()  # only when empty
    except OSError:
        pass


def release(out: str | Path) -> None:
    from pngan.io import lock as lk

    lk.release(out)
