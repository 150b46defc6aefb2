"""An invertible camera pipeline in torch, in the style of Brooks et al., "Unprocessing Images for
Learned Raw Denoising" (CVPR 2019), the pipeline CycleISP and PNGAN's setting 2 build on.

``unprocess`` takes sRGB in [0, 1] to linear camera RGB (full colour, before the mosaic):
inverse tone curve (smoothstep) -> inverse gamma (2.2) -> inverse colour correction (RGB -> camera)
-> inverse white balance and brightness with Brooks' highlight-preserving gain. ``process`` is its
exact inverse: white balance -> colour correction -> clamp to [0, 1] -> gamma -> tone curve.
``mosaic`` packs full-colour camera RGB into the four-channel RGGB representation
(B, 4, H/2, W/2); ``demosaic`` is a bilinear demosaic of the packed Bayer image back to full
colour. ``demosaic`` keeps every measured sample, so ``mosaic(demosaic(p)) == p`` exactly.

Deviations from Brooks, all made so that ``process(unprocess(x)) == x`` for every x in [0, 1]
(the brief for pngan asks for an exactly invertible pipeline):

* Brooks' ``process`` re-applies only the red/blue gains (leaving the image darker by the random
  brightness gain); here the brightness gain is re-applied too.
* Brooks' ``process`` applies the plain white-balance gains, which do not undo the
  highlight-preserving inverse gain for pixels brighter than the inflection (gray > 0.9). Here
  ``process`` solves for the original pixel exactly (:func:`apply_safe_gains`).
* Brooks clips to [0, 1] in camera space (after the inverse gains, and after the forward gains).
  Saturated sRGB colours can map slightly outside [0, 1] in camera space, so those clips are not
  invertible; the only clamp kept is the one Brooks has right before gamma compression (linear
  RGB, where every clean image lies in [0, 1]), so noisy images still come out in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# XYZ -> camera matrices of four cameras, as listed by Brooks et al. (2019).
XYZ2CAMS = torch.tensor(
    [
        [[1.0234, -0.2969, -0.2266], [-0.5625, 1.6328, -0.0469], [-0.0703, 0.2188, 0.6406]],
        [[0.4913, -0.0541, -0.0202], [-0.613, 1.3513, 0.2906], [-0.1564, 0.2151, 0.7183]],
        [[0.838, -0.263, -0.0639], [-0.2887, 1.0725, 0.2496], [-0.0627, 0.1427, 0.5438]],
        [[0.6596, -0.2079, -0.0562], [-0.4782, 1.3016, 0.1933], [-0.097, 0.1581, 0.5181]],
    ],
    dtype=torch.float64,
)
# linear sRGB -> XYZ (D65)
RGB2XYZ = torch.tensor(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]],
    dtype=torch.float64,
)
GAMMA = 2.2
INFLECTION = 0.9  # Brooks' highlight-preserving inverse gain starts at gray = 0.9


def _draw(kind: str, shape, generator, device, dtype=torch.float64) -> torch.Tensor:
    """Draw from ``generator`` on the generator's own device (CPU when none), then move.

    With no generator, the global RNG of ``device`` is used."""
    gdev = generator.device if generator is not None else torch.device(device)
    fn = torch.rand if kind == "rand" else torch.randn
    return fn(shape, generator=generator, device=gdev, dtype=dtype).to(device)


@dataclass
class ISPParams:
    """Per-batch random camera parameters (tensors with a leading batch dimension)."""

    rgb2cam: torch.Tensor  # (B, 3, 3)
    ccm_weights: torch.Tensor  # (B, 4), convex weights of XYZ2CAMS
    rgb_gain: torch.Tensor  # (B,)
    red_gain: torch.Tensor  # (B,)
    blue_gain: torch.Tensor  # (B,)

    def to(self, device, dtype=None) -> "ISPParams":
        f = lambda t: t.to(device=device, dtype=dtype or t.dtype)  # noqa: E731
        return ISPParams(f(self.rgb2cam), f(self.ccm_weights), f(self.rgb_gain), f(self.red_gain), f(self.blue_gain))

    def as_dicts(self) -> list[dict]:
        out = []
        for i in range(self.rgb_gain.shape[0]):
            out.append(
                {
                    "ccm_weights": [round(float(w), 6) for w in self.ccm_weights[i]],
                    "rgb2cam": [[round(float(v), 6) for v in row] for row in self.rgb2cam[i]],
                    "rgb_gain": float(self.rgb_gain[i]),
                    "red_gain": float(self.red_gain[i]),
                    "blue_gain": float(self.blue_gain[i]),
                }
            )
        return out


def random_params(batch: int, generator: torch.Generator | None = None, device="cpu") -> ISPParams:
    """Brooks' random camera: a random convex combination of the four XYZ->camera matrices
    (weights uniform in [1e-8, 1e8], normalised), rows of RGB->camera normalised to sum to 1;
    brightness gain 1 / N(0.8, 0.1); red gain U(1.9, 2.4); blue gain U(1.5, 1.9).
    Drawn in float64 in this fixed order: ccm weights, rgb gain, red gain, blue gain."""
    w = _draw("rand", (batch, 4), generator, device) * (1e8 - 1e-8) + 1e-8
    w = w / w.sum(dim=1, keepdim=True)
    xyz2cam = torch.einsum("bk,kij->bij", w, XYZ2CAMS.to(device))
    rgb2cam = xyz2cam @ RGB2XYZ.to(device)
    rgb2cam = rgb2cam / rgb2cam.sum(dim=-1, keepdim=True)
    rgb_gain = 1.0 / (0.8 + 0.1 * _draw("randn", (batch,), generator, device))
    red_gain = 1.9 + 0.5 * _draw("rand", (batch,), generator, device)
    blue_gain = 1.5 + 0.4 * _draw("rand", (batch,), generator, device)
    return ISPParams(rgb2cam, w, rgb_gain, red_gain, blue_gain)


# --- tone curve and gamma ------------------------------------------------------------------------


def smoothstep(x: torch.Tensor) -> torch.Tensor:
    return 3 * x**2 - 2 * x**3


def inverse_smoothstep(y: torch.Tensor) -> torch.Tensor:
    y = y.clamp(0.0, 1.0)
    return 0.5 - torch.sin(torch.asin(1.0 - 2.0 * y) / 3.0)


def gamma_expansion(x: torch.Tensor) -> torch.Tensor:
    return x.clamp_min(1e-8) ** GAMMA


def gamma_compression(x: torch.Tensor) -> torch.Tensor:
    return x.clamp_min(1e-8) ** (1.0 / GAMMA)


def apply_ccm(x: torch.Tensor, ccm: torch.Tensor) -> torch.Tensor:
    """x (B,3,H,W), ccm (B,3,3): out[c] = sum_k ccm[c,k] x[k]."""
    return torch.einsum("bck,bkhw->bchw", ccm.to(x.dtype), x)


# --- white balance with Brooks' highlight-preserving inverse gain -------------------------------


def _gains(p: ISPParams, dtype) -> torch.Tensor:
    """Forward white-balance/brightness gains per channel, (B, 3)."""
    one = torch.ones_like(p.rgb_gain)
    return (torch.stack([p.red_gain, one, p.blue_gain], dim=1) * p.rgb_gain[:, None]).to(dtype)


def _mask(t: torch.Tensor) -> torch.Tensor:
    # Brooks: ((max(gray - 0.9, 0)) / 0.1)^2; the gray level is clamped to 1 here so that the
    # mask saturates at 1 and the forward map (below) is defined for noisy values above 1.
    return ((t.clamp(INFLECTION, 1.0) - INFLECTION) / (1.0 - INFLECTION)) ** 2


def _safe_scale(t: torch.Tensor, inv_g: torch.Tensor) -> torch.Tensor:
    """Per-pixel inverse gain of Brooks: max(mask + (1 - mask) g, g) with g = 1/gain.
    t (B,1,H,W) gray level, inv_g (B,3,1,1)."""
    m = _mask(t)
    return torch.maximum(m + (1 - m) * inv_g, inv_g)


def safe_invert_gains(x: torch.Tensor, p: ISPParams) -> torch.Tensor:
    """Brooks' inverse white balance/brightness that keeps highlights from clipping."""
    inv_g = (1.0 / _gains(p, x.dtype))[:, :, None, None]
    gray = x.mean(dim=1, keepdim=True)
    return x * _safe_scale(gray, inv_g)


def apply_safe_gains(y: torch.Tensor, p: ISPParams, iters: int = 40) -> torch.Tensor:
    """The exact inverse of :func:`safe_invert_gains`.

    ``y = x * s(gray(x))`` per pixel. Given the gray level t of the original pixel, x = y / s(t),
    so t solves t = mean_c(y_c / s_c(t)). The right side does not increase with t, so the root is
    unique: below the inflection (s = plain inverse gain) it is mean(y * gain); above 1 the mask is
    saturated; in between it is found by bisection on [0.9, 1] (40 steps: below float64 precision
    of interest)."""
    inv_g = (1.0 / _gains(p, y.dtype))[:, :, None, None]

    def resid(t):
        return (y / _safe_scale(t, inv_g)).mean(dim=1, keepdim=True) - t

    t_low = (y / inv_g).mean(dim=1, keepdim=True)
    t_high = (y / torch.maximum(torch.ones_like(inv_g), inv_g)).mean(dim=1, keepdim=True)
    lo = torch.full_like(t_low, INFLECTION)
    hi = torch.ones_like(t_low)
    with torch.no_grad():
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            pos = resid(mid) > 0
            lo = torch.where(pos, mid, lo)
            hi = torch.where(pos, hi, mid)
    t = torch.where(t_low <= INFLECTION, t_low, torch.where(t_high >= 1.0, t_high, 0.5 * (lo + hi)))
    return y / _safe_scale(t, inv_g)


# --- the pipeline --------------------------------------------------------------------------------


def unprocess(srgb: torch.Tensor, p: ISPParams) -> torch.Tensor:
    """sRGB (B,3,H,W) in [0,1] -> linear camera RGB (B,3,H,W), full colour, no clipping."""
    x = inverse_smoothstep(srgb)
    x = gamma_expansion(x)
    x = apply_ccm(x, p.rgb2cam)
    return safe_invert_gains(x, p)


def process(cam: torch.Tensor, p: ISPParams) -> torch.Tensor:
    """Linear camera RGB (B,3,H,W) -> sRGB in [0,1]; the exact inverse of :func:`unprocess`."""
    x = apply_safe_gains(cam, p)
    x = apply_ccm(x, torch.linalg.inv(p.rgb2cam.to(torch.float64)))
    x = x.clamp(0.0, 1.0)  # Brooks clamps here, before gamma compression
    x = gamma_compression(x)
    return smoothstep(x)


def mosaic(rgb: torch.Tensor) -> torch.Tensor:
    """Full-colour (B,3,H,W), H and W even -> packed RGGB (B,4,H/2,W/2): R, Gr, Gb, B."""
    if rgb.shape[-2] % 2 or rgb.shape[-1] % 2:
        raise ValueError(f"mosaic needs even height and width, got {tuple(rgb.shape[-2:])}")
    r = rgb[:, 0, 0::2, 0::2]
    gr = rgb[:, 1, 0::2, 1::2]
    gb = rgb[:, 1, 1::2, 0::2]
    b = rgb[:, 2, 1::2, 1::2]
    return torch.stack([r, gr, gb, b], dim=1)


def demosaic(packed: torch.Tensor) -> torch.Tensor:
    """Bilinear demosaic of packed RGGB (B,4,h,w) -> (B,3,2h,2w).

    Each colour plane is interpolated from its own samples with the usual bilinear kernels
    (green: cross of 4 neighbours; red/blue: 2 or 4 neighbours), with reflect padding (which keeps
    the Bayer pattern at the borders). Measured samples are kept unchanged."""
    plane = F.pixel_shuffle(packed, 2)  # (B,1,H,W)
    B, _, H, W = plane.shape
    dev, dt = plane.device, plane.dtype
    yy = torch.arange(H, device=dev)[:, None] % 2
    xx = torch.arange(W, device=dev)[None, :] % 2
    masks = torch.stack([(yy == 0) & (xx == 0), (yy + xx) == 1, (yy == 1) & (xx == 1)]).to(dt)  # (3,H,W)
    sparse = plane * masks[None]  # (B,3,H,W)
    k_g = torch.tensor([[0, 1, 0], [1, 4, 1], [0, 1, 0]], dtype=dt, device=dev) / 4
    k_rb = torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=dt, device=dev) / 4
    weight = torch.stack([k_rb, k_g, k_rb])[:, None]  # (3,1,3,3)
    padded = F.pad(sparse, (1, 1, 1, 1), mode="reflect")
    return F.conv2d(padded, weight, groups=3)


def pad_even(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad (B,C,H,W) to even H, W (needed by the 2x2 Bayer pattern); returns the pads."""
    ph, pw = x.shape[-2] % 2, x.shape[-1] % 2
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(x.shape[-2:]) > 1 else "replicate")
    return x, (ph, pw)


def random_noise_levels(batch: int, generator: torch.Generator | None = None, device="cpu"):
    """Brooks' camera-like noise levels: log(shot) ~ U(log 1e-4, log 1.2e-2);
    log(read) = 2.18 log(shot) + 1.20 + N(0, 0.26). Returns (shot, read) variances, (B,) float64."""
    lo, hi = math.log(1e-4), math.log(1.2e-2)
    log_shot = lo + (hi - lo) * _draw("rand", (batch,), generator, device)
    log_read = 2.18 * log_shot + 1.20 + 0.26 * _draw("randn", (batch,), generator, device)
    return torch.exp(log_shot), torch.exp(log_read)
