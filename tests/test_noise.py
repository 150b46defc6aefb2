"""Synthetic settings: AWGN (setting 1), RAW Poisson-Gaussian through an invertible ISP (setting 2)."""

import json
import math

import numpy as np
import pytest
import torch

from pngan.errors import PnganError
from pngan.eval.metrics import neighbour_correlation, noise_variance_by_intensity
from pngan.noise import build_synthetic, isp
from pngan.noise.isp import ISPParams

EDGES = [0.02, 0.14, 0.26, 0.38, 0.5, 0.62, 0.74, 0.86, 0.98]


def gen(seed):
    return torch.Generator().manual_seed(seed)


def camera_crops():
    from pngan.data.camera import TEST, TRAIN, load_clean

    return [load_clean(n)[:, :128, :128] for n in TRAIN + TEST]


def sidd_crops(shared):
    from PIL import Image

    out = []
    for p in sorted((shared / "data/real/sidd/clean").glob("*.png"))[:10]:
        a = np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255
        out.append(torch.from_numpy(a[:128, :128].copy()).permute(2, 0, 1))
    assert len(out) >= 5
    return out


def test_build_synthetic_aliases_and_describe_roundtrip():
    for s in ("awgn", "1", "setting1", "AWGN"):
        assert build_synthetic(s).describe()["setting"] == "awgn"
    for s in ("raw", "2", "setting2"):
        assert build_synthetic(s).describe()["setting"] == "raw"
    with pytest.raises(PnganError, match="unknown synthetic setting"):
        build_synthetic("poisson")
    with pytest.raises(PnganError):
        build_synthetic("awgn", sigma=-1)
    with pytest.raises(PnganError):
        build_synthetic("awgn", bogus=1)
    for m in (build_synthetic("awgn", sigma=(5, 30)), build_synthetic("raw", shot=1e-3, read=1e-6)):
        d = json.loads(json.dumps(m.describe()))
        m2 = build_synthetic(**d)
        x = torch.rand(2, 3, 16, 16)
        assert torch.equal(m(x, gen(3)), m2(x, gen(3)))


def test_awgn_statistics_and_determinism():
    x = torch.rand(4, 3, 64, 64)
    m = build_synthetic("awgn")
    y, params = m(x, gen(0), return_params=True)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert params == [{"setting": "awgn", "sigma": 50.0}] * 4
    assert abs(float((y - x).std()) * 255 - 50) < 1.0
    assert y.min() < 0 and y.max() > 1  # not clipped by default
    assert torch.equal(y, m(x, gen(0)))
    assert not torch.equal(y, m(x, gen(1)))
    yc = build_synthetic("awgn", clip=True)(x, gen(0))
    assert torch.equal(yc, y.clamp(0, 1))
    # per-image sigma range: drawn values inside the range and matching the measured noise
    r = build_synthetic("awgn", sigma=(10, 60))
    y, params = r(torch.zeros(6, 3, 64, 64), gen(5), return_params=True)
    sig = [p["sigma"] for p in params]
    assert all(10 <= s <= 60 for s in sig) and len(set(sig)) == 6
    for i, s in enumerate(sig):
        assert abs(float(y[i].std()) * 255 - s) < 0.05 * s
    # float64 input stays float64; no generator uses the global RNG
    assert build_synthetic("awgn")(x.double()).dtype == torch.float64


def test_isp_roundtrip_random_tensors_and_highlights():
    p = isp.random_params(6, gen(1))
    x = torch.rand(6, 3, 24, 30, dtype=torch.float64)
    x[0] = 1.0  # white: exercises the highlight-preserving gain
    x[1, :, :8] = 0.0
    x[2] = 0.93 + 0.07 * torch.rand(3, 24, 30, dtype=torch.float64)  # gray > 0.9 everywhere
    for dt in (torch.float64, torch.float32):
        xd = x.to(dt)
        cam = isp.unprocess(xd, p)
        assert (isp.process(cam, p) - xd).abs().max() < 1e-3
    # the plain (Brooks process) gains would not undo the safe inverse gain on highlights
    cam = isp.unprocess(x, p)
    plain = cam * isp._gains(p, cam.dtype)[:, :, None, None]
    assert (plain[2] - isp.apply_ccm(isp.gamma_expansion(isp.inverse_smoothstep(x)), p.rgb2cam)[2]).abs().max() > 1e-2


def test_isp_roundtrip_real_images(request):
    imgs = camera_crops()
    try:
        imgs += sidd_crops(request.getfixturevalue("shared"))
    except pytest.skip.Exception:
        pass
    x = torch.stack([i[:, :96, :96] for i in imgs])
    p = isp.random_params(x.shape[0], gen(2))
    err = (isp.process(isp.unprocess(x, p), p) - x).abs().max()
    assert err < 1e-3


def test_mosaic_demosaic_roundtrip():
    packed = torch.rand(2, 4, 7, 9, dtype=torch.float64)
    full = isp.demosaic(packed)
    assert full.shape == (2, 3, 14, 18)
    assert torch.equal(isp.mosaic(full), packed)  # measured samples are kept
    const = torch.tensor([0.2, 0.5, 0.5, 0.7], dtype=torch.float64)[None, :, None, None].expand(1, 4, 5, 5)
    assert torch.allclose(isp.demosaic(const), torch.tensor([0.2, 0.5, 0.7], dtype=torch.float64)[None, :, None, None].expand(1, 3, 10, 10))


def test_brooks_noise_levels_distribution():
    shot, read = isp.random_noise_levels(4000, gen(0))
    ls, lr = shot.log(), read.log()
    assert ls.min() >= math.log(1e-4) and ls.max() <= math.log(1.2e-2)
    slope = float(((ls - ls.mean()) * (lr - lr.mean())).sum() / ((ls - ls.mean()) ** 2).sum())
    resid = lr - (2.18 * ls + 1.20)
    assert abs(slope - 2.18) < 0.05
    assert abs(float(resid.std()) - 0.26) < 0.02 and abs(float(resid.mean())) < 0.02


def test_raw_setting_shapes_params_determinism():
    m = build_synthetic("raw")
    x = torch.rand(3, 3, 21, 34)  # odd height: padded for the Bayer pattern, cropped back
    y, params = m(x, gen(0), return_params=True)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert 0 <= y.min() and y.max() <= 1
    assert torch.equal(y, m(x, gen(0))) and not torch.equal(y, m(x, gen(1)))
    json.dumps(params)
    for p in params:
        assert 1e-4 <= p["shot"] <= 1.2e-2 and 1.9 <= p["red_gain"] <= 2.4 and 1.5 <= p["blue_gain"] <= 1.9
        assert abs(sum(p["ccm_weights"]) - 1) < 1e-5
    # the reported camera is the one used: unprocess clean with it and process gives x back
    P = ISPParams(
        torch.tensor([p["rgb2cam"] for p in params], dtype=torch.float64),
        torch.tensor([p["ccm_weights"] for p in params], dtype=torch.float64),
        *(torch.tensor([p[k] for p in params], dtype=torch.float64) for k in ("rgb_gain", "red_gain", "blue_gain")),
    )
    zero = build_synthetic("raw", shot=0.0, read=0.0)(x, gen(0))
    assert (zero - x).abs().max() < 1e-3  # no noise: the pipeline is the identity
    assert (isp.process(isp.unprocess(x.double(), P), P) - x).abs().max() < 1e-3
    # noise is spatially correlated by the demosaic (setting 1 is not)
    yy = build_synthetic("raw", shot=5e-3, read=1e-5)(torch.full((1, 3, 64, 64), 0.5), gen(0))
    assert neighbour_correlation(yy - 0.5) > 0.1


def _profile(m, imgs, seed=0):
    clean = torch.cat([i.flatten() for i in imgs])
    noisy = torch.cat([m(i[None], gen(seed + k))[0].flatten() for k, i in enumerate(imgs)])
    return noise_variance_by_intensity(clean, noisy, EDGES)


def _raw_domain_profile(imgs):
    """Variance of the RAW-domain noise, binned by RAW clean intensity: rises with the signal."""
    m = build_synthetic("raw", shot=4e-3, read=1e-5, demosaic_signal=True)
    cs, ns = [], []
    for k, i in enumerate(imgs):
        x = i[None].double()
        y, params = m(x, gen(k), return_params=True)
        p = params[0]
        P = ISPParams(torch.tensor([p["rgb2cam"]], dtype=torch.float64), torch.tensor([p["ccm_weights"]]),
                      *(torch.tensor([p[k2]], dtype=torch.float64) for k2 in ("rgb_gain", "red_gain", "blue_gain")))
        cs.append(isp.unprocess(x, P).flatten())
        ns.append(isp.unprocess(y, P).flatten())
    return noise_variance_by_intensity(torch.cat(cs), torch.cat(ns), [0.02, 0.1, 0.2, 0.3, 0.4, 0.5])


def _check_signal_dependence(imgs):
    awgn = _profile(build_synthetic("awgn"), imgs)
    raw = _profile(build_synthetic("raw", shot=4e-3, read=1e-5), imgs)
    a_ratio = float(awgn.max() / awgn.min())
    r_ratio = float(raw.max() / raw.min())
    raw_lin = _raw_domain_profile(imgs)
    lin_ratio = float(raw_lin[-1] / raw_lin[0])
    print(f"awgn sRGB bins max/min {a_ratio:.2f}; raw sRGB bins max/min {r_ratio:.2f}; "
          f"raw RAW-domain top/bottom {lin_ratio:.2f}; sRGB var*255^2 {[round(float(v) * 65025, 1) for v in raw]}")
    assert a_ratio < 1.15  # setting 1: flat
    assert r_ratio > 2  # setting 2: strongly intensity dependent in sRGB
    assert lin_ratio > 2  # and rising with the signal in RAW (shot noise)
    assert bool((raw_lin[1:] > raw_lin[:-1]).all())


def test_signal_dependence_camera_builtin():
    _check_signal_dependence(camera_crops())


def test_signal_dependence_sidd_crops(shared):
    _check_signal_dependence(sidd_crops(shared))


def test_networks_isp_path():
    with pytest.raises(PnganError, match="needs both rgb2raw and raw2rgb"):
        build_synthetic("raw", isp="networks")
    with pytest.raises(PnganError):
        build_synthetic("raw", isp="cycleisp")
    calls = []

    def rgb2raw(x):
        calls.append("rgb2raw")
        return x**2.2

    def raw2rgb(packed, clean):
        calls.append("raw2rgb")
        assert packed.shape[1] == 4 and clean.shape[1] == 3
        return isp.demosaic(packed).clamp(0, 1) ** (1 / 2.2)

    m = build_synthetic("raw", isp="networks", rgb2raw=rgb2raw, raw2rgb=raw2rgb)
    x = torch.rand(2, 3, 16, 16)
    y, params = m(x, gen(0), return_params=True)
    assert calls == ["rgb2raw", "raw2rgb"] and y.shape == x.shape and params[0]["isp"] == "networks"
    assert m.describe()["isp"] == "networks"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_with_cpu_generator_matches_cpu():
    x = torch.rand(2, 3, 32, 32)
    for s in ("awgn", "raw"):
        m = build_synthetic(s)
        a = m(x, gen(0))
        b = m(x.cuda(), gen(0))
        assert b.is_cuda and (a - b.cpu()).abs().max() < 1e-4
        c = m(x.cuda(), torch.Generator(device="cuda").manual_seed(0))
        assert c.is_cuda and c.shape == x.shape


def _registered_settings():
    from pngan.noise import REGISTRY, build_synthetic

    kernel = [[0.0, 0.0, 0.0], [0.0, 0.8, 0.6], [0.0, 0.0, 0.0]]
    made = {"awgn": build_synthetic("awgn", sigma=25), "raw": build_synthetic("raw"),
            "calibrated": build_synthetic("calibrated", a=[0.01, 0.02, 0.005], b=[4e-4, 1e-4, 9e-4], kernel=kernel,
                                          mix=[[1, 0, 0], [0.6, 0.8, 0], [0, 0, 1]], kappa=[-0.5, -0.6, -0.4],
                                          pair_gains=[0.5, 2.0])}
    assert sorted(made) == sorted(REGISTRY)  # a new setting must be added here too
    return made


def test_every_noise_setting_keeps_the_contract():
    """forward(clean, generator, gain, return_params), describe() -> from_description() -> the same
    noise for the same seed; a gain is taken only by a setting that says so (takes_gain)."""
    from pngan.noise import NoiseSetting, from_description, synthesize

    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    for name, s in _registered_settings().items():
        assert isinstance(s, NoiseSetting) and s.setting == name
        again = from_description(json.loads(json.dumps(s.describe())))
        assert type(again) is type(s) and again.describe() == s.describe()
        y = s(x, torch.Generator().manual_seed(3))
        assert torch.equal(y, again(x, torch.Generator().manual_seed(3))), name
        y2, params = s(x, torch.Generator().manual_seed(3), return_params=True)
        assert torch.equal(y, y2) and len(params) == 2 and all(p["setting"] == name for p in params)
        if s.takes_gain:
            half = s(x, torch.Generator().manual_seed(3), gain=0.5)
            assert not torch.equal(half, y)
            _, ps = synthesize(s, x, torch.Generator().manual_seed(3), gain=[0.5, 2.0], return_params=True)
            assert [p["gain"] for p in ps] == [0.5, 2.0]
        else:
            with pytest.raises(PnganError, match="draws its own levels"):
                s(x, torch.Generator().manual_seed(3), gain=0.5)
            with pytest.raises(PnganError, match="--gain"):
                synthesize(s, x, gain=0.5)


def test_calibrated_parameters_are_buffers_and_pair_gains_are_explicit():
    s = _registered_settings()["calibrated"]
    assert sorted(s.state_dict()) == ["a", "b", "kappa", "kernel", "mix"]
    assert all(t.dtype == torch.float64 for t in s.state_dict().values())
    assert s.pair_gains == [0.5, 2.0] and s.describe()["pair_gains"] == [0.5, 2.0]
    assert _registered_settings()["awgn"].pair_gains is None
    # a cast leaves the fitted numbers exact (the noise is computed in the input's precision anyway)
    before = s.describe()
    s.half()
    s.to(torch.float32)
    assert s.a.dtype == torch.float64 and s.describe() == before


def test_noise_settings_refuse_inputs_they_would_misread():
    for s in _registered_settings().values():
        for bad in (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.zeros(0, 3, 8, 8), torch.zeros(1, 1, 8, 8)):
            with pytest.raises(ValueError, match="expected"):
                s(bad)
