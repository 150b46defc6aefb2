"""The Python API: use a trained PNGAN generator from other code.

    from pngan import NoiseGenerator
    gen = NoiseGenerator.load("runs/sidd")                 # run folder or .safetensors file
    noisy = gen(clean, generator=torch.Generator().manual_seed(0))   # clean: (B, 3, H, W) in [0, 1]

    from pngan.infer.api import GeneratedPairs
    ds = GeneratedPairs("clean:photos", gen, patch_size=128, seed=0)  # on-the-fly (noisy, clean) pairs
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn

from pngan.errors import PnganError


def resolve_generator_path(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        f = p / "generator.safetensors"
        if not f.is_file():
            raise PnganError("run folder has no generator.safetensors (has it written a checkpoint yet?)", p)
        return f
    if not p.is_file():
        raise PnganError("no such generator file or run folder", p)
    return p


class NoiseGenerator(nn.Module):
    """Synthetic setting + trained generator: clean images in, realistic noisy images out."""

    def __init__(self, net: nn.Module, synthetic: nn.Module, metadata: dict[str, str] | None = None,
                 tile: int = 512, overlap: int = 32, exact_tiles: bool = True, precision: str = "fp32"):
        super().__init__()
        if precision not in ("fp32", "bf16"):
            raise PnganError(f"precision must be fp32 or bf16, got '{precision}'")
        self.precision = precision  # bf16: autocast (on CUDA: tensor cores; on CPU: slow without AMX)
        # channels_last: 1.4x faster convolutions on CPU (oneDNN) and tensor-core friendly on CUDA
        self.net, self.synthetic = net.eval().to(memory_format=torch.channels_last), synthetic
        self.metadata = dict(metadata or {})
        self.tile, self.overlap, self.exact_tiles = tile, overlap, exact_tiles

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu", **kwargs) -> "NoiseGenerator":
        from pngan.nets.loading import load_saved_network
        from pngan.nets.registry import role_of
        from pngan.noise import build_synthetic

        f = resolve_generator_path(path)
        net, meta = load_saved_network(f)
        if role_of(meta["pngan.network"]) != "generator":
            raise PnganError(f"holds a '{meta['pngan.network']}' network, not a generator", f)
        if "pngan.synthetic" not in meta:
            raise PnganError("has no pngan.synthetic metadata: cannot tell which synthetic setting feeds it", f)
        syn = json.loads(meta["pngan.synthetic"])
        synthetic = build_synthetic(**syn)
        return cls(net, synthetic, meta, **kwargs).to(device)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @torch.inference_mode()
    def realistic(self, synthetic_noisy: torch.Tensor) -> torch.Tensor:
        """Apply the generator (tiled for large images) to already-synthesised noisy images."""
        from pngan.infer.tiling import tiled_forward

        x = synthetic_noisy.to(self.device)  # tiles are made channels_last one at a time (no full-size copy)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            y = tiled_forward(self.net, x, self.tile, self.overlap, exact=self.exact_tiles)
        return y.to(x.dtype)

    @torch.inference_mode()
    def forward(self, clean: torch.Tensor, generator: torch.Generator | None = None,
                return_synthetic: bool = False):
        if clean.ndim == 3:
            return self.forward(clean[None], generator, return_synthetic)[0] if not return_synthetic else \
                tuple(t[0] for t in self.forward(clean[None], generator, True))
        syn = self.synthetic(clean.to(self.device), generator=generator)
        fake = self.realistic(syn)
        return (fake, syn) if return_synthetic else fake


class GeneratedPairs(torch.utils.data.Dataset):
    """Any clean image set turned into on-the-fly (noisy, clean) pairs with PNGAN noise.

    Item ``i`` is sample ``i % samples`` of image ``i // samples``; its randomness (crop and noise)
    comes from ``derive_seed(seed, name, sample)``, so items do not depend on order or workers.
    Returns ``{"noisy", "clean", "name"}`` with (3, P, P) tensors (full images if ``patch_size`` is None).
    """

    def __init__(self, clean_set, generator, patch_size: int | None = None, seed: int = 0, samples: int = 1):
        from pngan.data.specs import open_dataset

        self.images = open_dataset(clean_set) if isinstance(clean_set, str) else clean_set
        if not self.images.has_clean:
            raise PnganError(f"{self.images.spec} has no clean images")
        self.gen = generator if isinstance(generator, NoiseGenerator) else NoiseGenerator.load(generator)
        self.patch, self.seed, self.samples = patch_size, seed, samples

    def __len__(self) -> int:
        return len(self.images) * self.samples

    def __getitem__(self, i: int) -> dict:
        from pngan.seeding import make_generator

        idx, k = divmod(i, self.samples)
        s = self.images[idx]
        g = make_generator(self.seed, s.name, k)
        clean = s.clean
        if self.patch is not None:
            _, h, w = clean.shape
            if h < self.patch or w < self.patch:
                raise PnganError(f"image '{s.name}' is {h}x{w}, smaller than the {self.patch}x{self.patch} patch")
            top = int(torch.randint(h - self.patch + 1, (1,), generator=g))
            left = int(torch.randint(w - self.patch + 1, (1,), generator=g))
            clean = clean[:, top:top + self.patch, left:left + self.patch]
        noisy = self.gen(clean[None], generator=g)[0].clamp(0, 1).cpu()
        return {"noisy": noisy, "clean": clean, "name": f"{s.name}_{k}"}
