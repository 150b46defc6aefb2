"""The common shape of every data set pngan reads.

``open_dataset("FORMAT:PATH")`` (in :mod:`pngan.data.specs`) returns an :class:`ImageSet`: a
sequence of :class:`Sample` s, each with a unique ``name`` and float32 CHW RGB tensors in [0, 1]
for whichever of ``noisy`` / ``clean`` the format has (``None`` otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch


@dataclass
class Sample:
    name: str
    clean: torch.Tensor | None  # (3, H, W) float32 in [0, 1]
    noisy: torch.Tensor | None  # (3, H, W) float32 in [0, 1]
    meta: dict[str, Any] = field(default_factory=dict)


class ImageSet(Sequence[Sample]):
    """A data set of named images. Subclasses implement ``names`` and ``load``."""

    kind: str = "?"  # the FORMAT of the spec
    spec: str = "?"  # the spec as given
    has_clean: bool = True
    has_noisy: bool = True

    @property
    def names(self) -> list[str]:
        raise NotImplementedError

    def load(self, index: int) -> Sample:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self.load(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.load(index)

    def describe(self) -> str:
        what = "pairs" if (self.has_clean and self.has_noisy) else ("clean images" if self.has_clean else "noisy images")
        return f"{self.spec} ({len(self)} {what})"


class ConcatImageSet(ImageSet):
    """Several data sets as one (``--data A --data B``); names are prefixed when they collide."""

    def __init__(self, sets: list[ImageSet]):
        if not sets:
            raise ValueError("ConcatImageSet needs at least one set")
        self.sets = sets
        self.kind = sets[0].kind if len({s.kind for s in sets}) == 1 else "mixed"
        self.spec = " + ".join(s.spec for s in sets)
        self.has_clean = all(s.has_clean for s in sets)
        self.has_noisy = all(s.has_noisy for s in sets)
        self._index = [(k, i) for k, s in enumerate(sets) for i in range(len(s))]
        names: list[str] = []
        for k, s in enumerate(sets):
            names += [n if len(sets) == 1 else f"{k}:{n}" for n in s.names]
        self._names = names

    @property
    def names(self) -> list[str]:
        return self._names

    def sizes(self) -> list[tuple[int, int]]:
        out = []
        for s in self.sets:
            fn = getattr(s, "sizes", None)
            if callable(fn):
                out += [tuple(x) for x in fn()]
            else:
                for i in range(len(s)):
                    t = s.load(i)
                    v = t.clean if t.clean is not None else t.noisy
                    out.append((int(v.shape[1]), int(v.shape[2])))
        return out

    def load(self, index: int) -> Sample:
        k, i = self._index[index]
        s = self.sets[k].load(i)
        s.name = self._names[index]
        return s
