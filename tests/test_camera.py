"""camera:builtin: the built-in simulated camera data set."""

import torch
import torch.nn.functional as F

import pngan.data.camera as cam
from pngan.data.base import ImageSet
from pngan.errors import PnganError
from pngan.eval.metrics import neighbour_correlation, noise_variance_by_intensity
from pngan.noise.isp import mosaic

import pytest


def test_splits_and_samples():
    tr, te = cam.CameraSet(), cam.CameraSet("test")
    assert isinstance(tr, ImageSet) and tr.kind == "camera"
    assert tr.spec == "camera:builtin" and te.spec == "camera:builtin@test"
    assert len(tr) == 7 and len(te) == 2 and not set(tr.names) & set(te.names)
    for s in list(te) + [tr[0]]:
        assert s.clean.shape == s.noisy.shape and s.clean.dtype == torch.float32
        assert max(s.clean.shape[1:]) <= cam.MAX_SIDE
        assert 0 <= s.noisy.min() and s.noisy.max() <= 1
        assert s.meta["simulated"] is True
    assert "7 pairs" in tr.describe()
    assert cam.CameraSet("all").names == tr.names + te.names
    with pytest.raises(PnganError, match="split"):
        cam.CameraSet("val")


def test_deterministic_cached_and_seeded():
    s = cam.CameraSet("test")
    a = s[0].noisy
    assert s.noisy(s.names[0]) is s.noisy(s.names[0])  # cached in memory
    s[0].noisy.zero_()  # samples are copies: the cache is not corrupted
    assert torch.equal(s[0].noisy, a)
    cam._NOISY_CACHE.clear()
    assert torch.equal(cam.CameraSet("test")[0].noisy, a)  # recomputed: same
    assert not torch.equal(cam.CameraSet("test", seed=1)[0].noisy, a)


def test_malvar_exact_on_linear_ramps_and_odd_sizes():
    yy, xx = torch.meshgrid(torch.arange(12.0, dtype=torch.float64), torch.arange(14.0, dtype=torch.float64), indexing="ij")
    ramp = torch.stack([0.2 + 0.01 * yy, 0.4 + 0.02 * xx, 0.5 + 0.01 * (xx - yy)]).double()[None]
    est = cam._malvar_demosaic(F.pixel_shuffle(mosaic(ramp), 2))
    assert (est - ramp)[..., 2:-2, 2:-2].abs().max() < 1e-9
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    assert (cam._inverse_tone(cam._tone(t)) - t).abs().max() < 1e-9
    x = torch.rand(2, 3, 15, 21)
    y = cam.simulate_camera(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == x.dtype
    # JPEG output is 8-bit
    assert torch.allclose(y * 255, (y * 255).round(), atol=1e-4)


def test_noise_is_signal_dependent_and_correlated():
    s = cam.CameraSet()
    clean = [s[i].clean for i in range(3)]
    noisy = [s[i].noisy for i in range(3)]
    edges = [0.02, 0.14, 0.26, 0.38, 0.5, 0.62, 0.74, 0.86, 0.98]
    v = noise_variance_by_intensity(torch.cat([c.flatten() for c in clean]), torch.cat([n.flatten() for n in noisy]), edges)
    corr = sum(neighbour_correlation(n - c) for c, n in zip(clean, noisy)) / 3
    print(f"camera:builtin noise var*255^2 by bin {[round(float(a) * 65025, 1) for a in v]}; "
          f"max/min {float(v.max() / v.min()):.2f}; neighbour corr {corr:.3f}")
    assert float(v.max() / v.min()) > 1.5
    assert corr > 0.1
    # flat grey patches before JPEG: the sRGB noise level varies with the level (shot noise
    # through the sRGB curve and tone curve: rises from the darks to the mid-tones, falls in the
    # highlights), unlike AWGN
    g = torch.Generator().manual_seed(0)
    flat = torch.stack([torch.full((3, 32, 32), lvl) for lvl in (0.05, 0.3, 0.9)])
    stds = (cam.simulate_camera(flat, g, jpeg=False) - flat).flatten(1).std(dim=1) * 255
    assert stds[1] > 1.3 * stds[0] and stds[1] > 1.3 * stds[2] and stds.min() > 3
