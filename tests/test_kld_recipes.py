"""Each KLD / AKLD recipe against a literal numpy/torch re-implementation of the published script
it names (the same operations in the same order, written out here), on fixed arrays.

NoiseFlow/NeCA: BorealisAI/noise_flow sidd/sidd_utils.py (edges), zfu006/sRGB-Real-Noise-Synthesis
utils/utils_image.py (noise_quantization, cal_kld). Flow-sRGB / NM-FlowGAN: SamsungLabs/Noise2NoiseFlow
data_loader/sidd_utils.py (kldiv_patch_set_v2, sRGB branch), YoungJooHan/NM-FlowGAN util/util.py.
NAFlow: dongjinkim9/NAFlow naflow/utils/metrics.py (calculate_kld) + models/lit_naflow.py.
AKLD: zsyOAOA/DANet demo_AKLD.py + utils.py (estimate_sigma_gauss, kl_gauss_zero_center).
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pngan.eval import noise_metrics as nm


# ---------------------------------------------------------------- literal reference recipes

def ref_neca_kld(real_noisy, clean, fake_noisy):
    """NeCA: noise_quantization(fake, clean) and cal_kld(real_noise, fake_noise) -> kl_fwd."""
    fake = torch.clip(fake_noisy, 0, 1)
    fake = torch.round(fake * 255) / 255.0
    fake_noise = (fake - clean).numpy()
    real_noise = (real_noisy - clean).numpy()
    bw = 0.2 / 64
    edges = np.concatenate(([-1000.0], np.arange(-0.1, 0.1 + 1e-9, bw), [1000.0]), axis=0)
    p = np.histogram(real_noise, edges)[0] / np.prod(real_noise.shape)
    q = np.histogram(fake_noise, edges)[0] / np.prod(fake_noise.shape)
    keep = (p > 0) & (q > 0)
    p, q = p[keep], q[keep]
    return np.sum(p * (np.log(p) - np.log(q)))


def ref_flowsrgb_kld(real_noise255, gen_noise255):
    """Flow-sRGB kldiv_patch_set_v2 (sRGB) / NM-FlowGAN kl_div_3_data: bw 4 on [-260, 261)."""
    edges = np.arange(-260.0, 261.0, 4)
    hists = []
    for d in (gen_noise255, real_noise255):
        h = np.histogram(d, edges)[0]
        hists.append((h + 1) / (np.prod(d.shape) + 1 * len(h)))
    p, q = hists[-1], hists[0]
    keep = p > 0
    p, q = p[keep], q[keep]
    return np.sum(p * np.log(p / q))


def ref_naflow_kld(real_noisy, clean, fake_noisy):
    """NAFlow validation_step: clamp fake, noises in float32, calculate_kld(real, fake)."""
    fake = torch.clamp(fake_noisy, 0.0, 1.0)
    real_noise, fake_noise = (real_noisy - clean).numpy(), (fake - clean).numpy()
    bw = 2.0 / 256
    edges = np.arange(-1.0, 1.0 + bw, bw)
    p = np.histogram(real_noise, edges)[0] / np.prod(real_noise.shape)
    q = np.histogram(fake_noise, edges)[0] / np.prod(fake_noise.shape)
    keep = (p > 0) & (q > 0)
    p, q = p[keep], q[keep]
    return np.sum(p * (np.log(p) - np.log(q)))


def ref_danet_akld(real_noisy, clean, fakes):
    """demo_AKLD.py: float32, OpenCV's 7x7 Gaussian (sigma -1 -> 1.4), reflect pad, clamp fake."""
    s = 0.3 * ((7 - 1) * 0.5 - 1) + 0.8
    g = np.exp(-((np.arange(7) - 3) ** 2) / (2 * s * s))
    g = g / g.sum()
    k = torch.from_numpy(np.tile(np.outer(g, g)[None, None], (3, 1, 1, 1))).float()

    def sigma(noisy):
        e2 = (noisy - clean) ** 2
        return F.conv2d(F.pad(e2, [3] * 4, mode="reflect"), k, groups=3).clamp_(min=1e-10)

    sr = sigma(real_noisy)
    total = 0.0
    for f in fakes:
        f = f.clone().clamp_(0.0, 1.0)
        r = torch.div(sigma(f), sr).clamp_(0.1, 10)
        total += 0.5 * torch.mean(torch.log(1 / r) + r - 1.0)
    return float(total / len(fakes))


# ---------------------------------------------------------------- fixed arrays

def _images(seed=0, size=48):
    """8-bit real pair (float32 k/255 as read from PNG files) and a float generated image whose
    noise is mostly 0 after rounding (so the centre edge matters), plus a few values off [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    clean8 = torch.randint(30, 220, (3, size, size), generator=g)
    real8 = (clean8 + torch.round(2.0 * torch.randn(3, size, size, generator=g))).clamp(0, 255)
    clean = clean8.float() / 255
    real = real8.float() / 255
    gen = clean + 1.5 / 255 * torch.randn(3, size, size, generator=g)
    gen[0, 0, :4] = torch.tensor([-0.05, 1.05, 0.5, 0.2])
    return real, clean, gen


def test_noiseflow_edges_are_arange_not_linspace():
    e = nm.noiseflow_bin_edges()
    assert len(e) == 67 and e[0] == -1000.0 and e[-1] == 1000.0
    inner = np.arange(-0.1, 0.1 + 1e-9, 0.2 / 64)
    assert np.array_equal(e[1:-1], inner)
    assert inner[32] > 0.0  # the centre edge is 8.3e-17: noise 0 falls in the bin below it
    assert np.histogram(np.zeros(5), e)[0][32] == 5  # bin 32 = [edge 31, edge 32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kld_noiseflow_bit_exact_with_neca(seed):
    real, clean, gen = _images(seed)
    got = nm.kld_noiseflow(real, clean, gen)
    want = ref_neca_kld(real, clean, gen)
    assert got == want  # bit for bit
    assert float(((real - clean) == 0).float().mean()) > 0.15 # many zeros: the centre edge matters
    # Each bin is narrower (0.2/64) than the 8-bit step (1/255), so with both sides 8-bit the
    # centre edge only moves the bin of 0; with unquantised noise on one side (here the
    # generated noise given as is) the bin of 0 matters, and the former linspace edges differ.
    rn = (real - clean).numpy()
    fn = (gen - clean).numpy()
    lin = np.concatenate(([-1000.0], np.linspace(-0.1, 0.1, 65), [1000.0]))
    p, q = np.histogram(rn, lin)[0] / rn.size, np.histogram(fn, lin)[0] / fn.size
    keep = (p > 0) & (q > 0)
    old = np.sum(p[keep] * (np.log(p[keep]) - np.log(q[keep])))
    assert nm.kld_noiseflow_noise(rn, fn) != old
    edges = nm.noiseflow_bin_edges()
    p, q = np.histogram(rn, edges)[0] / rn.size, np.histogram(fn, edges)[0] / fn.size
    keep = (p > 0) & (q > 0)
    assert nm.kld_noiseflow_noise(rn, fn) == np.sum(p[keep] * (np.log(p[keep]) - np.log(q[keep])))


def test_kld_noiseflow_noise_on_edge_values():
    """Noise values exactly on every edge, just beside them, and in the overflow bins."""
    e = nm.noiseflow_bin_edges()[1:-1]
    real = np.concatenate([e, np.nextafter(e, 1), np.nextafter(e, -1), [0.0] * 7, [-0.5, 0.5, 0.1, -0.1]])
    gen = np.concatenate([e[::2], np.zeros(11), [0.3, -0.3], np.nextafter(e, -1)[::3]])
    edges = np.concatenate(([-1000.0], np.arange(-0.1, 0.1 + 1e-9, 0.2 / 64), [1000.0]))
    p, q = np.histogram(real, edges)[0] / real.size, np.histogram(gen, edges)[0] / gen.size
    keep = (p > 0) & (q > 0)
    want = np.sum(p[keep] * (np.log(p[keep]) - np.log(q[keep])))
    assert nm.kld_noiseflow_noise(real, gen) == want


@pytest.mark.parametrize("seed", [0, 3])
def test_kld_flowsrgb_matches_published_recipe(seed):
    real, clean, gen = _images(seed)
    # the published scripts hold 8-bit images as 0-255 numbers; the generated one clipped, not rounded
    real255 = torch.round(real.double() * 255) - torch.round(clean.double() * 255)
    gen255 = gen.clamp(0, 1).double() * 255 - torch.round(clean.double() * 255)
    want = ref_flowsrgb_kld(real255.numpy(), gen255.numpy())
    assert nm.kld_flowsrgb(real, clean, gen) == want
    # 8-bit noise hits the edges (multiples of 4) exactly: gray levels must be exact integers
    assert nm.gray_levels(real)[0, 0, 0] == float(torch.round(real[0, 0, 0].double() * 255))
    # add-one smoothing: a generated histogram with empty bins still gives a finite value
    assert math.isfinite(nm.kld_flowsrgb(real, clean, clean))
    assert nm.kld_flowsrgb(real, clean, real) == 0.0


@pytest.mark.parametrize("seed", [0, 4])
def test_kld_naflow_matches_published_recipe(seed):
    real, clean, gen = _images(seed)
    gen = gen + 0.02 * torch.randn(gen.shape, generator=torch.Generator().manual_seed(seed))
    assert nm.kld_naflow(real, clean, gen) == ref_naflow_kld(real, clean, gen)


def test_kld_naflow_clamps_the_generated_image():
    g = torch.Generator().manual_seed(7)
    clean = torch.full((3, 32, 32), 0.02)  # dark: many noisy values clip at 0
    real = (clean + 0.03 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    gen = clean + 0.03 * torch.randn(clean.shape, generator=g)
    want = ref_naflow_kld(real, clean, gen)
    assert nm.kld_naflow(real, clean, gen) == want
    assert nm.kld_naflow_noise((real - clean).numpy(), (gen - clean).numpy()) != want


def test_akld_matches_danet_protocol_over_l_samples():
    real, clean, _ = _images(5, size=32)
    g = torch.Generator().manual_seed(9)
    fakes = [(clean + s / 255 * torch.randn(clean.shape, generator=g)) for s in (1.0, 2.5, 4.0, 8.0)]
    real, clean = real.clone(), clean.clone()
    clean[0, :6, :6] = 0.5
    real[0, :6, :6] = 1.0  # a saturated real patch ...
    fakes[1][0, :6, :6] = 1.08  # ... and an out-of-range sample there: DANet clamps each sample
    want = ref_danet_akld(real[None], clean[None], [f[None] for f in fakes])
    got = nm.akld(real, clean, fakes)
    assert got == pytest.approx(want, rel=2e-5)  # float64 here, float32 in DANet
    # the mean over L samples, not the value of a pooled variance map
    single = [nm.akld(real, clean, [f]) for f in fakes]
    assert got == pytest.approx(float(np.mean(single)), rel=1e-12)


def test_noise_metrics_keys_and_per_sample_average():
    real, clean, gen = _images(6, size=32)
    gen2 = (gen + 0.01).clamp(0, 1)
    out = nm.noise_metrics(real, clean, [gen, gen2])
    assert set(out) == {"kld_noiseflow", "kld_flowsrgb", "kld_naflow", "akld", "mmd", "samples"}
    assert out["samples"] == 2
    for key, fn in (("kld_noiseflow", nm.kld_noiseflow), ("kld_flowsrgb", nm.kld_flowsrgb),
                    ("kld_naflow", nm.kld_naflow)):
        assert out[key] == pytest.approx((fn(real, clean, gen) + fn(real, clean, gen2)) / 2, rel=1e-12)
