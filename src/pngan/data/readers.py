"""File-based data sets: ``pairs:``, ``polyu:``, ``nam:``, ``clean:`` (and SIDD's folder layout).

Pairing is checked when the set is opened (file listing + image headers, no pixel decoding): a
missing partner, a shape mismatch (even by one pixel), an empty folder or an unreadable header is a
:class:`PnganError` naming the file, or, with ``skip_bad=True``, a logged skip.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from pngan.data.base import ImageSet, Sample
from pngan.errors import PnganError
from pngan.io.images import image_size, is_image_file, list_images, read_image

log = logging.getLogger("pngan")


@dataclass
class Entry:
    name: str
    noisy: Path | None
    clean: Path | None
    meta: dict


class FileImageSet(ImageSet):
    """A set of (noisy, clean) image files; either side may be absent for the whole set."""

    def __init__(self, kind: str, spec: str, entries: list[Entry], has_noisy: bool, has_clean: bool):
        self.kind, self.spec = kind, spec
        self.entries = entries
        self.has_noisy, self.has_clean = has_noisy, has_clean

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def load(self, index: int) -> Sample:
        e = self.entries[index]
        noisy = read_image(e.noisy) if e.noisy is not None else None
        clean = read_image(e.clean) if e.clean is not None else None
        if noisy is not None and clean is not None and noisy.shape != clean.shape:
            raise PnganError(f"noisy {tuple(noisy.shape[1:])} and clean {tuple(clean.shape[1:])} sizes differ", e.noisy)
        return Sample(e.name, clean, noisy, dict(e.meta))

    def sizes(self) -> list[tuple[int, int]]:
        return [image_size(e.clean if e.clean is not None else e.noisy) for e in self.entries]


def _bad(msg: str, path: Path, skip_bad: bool) -> None:
    if skip_bad:
        log.warning("skipping %s: %s", path, msg)
        return
    raise PnganError(msg, path)


def check_pairs(entries: list[Entry], skip_bad: bool) -> list[Entry]:
    """Keep entries whose files have readable headers and equal sizes."""
    good = []
    for e in entries:
        try:
            sizes = [image_size(p) for p in (e.noisy, e.clean) if p is not None]
        except PnganError as err:
            if not skip_bad:
                raise
            log.warning("skipping: %s", err)
            continue
        if len(sizes) == 2 and sizes[0] != sizes[1]:
            _bad(f"noisy image is {sizes[0][0]}x{sizes[0][1]} but its clean partner {e.clean.name} is "
                 f"{sizes[1][0]}x{sizes[1][1]} (HxW)", e.noisy, skip_bad)
            continue
        good.append(e)
    return good


def _by_stem(files: list[Path], folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for f in files:
        if f.stem in out:
            raise PnganError(f"two images share the name '{f.stem}' ({out[f.stem].name}, {f.name})", folder)
        out[f.stem] = f
    return out


_SAMPLE_SUFFIX = re.compile(r"^(.*)_(\d+)$")


def open_pairs(root: Path, spec: str, skip_bad: bool = False, kind: str = "pairs") -> FileImageSet:
    """``DIR/noisy/X.*`` with ``DIR/clean/X.*``; ``noisy/X_k`` pairs with ``clean/X`` (generated sets)."""
    nd, cd = root / "noisy", root / "clean"
    if not root.is_dir():
        raise PnganError("no such folder", root)
    if not nd.is_dir() and not cd.is_dir():
        raise PnganError("expected sub-folders noisy/ and clean/ (a pairs: data set)", root)
    if not nd.is_dir():
        raise PnganError("has clean/ but no noisy/ folder: a pairs: data set needs both (use clean:DIR for clean images only)", root)
    if not cd.is_dir():
        raise PnganError("has noisy/ but no clean/ folder: a pairs: data set needs both", root)
    noisy = _by_stem(list_images(nd), nd)
    clean = _by_stem(list_images(cd), cd)
    if not noisy:
        raise PnganError("no images in noisy/", root)
    if not clean:
        raise PnganError("no images in clean/", root)
    entries, used = [], set()
    for stem, npath in noisy.items():
        cpath = clean.get(stem)
        sample = None
        if cpath is None:
            m = _SAMPLE_SUFFIX.match(stem)
            if m and m.group(1) in clean:
                cpath, sample = clean[m.group(1)], int(m.group(2))
        if cpath is None:
            _bad(f"no clean partner named '{stem}.*' in {cd}", npath, skip_bad)
            continue
        used.add(cpath.stem)
        meta = {"source": cpath.stem} if sample is not None else {}
        if sample is not None:
            meta["sample"] = sample
        entries.append(Entry(stem, npath, cpath, meta))
    samples = any("sample" in e.meta for e in entries)  # a folder written by generate/synth: NAME_K.png
    for stem, cpath in clean.items():
        if stem not in used:
            _bad(f"no noisy partner named '{stem}.*'" + (f" or '{stem}_K.*' (generated sample K)" if samples else "")
                 + f" in {nd}", cpath, skip_bad)
    entries = check_pairs(entries, skip_bad)
    if not entries:
        raise PnganError("no usable pairs", root)
    return FileImageSet(kind, spec, entries, True, True)


def _suffix_pairs(root: Path, spec: str, kind: str, noisy_tag: str, clean_tag: str, skip_bad: bool) -> FileImageSet:
    if not root.is_dir():
        raise PnganError("no such folder", root)
    files = [p for p in sorted(root.iterdir()) if p.is_file() and is_image_file(p)]
    if not files:
        raise PnganError(f"no images (expected <name>{noisy_tag}.* and <name>{clean_tag}.*)", root)
    noisy, clean = {}, {}
    for f in files:
        low = f.stem.lower()
        for tag, side in ((noisy_tag, noisy), (clean_tag, clean)):
            if low.endswith(tag):
                name = f.stem[: -len(tag)]
                if name in side:  # x_real.png and x_real.jpg: which one is the pair's is not ours to guess
                    raise PnganError(f"two {'noisy' if side is noisy else 'clean'} images for '{name}': "
                                     f"{side[name].name} and {f.name} (keep one)", root)
                side[name] = f
                break
    if not noisy and not clean:
        raise PnganError(f"no files named <name>{noisy_tag}.* / <name>{clean_tag}.* ({kind} naming)", root)
    if not noisy:
        raise PnganError(f"only clean images (<name>{clean_tag}.*), no noisy <name>{noisy_tag}.*", root)
    if not clean:
        raise PnganError(f"only noisy images (<name>{noisy_tag}.*), no clean <name>{clean_tag}.*", root)
    entries = []
    for name, npath in sorted(noisy.items()):
        if name not in clean:
            _bad(f"no clean partner '{name}{clean_tag}.*'", npath, skip_bad)
            continue
        entries.append(Entry(name, npath, clean[name], {}))
    for name, cpath in sorted(clean.items()):
        if name not in noisy:
            _bad(f"no noisy partner '{name}{noisy_tag}.*'", cpath, skip_bad)
    entries = check_pairs(entries, skip_bad)
    if not entries:
        raise PnganError("no usable pairs", root)
    return FileImageSet(kind, spec, entries, True, True)


def open_polyu(root: Path, spec: str, skip_bad: bool = False) -> FileImageSet:
    """PolyU (Xu et al. 2018): ``<scene>_<n>_real.JPG`` (noisy) / ``<scene>_<n>_mean.JPG`` (clean)."""
    return _suffix_pairs(root, spec, "polyu", "_real", "_mean", skip_bad)


def open_nam(root: Path, spec: str, skip_bad: bool = False) -> FileImageSet:
    """Nam et al. / CC15 naming: ``<name>_real.png`` / ``<name>_mean.png``."""
    return _suffix_pairs(root, spec, "nam", "_real", "_mean", skip_bad)


def open_clean(root: Path, spec: str, skip_bad: bool = False) -> FileImageSet:
    """Every image file in ``DIR`` (sorted), clean only."""
    if not root.is_dir():
        raise PnganError("no such folder", root)
    files = list_images(root)
    if not files:
        from pngan.data.specs import pair_folder_hint

        hint = pair_folder_hint(root)  # a pairs folder given as clean:/noisy:
        raise PnganError("no image files (.png, .jpg, .tif) in folder" + (
            f" ({hint.replace('give it as pairs:', 'give pairs:')}, or its noisy/ or clean/ folder)" if hint else ""),
            root)
    _by_stem(files, root)
    entries = []
    for f in files:
        try:
            image_size(f)
        except PnganError as err:
            if not skip_bad:
                raise
            log.warning("skipping: %s", err)
            continue
        entries.append(Entry(f.stem, None, f, {"file": f.name}))
    if not entries:
        raise PnganError("no readable images", root)
    return FileImageSet("clean", spec, entries, has_noisy=False, has_clean=True)


def open_noisy_folder(root: Path, spec: str, skip_bad: bool = False) -> FileImageSet:
    """Every image file in ``DIR``, noisy only (for noisy-only evaluation sets)."""
    s = open_clean(root, spec, skip_bad)
    entries = [Entry(e.name, e.clean, None, e.meta) for e in s.entries]
    return FileImageSet("noisy", spec, entries, has_noisy=True, has_clean=False)
