"""`pngan train` without --denoiser: the frozen denoiser is trained on the same pairs first, into the
run folder, announced and resumable; the calibrated input and the identity initialisation."""

from __future__ import annotations

import json

import pytest
import torch

from helpers import TINY_NETS, write_pairs

from pngan.cli import main

TINY = [*TINY_NETS, "run.log_every=1", "run.sample_every=100",
        "run.ckpt_every=2", "run.threads=1", "run.channels_last=false"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = write_pairs(tmp_path_factory.mktemp("pairs"), 3, 24, 28)
    dn_cfg = root.parent / "dn.yaml"
    dn_cfg.write_text("base: cpu-small\nnet:\n  kwargs: {depth: 3, channels: 4}\ndata: {patch_size: 16, batch_size: 2}\n"
                      "run: {steps: 3, log_every: 1, ckpt_every: 2, threads: 1}\n")
    return f"pairs:{root}", str(dn_cfg)


def test_train_without_denoiser_trains_it_first_and_resumes(data, tmp_path, caplog):
    spec, dn_cfg = data
    run = tmp_path / "run"
    caplog.set_level("INFO", logger="pngan")
    args = ["train", "--data", spec, "--out", str(run), "--config", "cpu-small", "--denoiser-config", dn_cfg,
            "--quiet", *TINY]
    assert main(args + ["--steps", "2"]) == 0
    assert "no --denoiser given: training the frozen real denoiser" in caplog.text
    dn = run / "frozen-denoiser"
    assert (dn / "done").is_file() and (dn / "denoiser.safetensors").is_file()
    assert json.loads((dn / "stats.jsonl").read_text().splitlines()[-1])["step"] == 3
    assert (run / "generator.safetensors").is_file()
    before = (dn / "denoiser.safetensors").stat().st_mtime_ns
    # resume with more steps: the same frozen denoiser is reused, not trained again
    assert main(["train", "--data", spec, "--out", str(run), "--resume", "--quiet", "--steps", "4"]) == 0
    assert (dn / "denoiser.safetensors").stat().st_mtime_ns == before
    assert json.loads((run / "stats.jsonl").read_text().splitlines()[-1])["step"] == 4
    # a new run into the folder is refused
    assert main(args + ["--steps", "2"]) == 2
    # another --denoiser-config on resume is refused, in one process and in each process under torchrun
    other = tmp_path / "dn2.yaml"
    other.write_text(open(dn_cfg).read().replace("depth: 3", "depth: 4"))
    from pngan.commands.train import frozen_denoiser
    from pngan.errors import PnganError
    from pngan.train.config import load_train_config

    ns = type("A", (), {"out": str(run), "denoiser_config": str(other), "resume": True, "data": [spec], "quiet": True})
    for world in ("1", "2"):
        import os

        old = os.environ.get("WORLD_SIZE")
        os.environ["WORLD_SIZE"] = world
        try:
            with pytest.raises(PnganError, match="differs from the config this run's frozen denoiser"):
                frozen_denoiser(ns, load_train_config(str(run / "config.yaml"), None))
        finally:
            os.environ.pop("WORLD_SIZE") if old is None else os.environ.__setitem__("WORLD_SIZE", old)


def test_interrupted_denoiser_training_resumes_then_pngan_starts(data, tmp_path):
    from pngan.train.denoiser import train_denoiser
    from pngan.train.denoiser_config import load_denoiser_config

    spec, dn_cfg = data
    run = tmp_path / "run"
    # as if `pngan train` had been stopped while its denoiser trained: a frozen-denoiser run folder
    # without the "done" marker (--resume continues that run, then starts PNGAN)
    train_denoiser(load_denoiser_config(dn_cfg, ["run.steps=2"]), [spec], run / "frozen-denoiser", progress=False)
    assert not (run / "frozen-denoiser" / "done").exists()
    assert main(["train", "--data", spec, "--out", str(run), "--resume", "--config", "cpu-small", "--quiet",
                 "--steps", "2", *TINY]) == 0
    assert (run / "frozen-denoiser" / "done").is_file()
    assert (run / "generator.safetensors").is_file()


def test_calibrated_input_and_identity_init_start_at_the_fitted_baseline(data, tmp_path):
    from pngan.data.specs import open_dataset
    from pngan.train.config import load_train_config
    from pngan.train.loop import build_models

    spec, _ = data
    cfg = load_train_config("cpu-small", TINY + ["synthetic.setting=calibrated", "generator.init=identity"])
    cfg.loss.alignment = "naive"
    G, D, Dn, perc, synth = build_models(cfg, None, None, torch.device("cpu"), open_dataset(spec))
    assert synth.describe()["setting"] == "calibrated"
    x = torch.rand(2, 3, 16, 16)
    noisy = synth(x, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(G(noisy), noisy)  # the identity of its input at step 0
    # the run stores the fitted setting, so generation rebuilds exactly the same input
    run = tmp_path / "run"
    assert main(["train", "--data", spec, "--out", str(run), "--config", "cpu-small", "--quiet", "--steps", "1",
                 "loss.alignment=naive", "synthetic.setting=calibrated", *TINY]) == 0
    from pngan.infer.api import NoiseGenerator

    gen = NoiseGenerator.load(run)
    assert gen.synthetic.describe()["a"] == synth.describe()["a"]


def test_lambda_align_weights_the_alignment_term(data, tmp_path):
    """loss.lambda_align multiplies L_align (the paper's weight is 1): at 0, with no other term, the
    generator gets no gradient and Adam leaves its weights exactly as initialised."""
    from pngan.nets.loading import read_state_dict

    spec, _ = data
    common = ["train", "--data", spec, "--config", "cpu-small", "--quiet", "--steps", "1", *TINY,
              "loss.alignment=naive", "loss.discriminator=none", "loss.lambda_p=0", "loss.lambda_spectrum=0",
              "generator.init=default"]
    assert main(common + ["loss.lambda_align=0", "--out", str(tmp_path / "a0")]) == 0
    assert main(common + ["loss.lambda_align=1", "--out", str(tmp_path / "a1")]) == 0
    w0 = read_state_dict(tmp_path / "a0" / "generator.safetensors")
    w1 = read_state_dict(tmp_path / "a1" / "generator.safetensors")
    from pngan.nets.registry import build
    from pngan.seeding import derive_seed

    torch.manual_seed(derive_seed(0, "init"))
    init = build("smnet", channels=4, groups=1, blocks=1).state_dict()
    assert all(torch.equal(w0[k], init[k]) for k in init)
    assert any(not torch.equal(w1[k], init[k]) for k in init)


def test_cpu_sidd_needs_no_denoiser(data, tmp_path, caplog):
    """cpu-sidd gives the alignment term no weight: `pngan train` neither trains nor asks for a
    frozen denoiser, and logs no alignment term; with a denoiser given the term is logged (not
    weighted), and G's weights are the same either way."""
    from pngan.nets.loading import read_state_dict
    from pngan.train.config import load_train_config

    cfg = load_train_config("cpu-sidd")
    assert (cfg.loss.lambda_align, cfg.loss.lambda_marginal, cfg.loss.lambda_spectrum, cfg.synthetic.level,
            cfg.run.steps, cfg.generator.keep_white) == (0.0, 5.0, 0.01, "match", 2400, True)
    assert load_train_config("cpu-small").loss.lambda_marginal == 0.0  # the presets stay independent
    spec, dn_cfg = data
    caplog.set_level("INFO", logger="pngan")
    base = ["train", "--data", spec, "--config", "cpu-sidd", "--quiet", "--steps", "2", *TINY]
    assert main(base + ["--out", str(tmp_path / "a")]) == 0
    assert "frozen real denoiser" not in caplog.text
    assert not (tmp_path / "a" / "frozen-denoiser").exists()
    rows = [json.loads(x) for x in (tmp_path / "a" / "stats.jsonl").read_text().splitlines()]
    assert rows and all("loss_align" not in r and "loss_marginal" in r for r in rows if "loss_g" in r)
    # with a denoiser: logged only; the training itself is unchanged
    from pngan.nets.loading import save_network
    from pngan.nets.registry import build

    dn = save_network(build("dncnn", channels=4, depth=3), tmp_path / "dn.safetensors")
    assert main(base + ["--out", str(tmp_path / "b"), "--denoiser", f"dncnn:{dn}"]) == 0
    rows = [json.loads(x) for x in (tmp_path / "b" / "stats.jsonl").read_text().splitlines()]
    assert any("loss_align" in r for r in rows)
    wa = read_state_dict(tmp_path / "a" / "generator.safetensors")
    wb = read_state_dict(tmp_path / "b" / "generator.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_without_denoiser_checks_the_recorded_file(data, tmp_path, capsys):
    """--resume without --denoiser uses the recorded frozen denoiser: a file retrained or replaced
    since the run started is refused (its SHA-256 is recorded), not trained on silently."""
    from pngan.nets.loading import save_network
    from pngan.nets.registry import build

    spec, _ = data
    torch.manual_seed(0)
    dn = save_network(build("dncnn", depth=2, channels=4), tmp_path / "dn.safetensors", {})
    run = tmp_path / "run"
    assert main(["train", "--data", spec, "--out", str(run), "--config", "cpu-small", "--denoiser", f"dncnn:{dn}",
                 "--quiet", "--steps", "2", *TINY]) == 0
    torch.manual_seed(1)
    save_network(build("dncnn", depth=2, channels=4), dn, {})  # retrained in place
    assert main(["train", "--data", spec, "--out", str(run), "--resume", "--quiet", "--steps", "3"]) == 2
    assert "changed since the run started" in capsys.readouterr().err
