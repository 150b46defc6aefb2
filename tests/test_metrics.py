"""PSNR/SSIM in torch against scikit-image."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pngan.errors import PnganError
from pngan.eval.metrics import neighbour_correlation, noise_variance_by_intensity, psnr, ssim


def _sk_ssim(a, b):
    return structural_similarity(
        a.permute(1, 2, 0).numpy(), b.permute(1, 2, 0).numpy(), channel_axis=-1, data_range=1,
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    )


@pytest.mark.parametrize("h,w", [(11, 11), (12, 17), (37, 52), (64, 63)])
def test_match_scikit_image(h, w):
    g = torch.Generator().manual_seed(h * 100 + w)
    x = torch.rand(3, 3, h, w, generator=g, dtype=torch.float64)
    y = (x + 0.1 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    y[2] = x[2] * 0.7 + 0.1  # a contrast/brightness change, not only noise
    s, p = ssim(x, y), psnr(x, y)
    assert s.shape == (3,) and p.shape == (3,)
    for i in range(3):
        assert abs(float(s[i]) - _sk_ssim(x[i], y[i])) < 1e-4
        assert abs(float(p[i]) - peak_signal_noise_ratio(x[i].numpy(), y[i].numpy(), data_range=1)) < 1e-4
    # single images give scalars
    assert ssim(x[0], y[0]).dim() == 0 and abs(float(psnr(x[0], y[0]) - p[0])) < 1e-9


def test_match_on_real_image_float32_and_range():
    from pngan.data.camera import load_clean

    x = load_clean("coffee")[:, :101, :77]
    y = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert abs(float(ssim(x, y)) - _sk_ssim(x.double(), y.double())) < 1e-4  # float32 compute
    x255, y255 = x.double() * 255, y.double() * 255
    ref = structural_similarity(x255.permute(1, 2, 0).numpy(), y255.permute(1, 2, 0).numpy(), channel_axis=-1,
                                data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert abs(float(ssim(x255, y255, data_range=255)) - ref) < 1e-4
    assert abs(float(psnr(x255, y255, data_range=255)) - float(psnr(x, y))) < 1e-3


def test_identical_and_errors():
    x = torch.rand(3, 16, 16)
    assert math.isinf(float(psnr(x, x)))
    assert abs(float(ssim(x, x)) - 1) < 1e-6
    with pytest.raises(PnganError, match="at least 11x11"):
        ssim(torch.rand(3, 10, 20), torch.rand(3, 10, 20))
    with pytest.raises(PnganError, match="shapes differ"):
        psnr(torch.rand(3, 8, 8), torch.rand(3, 8, 9))


def test_ssim_is_differentiable_and_improves_under_descent():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(1, 3, 24, 24, generator=g)
    x = (target + 0.3 * torch.randn(target.shape, generator=g)).requires_grad_(True)
    opt = torch.optim.SGD([x], lr=2.0)
    before = float(ssim(x.detach(), target))
    for _ in range(20):
        opt.zero_grad()
        loss = 1 - ssim(x, target).mean()
        loss.backward()
        assert torch.isfinite(x.grad).all()
        opt.step()
    assert float(ssim(x.detach(), target)) > before + 0.1


def test_noise_diagnostics():
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(1, 3, 64, 64, generator=g)
    white = torch.randn(clean.shape, generator=g) * 0.1
    assert abs(neighbour_correlation(white)) < 0.05
    smooth = torch.nn.functional.avg_pool2d(white, 3, 1, 1)
    assert neighbour_correlation(smooth) > 0.5
    v = noise_variance_by_intensity(clean, clean + white * clean, [0.0, 0.25, 0.5, 0.75, 1.0])
    assert torch.all(v[1:] > v[:-1])
    assert torch.isnan(noise_variance_by_intensity(clean, clean, [2.0, 3.0]))[0]


def _pngan_batch_ssim(restored, gt):
    """PNGAN's released test code (caiyuanhao1998/PNGAN utils/image_utils.py) written out in numpy:
    rgb2ycbcr(only_y) on (C,H,W) floats via transpose (2,1,0), then ssim(Y_gt*255, Y_out*255) with
    an 11x11 Gaussian (sigma 1.5) filter2D and the [5:-5, 5:-5] crop (= a 'valid' correlation)."""
    from scipy.signal import correlate2d

    def y_of(img):
        a = img.numpy().astype(np.float64).transpose((2, 1, 0)) * 255.0
        return (np.dot(a, [65.481, 128.553, 24.966]) / 255.0 + 16.0) / 255.0

    i1, i2 = y_of(gt) * 255, y_of(restored) * 255
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    g /= g.sum()
    win = np.outer(g, g)
    f = lambda t: correlate2d(t, win, mode="valid")  # noqa: E731
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu1, mu2 = f(i1), f(i2)
    s1, s2, s12 = f(i1 * i1) - mu1**2, f(i2 * i2) - mu2**2, f(i1 * i2) - mu1 * mu2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s1 + s2 + c2))
    return m.mean()


def test_ssim_y_matches_pngan_test_code():
    from pngan.eval.metrics import rgb_to_y, ssim_y

    g = torch.Generator().manual_seed(3)
    gt = torch.rand(3, 30, 41, generator=g, dtype=torch.float64)
    gt[0] *= 0.3  # colourful: Y and the RGB mean differ
    out = (gt + 0.08 * torch.randn(3, 30, 41, generator=g, dtype=torch.float64)).clamp(0, 1)
    want = _pngan_batch_ssim(out, gt)
    assert float(ssim_y(out, gt)) == pytest.approx(want, abs=1e-10)
    assert abs(float(ssim(out, gt)) - want) > 1e-3  # the RGB mean is a different number
    # Y of white / black: 235/255 and 16/255 (MATLAB rgb2ycbcr)
    assert float(rgb_to_y(torch.ones(3, 1, 1, dtype=torch.float64))) == pytest.approx(235 / 255, abs=1e-9)
    assert float(rgb_to_y(torch.zeros(3, 1, 1))) == pytest.approx(16 / 255, abs=1e-7)
    # data_range 255 gives the same SSIM for the same images on the 0-255 scale
    assert float(ssim_y(out * 255, gt * 255, data_range=255)) == pytest.approx(want, abs=1e-9)
