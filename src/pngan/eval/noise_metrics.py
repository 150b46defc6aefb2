"""Noise-realism metrics: KLD (two published recipes), AKLD (DANet) and MMD.

All functions take tensors in [0, 1] intensity units, shaped (3, H, W) or (B, 3, H, W), and
return Python floats, so they are easy to call from Python (``pngan demo``) as well as from
``pngan evaluate noise``.

KLD recipes (forward KL(real || generated) between noise histograms, noise = noisy - clean):

* ``kld_noiseflow`` -- NoiseFlow (Abdelhamed et al., ICCV 2019, ``kl_div_3_data`` /
  ``kl_div_forward``) as reused by NeCA (Fu et al.): bins of width 0.2/64 over [-0.1, 0.1] plus
  one overflow bin on each side (everything below -0.1 / above 0.1), histograms normalised to
  probabilities, bins where either histogram is zero dropped, and the generated noisy image
  clipped to [0, 1] and rounded to 8 bits before the noise is taken (as a saved sRGB image would
  be). The real noisy image is used as read (it already is an 8-bit image for sRGB sets).
* ``kld_naflow`` -- NAFlow (Kim et al., ECCV 2024) evaluation: 256 equal bins over [-1, 1], no
  overflow bins (values outside are dropped by ``np.histogram``), same zero-bin dropping, no
  clipping/rounding of the generated image.

The reference code was not available offline to diff against; the recipes follow the published
descriptions above (see ``docs/paper-mapping.md``, "Realism metrics").
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from pngan.errors import PnganError

NOISEFLOW_BIN_WIDTH = 0.2 / 64
NOISEFLOW_RANGE = (-0.1, 0.1)
NAFLOW_BINS = 256
NAFLOW_RANGE = (-1.0, 1.0)


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to(torch.float64).cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _check_pair(a, b, what: str) -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise PnganError(f"{what}: shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")


def noiseflow_bin_edges() -> np.ndarray:
    """Interior edges -0.1 ... 0.1 in steps of 0.2/64 (65 edges, 64 bins)."""
    lo, hi = NOISEFLOW_RANGE
    return np.linspace(lo, hi, int(round((hi - lo) / NOISEFLOW_BIN_WIDTH)) + 1)


def histogram_probs(data, edges: np.ndarray, overflow: bool) -> np.ndarray:
    """Normalised histogram of ``data`` on ``edges``; with ``overflow`` two extra bins hold the
    values below the first / above the last edge (NoiseFlow's ``get_histogram``)."""
    d = _np(data).ravel()
    n = d.size
    if n == 0:
        raise PnganError("empty noise array given to a histogram")
    hist, _ = np.histogram(d, edges)
    hist = hist.astype(np.float64)
    if overflow:
        hist = np.concatenate(([np.sum(d < edges[0])], hist, [np.sum(d > edges[-1])]))
    return hist / n


def kl_forward(p: np.ndarray, q: np.ndarray) -> float:
    """sum p log(p/q) over the bins where both p and q are positive and finite."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    keep = np.isfinite(p) & np.isfinite(q) & (p > 0) & (q > 0)
    p, q = p[keep], q[keep]
    return float(np.sum(p * np.log(p / q)))


def kld_noiseflow(real_noisy, real_clean, gen_noisy, gen_clean=None) -> float:
    """KL(real || generated) with the NoiseFlow/NeCA histogram recipe (see module docstring)."""
    gen_clean = real_clean if gen_clean is None else gen_clean
    _check_pair(real_noisy, real_clean, "kld_noiseflow real")
    _check_pair(gen_noisy, gen_clean, "kld_noiseflow generated")
    real = _np(real_noisy) - _np(real_clean)
    g = np.round(np.clip(_np(gen_noisy), 0.0, 1.0) * 255.0) / 255.0
    gen = g - _np(gen_clean)
    edges = noiseflow_bin_edges()
    return kl_forward(histogram_probs(real, edges, True), histogram_probs(gen, edges, True))


def kld_naflow(real_noisy, real_clean, gen_noisy, gen_clean=None) -> float:
    """KL(real || generated) with 256 bins over [-1, 1] (NAFlow's evaluation recipe)."""
    gen_clean = real_clean if gen_clean is None else gen_clean
    _check_pair(real_noisy, real_clean, "kld_naflow real")
    _check_pair(gen_noisy, gen_clean, "kld_naflow generated")
    edges = np.linspace(NAFLOW_RANGE[0], NAFLOW_RANGE[1], NAFLOW_BINS + 1)
    real = _np(real_noisy) - _np(real_clean)
    gen = _np(gen_noisy) - _np(gen_clean)
    return kl_forward(histogram_probs(real, edges, False), histogram_probs(gen, edges, False))


# --------------------------------------------------------------------------------------------
# AKLD (DANet, Yue et al., ECCV 2020)

AKLD_WINDOW = 7
# OpenCV's default sigma for a window of size k: 0.3 * ((k - 1) * 0.5 - 1) + 0.8 -> 1.4 for k=7
AKLD_SIGMA = 0.3 * ((AKLD_WINDOW - 1) * 0.5 - 1) + 0.8


def _gauss_window(size: int, sigma: float, dtype=torch.float64) -> torch.Tensor:
    r = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


def _as_batch(x) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    t = t.detach().to(torch.float64).cpu()
    if t.dim() == 3:
        t = t.unsqueeze(0)
    if t.dim() != 4:
        raise PnganError(f"expected an image (C,H,W) or batch (B,C,H,W), got shape {tuple(t.shape)}")
    return t


def local_noise_variance(noisy, clean) -> torch.Tensor:
    """DANet's ``estimate_sigma_gauss``: 7x7 Gaussian blur (sigma 1.4, reflect padding) of the
    squared noise per channel, clamped at 1e-10. Returns (B, C, H, W) variances."""
    n, c = _as_batch(noisy), _as_batch(clean)
    _check_pair(n, c, "local_noise_variance")
    err2 = (n - c) ** 2
    ch = err2.shape[1]
    k = _gauss_window(AKLD_WINDOW, AKLD_SIGMA).expand(ch, 1, AKLD_WINDOW, AKLD_WINDOW)
    pad = AKLD_WINDOW // 2
    if min(err2.shape[-2:]) <= pad:
        raise PnganError(f"image too small for AKLD (needs > {pad} pixels a side): {tuple(err2.shape)}")
    var = F.conv2d(F.pad(err2, (pad, pad, pad, pad), mode="reflect"), k, groups=ch)
    return var.clamp_(min=1e-10)


def kl_gauss_zero_center(var_fake: torch.Tensor, var_real: torch.Tensor) -> float:
    """DANet's ``kl_gauss_zero_center``: r = var_fake / var_real clamped to [0.1, 10];
    0.5 * mean(log(1/r) + r - 1), the KL between zero-mean Gaussians N(0, fake) || N(0, real)
    per pixel, averaged over all pixels and channels."""
    r = (var_fake / var_real).clamp(0.1, 10.0)
    return float(0.5 * torch.mean(torch.log(1.0 / r) + r - 1.0))


def akld(real_noisy, clean, gen_noisy_samples) -> float:
    """AKLD: KL of the local noise variance maps, averaged over the L generated samples
    (``gen_noisy_samples``: one tensor or a list of tensors, each with ``clean``'s shape)."""
    if isinstance(gen_noisy_samples, (list, tuple)):
        samples = list(gen_noisy_samples)
    else:
        samples = [gen_noisy_samples]
    if not samples:
        raise PnganError("akld: no generated samples given")
    var_real = local_noise_variance(real_noisy, clean)
    vals = [kl_gauss_zero_center(local_noise_variance(g, clean), var_real) for g in samples]
    return float(np.mean(vals))


# --------------------------------------------------------------------------------------------
# MMD

MMD_PATCH = 8
MMD_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)


def noise_patches(noise, patch: int = MMD_PATCH, max_patches: int = 512, seed: int = 0) -> torch.Tensor:
    """Non-overlapping ``patch`` x ``patch`` x C noise patches flattened to vectors (N, C*p*p);
    at most ``max_patches`` of them, chosen with a fixed seed."""
    t = _as_batch(noise)
    if min(t.shape[-2:]) < patch:
        raise PnganError(f"image smaller than the MMD patch size {patch}: {tuple(t.shape)}")
    p = F.unfold(t, kernel_size=patch, stride=patch)  # (B, C*p*p, L)
    p = p.permute(0, 2, 1).reshape(-1, p.shape[1])
    if p.shape[0] > max_patches:
        g = torch.Generator().manual_seed(seed)
        p = p[torch.randperm(p.shape[0], generator=g)[:max_patches]]
    return p


def mmd_rbf(x: torch.Tensor, y: torch.Tensor, scales=MMD_SCALES) -> float:
    """Squared MMD, unbiased U-statistic (Gretton et al. 2012, eq. 3: diagonal terms left out, so
    it is ~0, possibly slightly negative, for equal distributions), with a sum of RBF kernels
    exp(-d^2 / (s * h)), where h is the mean pairwise squared distance over the pooled samples
    and s runs over ``scales``."""
    x = x.to(torch.float64)
    y = y.to(torch.float64)
    z = torch.cat([x, y], 0)
    d2 = torch.cdist(z, z).pow(2)
    n = z.shape[0]
    h = d2.sum() / max(n * n - n, 1)
    if not torch.isfinite(h) or h <= 0:
        return 0.0
    k = sum(torch.exp(-d2 / (s * h)) for s in scales)
    m, n2 = x.shape[0], y.shape[0]
    if m < 2 or n2 < 2:
        raise PnganError("MMD needs at least two noise patches on each side")
    kxx, kyy, kxy = k[:m, :m], k[m:, m:], k[:m, m:]
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (n2 * (n2 - 1))
    return float(sxx + syy - 2 * kxy.mean())


def mmd(real_noisy, real_clean, gen_noisy, gen_clean=None, patch: int = MMD_PATCH,
        max_patches: int = 512, seed: int = 0) -> float:
    """MMD between real and generated noise patches (see :func:`mmd_rbf`)."""
    gen_clean = real_clean if gen_clean is None else gen_clean
    real = _as_batch(real_noisy) - _as_batch(real_clean)
    gen = _as_batch(gen_noisy) - _as_batch(gen_clean)
    return mmd_rbf(noise_patches(real, patch, max_patches, seed),
                   noise_patches(gen, patch, max_patches, seed + 1))


def noise_metrics(real_noisy, clean, gen_samples, *, mmd_patch: int = MMD_PATCH) -> dict:
    """All realism metrics for one image: ``gen_samples`` is a list of generated noisy tensors for
    ``clean``. KLD and MMD use the first sample's pooled noise over all samples; AKLD averages
    over samples. Returns a dict of floats."""
    if not isinstance(gen_samples, (list, tuple)):
        gen_samples = [gen_samples]
    gens = [_as_batch(g) for g in gen_samples]
    for g in gens:
        _check_pair(g, _as_batch(clean), "generated vs clean")
    g_all = torch.cat(gens, 0)
    c_all = _as_batch(clean).expand(len(gens), -1, -1, -1)
    rn, c1 = _as_batch(real_noisy), _as_batch(clean)
    rn_all = rn.expand(len(gens), -1, -1, -1)
    out = {
        "kld_noiseflow": kld_noiseflow(rn_all, c_all, g_all, c_all),
        "kld_naflow": kld_naflow(rn_all, c_all, g_all, c_all),
        "akld": akld(rn, c1, gens),
        "mmd": mmd(rn, c1, g_all, c_all, patch=mmd_patch),
        "samples": len(gens),
    }
    for k, v in out.items():
        if isinstance(v, float) and not math.isfinite(v):
            raise PnganError(f"metric {k} is not finite ({v})")
    return out
