"""The Python API: use a trained PNGAN generator from other code.

    from pngan import NoiseGenerator
    gen = NoiseGenerator.load("runs/sidd")                 # run folder or .safetensors file
    noisy = gen(clean, generator=torch.Generator().manual_seed(0))   # clean: (B, 3, H, W) in [0, 1]

Contract (the same as the CLI's, checked at the boundary by ``pngan.validate.image_batch``): input
is a float tensor or numpy array of shape (3, H, W) or (B, 3, H, W), finite, in [0, 1]; integer
(e.g. uint8 0-255), NaN/Inf, out-of-range or empty input raises ``ImageInputError`` (a
``PnganError`` and ``ValueError``). Output is clamped to [0, 1] (what an image file can hold, as
``pngan generate`` writes it), float32 computation, returned in the input's float dtype.

    from pngan.infer.api import GeneratedPairs
    ds = GeneratedPairs("clean:photos", gen, patch_size=128, seed=0)  # on-the-fly (noisy, clean) pairs

Noise level (a generator fed by the calibrated setting, :mod:`pngan.noise.level`): ``gain=1.7``
(or one number per image) sets it; ``gain="0.5,1,2"``, ``"0.3-2.3"``, ``"fitted"`` (or a
``LevelPolicy``) draws one level per image; no ``gain``: ``fitted`` for a generator trained with
``synthetic.level=match`` on pairs of several levels, else the fitted level (gain 1).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn

from pngan.errors import PnganError


class ApiArgumentError(PnganError, ValueError):
    """A bad argument to the Python API (a device, a gain): one clear message, as the CLI gives it."""


def api_device(device: str | torch.device) -> torch.device:
    """``device`` checked before anything is moved there: cpu, cuda, cuda:N, mps or auto (CUDA when
    there is one); an unknown name or an absent device is an :class:`ApiArgumentError`."""
    from pngan.validate import check_device

    if not isinstance(device, (str, torch.device)):
        raise ApiArgumentError(f"device must be a string or torch.device (cpu, cuda, cuda:N, mps or auto), "
                               f"got {type(device).__name__}")
    name = str(device)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        check_device(name)  # 'meta', 'tpu', typos, CUDA without CUDA: refused here, not deep inside torch
    except PnganError as e:
        raise ApiArgumentError(str(e)) from None
    return torch.device(name)


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
        from pngan.validate import MIN_TILE

        if isinstance(tile, bool) or not isinstance(tile, int) or (tile != 0 and not MIN_TILE <= tile <= 1 << 16):
            raise PnganError(f"tile must be 0 (no tiling) or an integer in [{MIN_TILE}, 65536], got {tile!r}")
        if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap <= 4096:
            raise PnganError(f"overlap (the tile halo) must be an integer in [0, 4096], got {overlap!r}")
        self.precision = precision  # bf16: autocast (on CUDA: tensor cores; on CPU: slow without AMX)
        # channels_last: 1.4x faster convolutions on CPU (oneDNN) and tensor-core friendly on CUDA
        self.net, self.synthetic = net.eval().to(memory_format=torch.channels_last), synthetic
        self.metadata = dict(metadata or {})
        self.tile, self.overlap, self.exact_tiles = tile, overlap, exact_tiles
        # generator.keep_white (pngan.noise.clipping): trained with clean-white values passing through
        self.keep_white = self.metadata.get("pngan.keep_white") == "true"

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu", **kwargs) -> "NoiseGenerator":
        from pngan.nets.loading import load_saved_network
        from pngan.nets.registry import role_of
        from pngan.noise import from_description

        from pngan.nets.loading import read_metadata

        dev = api_device(device)
        f = resolve_generator_path(path)
        if "pngan.network" not in read_metadata(f):
            raise PnganError("not a pngan generator (the file has no pngan metadata): give a 'pngan train' run "
                             "folder or the generator.safetensors it wrote", f)
        net, meta = load_saved_network(f)
        if role_of(meta["pngan.network"]) != "generator":
            raise PnganError(f"holds a '{meta['pngan.network']}' network, not a generator", f)
        if "pngan.synthetic" not in meta:
            raise PnganError("has no pngan.synthetic metadata: cannot tell which synthetic setting feeds it", f)
        try:
            syn = json.loads(meta["pngan.synthetic"])
            if not isinstance(syn, dict) or "setting" not in syn:
                raise PnganError(f"expected a JSON object with a \"setting\", got {syn!r:.60}")
            synthetic = from_description(syn)  # a calibrated one is checked key by key
        except (PnganError, json.JSONDecodeError) as e:
            raise PnganError(f"its pngan.synthetic metadata cannot be used: {e}", f) from None
        return cls(net, synthetic, meta, **kwargs).to(dev)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @torch.inference_mode()
    def realistic(self, synthetic_noisy: torch.Tensor) -> torch.Tensor:
        """Apply the generator (tiled for large images) to already-synthesised noisy images."""
        from pngan.infer.tiling import tiled_forward
        from pngan.validate import ImageInputError

        if not isinstance(synthetic_noisy, torch.Tensor) or not synthetic_noisy.is_floating_point() \
                or synthetic_noisy.ndim != 4 or synthetic_noisy.numel() == 0:
            raise ImageInputError("realistic() takes a non-empty float (B, 3, H, W) tensor")
        if synthetic_noisy.is_meta:
            raise ImageInputError("synthetic noisy images are meta tensors (shapes without values): give real tensors")
        if not bool(torch.isfinite(synthetic_noisy).all()):
            raise ImageInputError("synthetic noisy images hold NaN/Inf values")
        x = synthetic_noisy.to(self.device)  # tiles are made channels_last one at a time (no full-size copy)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            tile = self.tile or max(x.shape[-2:])  # 0: the whole image in one pass
            y = tiled_forward(self.net, x, tile, self.overlap, exact=self.exact_tiles)
        return y.to(x.dtype)

    def finish(self, fake: torch.Tensor, clean: torch.Tensor | None) -> torch.Tensor:
        """The generator's raw output made an image: clamped to [0, 1] and, for a generator trained
        with ``generator.keep_white``, clean-white values put back (``clean`` is needed only then)."""
        from pngan.noise.clipping import finish

        return finish(fake, clean, self.keep_white)

    def level_policy(self, gain=None):
        """The level policy ``gain`` gives this generator (:mod:`pngan.noise.level`): None for the
        default (``fitted`` for a generator trained with ``synthetic.level=match`` on pairs of several
        levels, else None: the fitted level); a policy text (``"fitted"``, ``"0.5,1,2"``,
        ``"0.3-2.3"``) or a LevelPolicy, checked. A bad one is an :class:`ApiArgumentError`."""
        from pngan.noise.level import _NUMBER, resolve_level

        try:
            if isinstance(gain, str) and _NUMBER.match(gain):  # numbers are given as numbers
                raise PnganError(f"gain must be a finite number >= 0 (not the text {gain!r}), one per image, or a "
                                 "level policy: 'fitted', 'G1,G2,...', 'LO-HI' or a LevelPolicy")
            return resolve_level(gain, self.synthetic, self.metadata, what="gain")
        except PnganError as e:
            raise ApiArgumentError(str(e)) from None

    @torch.inference_mode()
    def forward(self, clean, generator: torch.Generator | None = None, return_synthetic: bool = False,
                gain=None):
        """Realistic noisy images for ``clean`` (see the module docstring for the contract).
        ``gain``: the noise level of a generator fed by the calibrated setting (1: the level fitted on
        its training pairs; one number, or one per image), or a level policy (``"fitted"``,
        ``"0.5,1,2"``, ``"0.3-2.3"`` or a ``LevelPolicy``: one level per image, drawn from
        ``generator`` before the noise); None: the generator's default policy (see
        :meth:`level_policy`; a single-level generator: the setting as it is)."""
        from pngan.noise import check_gain, gain_value, synthesize
        from pngan.noise.level import LevelPolicy
        from pngan.validate import ImageInputError, image_batch

        if isinstance(clean, torch.Tensor) and clean.is_meta:
            raise ImageInputError("clean images are meta tensors (shapes without values): give real tensors")
        policy = None
        if gain is None or isinstance(gain, (str, LevelPolicy)):
            policy = self.level_policy(gain)
        else:
            from pngan.noise.level import MAX_GAIN

            try:
                check_gain(self.synthetic, "gain")
                if float(gain_value(gain).max()) > MAX_GAIN:  # as the CLI's --gain
                    raise PnganError(f"gain must be at most {MAX_GAIN:g} (1: the fitted level), got {gain!r}")
            except PnganError as e:
                raise ApiArgumentError(str(e)) from None
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ApiArgumentError(f"generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)) or "
                                   f"None, got {type(generator).__name__}")
        x, batched = image_batch(clean)
        dtype = x.dtype
        x = x if batched else x[None]
        if policy is not None:  # one level per image, from the caller's generator (reproducible with it)
            dev = generator.device if generator is not None else "cpu"
            u = torch.rand(x.shape[0], generator=generator, device=dev, dtype=torch.float64).cpu()
            gain = torch.tensor([policy.at(float(v)) for v in u], dtype=torch.float64)
        syn = synthesize(self.synthetic, x.to(self.device, torch.float32), generator, gain=gain)
        fake = self.finish(self.realistic(syn), x)
        fake, syn = fake.to(dtype), syn.to(dtype)
        if not batched:
            fake, syn = fake[0], syn[0]
        return (fake, syn) if return_synthetic else fake


class GeneratedPairs(torch.utils.data.Dataset):
    """Any clean image set turned into on-the-fly (noisy, clean) pairs with PNGAN noise.

    Item ``i`` is sample ``i % samples`` of image ``i // samples``; its randomness (crop and noise)
    comes from ``derive_seed(seed, name, sample)``, so items do not depend on order or workers.
    Returns ``{"noisy", "clean", "name"}`` with (3, P, P) tensors (full images if ``patch_size`` is None),
    and ``"gain"`` (the item's noise level) when a level policy applies. ``gain``: a level policy
    (see :class:`NoiseGenerator`; None: the generator's default); item ``i`` draws its level from
    ``(seed, "level", name, sample)``.
    """

    def __init__(self, clean_set, generator, patch_size: int | None = None, seed: int = 0, samples: int = 1,
                 gain=None):
        import numbers

        from pngan.data.specs import open_dataset

        self.images = open_dataset(clean_set) if isinstance(clean_set, str) else clean_set
        if not self.images.has_clean:
            raise PnganError(f"{self.images.spec} has no clean images")
        self.gen = generator if isinstance(generator, NoiseGenerator) else NoiseGenerator.load(generator)
        for what, v, lo in (("patch_size", patch_size, 1), ("samples", samples, 1), ("seed", seed, 0)):
            if (v is not None or what != "patch_size") and (not isinstance(v, numbers.Integral) or isinstance(v, bool)
                                                             or v < lo):
                raise ApiArgumentError(f"{what} must be an integer >= {lo}{' (or None: whole images)' if what == 'patch_size' else ''}, "
                                       f"got {v!r}")
        self.patch, self.seed, self.samples = patch_size, seed, samples
        from pngan.noise.level import parse_level

        try:
            pol = gain if gain is None or isinstance(gain, str) else parse_level(gain, "gain")
        except PnganError as e:
            raise ApiArgumentError(str(e)) from None
        self.policy = self.gen.level_policy(pol)

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
        if self.policy is None:
            noisy = self.gen(clean[None], generator=g)[0].clamp(0, 1).cpu()
            return {"noisy": noisy, "clean": clean, "name": f"{s.name}_{k}"}
        level = self.policy.draw(self.seed, "level", s.name, k)  # its own seed: g's stream is unchanged
        noisy = self.gen(clean[None], generator=g, gain=level)[0].clamp(0, 1).cpu()
        return {"noisy": noisy, "clean": clean, "name": f"{s.name}_{k}", "gain": level}
