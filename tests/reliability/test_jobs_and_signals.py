"""Jobs, resume, folder locks and signals. An output folder of generate or synth holds one job (seed,
generator, input, setting, tiling): another job is refused naming the difference, files already there
are verified, not trusted by name, and an input replaced under the same name is redone; a real
folder is never overwritten. ``--resume`` refuses a run whose options, config, data or networks
changed (also a run of an older pngan without run.json). A folder is locked against a second pngan
process, the lock dying with its holder. SIGTERM is handled like SIGINT: a checkpoint, exit 143, also
when the whole process group (DataLoader workers) is signalled and during pngan demo.

More on output folders: test_output_folders.py; on run folders and resume: test_resume_and_runs.py."""

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

from helpers import write_images

from pngan.cli import main
from pngan.io.images import write_image
from pngan.nets.loading import save_network
from pngan.nets.registry import build
from pngan.train.checkpoint import list_checkpoints

TINY = ["--config", "cpu-small", "--quiet", "generator.channels=4", "generator.groups=1", "generator.blocks=1",
        "loss.d_channels=4", "data.patch_size=16", "data.batch_size=2", "run.threads=1", "run.log_every=1"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("jobs")
    g = torch.Generator().manual_seed(0)
    for name in ("pairs", "pairs2"):
        for sub in ("noisy", "clean"):
            (root / name / sub).mkdir(parents=True)
        for k in range(3):
            c = torch.rand(3, 24, 28, generator=g)
            write_image(root / name / "clean" / f"i{k}.png", c)
            write_image(root / name / "noisy" / f"i{k}.png", (c + 0.05 * torch.randn(3, 24, 28, generator=g)).clamp(0, 1))
    torch.manual_seed(0)
    dn = save_network(build("dncnn", channels=4, depth=3), root / "dn.safetensors")
    gen = save_network(build("smnet", channels=4, groups=1, blocks=1), root / "gen.safetensors",
                       {"pngan.synthetic": {"setting": "awgn", "sigma": 50.0}})
    gen2 = save_network(build("smnet", channels=4, groups=1, blocks=1), root / "gen2.safetensors",
                        {"pngan.synthetic": {"setting": "awgn", "sigma": 50.0}})
    return root, dn, gen, gen2


def _err(capsys, args, code=2):
    capsys.readouterr()
    rc = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == code, err
    return err


def _digest(root: Path) -> dict:
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _popen(args):
    return subprocess.Popen([sys.executable, "-m", "pngan", *args], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


def _wait_for(path: Path, p, timeout=60):
    t = time.time()
    while not path.exists():
        assert p.poll() is None, p.communicate()[0].decode()[-2000:]
        assert time.time() - t < timeout
        time.sleep(0.05)


# ------------------------------------------------------------------ generate / synth output folders
def test_generate_into_another_jobs_folder_is_refused(files, capsys, tmp_path):
    root, _, gen, gen2 = files
    out = tmp_path / "out"
    base = ["generate", "--generator", str(gen), "--input", f"pairs:{root / 'pairs'}", "--output", str(out), "--quiet"]
    assert main(base) == 0
    before = _digest(out)
    job = json.loads((out / "job.json").read_text())
    assert job["seed"] == 0 and len(job["generator_sha256"]) == 64
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert all(len(r["sha256"]) == 64 and r["generator"] == job["generator_sha256"][:16] for r in lines)
    for change, needle in ((["--seed", "1"], "seed: 0 -> 1"), (["--generator", str(gen2)], "generator_sha256"),
                           (["--input", f"pairs:{root / 'pairs2'}"], "input:"), (["--fast-tiles"], "fast_tiles")):
        args = base + change
        if change[0] in ("--generator", "--input"):
            args = [a for a in base]
            args[args.index(change[0]) + 1] = change[1]
        err = _err(capsys, args)
        assert len(err) == 1 and "another job" in err[0] and needle in err[0] and "--overwrite" in err[0], err
        assert _digest(out) == before  # nothing touched
    # the same job continues (more samples is the same job); --overwrite replaces
    assert main(base + ["--samples", "2"]) == 0
    assert len(list((out / "noisy").glob("*.png"))) == 6
    assert main(base + ["--seed", "1", "--overwrite"]) == 0
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert {r["run_seed"] for r in lines} == {1} and len(lines) == 3  # no mixed seeds


def test_generate_verifies_files_already_there(files, capsys, tmp_path):
    root, _, gen, _ = files
    out = tmp_path / "out"
    base = ["generate", "--generator", str(gen), "--input", f"pairs:{root / 'pairs'}", "--output", str(out), "--quiet"]
    assert main(base) == 0
    good = (out / "noisy" / "i0_0.png").read_bytes()
    (out / "noisy" / "i0_0.png").write_bytes((out / "noisy" / "i1_0.png").read_bytes())  # wrong file, right name
    with open(out / "manifest.jsonl", "a") as f:
        f.write("not json\n" + json.dumps({"foreign": 1}) + "\n")
    capsys.readouterr()
    assert main(base) == 0
    assert "wrote 1 noisy images (2 already there)" in capsys.readouterr().out
    assert (out / "noisy" / "i0_0.png").read_bytes() == good
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 3  # foreign lines dropped


def test_synth_never_overwrites_a_real_folder(files, capsys, tmp_path):
    root, *_ = files
    real = tmp_path / "realcopy"
    import shutil

    shutil.copytree(root / "pairs", real)
    before = _digest(real)
    src = f"clean:{root / 'pairs2' / 'clean'}"
    err = _err(capsys, ["synth", "--setting", "awgn", "--input", src, "--output", str(real)])
    assert len(err) == 1 and "not empty" in err[0] and "--overwrite" in err[0]
    assert _digest(real) == before
    out = tmp_path / "s"
    assert main(["synth", "--setting", "awgn", "--input", src, "--output", str(out)]) == 0
    first = _digest(out)
    assert main(["synth", "--setting", "awgn", "--input", src, "--output", str(out)]) == 0  # same job: same files
    assert _digest(out) == first
    for change in (["--seed", "2"], ["--setting", "raw"], ["--format", "png16"], ["--sigma", "10"]):
        args = ["synth", "--setting", "awgn", "--input", src, "--output", str(out)]
        if change[0] == "--setting":
            args[2] = change[1]
        else:
            args += change
        err = _err(capsys, args)
        assert "another job" in err[0], err
        assert _digest(out) == first


# ------------------------------------------------------------------ resume
def test_resume_refuses_changed_runs(files, capsys, tmp_path):
    root, dn, _, _ = files
    run = tmp_path / "run"
    data = f"pairs:{root / 'pairs'}"
    base = ["train", "--data", data, "--denoiser", str(dn), "--out", str(run), *TINY, "run.steps=2"]
    assert main(base) == 0
    cfg_before = (run / "config.yaml").read_text()
    res = ["train", "--data", data, "--out", str(run), "--resume", "--quiet"]
    for extra, needle in ((["--setting", "raw"], "synthetic.setting calibrated -> raw"),
                          (["optim.lr=0.5"], "optim.lr"), (["--config", "paper"], "generator.channels"),
                          (["data.patch_size=24"], "data.patch_size 16 -> 24")):
        err = _err(capsys, res + extra)
        assert len(err) == 1 and "would change what defines this run" in err[0] and needle in err[0], err
    err = _err(capsys, ["train", "--data", f"pairs:{root / 'pairs2'}", "--out", str(run), "--resume", "--quiet"])
    assert "--data" in err[0] and "pairs2" in err[0]
    err = _err(capsys, res + ["--denoiser", f"dncnn:{files[2]}"])  # another file (a generator, refused by role)
    assert "not a denoiser" in err[0]
    assert (run / "config.yaml").read_text() == cfg_before
    # a safe change (more steps) is accepted and recorded; the config file follows it
    assert main(res + ["--steps", "3"]) == 0
    rec = json.loads((run / "run.json").read_text())
    assert rec["resumes"][-1]["changes"] == {"run.steps": [2, 3]}
    assert "steps: 3" in (run / "config.yaml").read_text()
    assert list_checkpoints(run)[-1][0] == 3
    # --resume on a folder that never trained says so
    err = _err(capsys, res[:4] + [str(tmp_path / "never"), "--resume"])
    assert "not a pngan run folder" in err[0] and "without --resume" in err[0]


def test_train_denoiser_resume_refuses_other_data(files, capsys, tmp_path):
    root, *_ = files
    run = tmp_path / "dn"
    base = ["train-denoiser", "--arch", "dncnn", "--out", str(run), "--config", "cpu-small", "--quiet",
            "net.kwargs={depth: 3, channels: 4}", "data.patch_size=16", "data.batch_size=2", "run.threads=1"]
    assert main(base[:5] + ["--data", f"pairs:{root / 'pairs'}", "--steps", "2"] + base[5:]) == 0
    err = _err(capsys, ["train-denoiser", "--arch", "dncnn", "--out", str(run), "--resume", "--quiet",
                        "--data", f"pairs:{root / 'pairs2'}"])
    assert "would change what defines this run" in err[0] and "--data" in err[0]
    err = _err(capsys, ["train-denoiser", "--arch", "ridnet", "--out", str(run), "--resume", "--quiet",
                        "--data", f"pairs:{root / 'pairs'}"])
    assert "net.arch dncnn -> ridnet" in err[0]


# ------------------------------------------------------------------ signals and locks (subprocesses)
def test_sigterm_during_training_leaves_a_resumable_checkpoint_and_a_second_run_is_refused(files, capsys, tmp_path):
    root, dn, _, _ = files
    run = tmp_path / "run"
    data = f"pairs:{root / 'pairs'}"
    p = _popen(["train", "--data", data, "--denoiser", str(dn), "--out", str(run), *TINY,
                "run.steps=100000", "run.ckpt_every=100000"])
    try:
        _wait_for(run / "stats.jsonl", p)
        # a second training into the same folder, at the same time: refused, first one untouched
        err = _err(capsys, ["train", "--data", data, "--denoiser", str(dn), "--out", str(run), "--resume", "--quiet"])
        assert len(err) == 1 and "another pngan process" in err[0], err
        err = _err(capsys, ["train", "--data", data, "--denoiser", str(dn), "--out", str(run), *TINY])
        assert len(err) == 1 and ("another pngan process" in err[0] or "run folder exists" in err[0]), err
        p.send_signal(signal.SIGTERM)
        out = p.communicate(timeout=60)[0].decode()
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 143, out
    assert "checkpoint written" in out and "--resume" in out
    (step, ck), = list_checkpoints(run)
    assert step >= 1
    rows = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == step  # one run's rows only, in order
    assert [r["step"] for r in rows] == list(range(1, step + 1))
    # resumable: the lock died with the process
    assert main(["train", "--data", data, "--out", str(run), "--resume", "--quiet", "--steps", str(step + 1),
                 "run.ckpt_every=100000"]) == 0
    assert list_checkpoints(run)[-1][0] == step + 1


def test_sigterm_during_generate_exits_143(files, tmp_path):
    root, _, gen, _ = files
    src = tmp_path / "many"
    src.mkdir()
    write_images(src, [f"m{k:02d}" for k in range(30)], 48, 64, torch.Generator().manual_seed(1))
    out = tmp_path / "out"
    args = ["generate", "--generator", str(gen), "--input", f"clean:{src}", "--output", str(out), "--quiet"]
    p = _popen(args)
    t = time.time()
    while not ((out / "noisy").is_dir() and len(list((out / "noisy").glob("m*.png"))) >= 2):
        assert p.poll() is None and time.time() - t < 60
        time.sleep(0.01)
    p.send_signal(signal.SIGTERM)
    text = p.communicate(timeout=60)[0].decode()
    assert p.returncode == 143 and "terminated" in text, text
    assert subprocess.run([sys.executable, "-m", "pngan", *args], env=ENV).returncode == 0
    assert len(list((out / "noisy").glob("m*.png"))) == 30


def test_folder_lock_refuses_a_second_process_and_dies_with_it(files, capsys, tmp_path):
    root, _, gen, _ = files
    out = tmp_path / "locked"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pngan.io.lock import acquire; "
                               f"acquire({str(out)!r}); print('held', flush=True); time.sleep(60)"],
                              env=ENV, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"held"
        args = ["generate", "--generator", str(gen), "--input", f"pairs:{root / 'pairs'}", "--output", str(out),
                "--quiet"]
        err = _err(capsys, args)
        assert len(err) == 1 and "another pngan process" in err[0]
        err = _err(capsys, ["synth", "--setting", "awgn", "--input", f"pairs:{root / 'pairs'}", "--output", str(out)])
        assert "another pngan process" in err[0]
        assert not (out / "noisy").exists()
    finally:
        holder.kill()
        holder.wait()
    assert main(args) == 0  # a dead holder's lock is gone (flock dies with the process)


def test_sigterm_to_the_whole_process_group_with_data_workers(files, tmp_path):
    """SLURM's scancel signals every process of the job, DataLoader workers included: the workers
    ignore it and the trainer still checkpoints (train-denoiser here, with one worker process)."""
    root, *_ = files
    run = tmp_path / "dn"
    p = subprocess.Popen([sys.executable, "-m", "pngan", "train-denoiser", "--arch", "dncnn", "--data",
                          f"pairs:{root / 'pairs'}", "--out", str(run), "--config", "cpu-small", "--quiet",
                          "net.kwargs={depth: 3, channels: 4}", "data.patch_size=16", "data.batch_size=2",
                          "run.threads=1", "data.num_workers=1", "run.steps=100000", "run.ckpt_every=100000",
                          "run.log_every=1"],
                         env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for(run / "stats.jsonl", p)
        time.sleep(0.5)
        os.killpg(p.pid, signal.SIGTERM)
        out = p.communicate(timeout=60)[0].decode()
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 143, out[-3000:]
    assert len(list_checkpoints(run)) == 1 and "checkpoint written" in out


def test_sigterm_stops_the_whole_demo(tmp_path):
    """A signal during one stage of 'pngan demo' stops the demo (exit 143), not only that stage."""
    out = tmp_path / "demo"
    p = _popen(["demo", "--out", str(out), "--quiet", "--denoiser-steps", "100000", "--steps", "100000"])
    try:
        _wait_for(out / "real-denoiser" / "stats.jsonl", p, timeout=120)
        p.send_signal(signal.SIGTERM)
        text = p.communicate(timeout=60)[0].decode()
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 143, text[-2000:]
    assert len(list_checkpoints(out / "real-denoiser")) == 1
    assert not (out / "pngan").exists()  # the next stage never started


def test_resume_of_a_run_without_run_json_adopts_its_identity(files, capsys, tmp_path):
    """A run folder from an older pngan (no run.json): the config is still compared; the first resume
    records the data and networks it was given, and later resumes are checked against them."""
    root, dn, _, _ = files
    run = tmp_path / "old"
    data = f"pairs:{root / 'pairs'}"
    assert main(["train", "--data", data, "--denoiser", str(dn), "--out", str(run), *TINY, "run.steps=2"]) == 0
    (run / "run.json").unlink()
    err = _err(capsys, ["train", "--data", data, "--out", str(run), "--resume", "--quiet", "optim.lr=0.5"])
    assert "optim.lr" in err[-1]
    assert main(["train", "--data", data, "--denoiser", str(dn), "--out", str(run), "--resume", "--quiet",
                 "--steps", "3"]) == 0
    assert json.loads((run / "run.json").read_text())["identity"]["data"] == [f"pairs:{(root / 'pairs').resolve()}@all"]
    err = _err(capsys, ["train", "--data", f"pairs:{root / 'pairs2'}", "--out", str(run), "--resume", "--quiet"])
    assert "--data" in err[-1]


def test_generate_redoes_images_whose_input_changed(files, capsys, tmp_path):
    """Same job, same input folder, but one input image was replaced: its clean copy and noisy
    samples are redone (manifest source_sha256), the others are kept."""
    root, _, gen, _ = files
    src = tmp_path / "in"
    src.mkdir()
    g = torch.Generator().manual_seed(5)
    write_images(src, [f"c{k}" for k in range(3)], 24, 28, g)
    out = tmp_path / "out"
    args = ["generate", "--generator", str(gen), "--input", f"clean:{src}", "--output", str(out), "--quiet"]
    assert main(args) == 0
    before = _digest(out)
    write_image(src / "c1.png", torch.rand(3, 24, 28, generator=g))
    capsys.readouterr()
    assert main(args) == 0
    assert "wrote 1 noisy images (2 already there)" in capsys.readouterr().out
    after = _digest(out)
    changed = {k for k in before if k in after and before[k] != after[k]} - {"manifest.jsonl"}
    assert changed == {"clean/c1.png", "noisy/c1_0.png"}, changed
