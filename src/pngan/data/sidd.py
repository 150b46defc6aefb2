"""SIDD (Abdelhamed et al., CVPR 2018) sRGB data in its published layouts.

``sidd:DIR`` — SIDD Medium/Small sRGB: ``DIR/Data/<scene>/{GT,NOISY}_SRGB_0NN.PNG`` where a scene
folder is named ``<instance 4>_<scene 3>_<phone>_<ISO 5>_<shutter 5>_<temperature 4>_<L|N|H>``
(e.g. ``0001_001_S6_00100_00060_3200_L``). ``DIR`` may also hold the scene folders directly, or be
a generic ``noisy/`` + ``clean/`` pair folder (cropped SIDD sets).

``sidd-mat:DIR`` — the validation blocks ``ValidationNoisyBlocksSrgb.mat`` +
``ValidationGtBlocksSrgb.mat`` (uint8, 40 images x 32 blocks x 256 x 256 x 3; MATLAB v5 or v7.3)
and, noisy only, the benchmark blocks ``BenchmarkNoisyBlocksSrgb.mat``. Samples are named
``val_IIII-BBBB`` / ``bench_IIII-BBBB`` (zero-based image and block).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from pngan.data.base import ImageSet, Sample
from pngan.data.readers import Entry, FileImageSet, _bad, check_pairs, open_pairs
from pngan.errors import PnganError

SCENE_RE = re.compile(r"^(\d{4})_(\d{3})_([A-Z0-9]+)_(\d{5})_(\d{5})_(\d{4})_([LNH])$")
FILE_RE = re.compile(r"^(GT|NOISY)_SRGB_(\d{3})$", re.IGNORECASE)
PHONES = {"GP": "Google Pixel", "IP": "iPhone 7", "S6": "Samsung Galaxy S6 Edge", "N6": "Motorola Nexus 6", "G4": "LG G4"}


def parse_scene(name: str) -> dict | None:
    m = SCENE_RE.match(name)
    if not m:
        return None
    inst, scene, phone, iso, shutter, temp, bright = m.groups()
    return {"scene_instance": int(inst), "scene": int(scene), "phone": phone, "phone_model": PHONES.get(phone, phone),
            "iso": int(iso), "shutter": int(shutter), "temperature": int(temp), "brightness": bright}


def open_sidd(root: Path, spec: str, skip_bad: bool = False) -> FileImageSet:
    if not root.is_dir():
        raise PnganError("no such folder", root)
    if (root / "noisy").is_dir() or (root / "clean").is_dir():
        s = open_pairs(root, spec, skip_bad, kind="sidd")
        return s
    data = root / "Data" if (root / "Data").is_dir() else root
    scenes = sorted(p for p in data.iterdir() if p.is_dir())
    if not scenes:
        raise PnganError("no SIDD scene folders (expected Data/<scene>/GT_SRGB_0NN.PNG and NOISY_SRGB_0NN.PNG)", root)
    entries = []
    for sc in scenes:
        meta = parse_scene(sc.name)
        if meta is None:
            _bad("folder name does not follow SIDD's scene naming "
                 "<instance>_<scene>_<phone>_<ISO>_<shutter>_<temperature>_<brightness>", sc, skip_bad)
            continue
        files: dict[tuple[str, str], Path] = {}
        for f in sorted(sc.iterdir()):
            m = FILE_RE.match(f.stem)
            if m and f.suffix.lower() == ".png":
                key = (m.group(1).upper(), m.group(2))
                if key in files:  # NOISY_SRGB_010.PNG and noisy_srgb_010.png: not ours to pick one
                    raise PnganError(f"two {key[0]}_SRGB_{key[1]} images: {files[key].name} and {f.name} (keep one)", sc)
                files[key] = f
        idx = sorted({k[1] for k in files})
        if not idx:
            _bad("no GT_SRGB_0NN.PNG / NOISY_SRGB_0NN.PNG files", sc, skip_bad)
        for i in idx:
            n, g = files.get(("NOISY", i)), files.get(("GT", i))
            if n is None or g is None:
                have = n or g
                _bad(f"missing its {'GT' if g is None else 'NOISY'}_SRGB_{i} partner", have, skip_bad)
                continue
            entries.append(Entry(f"{sc.name}_{i}", n, g, dict(meta)))
    entries = check_pairs(entries, skip_bad)
    if not entries:
        raise PnganError("no usable SIDD pairs", root)
    return FileImageSet("sidd", spec, entries, True, True)


# --- .mat blocks ---------------------------------------------------------------------------------

_VARS = {
    "ValidationNoisyBlocksSrgb.mat": "ValidationNoisyBlocksSrgb",
    "ValidationGtBlocksSrgb.mat": "ValidationGtBlocksSrgb",
    "BenchmarkNoisyBlocksSrgb.mat": "BenchmarkNoisyBlocksSrgb",
}


class _MatBlocks:
    """Lazy access to a (N, B, H, W, 3) uint8 block array in a MATLAB v5 or v7.3 file."""

    def __init__(self, path: Path, var: str):
        self.path, self.var = path, var
        self._arr = None
        self._h5 = None
        with open(path, "rb") as f:
            head = f.read(128)
        self.v73 = head[:8] == b"\x89HDF\r\n\x1a\n" or b"MATLAB 7.3" in head[:116]
        if self.v73:
            import h5py

            try:
                self._h5 = h5py.File(path, "r")
            except OSError as e:
                raise PnganError(f"cannot open MATLAB v7.3 file ({e})", path) from None
            if var not in self._h5:
                keys = [k for k in self._h5.keys() if not k.startswith("#")]
                raise PnganError(f"variable '{var}' not found (file has {keys})", path)
            ds = self._h5[var]
            self.shape = tuple(reversed(ds.shape))  # MATLAB order
        else:
            import scipy.io

            try:
                mat = scipy.io.loadmat(str(path))
            except Exception as e:
                raise PnganError(f"cannot read MATLAB file ({type(e).__name__}: {e})", path) from None
            if var not in mat:
                keys = [k for k in mat if not k.startswith("__")]
                raise PnganError(f"variable '{var}' not found (file has {keys})", path)
            self._arr = mat[var]
            self.shape = tuple(self._arr.shape)
        if len(self.shape) != 5 or self.shape[4] != 3:
            raise PnganError(f"variable '{var}' has shape {self.shape}; expected (images, blocks, H, W, 3), "
                             "e.g. (40, 32, 256, 256, 3)", path)

    def block(self, i: int, b: int) -> np.ndarray:
        if self._arr is not None:
            a = self._arr[i, b]
        else:
            a = self._h5[self.var][:, :, :, b, i].transpose(2, 1, 0)  # (3, W, H) -> (H, W, 3)
        return np.ascontiguousarray(a)


def _to_tensor(a: np.ndarray) -> torch.Tensor:
    if a.dtype == np.uint8:
        t = torch.from_numpy(a.astype(np.float32) / 255.0)
    else:
        t = torch.from_numpy(a.astype(np.float32)).clamp(0, 1)
    return t.permute(2, 0, 1).contiguous()


class SiddMatSet(ImageSet):
    kind = "sidd-mat"

    def __init__(self, root: Path, spec: str):
        self.spec = spec
        if not root.is_dir():
            raise PnganError("no such folder", root)
        val_n, val_g = root / "ValidationNoisyBlocksSrgb.mat", root / "ValidationGtBlocksSrgb.mat"
        bench = root / "BenchmarkNoisyBlocksSrgb.mat"
        if val_n.is_file():
            if not val_g.is_file():
                raise PnganError("ValidationNoisyBlocksSrgb.mat found but ValidationGtBlocksSrgb.mat is missing", root)
            self.noisy_m = _MatBlocks(val_n, _VARS[val_n.name])
            self.clean_m = _MatBlocks(val_g, _VARS[val_g.name])
            if self.noisy_m.shape != self.clean_m.shape:
                raise PnganError(f"noisy blocks {self.noisy_m.shape} and ground truth {self.clean_m.shape} differ", val_g)
            self.prefix, self.has_clean = "val", True
        elif bench.is_file():
            self.noisy_m, self.clean_m = _MatBlocks(bench, _VARS[bench.name]), None
            self.prefix, self.has_clean = "bench", False
        else:
            raise PnganError("no ValidationNoisyBlocksSrgb.mat (+ ValidationGtBlocksSrgb.mat) or "
                             "BenchmarkNoisyBlocksSrgb.mat", root)
        n, b = self.noisy_m.shape[:2]
        self._index = [(i, j) for i in range(n) for j in range(b)]
        self._names = [f"{self.prefix}_{i:04d}-{j:04d}" for i, j in self._index]

    @property
    def names(self) -> list[str]:
        return self._names

    def load(self, index: int) -> Sample:
        i, j = self._index[index]
        noisy = _to_tensor(self.noisy_m.block(i, j))
        clean = _to_tensor(self.clean_m.block(i, j)) if self.clean_m is not None else None
        return Sample(self._names[index], clean, noisy, {"image": i, "block": j})
