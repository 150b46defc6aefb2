"""PSNR and SSIM in torch, per image, matching scikit-image.

``psnr(x, y)`` = ``skimage.metrics.peak_signal_noise_ratio`` (MSE over all pixels and channels).
``ssim(x, y)`` = ``skimage.metrics.structural_similarity(..., channel_axis=-1, data_range=1,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``: an 11x11 Gaussian window
(sigma 1.5, truncate 3.5 -> radius 5), C1 = (0.01 L)^2, C2 = (0.03 L)^2, the SSIM map averaged
over the image with a 5-pixel border cropped (scikit-image filters with reflect padding and then
crops exactly that border, so a 'valid' convolution gives the same numbers), then over channels.
``ssim`` averages the R, G, B channels (key ``ssim_rgb`` in pngan's outputs); ``ssim_y`` is SSIM on
the BT.601 luma (key ``ssim_y``), the convention of PNGAN's released test code and of the paper's
tables. SSIM is differentiable (conv2d), so it can be used as a loss. Both accept (C,H,W) -> scalar tensor
or (B,C,H,W) -> (B,) tensor, and compute in the input dtype (float32 at least); pass float64 for
an exact match with scikit-image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pngan.errors import PnganError
from pngan.filters import gaussian_kernel1d

SSIM_SIGMA = 1.5
SSIM_RADIUS = int(3.5 * SSIM_SIGMA + 0.5)  # scipy's gaussian_filter truncate=3.5 -> 5


def _prep(x: torch.Tensor, y: torch.Tensor):
    if x.shape != y.shape:
        raise PnganError(f"metrics: image shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.dim() not in (3, 4):
        raise PnganError(f"metrics: expected (C,H,W) or (B,C,H,W), got {tuple(x.shape)}")
    single = x.dim() == 3
    if single:
        x, y = x[None], y[None]
    dt = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)
    return x.to(dt), y.to(dt), single


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image (inf for identical images)."""
    x, y, single = _prep(x, y)
    mse = (x - y).pow(2).flatten(1).mean(dim=1)
    out = 10 * torch.log10(data_range**2 / mse)
    return out[0] if single else out


SSIM_WIN = 2 * SSIM_RADIUS + 1  # the smallest side SSIM can score


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Structural similarity per image (mean over the cropped SSIM map and channels)."""
    x, y, single = _prep(x, y)
    b, c, h, w = x.shape
    win = SSIM_WIN
    if h < win or w < win:
        raise PnganError(f"ssim: images must be at least {win}x{win} pixels, got {h}x{w}")
    k = gaussian_kernel1d(SSIM_RADIUS, SSIM_SIGMA, x.dtype, x.device)
    kh = k.view(1, 1, win, 1).expand(c, 1, win, 1)
    kw = k.view(1, 1, 1, win).expand(c, 1, 1, win)

    def filt(t):
        return F.conv2d(F.conv2d(t, kh, groups=c), kw, groups=c)

    ux, uy = filt(x), filt(y)
    vx = filt(x * x) - ux * ux
    vy = filt(y * y) - uy * uy
    vxy = filt(x * y) - ux * uy
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    out = s.mean(dim=(1, 2, 3))
    return out[0] if single else out


# BT.601 luma with MATLAB's rgb2ycbcr offsets (ITU-R BT.601 "studio swing"): on the 0-255 scale
# Y = (65.481 R + 128.553 G + 24.966 B) / 255 + 16 for R, G, B in 0-255.
Y_COEFFS = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0


def rgb_to_y(x: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Y of YCbCr (B,3,H,W) or (3,H,W) -> (B,1,H,W) or (1,H,W), on the input's scale: MATLAB's
    ``rgb2ycbcr`` as used by BasicSR's ``test_y_channel`` and PNGAN's test code
    (``utils/image_utils.py``: ``rgb2ycbcr(img, only_y=True)`` on floats in [0, 1]:
    ``dot(255 img, [65.481, 128.553, 24.966]) / 255 + 16``, then ``/ 255``)."""
    if x.shape[-3] != 3:
        raise PnganError(f"rgb_to_y: expected 3 channels, got shape {tuple(x.shape)}")
    dt = torch.promote_types(x.dtype, torch.float32)
    w = torch.tensor(Y_COEFFS, dtype=dt, device=x.device).view(3, 1, 1)
    rgb255 = x.to(dt) * (255.0 / data_range)
    y = (rgb255 * w).sum(dim=-3, keepdim=True) / 255.0 + Y_OFFSET
    return y * (data_range / 255.0)


def ssim_y(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """SSIM on the luma channel (:func:`rgb_to_y`), the convention of PNGAN's released test code
    (``batch_SSIM``: ``ssim(Y2 * 255, Y1 * 255)`` with an 11x11 Gaussian window, sigma 1.5,
    C1 = (0.01*255)^2, C2 = (0.03*255)^2, the valid region [5:-5, 5:-5] averaged) and of
    BasicSR / MATLAB. Same window and constants as :func:`ssim`, which averages R, G, B instead."""
    if x.shape != y.shape:
        raise PnganError(f"metrics: image shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    return ssim(rgb_to_y(x, data_range), rgb_to_y(y, data_range), data_range)


__all__ = ["psnr", "ssim", "ssim_y", "rgb_to_y"]


def noise_variance_by_intensity(clean: torch.Tensor, noisy: torch.Tensor, edges) -> torch.Tensor:
    """Variance of ``noisy - clean`` over the pixels (all channels) whose clean value falls in
    each bin [edges[i], edges[i+1]); NaN for an empty bin. A diagnostic of signal dependence."""
    if clean.shape != noisy.shape:
        raise PnganError(f"metrics: image shapes differ: {tuple(clean.shape)} vs {tuple(noisy.shape)}")
    clean, noisy = clean.to(torch.float64), noisy.to(torch.float64)
    c = clean.flatten()
    n = (noisy - clean).flatten()
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = n[(c >= lo) & (c < hi)]
        out.append(sel.var() if sel.numel() > 1 else torch.tensor(float("nan"), dtype=n.dtype))
    return torch.stack(out)


def neighbour_correlation(noise: torch.Tensor) -> float:
    """Correlation coefficient of horizontally adjacent values of a noise map (.., H, W), each
    channel centred separately: about 0 for white noise, > 0 for spatially correlated noise."""
    x = noise.to(torch.float64)
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    a, b = x[..., :, :-1].flatten(), x[..., :, 1:].flatten()
    return float((a * b).mean() / (a.std() * b.std()))


__all__ += ["noise_variance_by_intensity", "neighbour_correlation"]
