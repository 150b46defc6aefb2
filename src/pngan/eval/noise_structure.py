"""Noise-structure measures: what per-pixel histograms (KLD, AKLD, MMD) cannot see.

A generator that returns a blurred copy of the clean image plus blotchy low-frequency noise can
match a noise histogram and still look nothing like real noise. These measures compare the
*structure* of generated noise (generated - clean) with real noise (real noisy - clean):

* **level**: noise standard deviation on the 0-255 scale (``std_real``, ``std_gen``) and their
  ratio ``std_ratio`` (1 is right; over a set, the ratio of the mean levels is reported);
* **radial power spectrum** (``radial_spectrum``): the noise's 2-D periodogram per channel
  (mean removed, |FFT|^2 / (H W)), averaged over the 3 channels and over rings of radial frequency
  in ``SPECTRUM_BINS`` equal bins of [0, 0.5] cycles/pixel (the corners above 0.5 are left out).
  Two numbers describe generated against real:

  - ``spectrum_level_db`` = 10 log10(total generated power / total real power) = 20 log10 of the
    std ratio (0 is right; Parseval);
  - ``spectrum_shape`` = root-mean-square over the bins of ln(P_gen / P_real) after removing its
    mean (0 is right): the shape difference independently of the level. White noise against
    real, spatially correlated noise scores high here although its level can be exact;
  - ``lowfreq_real`` / ``lowfreq_gen``: the share of the power below 1/8 cycles/pixel (white noise:
    about 0.06; blotchy noise: much more);

* **content leakage** (``leakage_real``, ``leakage_gen``): the Pearson correlation between the
  noise and the Laplacian of the clean image (3x3 ``[0 1 0; 1 -4 1; 0 1 0]`` per channel, pooled over
  channels and pixels, a 2-pixel border left out). Blurring an image adds about
  ``+k * Laplacian(clean)`` to it, so a blurred copy scores clearly positive; real noise scores about
  0, and sharpening scores negative;
* ``chan_corr_real`` / ``chan_corr_gen``: the mean Pearson correlation between the noise of the
  three channel pairs (demosaicing and JPEG make real sRGB noise correlated across channels).
* ``mean_offset``: the root-mean-square over the channels of (mean generated noise - mean real
  noise), 0-255 scale (0 is right). Real sRGB noise is not zero-mean (a concave tone curve darkens
  it: 1-10 levels on SIDD at high ISO); a colour cast or brightness shift that a generator adds
  scores its size here, while the spectrum (mean removed) and std cannot see it.

The generated image is clipped to [0, 1] and rounded to 8 bits first, as a saved sRGB image is
(the NoiseFlow KLD recipe does the same); the real noisy image is used as read.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from pngan.errors import PnganError
from pngan.eval.noise_metrics import _as_batch as _batch

SPECTRUM_BINS = 16
LOWFREQ_CUTOFF = 0.125  # cycles/pixel
_LAPLACE = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)


def quantize8(x: torch.Tensor) -> torch.Tensor:
    """Clip to [0, 1] and round to 8 bits (what writing an 8-bit image does)."""
    return torch.round(x.clamp(0.0, 1.0) * 255.0) / 255.0


def _periodogram(noise) -> tuple[torch.Tensor, torch.Tensor]:
    """(power (H, W) averaged over batch and channels, mean removed; radial frequency (H, W) in
    cycles/pixel) of ``noise`` ((C,H,W) or (B,C,H,W))."""
    n = _batch(noise)
    n = n - n.mean(dim=(-2, -1), keepdim=True)
    h, w = n.shape[-2:]
    if min(h, w) < 8:
        raise PnganError(f"image too small for a noise spectrum (needs 8 pixels a side): {(h, w)}")
    p = torch.fft.fft2(n).abs().pow(2).mean(dim=(0, 1)) / (h * w)
    r = torch.sqrt(torch.fft.fftfreq(h, dtype=torch.float64)[:, None] ** 2
                   + torch.fft.fftfreq(w, dtype=torch.float64)[None, :] ** 2)
    return p, r


def _rings(p: torch.Tensor, r: torch.Tensor, bins: int) -> np.ndarray:
    idx = torch.floor(r / 0.5 * bins).long()
    keep = idx < bins
    sums = torch.zeros(bins, dtype=torch.float64).index_add_(0, idx[keep], p[keep])
    counts = torch.zeros(bins, dtype=torch.float64).index_add_(0, idx[keep], torch.ones_like(p[keep]))
    return (sums / counts.clamp(min=1)).numpy()


def _share_below(p: torch.Tensor, r: torch.Tensor, cutoff: float) -> float:
    total = float(p.sum())
    return float(p[r < cutoff].sum()) / total if total > 0 else 0.0


def radial_spectrum(noise, bins: int = SPECTRUM_BINS) -> np.ndarray:
    """Radially averaged power spectrum of ``noise`` ((C,H,W) or (B,C,H,W), any units), averaged
    over channels and batch: ``bins`` values for equal rings of [0, 0.5] cycles/pixel."""
    return _rings(*_periodogram(noise), bins)


def lowfreq_share(noise, cutoff: float = LOWFREQ_CUTOFF) -> float:
    """Share of the noise power (mean removed) below ``cutoff`` cycles/pixel."""
    return _share_below(*_periodogram(noise), cutoff)


def spectrum_compare(real_noise, gen_noise, bins: int = SPECTRUM_BINS) -> dict:
    """``spectrum_level_db`` and ``spectrum_shape`` of generated against real noise (see module)."""
    return _compare(_periodogram(real_noise), _periodogram(gen_noise), bins)


def _compare(real_pg, gen_pg, bins: int) -> dict:
    tiny = 1e-30
    # Parseval: the mean of the periodogram is the variance (mean removed) -> the level
    level = 10.0 * math.log10((float(gen_pg[0].mean()) + tiny) / (float(real_pg[0].mean()) + tiny))
    lr = np.log((_rings(*gen_pg, bins) + tiny) / (_rings(*real_pg, bins) + tiny))
    shape = float(np.sqrt(np.mean((lr - lr.mean()) ** 2)))
    return {"spectrum_level_db": float(level), "spectrum_shape": shape}


def content_leakage(noise, clean, border: int = 2) -> float:
    """Pearson correlation of ``noise`` with the Laplacian of ``clean`` (see module docstring)."""
    n, c = _batch(noise), _batch(clean)
    if tuple(n.shape) != tuple(c.shape):
        raise PnganError(f"content_leakage: shapes differ: {tuple(n.shape)} vs {tuple(c.shape)}")
    ch = c.shape[1]
    lap = F.conv2d(F.pad(c, (1, 1, 1, 1), mode="replicate"), _LAPLACE.expand(ch, 1, 3, 3), groups=ch)
    b = border
    a = n[..., b:-b, b:-b].reshape(-1)
    l = lap[..., b:-b, b:-b].reshape(-1)
    a, l = a - a.mean(), l - l.mean()
    den = float(torch.sqrt((a * a).sum() * (l * l).sum()))
    return float((a * l).sum()) / den if den > 0 else 0.0


def channel_correlation(noise) -> float:
    """Mean Pearson correlation of the noise between the channel pairs (RG, RB, GB)."""
    n = _batch(noise)
    if n.shape[1] < 2:
        return 0.0
    v = n.transpose(0, 1).reshape(n.shape[1], -1)
    v = v - v.mean(dim=1, keepdim=True)
    cov = v @ v.T
    d = torch.sqrt(torch.diagonal(cov)).clamp(min=1e-30)
    corr = cov / d[:, None] / d[None, :]
    iu = torch.triu_indices(n.shape[1], n.shape[1], 1)
    return float(corr[iu[0], iu[1]].mean())


def mean_offset(real_noise, gen_noise) -> float:
    """RMS over the channels of the difference of the per-channel noise means, 0-255 scale."""
    r, g = _batch(real_noise), _batch(gen_noise)
    d = g.mean(dim=(0, 2, 3)) - r.mean(dim=(0, 2, 3))
    return float(torch.sqrt((d * d).mean())) * 255.0


def structure_metrics(real_noisy, clean, gen_samples) -> dict:
    """All structure measures for one image: ``gen_samples`` is a list of generated noisy images
    (or one) for ``clean``; the generated side pools its samples."""
    if not isinstance(gen_samples, (list, tuple)):
        gen_samples = [gen_samples]
    c = _batch(clean)
    rn = _batch(real_noisy)
    if tuple(rn.shape) != tuple(c.shape):
        raise PnganError(f"real noisy and clean shapes differ: {tuple(rn.shape)} vs {tuple(c.shape)}")
    gens = [quantize8(_batch(g)) for g in gen_samples]
    for g in gens:
        if tuple(g.shape) != tuple(c.shape):
            raise PnganError(f"generated and clean shapes differ: {tuple(g.shape)} vs {tuple(c.shape)}")
    real_noise = rn - c
    gen_noise = torch.cat([g - c for g in gens], 0)
    c_all = c.expand(len(gens), -1, -1, -1)
    real_pg, gen_pg = _periodogram(real_noise), _periodogram(gen_noise)
    std_r = float(real_noise.std()) * 255.0
    std_g = float(gen_noise.std()) * 255.0
    out = {
        "std_real": std_r,
        "std_gen": std_g,
        "std_ratio": std_g / std_r if std_r > 0 else (float("inf") if std_g > 0 else float("nan")),
        **_compare(real_pg, gen_pg, SPECTRUM_BINS),
        "lowfreq_real": _share_below(*real_pg, LOWFREQ_CUTOFF),
        "lowfreq_gen": _share_below(*gen_pg, LOWFREQ_CUTOFF),
        "leakage_real": content_leakage(real_noise, c),
        "leakage_gen": content_leakage(gen_noise, c_all),
        "chan_corr_real": channel_correlation(real_noise),
        "chan_corr_gen": channel_correlation(gen_noise),
        "mean_offset": mean_offset(real_noise, gen_noise),
    }
    return out


STRUCTURE_KEYS = ("std_real", "std_gen", "std_ratio", "spectrum_level_db", "spectrum_shape", "lowfreq_real",
                  "lowfreq_gen", "leakage_real", "leakage_gen", "chan_corr_real", "chan_corr_gen", "mean_offset")
