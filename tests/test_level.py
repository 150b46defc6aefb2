"""Noise level of the calibrated setting: ``level_gain``, ``gain=``, ``synthetic.level=match``,
``evaluate noise --level match``, ``generate --gain`` and ``synth --gain``."""

from __future__ import annotations

import json

import pytest
import torch

from helpers import TINY_NETS, write_pairs

from pngan.cli import main
from pngan.data.specs import open_dataset
from pngan.errors import PnganError
from pngan.eval import denoise_eval as de
from pngan.noise.calibrated import CalibratedNoise, fit_calibrated, level_gain


def _model(clip=True):
    return CalibratedNoise([0.01, 0.02, 0.005], [0.0004, 0.0001, 0.0009], clip=clip)


def test_level_gain_known_answer():
    m = _model()
    g = torch.Generator().manual_seed(0)
    clean = 0.2 + 0.6 * torch.rand(3, 3, 64, 64, generator=g)
    std = torch.sqrt(m.a.float()[None, :, None, None] * clean + m.b.float()[None, :, None, None])
    true = torch.tensor([0.5, 1.0, 2.0])
    noisy = clean + true[:, None, None, None] * std * torch.randn(clean.shape, generator=g)
    est = level_gain(m, clean, noisy)
    assert est.shape == (3,)
    assert torch.allclose(est.float(), true, rtol=0.02)
    assert float(level_gain(m, clean[0], noisy[0])[0]) == pytest.approx(float(est[0]))  # (3,H,W) pairs too


def test_gain_scales_the_noise_exactly():
    m = _model(clip=False)
    x = torch.full((2, 3, 16, 16), 0.5)
    one = m(x, generator=torch.Generator().manual_seed(3))
    two = m(x, generator=torch.Generator().manual_seed(3), gain=torch.tensor([2.0, 0.5]))
    assert torch.allclose(two[0] - x[0], 2 * (one[0] - x[0]), atol=1e-6)
    assert torch.allclose(two[1] - x[1], 0.5 * (one[1] - x[1]), atol=1e-6)
    for bad in (-1.0, float("nan"), torch.ones(3)):
        with pytest.raises(PnganError, match="gain"):
            m(x, gain=bad)


def test_level_match_evaluation_gives_each_pair_its_level(tmp_path):
    write_pairs(tmp_path / "fit", 2, 48, 48, sigma=0.02)
    write_pairs(tmp_path / "test", 2, 48, 48, seed=1, sigma=0.04)  # twice the fitted level
    model = fit_calibrated(open_dataset(f"pairs:{tmp_path / 'fit'}"))
    real = open_dataset(f"pairs:{tmp_path / 'test'}")
    fixed = de.evaluate_noise(real, sample_fn=de.synthetic_sampler(model, 0))["mean"]
    match = de.evaluate_noise(real, sample_fn=de.synthetic_sampler(model, 0, level="match"))["mean"]
    assert fixed["std_ratio"] == pytest.approx(0.5, abs=0.05)
    assert match["std_ratio"] == pytest.approx(1.0, abs=0.05)
    assert match["kld_noiseflow"] < fixed["kld_noiseflow"] / 4
    with pytest.raises(PnganError, match="calibrated"):
        de.synthetic_sampler("awgn", 0, level="match")


def test_level_match_training_and_generation(tmp_path, capsys):
    write_pairs(tmp_path / "p", 2, 24, 24, sigma=0.03)
    write_pairs(tmp_path / "t", 2, 24, 24, seed=1, sigma=0.06)
    from pngan.nets.loading import read_metadata, save_network
    from pngan.nets.registry import build

    torch.manual_seed(0)
    dn = save_network(build("dncnn", channels=4, depth=2), tmp_path / "dn.safetensors")
    opts = ["--data", f"pairs:{tmp_path / 'p'}", "--denoiser", f"dncnn:{dn}", "--config", "cpu-small", "--quiet"]
    overrides = [*TINY_NETS, "run.steps=2", "run.threads=1", "synthetic.level=match"]
    assert main(["train", *opts, "--out", str(tmp_path / "bad"), *overrides, "synthetic.setting=awgn"]) == 2
    assert "synthetic.level=match needs synthetic.setting=calibrated" in capsys.readouterr().err
    run = tmp_path / "run"
    assert main(["train", *opts, "--out", str(run), *overrides]) == 0
    assert read_metadata(run / "generator.safetensors")["pngan.level"] == "match"
    # the generator (identity at step 0 for its tail) is given each held-out pair's level
    res = {}
    for level in ("fixed", "match"):
        out = tmp_path / f"{level}.json"
        assert main(["evaluate", "noise", "--real", f"pairs:{tmp_path / 't'}", "--generator", str(run),
                     "--level", level, "--json", str(out)]) == 0
        res[level] = json.loads(out.read_text())
    assert res["match"]["level"] == "match"
    assert res["match"]["mean"]["std_ratio"] > 1.5 * res["fixed"]["mean"]["std_ratio"]
    assert main(["evaluate", "noise", "--real", f"pairs:{tmp_path / 't'}", "--generated", str(tmp_path / "t"),
                 "--level", "match"]) == 2
    assert "not --generated" in capsys.readouterr().err
    # generate --gain: the level is recorded in the manifest and a refused --gain names the setting
    gen = tmp_path / "gen"
    assert main(["generate", "--generator", str(run), "--input", f"pairs:{tmp_path / 't'}", "--output", str(gen),
                 "--gain", "2", "--quiet"]) == 0
    recs = [json.loads(line) for line in (gen / "manifest.jsonl").read_text().splitlines()]
    assert recs and all(r["params"]["gain"] == 2.0 for r in recs)
    assert main(["generate", "--generator", str(run), "--input", f"pairs:{tmp_path / 't'}", "--output",
                 str(tmp_path / "neg"), "--gain", "-1", "--quiet"]) == 2


def test_synth_gain(tmp_path, capsys):
    write_pairs(tmp_path / "p", 2, 32, 32, sigma=0.03)
    outs = {}
    for gain in ("1", "3"):
        out = tmp_path / f"g{gain}"
        assert main(["synth", "--setting", "calibrated", "--fit", f"pairs:{tmp_path / 'p'}", "--input",
                     f"pairs:{tmp_path / 'p'}", "--output", str(out), "--gain", gain]) == 0
        outs[gain] = open_dataset(f"pairs:{out}")
    s1, s3 = outs["1"].load(0), outs["3"].load(0)
    assert float((s3.noisy - s3.clean).std()) > 2.5 * float((s1.noisy - s1.clean).std())
    assert main(["synth", "--setting", "awgn", "--input", f"pairs:{tmp_path / 'p'}", "--output",
                 str(tmp_path / "x"), "--gain", "2"]) == 2
    assert "--gain applies to --setting calibrated only" in capsys.readouterr().err


def test_training_warns_when_the_pairs_span_several_levels(tmp_path, caplog):
    write_pairs(tmp_path / "low", 1, 24, 24, sigma=0.01)
    write_pairs(tmp_path / "high", 1, 24, 24, seed=1, sigma=0.05)
    from pngan.nets.loading import save_network
    from pngan.nets.registry import build

    torch.manual_seed(0)
    dn = save_network(build("dncnn", channels=4, depth=2), tmp_path / "dn.safetensors")
    opts = ["--data", f"pairs:{tmp_path / 'low'}", "--data", f"pairs:{tmp_path / 'high'}", "--denoiser",
            f"dncnn:{dn}", "--config", "cpu-small", "--quiet"]
    with caplog.at_level("WARNING", logger="pngan"):
        assert main(["train", *opts, "--out", str(tmp_path / "a"), *TINY_NETS, "run.steps=1"]) == 0
    assert "synthetic.level=match" in caplog.text and "differ" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="pngan"):
        assert main(["train", *opts, "--out", str(tmp_path / "b"), *TINY_NETS, "run.steps=1",
                     "synthetic.level=match"]) == 0
    assert "differ" not in caplog.text


class _Pairs:
    """A minimal in-memory pair set for fit_calibrated."""

    def __init__(self, pairs):
        self.pairs, self.spec, self.has_clean, self.has_noisy = pairs, "mem", True, True

    def __len__(self):
        return len(self.pairs)

    def load(self, i):
        from types import SimpleNamespace

        c, n = self.pairs[i]
        return SimpleNamespace(clean=c, noisy=n, name=f"p{i}")

    def describe(self):
        return "mem"


def test_levels_fit_recovers_a_falling_noise_level_function_under_mixed_gains():
    # one falling noise level function (var = 0.004 (1 - 0.8 x)), pairs at gains 0.5 and 2: the
    # bright pairs are the noisy ones, so pooling them without gains makes the fit rise with x
    g = torch.Generator().manual_seed(0)
    pairs = []
    for gain, lo in ((0.5, 0.1), (2.0, 0.5), (0.5, 0.1), (2.0, 0.5)):
        clean = (lo + 0.4 * torch.rand(3, 64, 64, generator=g)).double()
        std = gain * torch.sqrt(0.004 * (1 - 0.8 * clean))
        pairs.append((clean, clean + std * torch.randn(clean.shape, generator=g, dtype=torch.float64)))
    data = _Pairs(pairs)
    pooled = fit_calibrated(data, correlated=False)
    joint = fit_calibrated(data, correlated=False, levels=True)
    assert all(a > 0 for a in pooled.a)  # confounded: rises with intensity
    for a, b in zip(joint.a, joint.b):
        assert a / b == pytest.approx(-0.8, abs=0.05)  # the falling shape, whatever the overall level
    ratio = joint.pair_gains[1] / joint.pair_gains[0]
    assert ratio == pytest.approx(4.0, rel=0.05)


def test_falling_variance_is_valid_but_never_negative():
    CalibratedNoise([-0.004, -0.001, 0.0], [0.004, 0.002, 0.001])
    with pytest.raises(PnganError, match="a \\+ b >= 0"):
        CalibratedNoise([-0.005, 0.0, 0.0], [0.004, 0.001, 0.001])
    with pytest.raises(PnganError, match="b >= 0"):
        CalibratedNoise([0.01, 0.0, 0.0], [-0.001, 0.001, 0.001])


def test_levels_fit_recovers_the_tone_curve_noise_mean_and_the_gains():
    # pairs drawn from a model with a known noise mean (kappa = -0.6, gamma 2.2's (1 - gamma) / 2) at
    # gains 0.5 / 1 / 2: the levels fit recovers kappa and the gains' ratios; the pooled fit has none
    true = CalibratedNoise([0.004, 0.003, 0.005], [0.0004, 0.0003, 0.0002], clip=False, kappa=[-0.6, -0.6, -0.6])
    g = torch.Generator().manual_seed(1)
    pairs = []
    for k, gain in enumerate((0.5, 1.0, 2.0, 1.0)):
        clean = (0.15 + 0.7 * torch.rand(1, 3, 96, 96, generator=g)).double()
        pairs.append((clean[0], true(clean, generator=torch.Generator().manual_seed(k), gain=gain)[0]))
    data = _Pairs(pairs)
    joint = fit_calibrated(data, correlated=False, levels=True)
    assert joint.kappa.tolist() == pytest.approx([-0.6] * 3, abs=0.1)
    assert joint.pair_gains[2] / joint.pair_gains[0] == pytest.approx(4.0, rel=0.05)
    assert fit_calibrated(data, correlated=False).kappa is None  # the default fit: zero-mean, as before
    # the mean it generates: kappa * var / x, darker than the clean image, 4x at twice the gain
    x = torch.full((1, 3, 128, 128), 0.5, dtype=torch.float64)
    m1 = (joint(x, generator=torch.Generator().manual_seed(0), gain=1.0) - x).mean().item()
    m2 = (joint(x, generator=torch.Generator().manual_seed(0), gain=2.0) - x).mean().item()
    var = sum(a * 0.5 + b for a, b in zip(joint.a, joint.b)) / 3
    assert m1 < 0 and abs(m1 - float(joint.kappa.sum()) / 3 * var / 0.5) < 0.3 * abs(m1) + 0.002
    assert m2 < 4 * m1 * 0.6  # ~4x darker (mean grows as the variance)


def test_level_gain_with_a_noise_mean_is_exact_and_describe_round_trips():
    m = CalibratedNoise([0.01, 0.02, 0.005], [0.0004, 0.0001, 0.0009], clip=False, kappa=[-0.5, -0.7, -0.6])
    g = torch.Generator().manual_seed(0)
    clean = (0.2 + 0.6 * torch.rand(3, 3, 96, 96, generator=g)).double()
    true = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    noisy = m(clean, generator=g, gain=true)
    assert torch.allclose(level_gain(m, clean, noisy), true, rtol=0.02)
    # without the mean in the model the RMS gain is biased up at high levels (the mean grows as g^2)
    plain = CalibratedNoise(m.a, m.b, clip=False)
    bias = level_gain(plain, clean, noisy) / level_gain(m, clean, noisy)
    assert float(bias[2]) > 1.02 and float(bias[2]) > float(bias[1]) > float(bias[0])  # grows with the level
    from pngan.noise import build_synthetic

    again = build_synthetic(**m.describe())
    assert torch.equal(again.kappa, m.kappa)
    assert "kappa" not in plain.describe()  # settings without a mean describe (and hash) as before
    with pytest.raises(PnganError, match="kappa"):
        CalibratedNoise([0.01] * 3, [0.001] * 3, kappa=[float("nan"), 0.0, 0.0])
