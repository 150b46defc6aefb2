import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from pngan.errors import PnganError
from pngan.eval import noise_metrics as nm


def _gauss(sigma, shape=(3, 192, 192), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64) * sigma


def _kl_gauss(s1, s2):  # KL(N(0,s1^2) || N(0,s2^2))
    return math.log(s2 / s1) + s1**2 / (2 * s2**2) - 0.5


def test_identical_noise_gives_zero():
    clean = torch.full((3, 64, 64), 0.5, dtype=torch.float64)
    noisy = (clean + _gauss(0.03, (3, 64, 64))).clamp(0, 1)
    noisy8 = torch.round(noisy * 255) / 255
    assert nm.kld_noiseflow(noisy8, clean, noisy8) == pytest.approx(0.0, abs=1e-12)
    assert nm.kld_naflow(noisy, clean, noisy) == pytest.approx(0.0, abs=1e-12)
    assert nm.akld(noisy, clean, [noisy, noisy]) == pytest.approx(0.0, abs=1e-12)
    # unbiased MMD^2: identical sets give minus the diagonal bias, never a positive value
    assert nm.mmd(noisy, clean, noisy) <= 0.0


# generated wider than or equal to real: where the generated histogram is narrower, the recipe
# drops real tail bins with no generated counts and underestimates (that is the recipe).
@pytest.mark.parametrize("s1,s2", [(0.05, 0.08), (0.05, 0.06), (0.1, 0.1)])
def test_kld_naflow_matches_gaussian_closed_form(s1, s2):
    clean = torch.full((3, 192, 192), 0.5, dtype=torch.float64)  # the generated image is clamped to [0, 1]
    real, gen = clean + _gauss(s1, seed=1), clean + _gauss(s2, seed=2)
    got = nm.kld_naflow(real, clean, gen, clean)
    want = _kl_gauss(s1, s2)
    assert got == pytest.approx(want, abs=0.01 + 0.05 * want)


def test_kld_noiseflow_gaussian_and_overflow_bins():
    clean = torch.full((3, 192, 192), 0.5, dtype=torch.float64)
    real = torch.round((clean + _gauss(0.02, seed=1)) * 255) / 255  # real sRGB is 8-bit too
    close = nm.kld_noiseflow(real, clean, clean + _gauss(0.02, seed=2))
    far = nm.kld_noiseflow(real, clean, clean + _gauss(0.03, seed=2))
    assert close < 0.02
    assert far == pytest.approx(_kl_gauss(0.02, 0.03), abs=0.03)
    assert far > close
    # everything beyond +-0.1 lands in the overflow bins: both all-overflow -> identical histograms
    assert nm.kld_noiseflow(clean + 0.3, clean, clean + 0.2) == pytest.approx(0.0, abs=1e-12)
    # half of the real noise overflows, generated never: the dropped-zero-bin KL is log(2)*0.5-ish
    real2 = clean.clone()
    real2[:, :96] += 0.2
    h = np.histogram((real2 - clean).numpy(), nm.noiseflow_bin_edges())[0] / real2.numel()
    assert h[-1] == pytest.approx(0.5) and h.sum() == pytest.approx(1.0)


def test_histogram_edges_and_rounding():
    e = nm.noiseflow_bin_edges()[1:-1]
    assert len(e) == 65 and e[0] == pytest.approx(-0.1) and e[-1] == pytest.approx(0.1)
    assert np.diff(e) == pytest.approx(np.full(64, 0.2 / 64))
    # generated image is clipped to [0,1] and rounded to 8 bits before the noise is taken
    clean = torch.full((1, 8, 8), 0.5, dtype=torch.float64)
    real = torch.round((clean + 0.01) * 255) / 255
    gen_unrounded = clean + 0.01 + 1e-4  # rounds to the same 8-bit value as real
    assert nm.kld_noiseflow(real, clean, gen_unrounded) == pytest.approx(0.0, abs=1e-12)


def test_local_variance_matches_scipy_gaussian_filter():
    noise = _gauss(0.05, (2, 3, 20, 24), seed=3)
    var = nm.local_noise_variance(noise, torch.zeros_like(noise)).numpy()
    ref = ndimage.gaussian_filter(noise.numpy() ** 2, sigma=(0, 0, 1.4, 1.4), mode="mirror",
                                  truncate=3 / 1.4)
    assert np.allclose(var, np.maximum(ref, 1e-10), rtol=1e-10, atol=1e-14)
    assert nm.AKLD_SIGMA == pytest.approx(1.4)


@pytest.mark.parametrize("k", [0.5, 1.5, 2.0, 5.0])
def test_akld_scaled_noise_closed_form(k):
    clean = torch.full((3, 32, 32), 0.5, dtype=torch.float64)
    n = _gauss(0.02, (3, 32, 32), seed=4)  # k * n stays inside [0, 1] (AKLD clamps the samples)
    r = min(max(k * k, 0.1), 10.0)  # DANet clamps the variance ratio to [0.1, 10]
    want = 0.5 * (math.log(1 / r) + r - 1)
    assert nm.akld(clean + n, clean, clean + k * n) == pytest.approx(want, rel=1e-9)
    # averaged over samples
    two = nm.akld(clean + n, clean, [clean + k * n, clean + n])
    assert two == pytest.approx(want / 2, rel=1e-9)


def test_mmd_grows_with_variance_gap():
    clean = torch.zeros(3, 64, 64, dtype=torch.float64)
    real = _gauss(0.05, (3, 64, 64), seed=5)
    vals = [nm.mmd(real, clean, _gauss(s, (3, 64, 64), seed=6)) for s in (0.05, 0.06, 0.08, 0.12)]
    assert abs(vals[0]) < 0.01
    assert all(a < b for a, b in zip(vals, vals[1:])), vals


def test_noise_metrics_dict_and_errors():
    clean = torch.full((3, 32, 32), 0.5)
    real = clean + _gauss(0.03, (3, 32, 32), seed=7).float()
    out = nm.noise_metrics(real, clean, [clean + _gauss(0.05, (3, 32, 32), seed=8).float()] * 2)
    assert set(out) == {"kld_noiseflow", "kld_flowsrgb", "kld_naflow", "akld", "mmd", "samples"}
    assert out["samples"] == 2 and all(out[k] > 0 for k in ("kld_naflow", "akld", "mmd"))
    with pytest.raises(PnganError, match="shapes differ"):
        nm.noise_metrics(real, clean, [clean[:, :16]])
    with pytest.raises(PnganError, match="too small"):
        nm.akld(real[:, :3, :3], clean[:, :3, :3], real[:, :3, :3])
