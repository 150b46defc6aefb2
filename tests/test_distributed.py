"""Multi-process runs: ``pngan train`` / ``generate`` / ``train-denoiser`` under torchrun (2 CPU
processes, gloo), compared with 1-process runs of the same global batch.

Deselect with ``-m "not distributed"``. Every run is a real ``python -m torch.distributed.run``
launch of the CLI, exactly as a user would type it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as td

from pngan.io.images import write_image
from pngan.nets.loading import read_state_dict, save_network
from pngan.nets.registry import build

pytestmark = [
    pytest.mark.distributed,
    pytest.mark.skipif(not td.is_available(), reason="torch.distributed is not available in this torch build"),
]

TINY = ["--config", "cpu-small", "--quiet", "generator.channels=4", "generator.groups=1", "generator.blocks=1",
        "loss.d_channels=4", "data.patch_size=16", "data.batch_size=4", "run.steps=4", "run.threads=1",
        "run.log_every=1", "run.ckpt_every=2", "run.keep_checkpoints=3", "run.sample_every=100",
        # the paper's input and initialisation, for which the tolerance analysis below was made (with
        # cpu-small's identity init more of D's elements get pure-rounding-noise gradients at step 0)
        "synthetic.setting=awgn", "generator.init=default"]

# Tolerance for "2 processes == 1 process" on the weights after 4 Adam steps. The two runs optimise
# the same loss on the same global batch of 4 (the relativistic batch mean is global, DDP averages
# gradients, no batch norm in G or D, the frozen DnCNN is in eval mode); they differ only in float32
# summation order (per-rank partial sums, then an all-reduce), ~1e-7 relative in each gradient.
# Measured: max |difference| ~1e-7 over G and over D -- except a few D elements whose gradient
# vanishes in exact arithmetic: the relativistic loss C(a) - E[C(b)] is invariant to a constant
# shift of the logits, so D's last bias (and the bias of a channel that stays on one side of its
# LeakyReLU) gets a gradient of pure rounding noise (RMS ~1e-8, against ~3e-4 typical), which
# Adam's g / sqrt(v) normalisation turns into full +-lr steps of random sign. Such elements
# (RMS gradient < 1e-6 in the 1-process run's Adam state) are held only to Adam's step bound;
# every other element to ATOL, far below the training's own effect on the weights (also checked).
ATOL = 2e-5
NOISE_RMS = 1e-6
LR_SUM = 1e-3 + 8.54e-4 + 5.01e-4 + 1.48e-4  # cpu-small cosine schedule, steps 0..3 of 4


def _env() -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def _pngan(nproc: int, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    if nproc == 1:
        cmd = [sys.executable, "-m", "pngan", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "pngan", *args]
    r = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, f"{' '.join(cmd)}\n--- stdout\n{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-5000:]}"
    return r


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    data = root / "pairs"
    for sub in ("noisy", "clean"):
        (data / sub).mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    for k in range(3):  # 3 images: an uneven split over 2 ranks in `generate`
        clean = torch.rand(3, 24, 28, generator=g)
        write_image(data / "clean" / f"i{k}.png", clean)
        write_image(data / "noisy" / f"i{k}.png", (clean + 0.05 * torch.randn(3, 24, 28, generator=g)).clamp(0, 1))
    torch.manual_seed(0)
    dn = save_network(build("dncnn", channels=4, depth=3), root / "dn.safetensors")
    train = ["train", "--data", f"pairs:{data}", "--denoiser", f"dncnn:{dn}"]
    _pngan(1, *train, "--out", str(root / "r1"), *TINY, cwd=root)
    _pngan(2, *train, "--out", str(root / "r2"), *TINY, cwd=root)
    return root, data, train


def _weights(run: Path, step: int) -> dict[str, dict[str, torch.Tensor]]:
    d = run / "checkpoints" / f"{step:08d}"
    return {n: read_state_dict(d / f"{n}.safetensors") for n in ("generator", "discriminator")}


def _max_diff(a, b) -> float:
    return max(float((a[n][k] - b[n][k]).abs().max()) for n in a for k in a[n])


def _noise_masks(run: Path, step: int, generator: str = "smnet") -> dict[str, dict[str, torch.Tensor]]:
    """Elements whose RMS gradient (Adam's bias-corrected sqrt(v)) is at rounding-noise level."""
    st = torch.load(run / "checkpoints" / f"{step:08d}" / "state.pt", weights_only=True)
    nets = {"generator": ("optG", build(generator, channels=4, groups=1, blocks=1)),
            "discriminator": ("optD", build("pixel_discriminator", channels=4))}
    out = {}
    for name, (opt, net) in nets.items():
        out[name] = {}
        for i, (k, _) in enumerate(net.named_parameters()):
            s = st[opt]["state"][i]
            rms = (s["exp_avg_sq"] / (1 - 0.999 ** float(s["step"]))).sqrt()
            out[name][k] = (rms > 0) & (rms < NOISE_RMS)  # (exactly zero: no gradient at all, must match)
    return out


def _assert_same_training(a, b, masks) -> None:
    noisy = total = 0
    for n in a:
        for k in masks[n]:  # every parameter once (a shared module's other names hold the same tensor)
            d, m = (a[n][k] - b[n][k]).abs(), masks[n][k]
            exact, noise = float(torch.where(m, 0.0, d).max()), float(torch.where(m, d, 0.0).max())
            assert exact < ATOL, (n, k, exact)
            assert noise <= 3.2 * LR_SUM, (n, k, noise)  # |Adam step| <= (1-b1)/sqrt(1-b2) lr ~ 3.16 lr
            noisy, total = noisy + int(m.sum()), total + m.numel()
    assert noisy < 0.01 * total  # a handful of elements, not a loophole


def _stats(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]


def test_two_process_train_matches_one_process(setup):
    root, _, _ = setup
    w1, w2 = _weights(root / "r1", 4), _weights(root / "r2", 4)
    _assert_same_training(w1, w2, _noise_masks(root / "r1", 4))
    # the runs did train: their weights moved far more than the tolerance since the first checkpoint
    assert _max_diff(_weights(root / "r1", 2), w1) > 10 * ATOL
    # rank 0 alone logged, one line per step, the global batch's losses
    s1, s2 = _stats(root / "r1"), _stats(root / "r2")
    assert [r["step"] for r in s2] == [1, 2, 3, 4]
    for a, b in zip(s1, s2):
        for k in ("loss_d", "loss_align", "loss_adv", "loss_g", "lr"):
            assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-7), (a["step"], k)
    assert (root / "r2" / "generator.safetensors").is_file() and (root / "r2" / "config.yaml").is_file()
    assert not list((root / "r2").rglob(".tmp-*"))


def test_two_process_generate_equals_one_process(setup):
    root, data, _ = setup
    gen = ["generate", "--generator", str(root / "r1"), "--input", f"pairs:{data}", "--samples", "2", "--quiet"]
    out1 = _pngan(1, *gen, "--output", str(root / "g1"), cwd=root).stdout
    out2 = _pngan(2, *gen, "--output", str(root / "g2"), cwd=root).stdout
    assert "wrote 6 noisy images" in out1 and out2.count("wrote 6 noisy images") == 1  # totals, rank 0 only
    f1 = sorted(p.relative_to(root / "g1") for p in (root / "g1").rglob("*") if p.is_file())
    f2 = sorted(p.relative_to(root / "g2") for p in (root / "g2").rglob("*") if p.is_file())
    assert f1 == f2 and len(f1) == 3 + 6 + 2  # clean, noisy, manifest.jsonl, job.json; no leftover rank parts
    for rel in f1:
        assert (root / "g1" / rel).read_bytes() == (root / "g2" / rel).read_bytes(), rel
    assert len((root / "g2" / "manifest.jsonl").read_text().splitlines()) == 6


def test_two_process_ra_mean_batch_hw_matches_one_process(setup):
    """loss.ra_mean=batch_hw (E[C] over batch, height and width) also takes the GLOBAL batch."""
    root, _, train = setup
    for n in (1, 2):
        _pngan(n, *train, "--out", str(root / f"hw{n}"), *TINY, "loss.ra_mean=batch_hw", cwd=root)
    _assert_same_training(_weights(root / "hw1", 4), _weights(root / "hw2", 4), _noise_masks(root / "hw1", 4))
    s1, s2, s_batch = _stats(root / "hw1"), _stats(root / "hw2"), _stats(root / "r1")
    for a, b in zip(s1, s2):
        assert b["loss_adv"] == pytest.approx(a["loss_adv"], rel=1e-5, abs=1e-7)
    assert s1[0]["loss_d"] != s_batch[0]["loss_d"]  # the option changed the loss


def test_two_process_train_with_the_released_networks(setup):
    """SIMNet (one CAU applied twice, one PReLU everywhere: shared parameters under DDP) trains to the
    1-process weights; the released dense D (BatchNorm: per-process statistics on CPU) trains too."""
    root, _, train = setup
    for n in (1, 2):
        _pngan(n, *train, "--out", str(root / f"sim{n}"), *TINY, "generator.name=simnet", cwd=root)
    w1, w2 = _weights(root / "sim1", 4), _weights(root / "sim2", 4)
    # G only: here D's near-shift-invariant biases (see the tolerance note above) drift by up to a few
    # Adam steps with gradients of ~1e-4 RMS, which the 1e-6 noise threshold was not set for
    masks = _noise_masks(root / "sim1", 4, "simnet")
    _assert_same_training({"generator": w1["generator"]}, {"generator": w2["generator"]},
                          {"generator": masks["generator"]})
    assert _max_diff({"generator": _weights(root / "sim1", 2)["generator"]}, {"generator": w1["generator"]}) > 10 * ATOL
    _pngan(2, *train, "--out", str(root / "dense2"), *TINY, "generator.name=simnet", "loss.discriminator=dense", cwd=root)
    d = _weights(root / "dense2", 4)["discriminator"]
    assert int(d["net.3.num_batches_tracked"]) > 0 and all(torch.isfinite(v).all() for v in d.values())
    assert all(math.isfinite(r["loss_d"]) for r in _stats(root / "dense2"))


@pytest.mark.parametrize("first,then", [(2, 1), (1, 2)])
def test_resume_with_a_different_process_count(setup, first, then):
    """Drop the step-4 checkpoint of a `first`-process run, resume it with `then` processes from
    step 2: it must reach the weights of the uninterrupted runs."""
    root, _, train = setup
    run = root / f"resume_{first}to{then}"
    shutil.copytree(root / f"r{first}", run)
    shutil.rmtree(run / "checkpoints" / "00000004")
    (run / "generator.safetensors").unlink()
    r = _pngan(then, *train, "--out", str(run), "--resume", "--quiet", cwd=root)
    assert "resuming" in r.stderr and "from step 2" in r.stderr
    assert [s["step"] for s in _stats(run)] == [1, 2, 3, 4]  # steps 3-4 rewritten, none duplicated
    masks = _noise_masks(root / "r1", 4)
    _assert_same_training(_weights(run, 4), _weights(root / f"r{then}", 4), masks)
    _assert_same_training(_weights(run, 4), _weights(root / f"r{first}", 4), masks)
    assert (run / "generator.safetensors").is_file()


def test_two_process_train_denoiser_matches_one_process(setup):
    """MIRNet (no batch norm; this tiny layout also has modules its forward never uses, which DDP
    must be told about) trained by 2 processes equals the 1-process run of the same global batch."""
    root, data, _ = setup
    args = ["train-denoiser", "--arch", "mirnet", "--data", f"pairs:{data}", "--config", "cpu-small", "--quiet",
            "net.kwargs={n_feat: 8, n_RRG: 1, n_MSRB: 1, height: 2, width: 1}", "data.patch_size=16",
            "data.batch_size=4", "run.steps=4", "run.threads=1", "run.log_every=1"]
    _pngan(1, *args, "--out", str(root / "d1"), cwd=root)
    r = _pngan(2, *args, "--out", str(root / "d2"), cwd=root)
    assert "take no part in the forward" in r.stderr
    a = read_state_dict(root / "d1" / "denoiser.safetensors")
    b = read_state_dict(root / "d2" / "denoiser.safetensors")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < ATOL
    assert max(float((a[k] - read_state_dict(root / "d1" / "checkpoints" / "00000004" / "denoiser.safetensors")[k])
                     .abs().max()) for k in a) == 0.0
    s1, s2 = _stats(root / "d1"), _stats(root / "d2")
    assert [x["step"] for x in s2] == [1, 2, 3, 4]
    for x, y in zip(s1, s2):
        assert y["loss_l1"] == pytest.approx(x["loss_l1"], rel=1e-5)
    assert s1[-1]["loss_l1"] < s1[0]["loss_l1"]  # it trained


def test_rank0_run_folder_error_stops_every_rank(setup):
    """Rank 0 alone checks the run folder; the other ranks must stop with it, not wait forever."""
    root, _, train = setup
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "pngan",
           *train, "--out", str(root / "r2"), *TINY]  # exists, no --resume
    r = subprocess.run(cmd, cwd=root, env=_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "run folder exists: pass --resume" in r.stderr
    # rank 1 stopped too: subprocess.run returned (torchrun waits for every worker) within the timeout.
    # Since pngan.train.runid's folder checks run on every rank before any work, rank 1 either prints
    # the same error itself or is stopped by torchrun when rank 0 fails first -- a race, so which of the
    # two happened is not asserted (asserting rank 1's own message failed 1 run in 4 in CI).
    assert r.stderr.count("pngan: error:") >= 1
