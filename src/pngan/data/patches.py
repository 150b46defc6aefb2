"""Aligned random patches with flips, as a pure function of (seed, step).

``PatchSampler.batch(step, rank, world_size)`` returns rank ``rank``'s slice of the global batch of
training step ``step``. Sample ``j`` of a step is drawn with its own generator seeded by
``derive_seed(seed, step, j)`` (image index, crop corner, horizontal flip, vertical flip), so the
batches do not depend on resumption, on the number of processes or on DataLoader workers. The same
crop and flips are applied to the clean and the noisy image (aligned pairs).

Decoded images live in a bounded LRU cache stored as uint8 (16-bit precision for deeper sources), so that
large sets such as SIDD Medium (12 MP per image) stream from disk instead of filling memory.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

from pngan.data.base import ImageSet
from pngan.errors import PnganError
from pngan.seeding import derive_seed


def _quantise(t: torch.Tensor) -> torch.Tensor:
    # 8-bit sources stay exact in uint8; anything else is kept at 16-bit precision (int32 storage).
    q8 = torch.round(t * 255)
    if torch.equal(q8 / 255, t):
        return q8.to(torch.uint8)
    return torch.round(t * 65535).to(torch.int32)


def _dequantise(q: torch.Tensor) -> torch.Tensor:
    if q.dtype == torch.uint8:
        return q.float() / 255
    return q.float() / 65535


class PatchSampler:
    def __init__(
        self,
        imageset: ImageSet,
        patch_size: int,
        batch_size: int,
        flips: bool = True,
        seed: int = 0,
        cache_bytes: int = 2**31,
        keys: tuple[str, ...] | None = None,
    ):
        if len(imageset) == 0:
            raise PnganError(f"data set {imageset.spec} is empty")
        if patch_size < 1 or batch_size < 1:
            raise PnganError(f"patch size and batch size must be positive (got {patch_size}, {batch_size})")
        self.imageset = imageset
        self.patch, self.batch_size, self.flips, self.seed = int(patch_size), int(batch_size), bool(flips), int(seed)
        self.keys = keys or tuple(k for k, has in (("clean", imageset.has_clean), ("noisy", imageset.has_noisy)) if has)
        self.cache_bytes = int(cache_bytes)
        self._cache: OrderedDict[int, dict[str, torch.Tensor]] = OrderedDict()
        self._cached = 0
        self.sizes = self._image_sizes()
        for i, (h, w) in enumerate(self.sizes):
            if h < self.patch or w < self.patch:
                raise PnganError(f"image '{imageset.names[i]}' is {h}x{w} (HxW), smaller than the "
                                 f"{self.patch}x{self.patch} patch", getattr(imageset, "spec", None))

    def _image_sizes(self) -> list[tuple[int, int]]:
        sizes = getattr(self.imageset, "sizes", None)
        if callable(sizes):
            return [tuple(s) for s in sizes()]
        out = []
        for i in range(len(self.imageset)):
            t = self._get(i)
            v = next(iter(t.values()))
            out.append((int(v.shape[1]), int(v.shape[2])))
        return out

    def _get(self, index: int) -> dict[str, torch.Tensor]:
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        s = self.imageset.load(index)
        entry = {}
        for k in self.keys:
            t = getattr(s, k)
            if t is None:
                raise PnganError(f"sample '{s.name}' has no {k} image", getattr(self.imageset, "spec", None))
            entry[k] = _quantise(t)
        if "clean" in entry and "noisy" in entry and entry["clean"].shape != entry["noisy"].shape:
            raise PnganError(f"sample '{s.name}': clean {tuple(entry['clean'].shape)} and noisy "
                             f"{tuple(entry['noisy'].shape)} sizes differ")
        nbytes = sum(t.numel() * t.element_size() for t in entry.values())
        self._cache[index] = entry
        self._cached += nbytes
        while self._cached > self.cache_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached -= sum(t.numel() * t.element_size() for t in old.values())
        return entry

    def draw(self, step: int, j: int) -> tuple[int, int, int, bool, bool]:
        """(image index, top, left, hflip, vflip) of sample ``j`` of step ``step``."""
        g = torch.Generator().manual_seed(derive_seed(self.seed, "patch", step, j))
        idx = int(torch.randint(len(self.sizes), (1,), generator=g))
        h, w = self.sizes[idx]
        top = int(torch.randint(h - self.patch + 1, (1,), generator=g))
        left = int(torch.randint(w - self.patch + 1, (1,), generator=g))
        fl = torch.rand(2, generator=g)
        return idx, top, left, bool(self.flips and fl[0] < 0.5), bool(self.flips and fl[1] < 0.5)

    def sample(self, step: int, j: int) -> dict[str, torch.Tensor]:
        idx, top, left, hf, vf = self.draw(step, j)
        entry = self._get(idx)
        out = {}
        for k, q in entry.items():
            p = _dequantise(q[:, top : top + self.patch, left : left + self.patch])
            if hf:
                p = p.flip(-1)
            if vf:
                p = p.flip(-2)
            out[k] = p.contiguous()
        return out

    def batch(self, step: int, rank: int = 0, world_size: int = 1) -> dict[str, torch.Tensor]:
        if self.batch_size % world_size:
            raise PnganError(f"batch size {self.batch_size} is not divisible by the {world_size} processes")
        b = self.batch_size // world_size
        samples = [self.sample(step, j) for j in range(rank * b, (rank + 1) * b)]
        return {k: torch.stack([s[k] for s in samples]) for k in self.keys}


class PatchBatches(torch.utils.data.Dataset):
    """Item ``i`` is ``sampler.batch(start_step + i, rank, world_size)``: for a DataLoader with
    ``batch_size=None`` and worker processes preparing batches off the main process."""

    def __init__(self, sampler: PatchSampler, start_step: int, num_steps: int, rank: int = 0, world_size: int = 1):
        self.sampler, self.start, self.n, self.rank, self.world = sampler, int(start_step), int(num_steps), rank, world_size

    def __len__(self) -> int:
        return max(0, self.n)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.sampler.batch(self.start + i, self.rank, self.world)
