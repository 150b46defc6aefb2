"""Descriptive noise statistics for the report: histograms, noise level function, power spectra.

All take noisy/clean tensors (3, H, W) in [0, 1] (or lists of them) and return numpy arrays.
"""

from __future__ import annotations

import numpy as np
import torch


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to(torch.float64).cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _stack(pairs) -> tuple[np.ndarray, np.ndarray]:
    """pairs: list of (noisy, clean) -> concatenated per-channel pixel arrays (3, N)."""
    n = np.concatenate([_np(a).reshape(_np(a).shape[0], -1) for a, _ in pairs], 1)
    c = np.concatenate([_np(b).reshape(_np(b).shape[0], -1) for _, b in pairs], 1)
    return n, c


def noise_histograms(pairs, levels_per_bin: int = 2, lim_levels: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel normalised histograms (densities) of noisy - clean: returns (centres, (3, bins)).
    Bins hold ``levels_per_bin`` whole 8-bit steps (edges at half steps, range +-lim_levels/255), so
    8-bit noise does not alias into a comb pattern."""
    n, c = _stack(pairs)
    edges = (np.arange(-lim_levels, lim_levels + 1, levels_per_bin) - 0.5) / 255.0
    hs = np.stack([np.histogram(n[ch] - c[ch], edges, density=True)[0] for ch in range(n.shape[0])])
    return 0.5 * (edges[1:] + edges[:-1]), hs


def noise_level_function(pairs, bins: int = 16, min_count: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Noise std per clean-intensity bin and channel: returns (centres, (3, bins)), NaN where a
    bin has fewer than ``min_count`` pixels."""
    n, c = _stack(pairs)
    edges = np.linspace(0.0, 1.0, bins + 1)
    out = np.full((n.shape[0], bins), np.nan)
    for ch in range(n.shape[0]):
        idx = np.clip(np.digitize(c[ch], edges) - 1, 0, bins - 1)
        e = n[ch] - c[ch]
        for b in range(bins):
            sel = e[idx == b]
            if sel.size >= min_count:
                out[ch, b] = sel.std()
    return 0.5 * (edges[1:] + edges[:-1]), out


def radial_power_spectrum(pairs, nbins: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of the noise per channel (mean over images), normalised to
    mean 1, so white noise is flat at 1 and spatially correlated noise falls off with frequency.
    Returns (normalised radial frequency in [0, 1], (3, nbins))."""
    acc = None
    for noisy, clean in pairs:
        e = _np(noisy) - _np(clean)
        e = e - e.mean(axis=(1, 2), keepdims=True)
        p = np.abs(np.fft.fft2(e)) ** 2  # (3, H, W)
        h, w = e.shape[1:]
        fy = np.fft.fftfreq(h)[:, None]
        fx = np.fft.fftfreq(w)[None, :]
        r = np.sqrt(fx**2 + fy**2) / np.sqrt(0.5)
        idx = np.clip((r * nbins).astype(int), 0, nbins - 1)
        prof = np.stack([np.bincount(idx.ravel(), p[ch].ravel(), nbins) /
                         np.maximum(np.bincount(idx.ravel(), None, nbins), 1) for ch in range(e.shape[0])])
        acc = prof if acc is None else acc + prof
    acc = acc / len(pairs)
    acc = acc / np.maximum(acc.mean(axis=1, keepdims=True), 1e-30)
    return (np.arange(nbins) + 0.5) / nbins, acc
