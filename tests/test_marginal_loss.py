"""loss.lambda_marginal (pngan.losses.marginal): the per-band 1-D Wasserstein-1 between fake and
real noise. Known answers: zero for the same noise, exactly half the mean |noise| for a fake at
half the level, blind to where in a band a value sits, sensitive to the shape at equal std."""

from __future__ import annotations

import json

import pytest
import torch

from test_train_options import TINY, tiny  # noqa: F401  (the tiny run fixture)

from pngan.cli import main
from pngan.losses import marginal_loss


def _pair(seed=0, shape=(2, 3, 32, 32)):
    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(shape, generator=g, dtype=torch.float64)
    return clean, clean + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64), g


def test_zero_for_the_same_noise_and_exact_for_half_the_level():
    clean, real, _ = _pair()
    assert float(marginal_loss(real, real, clean)) == 0.0
    half = clean + 0.5 * (real - clean)
    # sort(0.5 n) - sort(n) = -0.5 sort(n) pointwise: the loss is half the mean |n| (all pixels kept: 1024 % 4 == 0)
    want = 0.5 * float((real - clean).abs().mean())
    assert float(marginal_loss(half, real, clean, groups=4)) == pytest.approx(want, rel=1e-12)


def test_blind_to_position_within_a_band_but_not_across_bands():
    clean, real, g = _pair(1)
    b, c, h, w = clean.shape
    order = clean.flatten(2).argsort(dim=2)
    noise = (real - clean).flatten(2)
    # shuffle the real noise values inside each of the 4 bands: same distribution per band
    shuffled = noise.clone()
    per = h * w // 4
    for k in range(4):
        idx = order[..., k * per:(k + 1) * per]
        perm = torch.randperm(per, generator=g)
        shuffled.scatter_(2, idx, noise.gather(2, idx[..., perm]))
    fake = clean + shuffled.reshape(clean.shape)
    assert float(marginal_loss(fake, real, clean)) == pytest.approx(0.0, abs=1e-15)
    # moving the noise of the darkest band to the brightest (and back) changes the per-band distributions
    lo, hi = order[..., :per], order[..., -per:]
    scale = torch.linspace(0.2, 2.0, h * w, dtype=torch.float64)  # a level that grows with intensity
    lev = noise.clone().scatter_(2, order, noise.gather(2, order) * scale)
    swapped = lev.clone()
    swapped.scatter_(2, lo, lev.gather(2, hi))
    swapped.scatter_(2, hi, lev.gather(2, lo))
    assert float(marginal_loss(clean + swapped.reshape(clean.shape), clean + lev.reshape(clean.shape), clean)) > 0.02


def test_sees_shape_at_equal_std_and_passes_gradients_to_the_fake_only():
    clean, real, g = _pair(2, (1, 3, 64, 64))
    n = torch.randn(clean.shape, generator=g, dtype=torch.float64)
    gauss = clean + 0.1 * n
    laplace = clean + 0.1 * torch.sign(n) * torch.distributions.Exponential(1.0).sample(clean.shape).double() / 2**0.5
    other = clean + 0.1 * torch.randn(clean.shape, generator=g, dtype=torch.float64)
    same = float(marginal_loss(other, gauss, clean))
    assert float(marginal_loss(laplace, gauss, clean)) > 1.5 * same  # heavier tails at the same std cost more
    fake = other.clone().requires_grad_(True)
    r = real.clone().requires_grad_(True)
    marginal_loss(fake, r, clean).backward()
    assert fake.grad is not None and float(fake.grad.abs().sum()) > 0 and r.grad is None


def test_bad_shapes_are_refused():
    clean, real, _ = _pair()
    with pytest.raises(ValueError, match="one shape"):
        marginal_loss(real[:, :2], real, clean)
    with pytest.raises(ValueError, match="bands"):
        marginal_loss(real[..., :1, :1], real[..., :1, :1], clean[..., :1, :1], groups=4)


def test_marginal_term_is_logged_and_checked(tiny):  # noqa: F811
    root, data, dn = tiny
    args = ["train", "--data", data, "--denoiser", dn, "--config", "cpu-small", "--quiet", *TINY, "run.log_every=1"]
    assert main([*args, "loss.lambda_marginal=100", "--out", str(root / "marg")]) == 0
    rec = [json.loads(line) for line in (root / "marg" / "stats.jsonl").read_text().splitlines()]
    assert rec and rec[-1]["loss_marginal"] > 0
    assert rec[-1]["loss_g"] > 100 * rec[-1]["loss_marginal"] * 0.99  # enters G's loss with its weight
    assert main([*args, "--out", str(root / "nomarg")]) == 0
    rec = [json.loads(line) for line in (root / "nomarg" / "stats.jsonl").read_text().splitlines()]
    assert "loss_marginal" not in rec[-1]
    assert main([*args, "loss.lambda_marginal=-1", "--out", str(root / "neg")]) == 2
    assert main([*args, "loss.marginal_groups=0", "--out", str(root / "g0")]) == 2
