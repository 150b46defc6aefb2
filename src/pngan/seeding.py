"""Stable seed derivation.

``derive_seed(seed, "kodim01.png", 3)`` mixes any ints/strings into a 63-bit seed with SHA-256, so
it is the same on every machine, Python version and process (unlike ``hash()``). Used for
per-step training batches and per-image generation seeds.
"""

from __future__ import annotations

import hashlib

import torch


def derive_seed(*parts: int | str) -> int:
    h = hashlib.sha256()
    for p in parts:
        h.update(type(p).__name__.encode())
        h.update(b"\x00")
        h.update(str(p).encode("utf-8"))
        h.update(b"\x01")
    return int.from_bytes(h.digest()[:8], "little") & ((1 << 63) - 1)


def make_generator(*parts: int | str, device: str | torch.device = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(*parts))
    return g
