"""Known-answer tests of the noise-structure measures and the calibrated (fitted) setting."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from pngan.eval.noise_structure import (channel_correlation, content_leakage, lowfreq_share, spectrum_compare,
                                        structure_metrics)
from pngan.noise import build_synthetic, resolve_setting
from pngan.noise.calibrated import CalibratedNoise, fit_calibrated, load_calibration, save_calibration


def _clean(h=128, w=128, seed=0) -> torch.Tensor:
    """A clean test image with edges and texture: blocks, a gradient and smooth blobs, in [0.1, 0.9]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    blocks = ((torch.floor(yy * 6) + torch.floor(xx * 6)) % 2)
    blobs = F.interpolate(torch.rand(1, 3, 8, 8, generator=g), size=(h, w), mode="bicubic", align_corners=False)[0]
    img = 0.35 * blocks + 0.25 * xx + 0.3 * blobs
    return (0.1 + 0.8 * (img - img.min()) / (img.max() - img.min())).float()


def _blur(x: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    r = int(3 * sigma)
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-t**2 / (2 * sigma**2))
    k = (k / k.sum())
    k2 = torch.outer(k, k).expand(3, 1, 2 * r + 1, 2 * r + 1)
    return F.conv2d(F.pad(x[None], (r, r, r, r), mode="reflect"), k2, groups=3)[0]


def _white(shape, sigma255, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * sigma255 / 255


def _correlated(shape, sigma255, seed):
    """Spatially correlated noise (3x3 box filter of white noise), rescaled to std sigma255/255."""
    w = torch.randn((1, *shape), generator=torch.Generator().manual_seed(seed))
    c = F.avg_pool2d(F.pad(w, (1, 1, 1, 1), mode="reflect"), 3, stride=1)[0]
    return c / c.std() * sigma255 / 255


def test_blurred_copy_scores_as_blur_and_real_noise_does_not():
    clean = _clean()
    real = clean + _white(clean.shape, 6, 1)
    blurred = _blur(clean) + _white(clean.shape, 2, 2)  # the failure mode: a blurred copy + weak noise
    m = structure_metrics(real, clean, [blurred])
    assert abs(m["leakage_real"]) < 0.05
    assert m["leakage_gen"] > 0.3, m
    # a fresh realisation of the real noise: no leakage, right level, right spectrum
    ok = structure_metrics(real, clean, [clean + _white(clean.shape, 6, 3)])
    assert abs(ok["leakage_gen"]) < 0.05
    assert abs(ok["std_ratio"] - 1) < 0.05
    assert ok["spectrum_shape"] < 0.15
    assert m["spectrum_shape"] > 3 * ok["spectrum_shape"]


def test_white_noise_of_the_right_level_has_the_wrong_spectrum_against_correlated_noise():
    clean = _clean()
    real = clean + _correlated(clean.shape, 8, 1)
    white = structure_metrics(real, clean, [clean + _white(clean.shape, 8, 2)])
    corr = structure_metrics(real, clean, [clean + _correlated(clean.shape, 8, 3)])
    assert abs(white["std_ratio"] - 1) < 0.05 and abs(white["spectrum_level_db"]) < 0.5
    assert white["spectrum_shape"] > 0.5, white
    assert corr["spectrum_shape"] < 0.15, corr
    assert white["lowfreq_gen"] < 0.5 * corr["lowfreq_gen"]
    assert abs(corr["lowfreq_gen"] - corr["lowfreq_real"]) < 0.03


def test_level_and_low_frequency_share_known_values():
    n = _white((3, 256, 256), 10, 0)
    assert lowfreq_share(n) == pytest.approx(3.14159 * 0.125**2, abs=0.01)  # white: the disc's area share
    s = spectrum_compare(n, 2 * n)
    assert s["spectrum_level_db"] == pytest.approx(20 * 0.30103, abs=1e-6)  # twice the std: +6.02 dB
    assert s["spectrum_shape"] == pytest.approx(0.0, abs=1e-9)


def test_channel_correlation_and_leakage_signs():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(1, 64, 64, generator=g)
    same = base.expand(3, -1, -1)
    assert channel_correlation(same) == pytest.approx(1.0)
    assert abs(channel_correlation(torch.randn(3, 64, 64, generator=g))) < 0.05
    clean = _clean()
    sharpened_minus_clean = clean - _blur(clean)  # sharpening adds -k * Laplacian
    assert content_leakage(-sharpened_minus_clean, clean) > 0.3
    assert content_leakage(sharpened_minus_clean, clean) < -0.3


def _write_pairs(root, model, n=6, size=96, first=0):
    from pngan.io.images import write_image

    for i in range(first, first + n):
        clean = _clean(size, size, seed=i)
        noisy = model(clean[None], generator=torch.Generator().manual_seed(100 + i))[0]
        write_image(root / "clean" / f"img{i}.png", clean, bits=16)
        write_image(root / "noisy" / f"img{i}.png", noisy.clamp(0, 1), bits=16)
    return f"pairs:{root}"


def test_fit_recovers_a_known_heteroscedastic_correlated_model(tmp_path):
    from pngan.data.specs import open_dataset

    t = torch.arange(-2, 3, dtype=torch.float64)
    k = torch.outer(torch.exp(-t**2 / 1.28), torch.exp(-t**2 / 1.28))  # Gaussian, sigma 0.8: no spectral nulls
    kernel = (k / k.pow(2).sum().sqrt()).tolist()
    mix = torch.linalg.cholesky(torch.tensor([[1.0, 0.6, 0.5], [0.6, 1.0, 0.6], [0.5, 0.6, 1.0]])).tolist()
    true = CalibratedNoise(a=[4e-3, 2e-3, 3e-3], b=[2e-4, 4e-4, 1e-4], kernel=kernel, mix=mix)
    spec = _write_pairs(tmp_path, true, n=8, size=128)
    fit = fit_calibrated(open_dataset(spec), kernel_size=5)
    for c in range(3):  # the fitted noise level function, where the data has intensities
        for x in (0.2, 0.5, 0.8):
            assert float(fit.a[c] * x + fit.b[c]) == pytest.approx(float(true.a[c] * x + true.b[c]), rel=0.1)
    # the fitted model reproduces the data's spectrum and channel correlation on a new image
    clean = _clean(128, 128, seed=50)
    g = torch.Generator().manual_seed(7)
    real = true(clean[None], generator=g)[0]
    m = structure_metrics(real, clean, [fit(clean[None], generator=torch.Generator().manual_seed(8))[0]])
    assert m["spectrum_shape"] < 0.2, m
    assert m["chan_corr_gen"] == pytest.approx(m["chan_corr_real"], abs=0.08)
    white = CalibratedNoise(fit.a, fit.b)
    mw = structure_metrics(real, clean, [white(clean[None], generator=torch.Generator().manual_seed(8))[0]])
    assert mw["spectrum_shape"] > 2 * m["spectrum_shape"]


def test_calibrated_rebuilds_from_describe_and_file(tmp_path):
    model = CalibratedNoise(a=[1e-3] * 3, b=[1e-4] * 3, kernel=[[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]],
                            mix=torch.eye(3).tolist())
    clean = _clean(32, 32)[None]
    same = build_synthetic(**model.describe())
    a = model(clean, generator=torch.Generator().manual_seed(1))
    b = same(clean, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    save_calibration(model, tmp_path / "c.json")
    c = resolve_setting(f"calibrated:{tmp_path / 'c.json'}")(clean, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, c)
    assert json.loads((tmp_path / "c.json").read_text())["setting"] == "calibrated"
    from pngan.errors import PnganError

    with pytest.raises(PnganError, match="--fit"):
        resolve_setting("calibrated")
    (tmp_path / "bad.json").write_text("{\"setting\": \"awgn\"}")
    with pytest.raises(PnganError, match="not a calibration file"):
        load_calibration(tmp_path / "bad.json")


def test_synth_and_evaluate_take_the_calibrated_setting(tmp_path, capsys):
    from pngan.cli import main

    spec = _write_pairs(tmp_path / "real", CalibratedNoise(a=[3e-3] * 3, b=[2e-4] * 3), n=3, size=64)
    assert main(["synth", "--setting", "calibrated", "--fit", spec, "--input", f"clean:{tmp_path / 'real' / 'clean'}",
                 "--output", str(tmp_path / "syn")]) == 0
    assert len(list((tmp_path / "syn" / "noisy").glob("*.png"))) == 3
    held_out = _write_pairs(tmp_path / "test", CalibratedNoise(a=[3e-3] * 3, b=[2e-4] * 3), n=2, size=64, first=10)
    assert main(["evaluate", "noise", "--real", held_out, "--setting", "calibrated", "--fit", spec,
                 "--json", str(tmp_path / "n.json")]) == 0
    res = json.loads((tmp_path / "n.json").read_text())
    for k in ("kld_noiseflow", "akld", "std_ratio", "spectrum_shape", "leakage_gen"):
        assert k in res["mean"]
    assert abs(res["mean"]["std_ratio"] - 1) < 0.15
    assert main(["evaluate", "noise", "--real", spec, "--setting", "calibrated"]) == 2
    assert "--fit" in capsys.readouterr().err


def test_mean_offset_sees_a_colour_cast_that_std_and_spectrum_do_not():
    clean = _clean()
    real = clean + _white(clean.shape, 6, 1) - 2 / 255  # real sRGB noise: 2 levels darker
    same = clean + _white(clean.shape, 6, 3) - 2 / 255
    cast = same.clone()
    cast[2] += 3 / 255  # 3 levels bluer, as the denoiser-space alignment pushed SIDD's generator
    ok, bad = structure_metrics(real, clean, [same]), structure_metrics(real, clean, [cast])
    assert ok["mean_offset"] < 0.3
    assert bad["mean_offset"] == pytest.approx(3 / 3**0.5, abs=0.3)  # RMS over R, G, B of (0, 0, 3)
    assert abs(bad["std_ratio"] - ok["std_ratio"]) < 0.04 and abs(bad["spectrum_shape"] - ok["spectrum_shape"]) < 0.02
    zero_mean = structure_metrics(real, clean, [clean + _white(clean.shape, 6, 3)])
    assert zero_mean["mean_offset"] == pytest.approx(2.0, abs=0.3)  # a zero-mean model misses the darkening
