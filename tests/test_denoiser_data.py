"""train-denoiser data: the exact generated:real ratio rho (Table 4), on-the-fly synthetic data
(Table 2), per-architecture small presets, the paper preset's length."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from pngan.cli import main
from pngan.io.images import write_image
from pngan.nets.loading import load_saved_network
from pngan.train.denoiser_config import load_denoiser_config
from pngan.data.pairsources import MixedBatches, is_generated, mix_fraction, split_synth_spec


def _pairs(root, n=2, size=24, sigma=0.08, seed=0, value=None):
    g = torch.Generator().manual_seed(seed)
    for i in range(n):
        clean = torch.rand(3, size, size, generator=g) * 0.6 + 0.2 if value is None else torch.full((3, size, size), value)
        write_image(root / "clean" / f"im{i}.png", clean)
        write_image(root / "noisy" / f"im{i}.png", (clean + sigma * torch.randn(clean.shape, generator=g)).clamp(0, 1))
    return f"pairs:{root}"


@pytest.mark.parametrize("rho", [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
def test_realised_ratio_is_the_asked_one(rho):
    p = mix_fraction(rho)
    assert p == Fraction(repr(rho)) / (1 + Fraction(repr(rho)))
    B, steps = 8, 300
    gen = sum(is_generated(p, s * B + j) for s in range(steps) for j in range(B))
    real = B * steps - gen
    assert gen == int(B * steps * p)  # exactly floor(N p): |gen - N p| < 1
    assert abs(gen - rho * real) <= 1 + rho  # generated:real = rho:1 up to one sample
    if rho == 0:
        assert gen == 0
    # process-count invariant: ranks' slices of the global batch together give the same sources
    class _Src:
        def __init__(self, k):
            self.k = k

        def sample(self, step, j):
            return {"clean": torch.full((1,), float(self.k)), "noisy": torch.full((1,), float(j))}

    one = MixedBatches([_Src(0), _Src(1)], p, B, 0, 5, 0, 1)
    two = [MixedBatches([_Src(0), _Src(1)], p, B, 0, 5, r, 2) for r in range(2)]
    for i in range(5):
        assert torch.equal(one[i]["clean"], torch.cat([two[0][i]["clean"], two[1][i]["clean"]]))
    # the old per-batch rounding made 0.8 and 1.0 the same run; now they differ
    if rho == 0.8:
        assert gen != sum(is_generated(mix_fraction(1.0), n) for n in range(B * steps))


def test_ratio_zero_trains_on_real_only_and_negative_is_refused(tmp_path, capsys):
    gen = _pairs(tmp_path / "g", value=0.9, sigma=0.0)  # a "generated" set we can recognise: clean == 0.9
    real = _pairs(tmp_path / "r", seed=2)
    run = tmp_path / "m"
    common = ["train-denoiser", "--arch", "dncnn", "--config", "cpu-small", "--quiet", "--steps", "1",
              "data.patch_size=16", "data.batch_size=4", "net.kwargs={depth: 2, channels: 4}"]
    assert main([*common, "--data", gen, "--data", real, "--ratio", "0", "--out", str(run)]) == 0
    assert main([*common, "--data", gen, "--data", real, "--ratio", "-0.5", "--out", str(tmp_path / "n")]) == 2
    assert "--ratio" in capsys.readouterr().err
    from pngan.data.pairsources import open_sources as _open_sources

    cfg = load_denoiser_config("cpu-small", ["data.ratio=0", "data.patch_size=16", "data.batch_size=4"])
    ds = MixedBatches(_open_sources(cfg, [gen, real]), mix_fraction(0.0), 4, 0, 20, 0, 1)
    assert all((ds[i]["clean"] - 0.9).abs().max() > 0.05 for i in range(20))  # never the generated set


def test_synthetic_data_is_fresh_every_step_and_reproducible(tmp_path):
    from pngan.data.pairsources import open_sources as _open_sources

    real = _pairs(tmp_path / "r")
    assert split_synth_spec("synth:1:clean:x") == ("awgn", "clean:x")
    assert split_synth_spec(real) == (None, real)
    cfg = load_denoiser_config("cpu-small", ["data.patch_size=16", "data.batch_size=4", "data.flips=false"])
    src = _open_sources(cfg, [f"synth:awgn:clean:{tmp_path / 'r' / 'clean'}"])
    ds = MixedBatches(src, None, 4, 0, 3, 0, 1)
    ds2 = MixedBatches(_open_sources(cfg, [f"synth:awgn:clean:{tmp_path / 'r' / 'clean'}"]), None, 4, 0, 3, 0, 1)
    a, b = ds[0], ds[1]
    n0 = a["noisy"] - a["clean"]
    assert 0.12 < float(n0.std()) < 0.25  # sigma 50/255, clipped
    # same seed, step and sample -> the same noise; another step -> fresh noise
    assert torch.equal(a["noisy"], ds2[0]["noisy"])
    s = src[0]
    n_a = s.sample(0, 0)["noisy"] - s.sample(0, 0)["clean"]
    n_b = s.sample(1, 0)["noisy"] - s.sample(1, 0)["clean"]
    same_patch = torch.equal(s.sample(0, 0)["clean"], s.sample(1, 0)["clean"])
    assert not torch.equal(n_a, n_b) and float((n_a - n_b).abs().mean()) > 0.05, same_patch
    assert not torch.equal(b["noisy"], a["noisy"])
    # a synthetic set also trains end to end (setting 2), and is recorded in the metadata
    run = tmp_path / "s"
    assert main(["train-denoiser", "--arch", "dncnn", "--config", "cpu-small", "--quiet", "--steps", "2",
                 "--data", f"synth:raw:{real}", "--out", str(run), "data.patch_size=16", "data.batch_size=2",
                 "net.kwargs={depth: 2, channels: 4}"]) == 0
    assert load_saved_network(run / "denoiser.safetensors")[1]["pngan.data"].startswith("synth:")


@pytest.mark.parametrize("arch", ["dncnn", "ridnet", "mirnet", "mprnet"])
def test_every_arch_trains_at_its_small_preset(tmp_path, arch):
    data = _pairs(tmp_path / "d", size=40)
    run = tmp_path / arch
    assert main(["train-denoiser", "--arch", arch, "--config", "cpu-small", "--quiet", "--steps", "2",
                 "--data", data, "--out", str(run), "data.batch_size=2", "run.threads=1"]) == 0
    _, meta = load_saved_network(run / "denoiser.safetensors")
    assert meta["pngan.step"] == "2" and meta["pngan.network"] == arch


def test_paper_preset_is_the_papers_length():
    paper = load_denoiser_config("paper")
    assert paper.run.steps == 700_000 and paper.data.patch_size == 128 and paper.data.batch_size == 8
    assert paper.optim.finetune_lr == 1e-6 and paper.net.arch_kwargs == {}


def test_trained_generator_as_on_the_fly_source(tmp_path):
    from pngan.infer.api import NoiseGenerator
    from pngan.nets.loading import save_network
    from pngan.nets.registry import build
    from pngan.seeding import make_generator
    from pngan.train.config import load_train_config
    from pngan.data.pairsources import open_sources as _open_sources
    from pngan.train.loop import train_pngan

    real = _pairs(tmp_path / "r")
    torch.manual_seed(0)
    dn = save_network(build("dncnn", channels=4, depth=2), tmp_path / "dn.safetensors")
    gen_run = tmp_path / "g"
    train_pngan(load_train_config("cpu-small", ["generator.channels=4", "generator.groups=1", "generator.blocks=1",
                                                "loss.d_channels=4", "data.patch_size=16", "data.batch_size=2",
                                                "run.steps=1", "run.threads=1"]),
                [real], gen_run, denoiser=f"dncnn:{dn}", progress=False)
    cfg = load_denoiser_config("cpu-small", ["data.patch_size=16", "data.batch_size=2"])
    (src,) = _open_sources(cfg, [f"gen:{gen_run}:{real}"])
    a, again, b = src.sample(3, 1), _open_sources(cfg, [f"gen:{gen_run}:{real}"])[0].sample(3, 1), src.sample(4, 1)
    assert torch.equal(a["noisy"], again["noisy"])  # reproducible per (seed, step, sample)
    ref = NoiseGenerator.load(gen_run)(a["clean"][None], generator=make_generator(src.seed, "synth-data", 3, 1))
    assert torch.equal(a["noisy"], ref[0].clamp(0, 1))  # = the generator applied to the patch
    assert not torch.equal(a["noisy"] - a["clean"], b["noisy"] - b["clean"])  # fresh noise every step
    run = tmp_path / "d"
    assert main(["train-denoiser", "--arch", "dncnn", "--config", "cpu-small", "--quiet", "--steps", "2",
                 "--data", f"gen:{gen_run}:{real}", "--data", real, "--ratio", "1", "--out", str(run),
                 "data.patch_size=16", "data.batch_size=2", "net.kwargs={depth: 2, channels: 4}"]) == 0
    assert load_saved_network(run / "denoiser.safetensors")[1]["pngan.data"].startswith("gen:")
