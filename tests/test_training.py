"""PNGAN training: exact resume, divergence handling, interruptions (SIGINT, SIGKILL), run folders."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import TINY_NETS, write_pairs

from pngan.errors import DivergenceError, PnganError
from pngan.nets.loading import read_state_dict, save_network
from pngan.nets.registry import build
from pngan.train.checkpoint import list_checkpoints
from pngan.train.config import load_train_config
from pngan.train.engine import Engine
from pngan.train.loop import train_pngan

TINY = [*TINY_NETS, "run.log_every=1", "run.sample_every=100",
        "run.ckpt_every=3", "run.threads=1", "run.channels_last=false"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    data = write_pairs(root / "pairs", 3, 24, 28)
    torch.manual_seed(0)
    dn = save_network(build("dncnn", channels=4, depth=3), root / "dn.safetensors")
    return root, f"pairs:{data}", f"dncnn:{dn}"


def _cfg(*extra):
    return load_train_config("cpu-small", TINY + list(extra))


def test_resume_is_bit_identical(setup):
    root, data, dn = setup
    full = train_pngan(_cfg("run.steps=6"), [data], root / "full", denoiser=dn, progress=False)
    assert full.step == 6
    # stop after 3 steps (with the 6-step schedule, as an interrupted run), then resume to 6
    part = train_pngan(_cfg("run.steps=6"), [data], root / "part", denoiser=dn, progress=False, stop_after=3)
    assert part.interrupted and part.step == 3
    assert [s for s, _ in list_checkpoints(root / "part")] == [3]
    res = train_pngan(_cfg("run.steps=6"), [data], root / "part", denoiser=dn, resume=True, progress=False)
    assert res.step == 6
    for name in ("generator", "discriminator"):
        a = read_state_dict(root / "full" / "checkpoints" / "00000006" / f"{name}.safetensors")
        b = read_state_dict(root / "part" / "checkpoints" / "00000006" / f"{name}.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a), name
    stats = [l for l in (root / "part" / "stats.jsonl").read_text().splitlines()]
    assert len(stats) == 6  # steps 1..6, none duplicated by the resume
    assert (root / "part" / "generator.safetensors").is_file()
    assert (root / "full" / "config.yaml").is_file() and (root / "full" / "samples").is_dir()


def test_worker_prepared_batches_match_and_phase_times_are_logged(setup):
    root, data, dn = setup
    runs = {w: train_pngan(_cfg("run.steps=4", f"data.num_workers={w}"), [data], root / f"workers{w}",
                           denoiser=dn, progress=False) for w in (0, 2)}
    a, b = (read_state_dict(r.run_dir / "generator.safetensors") for r in runs.values())
    assert all(torch.equal(a[k], b[k]) for k in a)  # batches are a function of (seed, step) only
    rows = [json.loads(line) for line in (root / "workers2" / "stats.jsonl").read_text().splitlines()]
    for r in rows:
        phases = [r[f"sec_{k}"] for k in ("data", "g_forward", "d_step", "g_step")]
        assert all(p > 0 for p in phases) and sum(phases) <= r["sec_per_step"] * 1.05 + 1e-3


def test_nan_stops_with_a_clear_message(setup, monkeypatch):
    root, data, dn = setup
    monkeypatch.setattr(Engine, "nan_at_step", 4)
    with pytest.raises(DivergenceError, match=r"step 4: non-finite.*last good checkpoint: .*00000003"):
        train_pngan(_cfg("run.steps=6"), [data], root / "nan", denoiser=dn, progress=False)
    assert [s for s, _ in list_checkpoints(root / "nan")] == [3]  # bad weights never written


def test_nan_rollback_continues(setup, monkeypatch):
    root, data, dn = setup
    monkeypatch.setattr(Engine, "nan_at_step", 4)
    res = train_pngan(_cfg("run.steps=6", "run.on_nan=rollback"), [data],
                      root / "rb", denoiser=dn, progress=False)
    assert res.step == 6
    st = torch.load(root / "rb" / "checkpoints" / "00000006" / "state.pt", weights_only=True)
    assert st["rollbacks"] == 1 and st["lr_scale"] == 0.5


def test_refuses_to_clobber_and_needs_pairs(setup, tmp_path):
    root, data, dn = setup
    with pytest.raises(PnganError, match="--resume"):
        train_pngan(_cfg("run.steps=6"), [data], root / "full", denoiser=dn, progress=False)
    with pytest.raises(PnganError, match="no clean"):
        from pngan.data.specs import parse_spec

        train_pngan(_cfg("run.steps=1"), [f"noisy:{parse_spec(data)[1]}/noisy"], tmp_path / "x", denoiser=dn, progress=False)
    with pytest.raises(PnganError, match="denoiser"):
        train_pngan(_cfg("run.steps=1"), [data], tmp_path / "y", progress=False)


def _cli(args, **kw):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.update(kw.pop("env", {}))
    return subprocess.Popen([sys.executable, "-m", "pngan", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=env, **kw)


def _wait_for(path: Path, timeout: float = 60) -> None:
    t = time.time()
    while not path.exists():
        if time.time() - t > timeout:
            raise TimeoutError(path)
        time.sleep(0.05)


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_matches(setup):
    root, data, dn = setup
    args = ["train", "--data", data, "--denoiser", dn, "--config", "cpu-small", "--quiet", *TINY, "run.steps=9"]
    ref = _cli([*args, "--out", str(root / "ref")])
    assert ref.wait(timeout=120) == 0, ref.stdout.read()
    # a checkpoint write that is killed between the temp write and the rename
    p = _cli([*args, "--out", str(root / "killed")], env={"PNGAN_TEST_SLEEP_BEFORE_RENAME": "30"})
    ck = root / "killed" / "checkpoints"
    t = time.time()
    while not (ck.is_dir() and any(x.name.startswith(".tmp-") and (x / "state.pt").exists() for x in ck.iterdir())):
        assert time.time() - t < 60 and p.poll() is None
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert list_checkpoints(root / "killed") == []  # the half-written checkpoint never counts
    p = _cli([*args, "--out", str(root / "killed")])  # fresh run folder state: config.yaml exists -> must resume
    out = p.communicate(timeout=60)[0].decode()
    assert p.returncode == 2 and "--resume" in out
    p = _cli([*args, "--out", str(root / "killed"), "--resume"])
    assert p.wait(timeout=120) == 0, p.stdout.read()
    a = read_state_dict(root / "ref" / "generator.safetensors")
    b = read_state_dict(root / "killed" / "generator.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not any(x.name.startswith(".tmp-") for x in ck.iterdir())


@pytest.mark.slow
def test_sigint_writes_a_checkpoint_and_exits_cleanly(setup):
    root, data, dn = setup
    args = ["train", "--data", data, "--denoiser", dn, "--config", "cpu-small", "--quiet", *TINY,
            "run.steps=100000", "run.ckpt_every=100000", "--out", str(root / "int")]
    p = _cli(args)
    _wait_for(root / "int" / "stats.jsonl")
    p.send_signal(signal.SIGINT)
    out = p.communicate(timeout=60)[0].decode()
    assert p.returncode == 130, out
    cks = list_checkpoints(root / "int")
    assert len(cks) == 1 and cks[0][0] >= 1 and "--resume" in out


@pytest.mark.slow
def test_compiled_training_matches_eager(setup):
    """run.compile=true (torch.compile of G and D; inductor's C++ backend on CPU) computes the same
    losses as eager (Adam's sign-like first steps amplify rounding in the weights, so the losses of
    the first step, from identical weights, are what is compared) and saves the same weight names."""
    root, data, dn = setup
    runs = {c: train_pngan(_cfg("run.steps=2", f"run.compile={c}"), [data], root / f"compile-{c}", denoiser=dn,
                           progress=False) for c in ("false", "true")}
    a, b = (read_state_dict(r.run_dir / "generator.safetensors") for r in runs.values())
    assert set(a) == set(b)  # the compiled module's weights are saved under the plain names
    rows = {c: [json.loads(line) for line in (r.run_dir / "stats.jsonl").read_text().splitlines()]
            for c, r in runs.items()}
    for key in ("loss_d", "loss_align", "loss_adv", "loss_g"):
        e, c = rows["false"][0][key], rows["true"][0][key]
        assert abs(e - c) <= 1e-4 * abs(e), key
    assert rows["true"][1]["loss_g"] != rows["true"][0]["loss_g"]  # and it trains


def test_data_workers_auto():
    from pngan.train.distributed import data_workers

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert data_workers(3, cpu, 1) == 3 and data_workers(0, cuda, 1) == 0  # explicit values win
    assert data_workers(-1, cpu, 1) == 0  # CPU: the step uses every core
    assert 1 <= data_workers(-1, cuda, 1) <= 4 and data_workers(-1, cuda, 10**6) == 1


def test_removed_generator_knobs_load_at_their_off_value_and_are_refused_otherwise(caplog):
    """optim.g_warmup and optim.ema were removed (docs/experiments.md: neither helped), generator.sid
    too (generator.downsample says the same); an older config.yaml holds them at their off value,
    which trains as today (one warning); another value is refused."""
    from pngan.errors import PnganError
    from pngan.train.config import load_train_config

    with caplog.at_level("WARNING", logger="pngan"):
        cfg = load_train_config("cpu-small", ["optim.g_warmup=0", "optim.ema=0.0", "generator.sid=true"])
    assert "optim.g_warmup" in caplog.text and "optim.ema" in caplog.text and "removed" in caplog.text
    assert "generator.sid" in caplog.text
    assert not hasattr(cfg.optim, "ema") and not hasattr(cfg.optim, "g_warmup") and not hasattr(cfg.generator, "sid")
    for bad in ("optim.g_warmup=100", "optim.ema=0.99", "generator.sid=false"):
        with pytest.raises(PnganError, match="was removed from pngan"):
            load_train_config("cpu-small", [bad])


def test_adam_betas_below_one_and_lr_min_not_above_lr():
    """beta = 1 passed the range and ended in torch's ValueError traceback at the first step; an
    lr_min above lr was accepted (a schedule that rises)."""
    from pngan.errors import PnganError
    from pngan.train.config import load_train_config
    from pngan.train.denoiser_config import load_denoiser_config

    for load in (load_train_config, load_denoiser_config):
        for bad, words in (("optim.beta1=1", r"in \[0.0, 1.0\)"), ("optim.beta2=1.0", r"in \[0.0, 1.0\)"),
                           ("optim.lr_min=0.5", "above optim.lr")):
            with pytest.raises(PnganError, match=words):
                load("cpu-small", [bad])
    load_train_config("cpu-small", ["optim.beta1=0.99", "optim.lr_min=0.001"])  # lr_min == lr: a constant rate
