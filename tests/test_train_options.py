"""pngan train's loss options end to end: the relativistic average's extent (loss.ra_mean), the
paper config's refusal to train without VGG weights, the spectrum term, removed loss keys; run
settings kept out of the experiment hash."""

from __future__ import annotations

import pytest
import torch

from helpers import TINY_NETS, write_pairs

from pngan.cli import main
from pngan.losses.gan import ra_d_loss, ra_g_loss
from pngan.nets.loading import save_network
from pngan.nets.registry import build


def test_run_settings_are_not_part_of_the_experiment_hash():
    from pngan.train.config import experiment_hash, load_train_config
    from pngan.train.denoiser_config import load_denoiser_config

    for load, preset in ((load_train_config, "cpu-small"), (load_denoiser_config, "cpu-small")):
        h = experiment_hash(load(preset))
        assert experiment_hash(load(preset, ["run.device=cpu", "run.threads=1", "run.log_every=7",
                                             "data.num_workers=2", "run.keep_checkpoints=5"])) == h
        assert experiment_hash(load(preset, ["run.steps=123"])) != h
        assert experiment_hash(load(preset, ["optim.lr=0.5"])) != h


def _literal(real, fake, mean, which):
    """Eq. 5-6 written element by element in float64."""
    r, f = real.double(), fake.double()
    B, _, H, W = r.shape

    def avg(t, b, y, x):
        if mean == "batch":
            return sum(float(t[k, 0, y, x]) for k in range(B)) / B
        return float(t.sum()) / (B * H * W)

    def log_sig(v):
        return -torch.nn.functional.softplus(torch.tensor(-v, dtype=torch.float64))

    ld = lg = 0.0
    n = B * H * W
    for b in range(B):
        for y in range(H):
            for x in range(W):
                dr = float(r[b, 0, y, x]) - avg(f, b, y, x)  # D_Ra(x_r, x_f) logit
                df = float(f[b, 0, y, x]) - avg(r, b, y, x)  # D_Ra(x_f, x_r) logit
                ld += -(log_sig(dr) + log_sig(-df)) / n
                lg += -(log_sig(df) + log_sig(-dr)) / n
    return ld if which == "d" else lg


@pytest.mark.parametrize("mean", ["batch", "batch_hw"])
def test_relativistic_average_matches_the_literal_formula(mean):
    from pngan.train.distributed import Dist

    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(3, 1, 4, 5, generator=g) * 2, torch.randn(3, 1, 4, 5, generator=g) * 2 + 1
    d, gl = float(ra_d_loss(real, fake, mean)), float(ra_g_loss(real, fake, mean))
    assert d == pytest.approx(float(_literal(real, fake, mean, "d")), abs=1e-5)
    assert gl == pytest.approx(float(_literal(real, fake, mean, "g")), abs=1e-5)
    # the multi-process formulation (global batch mean) gives the same loss on one process
    assert float(ra_d_loss(real, fake, mean, batch_mean=Dist().batch_mean)) == pytest.approx(d, abs=1e-6)
    assert float(ra_g_loss(real, fake, mean, batch_mean=Dist().batch_mean)) == pytest.approx(gl, abs=1e-6)
    other = "batch_hw" if mean == "batch" else "batch"
    assert abs(float(ra_d_loss(real, fake, other)) - d) > 1e-3  # the two readings really differ


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("opts")
    write_pairs(root / "p", 2, 24, 24)
    torch.manual_seed(0)
    dn = save_network(build("dncnn", channels=4, depth=2), root / "dn.safetensors")
    return root, f"pairs:{root / 'p'}", f"dncnn:{dn}"


TINY = [*TINY_NETS, "run.steps=1", "run.threads=1"]


def test_paper_config_refuses_to_train_without_vgg(tiny, capsys):
    root, data, dn = tiny
    args = ["train", "--data", data, "--denoiser", dn, "--config", "paper", "--quiet", *TINY]
    assert main([*args, "--out", str(root / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--vgg" in err and "loss.perceptual=off" in err and len(err.splitlines()) == 1
    assert not (root / "a").exists()  # refused before the run folder is made
    assert main([*args, "loss.perceptual=off", "--out", str(root / "b")]) == 0  # explicitly off: runs
    assert main([*args[:6], "cpu-small", *args[7:], "--out", str(root / "c")]) == 0  # small preset: warns, runs


def test_ra_mean_batch_hw_trains(tiny):
    root, data, dn = tiny
    assert main(["train", "--data", data, "--denoiser", dn, "--config", "cpu-small", "--quiet", *TINY,
                 "loss.ra_mean=batch_hw", "--out", str(root / "hw")]) == 0
    assert main(["train", "--data", data, "--denoiser", dn, "--config", "cpu-small", "--quiet", *TINY,
                 "loss.ra_mean=pixel", "--out", str(root / "bad")]) == 2


def test_spectrum_term_is_logged_and_checked(tiny):
    import json

    root, data, dn = tiny
    args = ["train", "--data", data, "--denoiser", dn, "--config", "cpu-small", "--quiet", *TINY, "run.log_every=1"]
    assert main([*args, "loss.lambda_spectrum=0.5", "--out", str(root / "spec")]) == 0
    rec = [json.loads(line) for line in (root / "spec" / "stats.jsonl").read_text().splitlines()]
    assert rec and rec[-1]["loss_spectrum"] > 0
    assert rec[-1]["loss_g"] > 0.5 * rec[-1]["loss_spectrum"]  # the term enters G's loss with its weight
    assert main([*args, "loss.lambda_spectrum=0", "--out", str(root / "nospec")]) == 0
    rec = [json.loads(line) for line in (root / "nospec" / "stats.jsonl").read_text().splitlines()]
    assert "loss_spectrum" not in rec[-1]
    assert main([*args, "loss.lambda_spectrum=-1", "--out", str(root / "neg")]) == 2


def test_removed_d_input_is_refused_unless_at_the_papers_value(tiny, capsys):
    """loss.d_input (D judging noise maps) lost every experiment and was removed: asking for it is one
    line naming the key; an older config.yaml's 'noisy' (the paper, what D always sees) is accepted."""
    root, data, dn = tiny
    args = ["train", "--data", data, "--denoiser", dn, "--config", "cpu-small", "--quiet", *TINY]
    capsys.readouterr()
    assert main([*args, "loss.d_input=noise_clean", "--out", str(root / "dnc")]) == 2
    err = capsys.readouterr().err.strip()
    assert "loss.d_input" in err and "removed" in err and len(err.splitlines()) == 1
    assert not (root / "dnc").exists()
    assert main([*args, "loss.d_input=noisy", "--out", str(root / "dn_ok")]) == 0
