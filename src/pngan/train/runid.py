"""What defines a training run, recorded in ``RUN/run.json`` and compared on ``--resume``.

A run is defined by its data (the ``--data`` specs, paths resolved, plus a content hash of the files
behind each, of a ``synth:FILE.json`` calibration and of a ``gen:RUN`` generator), its frozen networks
(``--denoiser``, ``--vgg``, ``--init``: paths resolved, plus a SHA-256 of each file) and its config
(``RUN/config.yaml``; ``run.json`` holds a copy, ``config``, so that a hand edit of ``config.yaml``
is seen). ``--resume`` may change only the keys in :data:`SAFE_ON_RESUME` (they change how long or
how the run executes, not what it learns from); any other difference, whether given on the command
line or edited into ``config.yaml``, is refused with a message naming each key, old -> new. Accepted
changes are written to ``config.yaml`` (so the file always agrees with the weights' metadata from
then on) and appended to ``run.json``'s ``resumes`` -- once the resumed run has everything it needs:
a resume that fails before its first checkpoint leaves both files as they were.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
from pathlib import Path
from typing import Any, Callable, Iterator

from pngan.errors import PnganError
from pngan.io.records import file_sha256, read_json_record

RUN_FILE = "run.json"
log = logging.getLogger("pngan")

# Config keys that may change on --resume (both trainers). run.steps: the cosine schedule is
# re-evaluated for the new total from the resumed step on.
SAFE_ON_RESUME = frozenset({
    "run.steps", "run.log_every", "run.sample_every", "run.ckpt_every", "run.keep_checkpoints",
    "run.device", "run.threads", "run.time_phases", "run.compile", "run.on_nan", "run.max_rollbacks",
    "data.num_workers", "data.cache_gb",
})


def refuse_duplicate_data(data: list[str]) -> None:
    """The same --data set twice would silently double its weight in the batches: refused."""
    specs = [normalize_spec(d) for d in data]
    dup = next((d for d in specs if specs.count(d) > 1), None)
    if dup is not None:
        raise PnganError(f"--data {dup} is given twice; give each data set once")


def normalize_spec(spec: str) -> str:
    """``pairs:./a/../b`` -> ``pairs:/abs/b@all`` (the same data however it was typed); on-the-fly
    sources ``synth:SETTING:SPEC`` / ``gen:RUN:SPEC`` keep their prefix with SPEC normalised."""
    from pngan.data.pairsources import split_source_spec
    from pngan.data.specs import camera_split, parse_spec

    kind, arg, inner = split_source_spec(spec)
    if kind is not None:
        if kind == "gen" or str(arg).lower().endswith(".json"):
            arg = str(Path(arg).expanduser().resolve())
        return f"{kind}:{arg}:{normalize_spec(inner)}"

    fmt, path, split = parse_spec(spec)
    if fmt != "camera":
        path = str(Path(path).expanduser().resolve())
    else:
        split = camera_split(spec)  # camera:builtin alone is its training split
    return f"{fmt}:{path}@{split}"


def network_identity(spec: str | None) -> dict | None:
    """{"spec": NAME:ABSPATH, "sha256": ...} of a NAME:CHECKPOINT / file argument (None: not given)."""
    if not spec:
        return None
    from pngan.nets.loading import parse_net_spec

    name, path = parse_net_spec(spec)
    p = Path(path).expanduser()
    ident = {"spec": f"{name + ':' if name else ''}{p.resolve()}"}
    if p.is_file():
        ident["sha256"] = file_sha256(p)
    return ident


def data_content(spec: str, strict: bool = True) -> dict[str, str | None]:
    """Content hashes of what a ``--data`` spec reads: its files (``data``), and for on-the-fly
    sources the calibration file of ``synth:FILE.json:SPEC`` (``calibration``) or the generator
    weights of ``gen:RUN:SPEC`` (``generator``). A path compares equal however it is spelled; these
    tell whether the files behind it are still the ones the run started with. ``strict``: data or a
    calibration that cannot be read raise their one-line error here, before a run folder is made."""
    from pngan.data.specs import data_fingerprint
    from pngan.data.pairsources import split_source_spec

    kind, arg, inner = split_source_spec(spec)
    out: dict[str, str | None] = {"data": data_fingerprint(inner, strict=strict)}
    if kind == "synth" and str(arg).lower().endswith(".json"):
        p = Path(arg).expanduser()
        if strict:
            from pngan.noise.calibrated import load_calibration

            load_calibration(p)
        out["calibration"] = file_sha256(p) if p.is_file() else None
    elif kind == "gen":
        out["generator"] = file_sha256(generator_file(arg))
    return out


def generator_file(run_or_file: str | Path, what: str = "gen:RUN") -> Path:
    """The generator weights of a ``pngan train`` run folder or .safetensors file (``gen:RUN``,
    ``--generator``); a train-denoiser run folder or a folder without weights is named as such."""
    p = Path(run_or_file).expanduser()
    if p.is_dir() and not (p / "generator.safetensors").is_file():
        if (p / "denoiser.safetensors").is_file():
            raise PnganError(f"{what}: this is a 'pngan train-denoiser' run folder (it holds denoiser.safetensors); "
                             f"{what} takes a 'pngan train' run folder or the generator.safetensors it wrote", p)
        raise PnganError(f"{what}: the folder holds no generator.safetensors: give a 'pngan train' run folder that "
                         "has written a checkpoint, or a generator .safetensors file", p)
    if not p.exists():
        raise PnganError(f"{what}: no such 'pngan train' run folder or generator file", p)
    return p / "generator.safetensors" if p.is_dir() else p


def identity(kind: str, data: list[str], networks: dict[str, str | None]) -> dict[str, Any]:
    return {"kind": kind, "data": [normalize_spec(s) for s in data],
            "content": [data_content(s) for s in data],
            "networks": {k: network_identity(v) for k, v in networks.items()}}


_CONTENT_WHAT = {"data": "its files changed", "calibration": "the calibration file changed",
                 "generator": "the generator was retrained or replaced"}


def content_changes(old: dict, new: dict) -> list[str]:
    """What differs between the recorded and the current content hashes of the same --data specs."""
    problems = []
    for spec, a, b in zip(new["data"], old.get("content") or [], new.get("content") or []):
        what = [_CONTENT_WHAT.get(k, k) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        if what:
            problems.append(f"--data {spec} ({', '.join(what)} since the run started)")
    return problems


def _camera_spelling(old: list | None, new: list) -> bool:
    """An older pngan recorded ``camera:builtin`` (its training split) as ``camera:builtin@all``."""
    if not isinstance(old, list) or len(old) != len(new) or old == new:
        return False
    return all(a == b or (str(a).endswith("camera:builtin@all") and b == str(a)[: -len("all")] + "train")
               for a, b in zip(old, new))


def _spec_shape(spec: str) -> tuple | None:
    """A normalised spec without its paths: what must match for the same data at another path (the
    on-the-fly kind and setting, the format, the split); None for a spec that cannot be parsed."""
    from pngan.data.pairsources import split_source_spec
    from pngan.data.specs import parse_spec

    try:
        kind, arg, inner = split_source_spec(spec)
        fmt, path, split = parse_spec(inner)
    except PnganError:
        return None
    path_arg = kind == "gen" or str(arg).lower().endswith(".json")  # a calibration file or a run folder
    return kind, None if path_arg else arg, fmt, path if fmt == "camera" else None, split


def _same_content(old: dict, new: dict) -> bool:
    """Whether two identities name the same sources at other paths: the same kinds, settings, formats
    and splits (:func:`_spec_shape`), and the same content hashes of every file behind them."""
    a, b = old.get("data") or [], new.get("data") or []
    if not a or len(a) != len(b) or "content" not in old or old.get("content") != new.get("content"):
        return False
    shapes = [(_spec_shape(x), _spec_shape(y)) for x, y in zip(a, b)]
    return all(sa is not None and sa == sb for sa, sb in shapes)


def read(run_dir: str | Path) -> dict | None:
    p = Path(run_dir) / RUN_FILE
    rec = read_json_record(p, "run record")
    if rec is not None and "identity" not in rec:
        raise PnganError("not a pngan run record", p)
    return rec


def write(run_dir: str | Path, rec: dict) -> None:
    from pngan.io.atomic import atomic_write_text

    atomic_write_text(Path(run_dir) / RUN_FILE, json.dumps(rec, indent=1, sort_keys=True) + "\n")


def record_new(run_dir: str | Path, ident: dict, cfg: Any = None) -> None:
    """Write ``run.json`` for a new run (before training starts); ``cfg``: its config, kept in
    ``run.json`` to tell a later hand edit of ``config.yaml``."""
    rec = {"identity": ident, "created": _now(), "resumes": []}
    if cfg is not None:
        from pngan.config import to_dict

        rec["config"] = to_dict(cfg)
    write(run_dir, rec)


def recorded_config(run_dir: str | Path, like: Any, rec: dict | None = None) -> dict | None:
    """The config ``run.json`` recorded for the run (as of its last accepted resume), built like
    ``like`` (its class: keys pngan added since get their defaults, as when config.yaml is read);
    None when ``run.json`` records none (an older pngan)."""
    from pngan.config import from_dict, to_dict

    rec = read(run_dir) if rec is None else rec
    d = (rec or {}).get("config")
    if not isinstance(d, dict):
        return None
    try:
        return to_dict(from_dict(type(like), d, str(Path(run_dir) / RUN_FILE)))
    except PnganError:
        return d


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(d, dict) and not (prefix.endswith("kwargs.") or prefix == "net.kwargs."):
        for k, v in d.items():
            if isinstance(v, dict) and not k.endswith("kwargs"):
                out.update(_flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
    return out


def config_changes(old_cfg: Any, new_cfg: Any) -> dict[str, tuple[Any, Any]]:
    from pngan.config import to_dict

    a, b = (_flat(c if isinstance(c, dict) else to_dict(c)) for c in (old_cfg, new_cfg))
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def _fmt(v: Any) -> str:
    return json.dumps(v) if not isinstance(v, str) else v


def check_resume(run_dir: str | Path, old_cfg: Any, new_cfg: Any, new_ident: dict, *,
                 refusal: str = "--resume would change what defines this run",
                 hint: str = "Start a new run (another --out) instead", list_safe: bool = True) -> dict[str, tuple[Any, Any]]:
    """Refuse a resume that changes what defines the run; return the (safe) config changes.

    ``old_cfg`` is the run's ``config.yaml``; where ``run.json`` recorded the config the run was
    started (or last resumed) with, changes are taken from that one, so that a key edited into
    ``config.yaml`` is refused (naming it) like the same key given as an override.
    ``new_ident`` networks given as None (option not repeated on resume) are taken as unchanged.
    ``refusal`` / ``hint`` word the error for callers other than ``--resume`` (e.g. ablation rows)."""
    rec = read(run_dir)
    problems: list[str] = []
    base = recorded_config(run_dir, old_cfg, rec) if rec is not None else None
    edited = config_changes(base, old_cfg) if base is not None else {}
    changes = config_changes(base if base is not None else old_cfg, new_cfg)
    for k, (a, b) in changes.items():
        if k not in SAFE_ON_RESUME:
            why = " (edited into config.yaml since the run started)" if k in edited else ""
            problems.append(f"{k} {_fmt(a)} -> {_fmt(b)}{why}")
    for k, (a, b) in edited.items():  # an edit the resume's --config would silently drop and overwrite
        if k not in SAFE_ON_RESUME and k not in changes:
            problems.append(f"{k} {_fmt(a)} -> {_fmt(b)} (edited into config.yaml since the run started; the resume's "
                            "config says otherwise: put config.yaml back)")
    if rec is not None and rec.get("identity") is None:
        rec = None
    if rec is None:
        log.warning("%s has no %s (written by an older pngan): the data and frozen networks of this run "
                    "cannot be compared; only its config is checked", run_dir, RUN_FILE)
    else:
        old = rec["identity"]
        if old.get("kind") != new_ident["kind"]:
            raise PnganError(f"this is a '{old.get('kind')}' run folder, not a '{new_ident['kind']}' one", run_dir)
        if _camera_spelling(old.get("data"), new_ident["data"]):
            log.warning("%s: recorded camera:builtin@all for the training split camera:builtin (an older pngan "
                        "wrote it so); taken as camera:builtin@train", Path(run_dir) / RUN_FILE)
            old = {**old, "data": new_ident["data"]}
        moved = old.get("data") != new_ident["data"] and _same_content(old, new_ident)
        if moved:  # the same files at another path (a copied or moved folder): the same run
            log.info("%s: --data is spelled otherwise (%s) but holds the same files as when the run started",
                     run_dir, " ".join(new_ident["data"]))
        elif old.get("data") != new_ident["data"]:
            problems.append(f"--data {' '.join(old.get('data') or [])} -> {' '.join(new_ident['data'])}")
        elif "content" not in old:
            log.warning("%s records no content hashes of the data (written by an older pngan): whether its files "
                        "changed since the run started cannot be checked this time; they are recorded now",
                        Path(run_dir) / RUN_FILE)
        else:
            problems += content_changes(old, new_ident)
        for name, new in new_ident["networks"].items():
            prev = (old.get("networks") or {}).get(name)
            if new is None:  # not repeated: the recorded file is used, and it must still be the same file
                if isinstance(prev, dict) and prev.get("sha256") and prev.get("spec"):
                    try:
                        now = network_identity(prev["spec"])
                    except PnganError:
                        now = None
                    if now is not None and now.get("sha256") != prev["sha256"]:
                        problems.append(f"--{name} (its file {prev['spec']} is missing or changed since the run started: "
                                        "retrained or replaced)")
                continue
            same = prev is not None and (prev.get("sha256") == new.get("sha256") if prev.get("sha256") and
                                         new.get("sha256") else prev.get("spec") == new.get("spec"))
            if not same:  # the same file contents count as the same network, however the path is spelled
                what = "file contents differ" if prev and prev.get("spec") == new.get("spec") else \
                    f"{prev['spec'] if prev else 'none'} -> {new['spec']}"
                problems.append(f"--{name} ({what})")
    if problems:
        safe = "; safe to change on resume: " + ", ".join(sorted(SAFE_ON_RESUME)) if list_safe else ""
        raise PnganError(f"{refusal}: " + "; ".join(problems) + f". {hint}{safe}", run_dir)
    return changes


def recorded_network(run_dir: str | Path, name: str) -> str | None:
    """The NAME:PATH spec a run was started with for ``--name`` (to reuse on --resume), or None."""
    rec = read(run_dir)
    net = ((rec or {}).get("identity", {}).get("networks") or {}).get(name)
    return net["spec"] if net else None


def record_resume(run_dir: str | Path, changes: dict[str, tuple[Any, Any]], new_cfg: Any) -> None:
    """Write accepted changes to config.yaml and run.json (rank 0 only); run.json's config copy
    (:func:`record_new`) follows them."""
    from pngan.config import save_yaml, to_dict

    rec = read(run_dir)
    want = to_dict(new_cfg)
    if not changes and rec is not None and rec.get("config") == want and _yaml_file(Path(run_dir) / "config.yaml") == want:
        return
    save_yaml(new_cfg, Path(run_dir) / "config.yaml")
    rec = rec or {"identity": None, "created": None, "resumes": []}  # identity None: older run
    if changes:
        rec.setdefault("resumes", []).append({"time": _now(),
                                              "changes": {k: [a, b] for k, (a, b) in changes.items()}})
    rec["config"] = want
    write(run_dir, rec)
    if not changes:
        return
    log.info("resuming with changed %s (recorded in %s; put back if the resume fails before its first "
             "checkpoint)", ", ".join(f"{k} {_fmt(a)} -> {_fmt(b)}"
             for k, (a, b) in changes.items()), Path(run_dir) / RUN_FILE)


def _yaml_file(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


def _check_kind(out: Path, kind: str) -> None:
    """--resume of a run folder that another command wrote is named as such (not as its config's keys)."""
    try:
        rec = read(out)
    except PnganError:
        return  # an unreadable run.json is reported by the checks that need it
    other = ((rec or {}).get("identity") or {}).get("kind")
    if other is None:  # an older run.json: its weights say what it is
        other = "train" if (out / "generator.safetensors").is_file() else \
            "train-denoiser" if (out / "denoiser.safetensors").is_file() else None
    if other is not None and other != kind:
        what = {"train": "a generator run", "train-denoiser": "a denoiser run"}.get(other, "a run")
        raise PnganError(f"--resume: this is {what} of 'pngan {other}', not of 'pngan {kind}': resume it with "
                         f"'pngan {other} --resume', or choose another --out", out)


@contextlib.contextmanager
def run_folder(kind: str, out: str | Path, data: list[str], networks: dict[str, str | None], *, resume: bool,
               load: Callable[[str | None, list[str] | None], Any], config: str | None, default_config: str,
               overrides: list[str]) -> Iterator[tuple[Any, dict[str, str | None]]]:
    """Resolve the config, lock the run folder and check / record what defines the run.

    Yields ``(cfg, networks)`` (networks not repeated on --resume are taken from run.json) with the
    folder locked (:mod:`pngan.io.lock`) until the block ends. A new run's config is loaded before
    anything is created, so a bad config leaves no folder behind."""
    from pngan.io import lock
    from pngan.validate import check_device, writable_dir

    out = Path(out)
    main = lock.is_main_process()
    if resume:
        if not (out / "config.yaml").is_file():
            why = "does not exist" if not out.exists() else "has no config.yaml (it never started training)"
            raise PnganError(f"--resume: not a pngan run folder: it {why}; start the run without --resume", out)
        _check_kind(out, kind)
        new_cfg = load(config or str(out / "config.yaml"), overrides)
    else:
        new_cfg = load(config or default_config, overrides)
        writable_dir(out, "run folder")
        if (out / "config.yaml").is_file():
            raise PnganError("run folder exists: pass --resume to continue it, or choose another --out", out)
    check_device(new_cfg.run.device)  # CUDA asked for on a machine without it: refused before anything is made
    if not main:  # torchrun: rank 0 checks, records and locks the folder (train_pngan syncs the ranks on it)
        if resume:
            networks = {k: v if v else recorded_network(out, k) for k, v in networks.items()}
        yield new_cfg, networks
        return
    ident = identity(kind, data, networks)  # before the folder is made: a bad gen:RUN leaves nothing behind
    lock.acquire(out, "run folder")
    try:
        before: dict[str, bytes | None] = {}
        if resume:
            old_cfg = load(str(out / "config.yaml"), None)
            changes = check_resume(out, old_cfg, new_cfg, ident)
            from pngan.train.checkpoint import latest_checkpoint

            done = latest_checkpoint(out)
            if done is not None and new_cfg.run.steps < done[0]:
                raise PnganError(f"--resume with run.steps={new_cfg.run.steps}, but the run is already at step "
                                 f"{done[0]}; give at least that many steps", out)
            networks = {k: v if v else recorded_network(out, k) for k, v in networks.items()}
            # what this resume records is put back if it fails before its first checkpoint
            before = {n: (out / n).read_bytes() if (out / n).is_file() else None for n in (RUN_FILE, "config.yaml")}
            rec = read(out)
            if rec is None or rec.get("identity") is None:  # an older run: adopt this invocation's identity
                write(out, {"identity": ident, "created": None, "resumes": (rec or {}).get("resumes", [])})
            else:
                if "config" not in rec:
                    log.warning("%s records no copy of the run's config (written by an older pngan): whether "
                                "config.yaml was edited since the run started cannot be checked this time; it is "
                                "recorded now", out / RUN_FILE)
                if "content" not in rec["identity"]:  # an older run.json: adopt the content hashes
                    rec["identity"]["content"] = ident["content"]
                    write(out, rec)
            record_resume(out, changes, new_cfg)
        else:
            if (out / "config.yaml").is_file():  # another process created it meanwhile
                raise PnganError("run folder exists: pass --resume to continue it, or choose another --out", out)
            from pngan.train.checkpoint import check_new_run_folder

            check_new_run_folder(out, kind)
            record_new(out, ident, new_cfg)
        try:
            yield new_cfg, networks
        except BaseException:
            if resume and latest_checkpoint(out) == done:  # failed before its first checkpoint: not a resume
                for name, data_ in before.items():
                    from pngan.io.atomic import atomic_write_bytes

                    if data_ is not None:
                        atomic_write_bytes(out / name, data_)
                    else:
                        (out / name).unlink(missing_ok=True)
                log.info("the resume did not start: %s and config.yaml left as they were", out / RUN_FILE)
            raise
        finally:
            if not resume:
                _sync_config(out, load)
    finally:
        lock.release(out)


def _sync_config(run_dir: Path, load: Callable[[str | None, list[str] | None], Any]) -> None:
    """A new run: run.json's copy of the config follows the config.yaml the trainer wrote (it may
    complete the config, e.g. train-denoiser --init's network shape)."""
    from pngan.config import to_dict

    rec = read(run_dir)
    if rec is None or not (run_dir / "config.yaml").is_file():
        return
    try:
        want = to_dict(load(str(run_dir / "config.yaml"), None))
    except PnganError:
        return
    if rec.get("config") != want:
        rec["config"] = want
        write(run_dir, rec)


def check_reusable(load, overrides: list[str], preset: str, run: Path, *, kind: str, data: list[str],
                   networks: dict[str, str | None], row: str, what: str = "the table row",
                   same_schedule: bool = False) -> tuple[Any, dict, dict]:
    """The checks of :func:`train_or_reuse` without training: a table checks every row's run folder
    before it trains any. Returns (config, identity, safe config changes)."""
    want = load(preset, overrides)
    ident = identity(kind, data, networks)
    if not (run / "config.yaml").is_file():
        from pngan.train.checkpoint import check_new_run_folder

        check_new_run_folder(run, kind)
        return want, ident, {}
    old = load(str(run / "config.yaml"), None)
    if same_schedule and old.run.steps != want.run.steps:
        raise PnganError(f"{what} '{row}' was started with run.steps={old.run.steps}, not {want.run.steps}: one "
                         f"table compares one budget, each run trained on its own schedule; give --steps "
                         f"{old.run.steps}, or choose another --out", run)
    changes = check_resume(
        run, old, want, ident, refusal=f"{what} '{row}' was trained with another config or data",
        hint="Choose another --out, or delete this row's run folder to train it again", list_safe=False)
    return want, ident, changes


def train_or_reuse(load, train, overrides: list[str], preset: str, run: Path, *, kind: str, data: list[str],
                   networks: dict[str, str | None], row: str, what: str = "the table row",
                   same_schedule: bool = False) -> int:
    """Train one table row's run (``pngan ablation``, ``pngan benchmark``), reusing a finished run and
    resuming an unfinished one; returns the step its run reached. A run trained with another
    effective config, other data (contents included) or other frozen networks is refused, never
    reused. ``train(cfg, run_resume)`` trains and returns the trainer's result (an interrupted one
    raises KeyboardInterrupt here); ``what`` names the row in a refusal. ``same_schedule``: a run
    started with another ``run.steps`` is refused rather than extended (a resume re-evaluates the
    cosine schedule, so an extended run is not the run a fresh one of that budget would be)."""
    from pngan.train.checkpoint import latest_checkpoint

    want, ident, changes = check_reusable(load, overrides, preset, run, kind=kind, data=data, networks=networks,
                                          row=row, what=what, same_schedule=same_schedule)

    def go(run_resume: bool) -> int:
        # SIGINT/SIGTERM: the run wrote its checkpoint and returned; the table stops here (exit 130)
        # rather than scoring a half-trained row as finished
        if getattr(train(want, run_resume=run_resume), "interrupted", False):
            raise KeyboardInterrupt
        return want.run.steps

    if not (run / "config.yaml").is_file():
        made = [p for p in (run, *run.parents) if not p.exists()]
        record_new(run, ident)
        try:
            return go(False)
        except PnganError:
            if not (run / "config.yaml").is_file():  # refused before training began: a refused config makes no run
                (run / RUN_FILE).unlink(missing_ok=True)
                for p in made:  # the folders this row made, innermost first, if nothing else is in them
                    with contextlib.suppress(OSError):
                        p.rmdir()
            raise
    rec = read(run)
    if rec is None or "content" not in (rec.get("identity") or {}):  # written by an older pngan: adopt
        write(run, {**(rec or {}), "identity": ident, "resumes": (rec or {}).get("resumes", [])})
    latest = latest_checkpoint(run)
    if latest is not None and latest[0] >= want.run.steps:
        return latest[0]
    record_resume(run, changes, want)
    return go(True)
