"""Noise-realism metrics: KLD (three published recipes), AKLD (DANet) and MMD.

All functions take tensors in [0, 1] intensity units, shaped (3, H, W) or (B, 3, H, W), and
return Python floats, so they are easy to call from Python (``pngan demo``) as well as from
``pngan evaluate noise``. Every KLD is forward KL(real || generated) between noise histograms
(noise = noisy - clean) and each follows one published evaluation script literally (checked
against the code, see ``docs/paper-mapping.md``, "Realism metrics"):

* ``kld_noiseflow`` -- NoiseFlow (Abdelhamed et al., ICCV 2019; BorealisAI/noise_flow,
  ``sidd/sidd_utils.py``: ``kldiv_patch_set`` edges, ``get_histogram``) as used for sRGB by NeCA
  (Fu et al., CVPR 2023; zfu006/sRGB-Real-Noise-Synthesis, ``utils/utils_image.py``:
  ``noise_quantization`` + ``cal_kld``). Bin edges
  ``concatenate(([-1000], np.arange(-0.1, 0.1 + 1e-9, 0.2 / 64), [1000]))`` -- built with
  ``arange``, whose centre edge is 8.3e-17, not 0, so 8-bit noise value 0 falls in the bin below
  0 -- then ``np.histogram`` / number of values, bins where either histogram is empty dropped,
  ``sum(p * (log p - log q))``. The generated image is clipped to [0, 1] and rounded to 8 bits
  (``round(x * 255) / 255``) before the noise is taken; the noise is computed in the images'
  dtype (float32 for images read from files, as NeCA's tensors).
* ``kld_flowsrgb`` -- Flow-sRGB (Kousha et al., CVPR 2022; SamsungLabs/Noise2NoiseFlow,
  ``data_loader/sidd_utils.py``: ``kldiv_patch_set_v2``, sRGB branch) and NM-FlowGAN (Han & Yu;
  YoungJooHan/NM-FlowGAN, ``util/util.py``: ``kl_div_3_data``): noise on the 0-255 scale, bins
  ``np.arange(-260, 261, 4)`` (130 bins of width 4), add-one smoothing of both histograms
  ``(h + 1) / (n + bins)``, ``sum(p * log(p / q))``. The generated image is clipped (to [0, 1];
  NM-FlowGAN clips to [0, 256] gray levels) but not rounded. 8-bit images (every value k/255) are
  taken as exact integers k, as the published code reads them.
* ``kld_naflow`` -- NAFlow (Kim et al., ICLR 2024; dongjinkim9/NAFlow, ``naflow/utils/metrics.py``
  ``calculate_kld`` as called by ``models/lit_naflow.py``): edges
  ``np.arange(-1, 1 + 2/256, 2/256)`` (256 bins), ``np.histogram`` / number of values, empty bins
  of either histogram dropped, ``sum(p * (log p - log q))``; the generated image is clamped to
  [0, 1], not rounded; noise in the images' dtype.

With several generated samples of one image, each KLD is computed per sample (as every published
script does with its one sample) and averaged over the samples.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from pngan.errors import PnganError

NOISEFLOW_BIN_WIDTH = 0.2 / 64
FLOWSRGB_BIN_WIDTH = 4
FLOWSRGB_RANGE = (-260.0, 261.0)  # arange's stop: the last edge is 260
NAFLOW_BINS = 256
NAFLOW_RANGE = (-1.0, 1.0)
KLD_KEYS = ("kld_noiseflow", "kld_flowsrgb", "kld_naflow")
# what every output key means: the recipe each number follows (printed by the CLI, in the report)
METRIC_LABELS = {
    "kld_noiseflow": "KLD, NoiseFlow/NeCA recipe (66 bins of 0.2/64 + overflow, generated rounded to 8 bits)",
    "kld_flowsrgb": "KLD, Flow-sRGB/NM-FlowGAN recipe (bins of 4 on the 0-255 noise, add-one smoothing)",
    "kld_naflow": "KLD, NAFlow recipe (256 bins on [-1, 1], generated clamped)",
    "akld": "AKLD, DANet recipe (7x7 local variance, mean over the L samples)",
    "mmd": "MMD^2, unbiased, 8x8 noise patches, multi-scale RBF",
    "psnr": "PSNR (dB) on R, G, B",
    "psnr_input": "PSNR (dB) of the noisy input",
    "ssim_y": "SSIM (Y): BT.601 luma, as PNGAN's test code and the paper's tables",
    "ssim_rgb": "SSIM (RGB): mean over R, G, B (scikit-image)",
}


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to(torch.float64).cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _check_pair(a, b, what: str) -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise PnganError(f"{what}: shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")


def _t(x) -> torch.Tensor:
    """A tensor in its own floating dtype, at least float32 (as the published scripts' tensors)."""
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    t = t.detach().cpu()
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _noise_np(noisy: torch.Tensor, clean: torch.Tensor) -> np.ndarray:
    dt = torch.promote_types(noisy.dtype, clean.dtype)
    return (noisy.to(dt) - clean.to(dt)).numpy().ravel()


def noiseflow_bin_edges() -> np.ndarray:
    """NoiseFlow's edges: -1000, arange(-0.1, 0.1 + 1e-9, 0.2/64) (65 edges), 1000 -> 66 bins."""
    return np.concatenate(([-1000.0], np.arange(-0.1, 0.1 + 1e-9, NOISEFLOW_BIN_WIDTH), [1000.0]), axis=0)


def flowsrgb_bin_edges() -> np.ndarray:
    """Flow-sRGB / NM-FlowGAN edges on the 0-255 noise: -260, -256, ..., 260 (130 bins)."""
    return np.arange(FLOWSRGB_RANGE[0], FLOWSRGB_RANGE[1], FLOWSRGB_BIN_WIDTH)


def naflow_bin_edges() -> np.ndarray:
    """NAFlow's edges: arange(-1, 1 + 2/256, 2/256) (257 edges, 256 bins)."""
    w = (NAFLOW_RANGE[1] - NAFLOW_RANGE[0]) / NAFLOW_BINS
    return np.arange(NAFLOW_RANGE[0], NAFLOW_RANGE[1] + w, w)


def _counts(data: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, int]:
    n = int(np.prod(data.shape))
    if n == 0:
        raise PnganError("empty noise array given to a histogram")
    hist, _ = np.histogram(data, edges)
    return hist, n


def _kl_both_positive(p: np.ndarray, q: np.ndarray) -> float:
    """NoiseFlow's ``kl_div_3_data`` / NeCA's ``cal_kld`` / NAFlow's ``calculate_kld`` forward
    term: bins where both are positive, ``sum(p * (log p - log q))``."""
    idx = (p > 0) & (q > 0)
    p, q = p[idx], q[idx]
    return float(np.sum(p * (np.log(p) - np.log(q))))


def kld_noiseflow_noise(real_noise, gen_noise) -> float:
    """The NoiseFlow/NeCA histogram KL on two noise arrays (any shape, [0, 1] units)."""
    edges = noiseflow_bin_edges()
    (hr, nr), (hg, ng) = _counts(np.asarray(real_noise), edges), _counts(np.asarray(gen_noise), edges)
    return _kl_both_positive(hr / nr, hg / ng)


def kld_flowsrgb_noise(real_noise255, gen_noise255) -> float:
    """The Flow-sRGB / NM-FlowGAN KL on two noise arrays on the 0-255 scale."""
    edges = flowsrgb_bin_edges()
    (hr, nr), (hg, ng) = _counts(np.asarray(real_noise255), edges), _counts(np.asarray(gen_noise255), edges)
    p = (hr + 1) / (nr + 1 * len(hr))
    q = (hg + 1) / (ng + 1 * len(hg))
    idx = p > 0
    p, q = p[idx], q[idx]
    return float(np.sum(p * np.log(p / q)))


def kld_naflow_noise(real_noise, gen_noise) -> float:
    """NAFlow's histogram KL on two noise arrays ([0, 1] units)."""
    edges = naflow_bin_edges()
    (hr, nr), (hg, ng) = _counts(np.asarray(real_noise), edges), _counts(np.asarray(gen_noise), edges)
    return _kl_both_positive(hr / nr, hg / ng)


def quantise8(x: torch.Tensor) -> torch.Tensor:
    """NeCA's ``noise_quantization`` image step: clip to [0, 1], ``round(x * 255) / 255``."""
    return torch.round(torch.clip(x, 0, 1) * 255) / 255.0


def kld_noiseflow(real_noisy, real_clean, gen_noisy, gen_clean=None) -> float:
    """KL(real || generated) with the NoiseFlow/NeCA recipe (see module docstring)."""
    gen_clean = real_clean if gen_clean is None else gen_clean
    _check_pair(real_noisy, real_clean, "kld_noiseflow real")
    _check_pair(gen_noisy, gen_clean, "kld_noiseflow generated")
    rn, rc, gn, gc = _t(real_noisy), _t(real_clean), _t(gen_noisy), _t(gen_clean)
    return kld_noiseflow_noise(_noise_np(rn, rc), _noise_np(quantise8(gn), gc))


def gray_levels(x) -> np.ndarray:
    """``x`` on the 0-255 scale (float64); an image whose every value is k/255 (to float32
    precision) gives the exact integers k, as the published scripts read 8-bit files."""
    v = _np(x) * 255.0
    r = np.round(v)
    if v.size and np.max(np.abs(v - r)) <= 1e-3:
        return r
    return v


def kld_flowsrgb(real_noisy, real_clean, gen_noisy, gen_clean=None) -> float:
    """KL(real || generated) with the Flow-sRGB / NM-FlowGAN recipe (see module docstring)."""
    gen_clean = real_clean if gen_clean is None else gen_clean
    _check_pair(real_noisy, real_clean, "kld_flowsrgb real")
    _check_pair(gen_noisy, gen_clean, "kld_flowsrgb generated")
    real = gray_levels(real_noisy) - gray_levels(real_clean)
    gen = gray_levels(_t(gen_noisy).clamp(0, 1)) - gray_levels(gen_clean)
    return kld_flowsrgb_noise(real.ravel(), gen.ravel())


def kld_naflow(real_noisy, real_clean, gen_noisy, gen_clean=None) -> float:
    """KL(real || generated) with NAFlow's recipe (see module docstring)."""
    gen_clean = real_clean if gen_clean is None else gen_clean
    _check_pair(real_noisy, real_clean, "kld_naflow real")
    _check_pair(gen_noisy, gen_clean, "kld_naflow generated")
    rn, rc, gn, gc = _t(real_noisy), _t(real_clean), _t(gen_noisy), _t(gen_clean)
    return kld_naflow_noise(_noise_np(rn, rc), _noise_np(gn.clamp(0.0, 1.0), gc))


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
        raise PnganError(f"image is {err2.shape[-2]}x{err2.shape[-1]}, too small for AKLD (needs at least "
                         f"{pad + 1}x{pad + 1})")
    var = F.conv2d(F.pad(err2, (pad, pad, pad, pad), mode="reflect"), k, groups=ch)
    return var.clamp_(min=1e-10)


def kl_gauss_zero_center(var_fake: torch.Tensor, var_real: torch.Tensor) -> float:
    """DANet's ``kl_gauss_zero_center``: r = var_fake / var_real clamped to [0.1, 10];
    0.5 * mean(log(1/r) + r - 1), the KL between zero-mean Gaussians N(0, fake) || N(0, real)
    per pixel, averaged over all pixels and channels."""
    r = (var_fake / var_real).clamp(0.1, 10.0)
    return float(0.5 * torch.mean(torch.log(1.0 / r) + r - 1.0))


def akld(real_noisy, clean, gen_noisy_samples) -> float:
    """AKLD (DANet's ``demo_AKLD.py`` protocol): for each of the L generated samples (one tensor
    or a list, each with ``clean``'s shape) clamp it to [0, 1], take the local variance map and
    the KL against the real one; AKLD = sum / L. DANet uses L = 50."""
    if isinstance(gen_noisy_samples, (list, tuple)):
        samples = list(gen_noisy_samples)
    else:
        samples = [gen_noisy_samples]
    if not samples:
        raise PnganError("akld: no generated samples given")
    var_real = local_noise_variance(real_noisy, clean)
    # DANet's demo_AKLD.py: each fake sample is clamped to [0, 1], then sigma, then KL; / L
    vals = [kl_gauss_zero_center(local_noise_variance(_as_batch(g).clamp(0.0, 1.0), clean), var_real)
            for g in samples]
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
    """All realism metrics for one image: ``gen_samples`` is a list of L generated noisy tensors
    for ``clean``. Each KLD is computed per sample and averaged over the L samples (each published
    script scores one sample); AKLD averages over the L samples (DANet's protocol); MMD pools the
    patches of all samples. Returns a dict of floats plus ``samples`` = L."""
    if not isinstance(gen_samples, (list, tuple)):
        gen_samples = [gen_samples]
    if not gen_samples:
        raise PnganError("noise_metrics: no generated samples given")
    gens = [_as_batch(g) for g in gen_samples]
    for g in gens:
        _check_pair(g, _as_batch(clean), "generated vs clean")
    out: dict = {}
    for key, fn in (("kld_noiseflow", kld_noiseflow), ("kld_flowsrgb", kld_flowsrgb), ("kld_naflow", kld_naflow)):
        out[key] = float(np.mean([fn(real_noisy, clean, g.reshape(clean.shape), clean) for g in gen_samples]))
    g_all = torch.cat(gens, 0)
    c_all = _as_batch(clean).expand(len(gens), -1, -1, -1)
    rn, c1 = _as_batch(real_noisy), _as_batch(clean)
    out["akld"] = akld(rn, c1, gens)
    out["mmd"] = mmd(rn, c1, g_all, c_all, patch=mmd_patch)
    out["samples"] = len(gens)
    for k, v in out.items():
        if isinstance(v, float) and not math.isfinite(v):
            raise PnganError(f"metric {k} is not finite ({v})")
    return out
