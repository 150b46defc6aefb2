"""DND (Plötz & Roth, CVPR 2017) sRGB benchmark: noisy-only reading and the submission bundle.

Layout (as DND ships it): ``DIR/info.mat`` (MATLAB v7.3) whose struct ``info`` has the field
``boundingboxes``: one HDF5 object reference per image to a 20x4 array of 1-based inclusive boxes;
``DIR/images_srgb/NNNN.mat`` (v7.3) with ``InoisySRGB`` (H x W x 3, float in [0, 1]).

Box indexing follows DND's own ``dnd_denoise.py``: for box row ``[a, b, c, d]`` the crop is
``image[a-1:c, b-1:d, :]`` (rows from the first and third numbers, columns from the second and
fourth). Samples are the boxes, named ``NNNN_BB`` (1-based, as DND's file names).

``write_dnd_submission`` writes what DND's scripts produce for sRGB results: per box
``NNNN_BB.mat`` holding ``Idenoised_crop`` (float32 H x W x 3), and the bundle
``bundled/NNNN.mat`` holding ``Idenoised`` (a 1x20 cell of the crops), ``israw`` (false) and
``eval_version`` ("1.0"), which is what DND's upload page expects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch

from pngan.data.base import ImageSet, Sample
from pngan.errors import PnganError


def _h5(path: Path):
    import h5py

    if not path.is_file():
        raise PnganError("missing file", path)
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise PnganError(f"not a MATLAB v7.3 (HDF5) file ({e})", path) from None


def read_boxes(info_path: Path) -> list[np.ndarray]:
    f = _h5(info_path)
    try:
        if "info" not in f or "boundingboxes" not in f["info"]:
            raise PnganError("expected the struct 'info' with field 'boundingboxes'", info_path)
        refs = np.asarray(f["info"]["boundingboxes"]).reshape(-1)
        boxes = []
        for k, ref in enumerate(refs):
            arr = np.asarray(f[ref]).T  # stored transposed: (4, 20) -> (20, 4)
            if arr.ndim != 2 or arr.shape[1] != 4:
                raise PnganError(f"bounding boxes of image {k + 1} have shape {arr.shape}, expected (20, 4)", info_path)
            boxes.append(arr.astype(np.int64))
        return boxes
    finally:
        f.close()


class DndSet(ImageSet):
    kind = "dnd"
    has_clean = False
    has_noisy = True

    def __init__(self, root: Path, spec: str):
        self.root, self.spec = root, spec
        if not root.is_dir():
            raise PnganError("no such folder", root)
        self.boxes = read_boxes(root / "info.mat")
        self._index = [(i, k) for i, b in enumerate(self.boxes) for k in range(len(b))]
        for i in range(len(self.boxes)):
            p = self.image_path(i)
            if not p.is_file():
                raise PnganError(f"missing noisy image {i + 1} of {len(self.boxes)}", p)
        self._cache: tuple[int, np.ndarray] | None = None

    def image_path(self, i: int) -> Path:
        return self.root / "images_srgb" / f"{i + 1:04d}.mat"

    def image(self, i: int) -> np.ndarray:
        if self._cache is not None and self._cache[0] == i:
            return self._cache[1]
        f = _h5(self.image_path(i))
        try:
            if "InoisySRGB" not in f:
                raise PnganError(f"variable 'InoisySRGB' not found (file has {list(f.keys())})", self.image_path(i))
            img = np.asarray(f["InoisySRGB"], dtype=np.float32).T  # (3, W, H) -> (H, W, 3)
        finally:
            f.close()
        if img.ndim != 3 or img.shape[2] != 3:
            raise PnganError(f"InoisySRGB has shape {img.shape}, expected H x W x 3", self.image_path(i))
        if not np.isfinite(img).all():
            raise PnganError("InoisySRGB contains NaN or Inf", self.image_path(i))
        self._cache = (i, img)
        return img

    @property
    def names(self) -> list[str]:
        return [f"{i + 1:04d}_{k + 1:02d}" for i, k in self._index]

    def crop(self, i: int, k: int) -> np.ndarray:
        a, b, c, d = (int(v) for v in self.boxes[i][k])
        img = self.image(i)
        if not (1 <= a <= c <= img.shape[0] and 1 <= b <= d <= img.shape[1]):
            raise PnganError(f"box {k + 1} {[a, b, c, d]} lies outside the image {img.shape[:2]}", self.image_path(i))
        return img[a - 1 : c, b - 1 : d, :]

    def load(self, index: int) -> Sample:
        i, k = self._index[index]
        crop = torch.from_numpy(np.ascontiguousarray(self.crop(i, k).transpose(2, 0, 1))).clamp(0, 1)
        return Sample(self.names[index], None, crop, {"image": i + 1, "box": k + 1})


def write_dnd_submission(denoised: Mapping[tuple[int, int], np.ndarray], out_dir: str | Path) -> Path:
    """Write per-box ``NNNN_BB.mat`` files and the ``bundled/NNNN.mat`` upload bundle.

    ``denoised`` maps 1-based (image, box) to an H x W x 3 float array in [0, 1].
    """
    import scipy.io

    from pngan.io.atomic import atomic_path

    out = Path(out_dir)
    (out / "bundled").mkdir(parents=True, exist_ok=True)
    by_image: dict[int, dict[int, np.ndarray]] = {}
    for (i, k), crop in denoised.items():
        arr = np.asarray(crop, dtype=np.float32)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise PnganError(f"denoised crop {i:04d}_{k:02d} has shape {arr.shape}, expected H x W x 3")
        with atomic_path(out / f"{i:04d}_{k:02d}.mat") as tmp:
            with open(tmp, "wb") as fh:
                scipy.io.savemat(fh, {"Idenoised_crop": arr})
        by_image.setdefault(i, {})[k] = arr
    for i, crops in sorted(by_image.items()):
        n = max(crops)
        cell = np.empty((1, n), dtype=object)
        for k in range(1, n + 1):
            if k not in crops:
                raise PnganError(f"image {i:04d}: box {k} missing from the submission")
            cell[0, k - 1] = crops[k]
        with atomic_path(out / "bundled" / f"{i:04d}.mat") as tmp:
            with open(tmp, "wb") as fh:
                scipy.io.savemat(fh, {"Idenoised": cell, "israw": False, "eval_version": "1.0"})
    return out / "bundled"


def denoise_dnd(dnd: DndSet, denoise: Callable[[torch.Tensor], torch.Tensor], out_dir: str | Path, progress=None) -> Path:
    """Denoise every box of a DND set with ``denoise`` ((1,3,H,W) -> (1,3,H,W)) and write the bundle."""
    results = {}
    it = range(len(dnd))
    if progress is not None:
        it = progress(it)
    for idx in it:
        s = dnd.load(idx)
        with torch.inference_mode():
            out = denoise(s.noisy[None])[0].clamp(0, 1)
        results[(s.meta["image"], s.meta["box"])] = out.permute(1, 2, 0).cpu().numpy()
    return write_dnd_submission(results, out_dir)
