"""``camera:builtin``: a small built-in paired data set for demos and tests, with SIMULATED noise.

Clean images: the colour photographs bundled inside scikit-image that load offline, resized with
Pillow (Lanczos) to at most 384 px on the long side (fast on CPU, and the downscaling also
suppresses the photographs' own grain). Fixed split by image (a scene never appears in both):

* train (7): astronaut, chelsea, motorcycle_left, motorcycle_right (the two views of one stereo
  scene), immunohistochemistry, hubble_deep_field, retina
* test (2): coffee, rocket

(``cat`` is the same picture as ``chelsea``; ``colorwheel`` and ``logo`` are drawings, the other
scikit-image photographs are grayscale or need a download.)

Noisy images come from :func:`simulate_camera`, a fixed simulated camera that is deliberately
neither synthetic setting of the paper (so that a generator trained on it has a real gap to close):
sRGB -> inverse tone curve -> inverse sRGB transfer -> fixed inverse colour matrix and white
balance -> RGGB mosaic -> Poisson shot noise (300 e- full scale) + Gaussian read noise + row
banding + 10-bit quantisation with a black level -> Malvar-He-Cutler demosaic of the noise
(correlated across neighbours and channels) -> white balance, colour matrix, sRGB transfer, tone
curve -> 8-bit JPEG (quality 85, 4:2:0, Pillow, in memory). The clean signal itself keeps its full
colour (an ideal demosaic), so ``noisy - clean`` is the camera's noise and compression error only.
Deterministic per (seed, image name); the noisy images are computed once per process and cached.
"""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F

from pngan.data.base import ImageSet, Sample
from pngan.errors import PnganError
from pngan.noise.isp import mosaic
from pngan.seeding import make_generator

MAX_SIDE = 384
TRAIN = ["astronaut", "chelsea", "motorcycle_left", "motorcycle_right", "immunohistochemistry",
         "hubble_deep_field", "retina"]
TEST = ["coffee", "rocket"]

# The simulated camera's fixed constants.
FULL_SCALE_ELECTRONS = 300.0  # shot noise: Poisson(signal * 300) / 300
READ_SIGMA = 0.0015  # Gaussian read noise, fraction of full scale
ROW_SIGMA = 0.0008  # per-row offset (banding), fraction of full scale
BLACK_LEVEL = 64  # ADC codes
ADC_BITS = 10
JPEG_QUALITY = 85
WB_GAINS = torch.tensor([2.0, 1.0, 1.6], dtype=torch.float64)  # R, G, B
CAM2RGB = torch.tensor(
    [[1.62, -0.47, -0.15], [-0.22, 1.48, -0.26], [0.02, -0.50, 1.48]], dtype=torch.float64
)  # rows sum to 1: gray stays gray
TONE_MIX = 0.35  # tone curve: (1 - a) y + a smoothstep(y)

_CLEAN_CACHE: dict[str, torch.Tensor] = {}
_NOISY_CACHE: dict[tuple[str, int], torch.Tensor] = {}


# --- the simulated camera ------------------------------------------------------------------------


def _srgb_encode(x):
    x = x.clamp(0, 1)
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp_min(1e-12) ** (1 / 2.4) - 0.055)


def _srgb_decode(y):
    y = y.clamp(0, 1)
    return torch.where(y <= 0.04045, y / 12.92, ((y + 0.055) / 1.055) ** 2.4)


def _tone(y):
    return (1 - TONE_MIX) * y + TONE_MIX * (3 * y**2 - 2 * y**3)


def _inverse_tone(t, iters: int = 40):
    t = t.clamp(0, 1)
    lo, hi = torch.zeros_like(t), torch.ones_like(t)
    for _ in range(iters):  # the curve is strictly increasing on [0, 1]: bisection
        mid = 0.5 * (lo + hi)
        below = _tone(mid) < t
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    return 0.5 * (lo + hi)


def _malvar_demosaic(plane: torch.Tensor) -> torch.Tensor:
    """Malvar-He-Cutler (2004) linear demosaic of an RGGB Bayer plane (B,1,H,W) -> (B,3,H,W)."""
    dt, dev = plane.dtype, plane.device
    h = 0.5
    k_g = [[0, 0, -1, 0, 0], [0, 0, 2, 0, 0], [-1, 2, 4, 2, -1], [0, 0, 2, 0, 0], [0, 0, -1, 0, 0]]
    k_row = [[0, 0, h, 0, 0], [0, -1, 0, -1, 0], [-1, 4, 5, 4, -1], [0, -1, 0, -1, 0], [0, 0, h, 0, 0]]
    k_diag = [[0, 0, -1.5, 0, 0], [0, 2, 0, 2, 0], [-1.5, 0, 6, 0, -1.5], [0, 2, 0, 2, 0], [0, 0, -1.5, 0, 0]]
    k = torch.tensor([k_g, k_row], dtype=dt, device=dev) / 8
    k = torch.cat([k, k[1:2].transpose(-1, -2), torch.tensor([k_diag], dtype=dt, device=dev) / 8])[:, None]
    est = F.conv2d(F.pad(plane, (2, 2, 2, 2), mode="reflect"), k)  # (B,4,H,W): g, row, col, diag
    g_at, row, col, diag = est.unbind(1)
    p = plane[:, 0]
    H, W = p.shape[-2:]
    yy = (torch.arange(H, device=dev)[:, None] % 2).expand(H, W)
    xx = (torch.arange(W, device=dev)[None, :] % 2).expand(H, W)
    is_r = (yy == 0) & (xx == 0)
    is_b = (yy == 1) & (xx == 1)
    is_gr = (yy == 0) & (xx == 1)  # green in a red row
    r = torch.where(is_r, p, torch.where(is_gr, row, torch.where(is_b, diag, col)))
    g = torch.where(is_r | is_b, g_at, p)
    b = torch.where(is_b, p, torch.where(is_gr, col, torch.where(is_r, diag, row)))
    return torch.stack([r, g, b], dim=1)


def _jpeg(img: torch.Tensor, quality: int = JPEG_QUALITY) -> torch.Tensor:
    from PIL import Image

    arr = (img.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    out = np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(out.copy()).permute(2, 0, 1)


def simulate_camera(clean: torch.Tensor, generator: torch.Generator | None = None, jpeg: bool = True) -> torch.Tensor:
    """Noisy images from the built-in simulated camera: clean (B,3,H,W) in [0,1] -> (B,3,H,W).

    Computed in float64 on the generator's device (CPU when none); all draws come from
    ``generator`` in a fixed order (shot, read, row) per image. Odd sizes are reflect-padded for the
    Bayer pattern and cropped back. ``jpeg=False`` skips the final JPEG step (for analysis)."""
    if clean.dim() != 4 or clean.shape[1] != 3:
        raise ValueError(f"expected (B,3,H,W), got {tuple(clean.shape)}")
    dev = generator.device if generator is not None else torch.device("cpu")
    x = clean.to(device=dev, dtype=torch.float64)
    B, _, H, W = x.shape
    x = F.pad(x, (0, W % 2, 0, H % 2), mode="replicate")
    lin = _srgb_decode(_inverse_tone(x))
    rgb2cam = torch.linalg.inv(CAM2RGB).to(dev)
    wb = WB_GAINS.to(dev)[None, :, None, None]
    cam = torch.einsum("ck,bkhw->bchw", rgb2cam, lin) / wb
    bayer = F.pixel_shuffle(mosaic(cam), 2)  # (B,1,H,W) RGGB plane
    outs = []
    codes = 2**ADC_BITS - 1
    for i in range(B):
        s = bayer[i : i + 1]
        shot = torch.poisson(s.clamp_min(0) * FULL_SCALE_ELECTRONS, generator=generator) / FULL_SCALE_ELECTRONS
        read = READ_SIGMA * torch.randn(s.shape, generator=generator, device=dev, dtype=s.dtype)
        rows = ROW_SIGMA * torch.randn((1, 1, s.shape[-2], 1), generator=generator, device=dev, dtype=s.dtype)
        v = shot + read + rows
        v = ((v * (codes - BLACK_LEVEL) + BLACK_LEVEL).round().clamp(0, codes) - BLACK_LEVEL) / (codes - BLACK_LEVEL)
        noisy_cam = cam[i : i + 1] + _malvar_demosaic(v - s)
        rgb = torch.einsum("ck,bkhw->bchw", CAM2RGB.to(dev), noisy_cam * wb)
        out = _tone(_srgb_encode(rgb))[0, :, :H, :W]
        outs.append(_jpeg(out).to(torch.float64) if jpeg else out)
    return torch.stack(outs).to(device=clean.device, dtype=clean.dtype)


# --- the data set --------------------------------------------------------------------------------


def _load_skimage(name: str) -> np.ndarray:
    import skimage.data as skd

    if name.startswith("motorcycle_"):
        left, right, _ = skd.stereo_motorcycle()
        return left if name.endswith("left") else right
    return getattr(skd, name)()


def load_clean(name: str) -> torch.Tensor:
    """The clean image ``name`` as (3,H,W) float32, long side at most MAX_SIDE (cached)."""
    if name not in _CLEAN_CACHE:
        from PIL import Image

        try:
            arr = _load_skimage(name)
        except Exception as e:  # a broken scikit-image install: say which image
            raise PnganError(f"camera:builtin: cannot load scikit-image picture {name!r}: {e}") from None
        img = Image.fromarray(np.ascontiguousarray(arr[..., :3]))
        scale = MAX_SIDE / max(img.size)
        if scale < 1:
            img = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
        t = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()
        _CLEAN_CACHE[name] = t
    return _CLEAN_CACHE[name]


class CameraSet(ImageSet):
    """The built-in simulated-camera pairs: ``camera:builtin`` (train), ``camera:builtin@test``,
    ``camera:builtin@all`` (both)."""

    kind = "camera"
    has_clean = True
    has_noisy = True

    def __init__(self, split: str = "train", seed: int = 0):
        if split not in ("train", "test", "all"):
            raise PnganError(f"camera:builtin: split must be 'train', 'test' or 'all', got {split!r}")
        self.split = split
        self.seed = int(seed)
        self.spec = "camera:builtin" + ("" if split == "train" else f"@{split}")
        self._names = {"train": TRAIN, "test": TEST, "all": TRAIN + TEST}[split][:]

    @property
    def names(self) -> list[str]:
        return list(self._names)

    def noisy(self, name: str) -> torch.Tensor:
        key = (name, self.seed)
        if key not in _NOISY_CACHE:
            g = make_generator(self.seed, "camera:builtin", name)
            _NOISY_CACHE[key] = simulate_camera(load_clean(name)[None], g)[0]
        return _NOISY_CACHE[key]

    def load(self, index: int) -> Sample:
        name = self._names[index]
        meta = {"source": f"skimage.data ({name})", "simulated": True, "seed": self.seed, "split": self.split}
        # clones: a caller that edits a sample in place must not corrupt the in-memory cache
        return Sample(name=name, clean=load_clean(name).clone(), noisy=self.noisy(name).clone(), meta=meta)


__all__ = ["CameraSet", "simulate_camera", "load_clean", "TRAIN", "TEST"]
