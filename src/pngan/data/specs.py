"""``FORMAT:PATH[@train|@test]`` data-set specs, used by every command.

Formats: ``pairs`` (``DIR/noisy/X.*`` + ``DIR/clean/X.*``), ``polyu`` (``<name>_real.JPG`` /
``<name>_mean.JPG``), ``nam`` (``<name>_real.png`` / ``<name>_mean.png``), ``sidd`` (SIDD
Medium/Small sRGB folders), ``sidd-mat`` (SIDD validation/benchmark blocks), ``dnd`` (DND sRGB,
noisy only), ``clean`` (clean images only), ``noisy`` (noisy images only), ``camera`` (the built-in
simulated camera, ``camera:builtin``).

A suffix ``@train`` / ``@test`` selects a deterministic split that keeps scenes together: names are
grouped by scene (PolyU: the name without its trailing ``_<n>``; SIDD: the scene instance; the
built-in camera: its fixed split; otherwise the name itself), the scene list is sorted, and every
fourth scene (index % 4 == 3) goes to test.
"""

from __future__ import annotations

import re
from pathlib import Path

from pngan.data.base import ImageSet, Sample
from pngan.errors import PnganError

FORMATS = ("pairs", "polyu", "nam", "sidd", "sidd-mat", "dnd", "clean", "noisy", "camera")
SPLITS = ("train", "test", "all")


class SubsetImageSet(ImageSet):
    def __init__(self, base: ImageSet, indices: list[int], spec: str):
        self.base, self.indices, self.spec = base, indices, spec
        self.kind, self.has_clean, self.has_noisy = base.kind, base.has_clean, base.has_noisy

    @property
    def names(self) -> list[str]:
        names = self.base.names
        return [names[i] for i in self.indices]

    def sizes(self) -> list[tuple[int, int]]:
        fn = getattr(self.base, "sizes", None)
        if callable(fn):
            all_sizes = fn()
            return [tuple(all_sizes[i]) for i in self.indices]
        out = []
        for i in self.indices:
            s = self.base.load(i)
            v = s.clean if s.clean is not None else s.noisy
            out.append((int(v.shape[1]), int(v.shape[2])))
        return out

    def load(self, index: int) -> Sample:
        return self.base.load(self.indices[index])


def open_datasets(specs: list[str], *, skip_bad: bool = False) -> ImageSet:
    """Open one or several specs as one set."""
    from pngan.data.base import ConcatImageSet

    sets = [open_dataset(s, skip_bad=skip_bad) for s in specs]
    return sets[0] if len(sets) == 1 else ConcatImageSet(sets)


def scene_of(kind: str, name: str, meta: dict | None = None) -> str:
    if kind == "polyu":
        m = re.match(r"^(.*)_\d+$", name)
        return m.group(1) if m else name
    if kind == "sidd" and meta and "scene_instance" in meta:
        return f"{meta['scene_instance']:04d}"
    if kind == "sidd-mat":
        m = re.match(r"^\w+_(\d{4})-\d{4}$", name)
        return m.group(1) if m else name
    if kind == "dnd":
        return name.split("_")[0]
    if meta and "source" in meta:  # generated samples X_k belong with X
        return str(meta["source"])
    return name


def split_indices(imageset: ImageSet, split: str) -> list[int]:
    if split == "all":
        return list(range(len(imageset)))
    metas = []
    entries = getattr(imageset, "entries", None)
    for i, name in enumerate(imageset.names):
        meta = entries[i].meta if entries is not None else None
        metas.append(scene_of(imageset.kind, name, meta))
    scenes = sorted(set(metas))
    test_scenes = {s for k, s in enumerate(scenes) if k % 4 == 3}
    if len(scenes) < 2:
        raise PnganError(f"cannot split {imageset.spec}: it has only {len(scenes)} scene")
    want_test = split == "test"
    return [i for i, s in enumerate(metas) if (s in test_scenes) == want_test]


def pair_folder_hint(path: str | Path) -> str | None:
    """"it holds noisy/ and clean/: use pairs:DIR" when a plain folder is a pairs: set, else None."""
    p = Path(path).expanduser()
    if (p / "noisy").is_dir():
        both = "noisy/ and clean/" if (p / "clean").is_dir() else "noisy/"
        return f"{p} holds {both}: give it as pairs:{path}"
    return None


def parse_spec(spec: str) -> tuple[str, str, str]:
    """``"polyu:/data/PolyU@test"`` -> ``("polyu", "/data/PolyU", "test")``."""
    if ":" not in spec:
        raise PnganError(f"data set '{spec}' must be FORMAT:PATH with FORMAT one of {', '.join(FORMATS)} "
                         f"({pair_folder_hint(spec) or 'e.g. pairs:data/real'})")
    fmt, rest = spec.split(":", 1)
    fmt = fmt.strip().lower()
    if fmt not in FORMATS:
        raise PnganError(f"unknown data format '{fmt}' in '{spec}' (known: {', '.join(FORMATS)})")
    split = "all"
    m = re.match(r"^(.*)@(train|test|all)$", rest)
    if m:
        rest, split = m.group(1), m.group(2)
    if not rest:
        raise PnganError(f"data set '{spec}' has no PATH after '{fmt}:'")
    return fmt, rest, split


def camera_split(spec: str) -> str:
    """The split ``camera:builtin[@split]`` opens: alone, the training split; @test / @all the others."""
    _, _, split = parse_spec(spec)
    return split if spec.rstrip().endswith(f"@{split}") else "train"


def open_dataset(spec: str, *, skip_bad: bool = False) -> ImageSet:
    """Open a data set from its ``FORMAT:PATH[@split]`` spec (see the module docstring)."""
    fmt, path_s, split = parse_spec(spec)
    if fmt == "camera":
        if path_s != "builtin":
            raise PnganError(f"the camera format has one data set, camera:builtin (got '{spec}')")
        from pngan.data.camera import CameraSet

        return CameraSet(camera_split(spec))
    path = Path(path_s).expanduser()
    if fmt in ("pairs", "polyu", "nam", "clean", "noisy", "sidd", "sidd-mat", "dnd") and path.is_file():
        raise PnganError(f"{path.name} is a file; {fmt}: takes a folder (of images{', with noisy/ and clean/' if fmt == 'pairs' else ''})", path)
    from pngan.data import readers

    if not path.exists() and spec.rstrip().endswith(f"@{split}") and Path(f"{path}@{split}").expanduser().exists():
        raise PnganError(f"no such folder; '{path}@{split}' exists, but '@{split}' was read as the split: give "
                         f"{fmt}:{path}@{split}@all (or @train / @test)", path)
    if fmt == "pairs":
        base = readers.open_pairs(path, spec, skip_bad)
    elif fmt == "polyu":
        base = readers.open_polyu(path, spec, skip_bad)
    elif fmt == "nam":
        base = readers.open_nam(path, spec, skip_bad)
    elif fmt == "clean":
        base = readers.open_clean(path, spec, skip_bad)
    elif fmt == "noisy":
        base = readers.open_noisy_folder(path, spec, skip_bad)
    elif fmt == "sidd":
        from pngan.data.sidd import open_sidd

        base = open_sidd(path, spec, skip_bad)
    elif fmt == "sidd-mat":
        from pngan.data.sidd import SiddMatSet

        base = SiddMatSet(path, spec)
    else:  # dnd
        from pngan.data.dnd import DndSet

        base = DndSet(path, spec)
    if split == "all":
        return base
    idx = split_indices(base, split)
    if not idx:
        raise PnganError(f"the {split} split of {spec} is empty")
    return SubsetImageSet(base, idx, spec)


# files up to this size are hashed whole; larger ones (e.g. SIDD .mat blocks) by their size and their
# first and last MiB, so that fingerprinting a large data set at every run start stays cheap
_WHOLE_HASH_BYTES = 16 << 20


def data_folders(spec: str, files: bool = True) -> list[Path]:
    """The folders a data set ``spec`` reads from: its root and (``files``) every folder holding one of
    its files (on-the-fly ``gen:``/``synth:`` sources: their SPEC's). Without ``files`` no data set is
    opened (a bad one is reported by what reads it)."""
    fmt, path_s, _ = parse_spec(_inner(spec))
    if fmt == "camera":
        return []
    root = Path(path_s).expanduser()
    folders = {root if root.is_dir() else root.parent}
    if not files:
        return [root]
    ds = open_dataset(_inner(spec))
    base = ds.base if isinstance(ds, SubsetImageSet) else ds
    for e in getattr(base, "entries", None) or []:
        for f in (getattr(e, "noisy", None), getattr(e, "clean", None)):
            if f is not None:
                folders.add(Path(f).parent)
    return sorted(folders)


def _inner(spec: str) -> str:
    """The data spec under an on-the-fly source (``gen:RUN:SPEC`` / ``synth:S:SPEC`` -> SPEC)."""
    from pngan.data.pairsources import split_source_spec

    return split_source_spec(spec)[2]


def generator_training_data(run_or_file: str | Path, _seen: set | None = None) -> list[str]:
    """The --data specs a trained network (a ``pngan train`` or ``train-denoiser`` run folder, or its
    weights file) learned from, from its run.json ([] when unknown): its own --data and, followed
    through their run folders, the data of the networks it was trained with (the frozen denoiser that
    shaped a generator, the --init a denoiser was fine-tuned from), which it learned from indirectly."""
    run = Path(run_or_file).expanduser()
    run = run if run.is_dir() else run.parent
    seen = set() if _seen is None else _seen
    key = str(run.resolve())
    if key in seen:
        return []
    seen.add(key)
    try:
        from pngan.train import runid

        rec = runid.read(run) or {}
    except PnganError:
        rec = {}
    ident = rec.get("identity") if isinstance(rec.get("identity"), dict) else {}
    if not ident:  # weights copied out of their run folder: the data their metadata names
        return _metadata_data(Path(run_or_file).expanduser())
    data = [d for d in (ident.get("data") or []) if isinstance(d, str)]
    for d in list(data):  # what an on-the-fly source learned from: a generator's data, a calibration's pairs
        data += [x for x in _source_data(d, seen) if x not in data]
    cfg = rec.get("config") if isinstance(rec.get("config"), dict) else {}
    cal = (cfg.get("synthetic") or {}).get("calibration") if isinstance(cfg.get("synthetic"), dict) else None
    if isinstance(cal, str) and cal:  # a generator fed by a saved calibration learned from its pairs too
        data += [x for x in _source_data(f"synth:{cal}:clean:-", seen) if x not in data]
    nets = ident.get("networks") if isinstance(ident.get("networks"), dict) else {}
    for name in sorted(nets):
        spec = nets[name].get("spec") if isinstance(nets[name], dict) else None
        if isinstance(spec, str) and spec:
            data += [d for d in network_training_data(spec, _seen=seen) if d not in data]
    return data


def _source_data(spec: str, seen: set) -> list[str]:
    """The data behind an on-the-fly source: ``gen:RUN:SPEC`` (the generator's own training data) or
    ``synth:FILE.json:SPEC`` (the pairs the calibration was fitted on)."""
    from pngan.data.pairsources import split_source_spec

    try:
        kind, arg, _ = split_source_spec(spec)
        if kind == "gen":
            return generator_training_data(arg, seen)
        if kind == "synth" and str(arg).lower().endswith(".json"):
            from pngan.noise.calibrated import load_calibration

            fitted_on = load_calibration(arg).fitted_on.split(" ")[0]
            return [fitted_on] if ":" in fitted_on else []
    except (PnganError, OSError):
        pass
    return []


_DATA_IN_TEXT = re.compile(r"\b(?:%s):\S+?@(?:train|test|all)\b" % "|".join(re.escape(f) for f in FORMATS))


def _metadata_data(path: Path) -> list[str]:
    """The data specs a pngan weights file's ``pngan.data`` metadata names (a file without its run
    record); a folder: the weights pngan writes in it."""
    from pngan.nets.loading import read_metadata

    files = [path] if path.is_file() else [path / "generator.safetensors", path / "denoiser.safetensors"]
    for f in files:
        try:
            if f.is_file() and f.suffix == ".safetensors":
                return list(dict.fromkeys(_DATA_IN_TEXT.findall(read_metadata(f).get("pngan.data", ""))))
        except (PnganError, OSError, ValueError):
            continue
    return []


def network_training_data(spec: str | Path | None, _seen: set | None = None) -> list[str]:
    """The --data specs a network file given as ``[NAME:]PATH`` (or a run folder) was trained on, from
    the run.json beside it ([] when unknown: a published checkpoint, a file moved out of its run);
    see :func:`generator_training_data` for the networks it was trained with."""
    if not spec:
        return []
    p = Path(str(spec))
    if not p.exists() and ":" in str(spec):
        p = Path(str(spec).split(":", 1)[1])
    return generator_training_data(p, _seen) if p.exists() else []


def clean_files(spec: str) -> dict[str, Path]:
    """Image name -> clean file, for the sets whose images are files (else {})."""
    iset = open_dataset(spec)
    base, idx = (iset.base, iset.indices) if isinstance(iset, SubsetImageSet) else (iset, None)
    entries = getattr(base, "entries", None)
    if entries is None:
        return {}
    return {e.name: Path(e.clean) for e in (entries if idx is None else [entries[i] for i in idx])
            if e.clean is not None}


def _sources(spec: str) -> list[str]:
    """The sets whose clean images ``spec`` holds: the set itself and, for a folder that 'pngan generate' or
    'pngan synth' wrote, the input it recorded (its clean/ holds re-encoded copies, not the same bytes)."""
    inner = _inner(spec)
    out = [inner]
    try:
        fmt, path_s, _ = parse_spec(inner)
    except PnganError:
        return out
    job = Path(path_s).expanduser() / "job.json"
    if fmt == "pairs" and job.is_file():
        import json

        try:
            rec = json.loads(job.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            rec = None
        if isinstance(rec, dict) and rec.get("command") in ("generate", "synth") and isinstance(rec.get("input"), str):
            out.append(rec["input"])
    return out


def _files(specs: list[str]) -> list[tuple[str, str, Path]]:
    """(spec, name, clean file) of every image of ``specs`` (each set once; sets that cannot be read skipped)."""
    seen, out = set(), []
    for spec in specs:
        for src in _sources(spec):
            if src in seen:
                continue
            seen.add(src)
            try:
                files = clean_files(src)
            except PnganError:
                continue
            out += [(src, n, p) for n, p in files.items()]
    return out


def _first_shared(a: list[str], b: list[str]) -> tuple[str, str, str, str] | None:
    """(spec of a, image name in a, spec of b, image name in b) of one clean image that both sets hold,
    however they are spelled (file digests), or None. The (usually small) set ``b`` is hashed first,
    and only files of ``a`` of a size found in ``b`` are read; sets whose images are not files are
    skipped, and so is a file that cannot be read."""
    cam = _camera_shared(a, b)
    if cam is not None:
        return cam
    held: dict[str, tuple[str, str, Path]] = {}
    sizes: set[int] = set()
    for spec, name, p in _files(b):
        try:
            held.setdefault(_file_digest(p), (spec, name, p))
            sizes.add(p.stat().st_size)
        except OSError:
            continue
    if not held:
        return None
    for spec, name, p in _files(a):
        try:
            size = p.stat().st_size
            if size not in sizes:
                continue
            hit = held.get(_file_digest(p))
            # a large file's digest reads its ends only: the same ends are confirmed by the whole file
            if hit is not None and size > _WHOLE_HASH_BYTES and _whole_digest(p) != _whole_digest(hit[2]):
                hit = None
        except OSError:
            continue
        if hit is not None:
            return (spec, name, hit[0], hit[1])
    return _first_same_pixels(a, b)


def _camera_shared(a: list[str], b: list[str]) -> tuple[str, str, str, str] | None:
    """The built-in camera's images are not files: its splits overlap by name (train and test are
    disjoint; ``@all`` holds both)."""
    def splits(specs):
        out = {}
        for spec in specs:
            for src in _sources(spec):
                try:
                    fmt, _, split = parse_spec(src)
                except PnganError:
                    continue
                if fmt == "camera":
                    split = camera_split(src)
                    out.setdefault(src, {"train", "test"} if split == "all" else {split})
        return out

    sa, sb = splits(a), splits(b)
    for x, xs in sa.items():
        for y, ys in sb.items():
            if xs & ys:
                return (x, f"its {sorted(xs & ys)[0]} split", y, f"its {sorted(xs & ys)[0]} split")
    return None


def _whole_digest(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _first_same_pixels(a: list[str], b: list[str]) -> tuple[str, str, str, str] | None:
    """The same question by decoded pixels, for copies that are not byte-identical (the same image
    saved with another PNG compression, or converted to another lossless format): only images of
    ``a`` with the dimensions of an image of ``b`` are decoded."""
    by_dims: dict[tuple[int, int], list[tuple[str, str, Path]]] = {}
    for spec, name, p in _files(b):
        dims = _image_dims(p)
        if dims is not None:
            by_dims.setdefault(dims, []).append((spec, name, p))
    if not by_dims:
        return None
    for spec, name, p in _files(a):
        dims = _image_dims(p)
        if dims not in by_dims:
            continue
        mine = _pixel_digest(p)
        for bspec, bname, bp in by_dims[dims]:
            if mine is not None and mine == _pixel_digest(bp):
                return (spec, name, bspec, bname)
    return None


def _image_dims(path: Path) -> tuple[int, int] | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:  # the header only
            return im.size
    except (OSError, UnidentifiedImageError, ValueError):
        return None


_PIXELS: dict[tuple, str | None] = {}  # like _DIGESTS, for decoded pixels


def _pixel_digest(path: Path) -> str | None:
    import hashlib

    from pngan.io.images import read_image

    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
        if key not in _PIXELS:
            t = read_image(path)
            _PIXELS[key] = hashlib.sha256(str(tuple(t.shape)).encode() + t.numpy().tobytes()).hexdigest()
        return _PIXELS[key]
    except (OSError, PnganError, ValueError):
        return None


def folder_in_data(folder: str | Path, specs: list[str | None], roots_only: bool = False) -> tuple[str, Path] | None:
    """(spec, its folder) when ``folder`` is a folder of one of the data sets ``specs`` or lies inside
    one, else None. ``roots_only``: only the specs' own folders (no data set is opened); specs that
    cannot be read are skipped (what reads them reports them)."""
    target = Path(folder).expanduser().resolve()
    for spec in specs:
        if not spec:
            continue
        try:
            folders = data_folders(spec, files=not roots_only)
        except PnganError:
            continue
        for f in folders:
            if target == f.resolve() or f.resolve() in target.parents:
                return spec, f
    return None


def refuse_file_in_data(path: str | Path | None, specs: list[str | None], opt: str) -> None:
    """A single output file (``--json``, ``--plot``, ``--save-fit``) never goes into a folder of the
    data a command reads: a file in a data set's ``clean/`` or ``noisy/`` breaks every later read of it."""
    hit = folder_in_data(Path(path).expanduser().resolve().parent, specs) if path else None
    if hit is not None:
        raise PnganError(f"{opt} {path} would be written into the data {hit[0]} ({hit[1]}), which this command "
                         "reads: a file there becomes part of the data set; choose a path outside it")


def refuse_overlap(train: list[str], tests: list[str], test_opt: str = "--test") -> None:
    """A held-out image that is also a training image (the same clean file under any name or spec)
    makes an evaluation score memory, not generalisation: refused, naming both. A ``gen:RUN`` source
    whose generator was trained on a held-out image is warned about (the generator saw its noise)."""
    hit = _first_shared(train, tests)
    if hit is not None:
        raise PnganError(f"{test_opt} {hit[2]}: its pair '{hit[3]}' is also a training image ({hit[0]} '{hit[1]}'); "
                         "the held-out set must not share images (or scenes) with the training data")
    from pngan.data.pairsources import split_source_spec

    for spec in train:
        kind, run, _ = split_source_spec(spec)
        if kind == "gen":
            warn_overlap(generator_training_data(run), tests, f"the generator gen:{run}", test_opt,
                         "the generator learned the held-out pairs' own noise")
        elif kind == "synth" and str(run).lower().endswith(".json"):
            warn_overlap(_source_data(spec, set()), tests, f"the calibration {run}", test_opt,
                         "it was fitted on the held-out pairs' own noise")


def warn_overlap(a: list[str], b: list[str], a_what: str, b_what: str, why: str) -> bool:
    """Log a warning when the sets ``a`` and ``b`` share a clean image; returns whether they do."""
    hit = _first_shared(a, b)
    if hit is None:
        return False
    import logging

    logging.getLogger("pngan").warning("%s and %s share images (%s '%s' is %s '%s'): %s", a_what, b_what,
                                       hit[0], hit[1], hit[2], hit[3], why)
    return True


_DIGESTS: dict[tuple, str] = {}  # (resolved path, inode, size, mtime) -> digest: a file is read once per process


def _file_digest(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = _read_digest(path, st.st_size)
    return _DIGESTS[key]


def _read_digest(path: Path, size: int) -> str:
    import hashlib

    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        if size <= _WHOLE_HASH_BYTES:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        else:
            h.update(f.read(1 << 20))
            f.seek(size - (1 << 20))
            h.update(f.read(1 << 20))
    return h.hexdigest()


def data_fingerprint(spec: str, strict: bool = False) -> str | None:
    """A SHA-256 over the files a data spec reads (each image's name and its noisy and clean files'
    contents), so that a data set whose files were replaced, edited or swapped between names counts
    as other data, however its spec is spelled. Formats without per-image files (``.mat`` blocks)
    hash every file under PATH. ``camera:builtin`` is "builtin". A spec that cannot be opened raises
    its one-line error (``strict``) or gives None."""
    import hashlib

    fmt, path_s, _ = parse_spec(spec)
    if fmt == "camera":
        return "builtin"
    try:
        iset = open_dataset(spec)
    except PnganError:
        if strict:
            raise
        return None
    base, idx = (iset.base, iset.indices) if isinstance(iset, SubsetImageSet) else (iset, None)
    entries = getattr(base, "entries", None)
    h = hashlib.sha256()
    if entries is not None:
        for e in entries if idx is None else [entries[i] for i in idx]:
            files = [_file_digest(Path(p)) if p is not None else "-" for p in (e.noisy, e.clean)]
            h.update(f"{e.name}\0{files[0]}\0{files[1]}\n".encode())
        return h.hexdigest()
    root = Path(path_s).expanduser()
    files = [(root.name, root)] if root.is_file() else sorted(
        (p.relative_to(root).as_posix(), p) for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))
    for rel, p in files:
        h.update(f"{rel}\0{_file_digest(p)}\n".encode())
    return h.hexdigest()
