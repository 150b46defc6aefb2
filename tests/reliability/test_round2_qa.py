"""Findings of the second adversarial CLI pass (issue 24, /tmp/qa/REPORT.md): a hand-edited
``RUN/config.yaml`` on ``--resume``, a failed resume recorded as one, a calibration file missing
its correlation, a broken symlink skipped silently, ``KEY=VALUE`` around options, ``pngan demo``
checking its config before work, and Literal config types named in errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from helpers import one_line_error as _one_line
from helpers import run_cli as _run
from helpers import write_images, write_pairs

from pngan.cli import main

TINY = ["--config", "cpu-small", "--quiet", "generator.channels=4", "generator.groups=1", "generator.blocks=1",
        "loss.d_channels=4", "data.patch_size=16", "data.batch_size=2", "run.threads=1", "loss.lambda_align=0"]
DN = ["--config", "cpu-small", "--quiet", "net.kwargs={depth: 3, channels: 4}", "data.patch_size=16",
      "data.batch_size=2", "run.threads=1"]


@pytest.fixture(scope="module")
def f(tmp_path_factory) -> Path:
    import torch

    root = tmp_path_factory.mktemp("qa2")
    write_pairs(root / "A", 3, 32, 32, seed=0, sigma=0.03)
    write_images(root / "C", ["c0", "c1"], 24, 24, torch.Generator().manual_seed(2))
    return root




def _edit_yaml(path: Path, section: str, key: str, value) -> None:
    d = yaml.safe_load(path.read_text())
    d[section][key] = value
    path.write_text(yaml.safe_dump(d, sort_keys=False))


# ------------------------------------------------------------------ #3 a hand-edited config.yaml on --resume
def test_resume_refuses_a_hand_edited_config_yaml(f, capsys, caplog, tmp_path):
    run = tmp_path / "run"
    train = ["train", "--data", f"pairs:{f}/A", "--out", run, "--setting", "awgn"]
    _run(capsys, train + [*TINY, "run.steps=2"])
    assert json.loads((run / "run.json").read_text())["config"]["optim"]["lr"] == yaml.safe_load(
        (run / "config.yaml").read_text())["optim"]["lr"]
    good = (run / "config.yaml").read_bytes()
    _edit_yaml(run / "config.yaml", "optim", "lr", 0.5)
    before = (run / "run.json").read_bytes()
    line = _one_line(capsys, ["train", "--data", f"pairs:{f}/A", "--out", run, "--resume", "--quiet", "--steps", "3"],
                     "optim.lr")
    assert "0.5" in line and "edited into config.yaml" in line
    assert (run / "run.json").read_bytes() == before
    # a key documented safe on resume, edited into config.yaml: accepted and recorded
    (run / "config.yaml").write_bytes(good)
    _edit_yaml(run / "config.yaml", "run", "log_every", 7)
    _run(capsys, ["train", "--data", f"pairs:{f}/A", "--out", run, "--resume", "--quiet", "--steps", "3"])
    rec = json.loads((run / "run.json").read_text())
    assert rec["resumes"][-1]["changes"]["run.log_every"][1] == 7 and rec["config"]["run"]["log_every"] == 7
    assert rec["config"]["run"]["steps"] == 3
    # a run.json of an older pngan (no config copy): adopted with one warning, later edits refused
    del rec["config"]
    (run / "run.json").write_text(json.dumps(rec))
    caplog.clear()
    _run(capsys, ["train", "--data", f"pairs:{f}/A", "--out", run, "--resume", "--quiet", "--steps", "4"])
    assert caplog.text.count("records no copy of the run's config") == 1
    assert json.loads((run / "run.json").read_text())["config"]["run"]["steps"] == 4
    _edit_yaml(run / "config.yaml", "optim", "lr", 0.5)
    _one_line(capsys, ["train", "--data", f"pairs:{f}/A", "--out", run, "--resume", "--quiet", "--steps", "5"],
              "optim.lr")


def test_train_denoiser_resume_refuses_a_hand_edited_config_yaml(f, capsys, tmp_path):
    run = tmp_path / "dn"
    argv = ["train-denoiser", "--arch", "dncnn", "--data", f"pairs:{f}/A", "--out", run]
    _run(capsys, argv + ["--steps", "2", *DN])
    _edit_yaml(run / "config.yaml", "optim", "lr", 0.5)
    _one_line(capsys, argv + ["--resume", "--quiet", "--steps", "3"], "optim.lr")


# ------------------------------------------------------------------ #4 a failed --resume is not recorded
def test_a_resume_that_fails_to_load_is_not_recorded(f, capsys, tmp_path):
    run = tmp_path / "run"
    _run(capsys, ["train", "--data", f"pairs:{f}/A", "--out", run, "--setting", "awgn", *TINY, "run.steps=2"])
    ck = sorted((run / "checkpoints").iterdir())[-1]
    saved = {p: p.read_bytes() for p in ck.iterdir()}
    for p in ck.glob("*.safetensors"):
        p.write_bytes(b"not a safetensors file")
    files = {n: (run / n).read_bytes() for n in ("config.yaml", "run.json")}
    capsys.readouterr()
    assert main([str(a) for a in ["train", "--data", f"pairs:{f}/A", "--out", run, "--resume", "--quiet",
                                  "--steps", "4"]]) != 0
    assert {n: (run / n).read_bytes() for n in files} == files  # still a run at step 2 of 2
    for p, b in saved.items():
        p.write_bytes(b)
    _run(capsys, ["train", "--data", f"pairs:{f}/A", "--out", run, "--resume", "--quiet", "--steps", "4"])
    rec = json.loads((run / "run.json").read_text())
    assert [r["changes"]["run.steps"] for r in rec["resumes"]] == [[2, 4]]


# ------------------------------------------------------------------ #5 a calibration missing its correlation
def test_calibration_file_missing_kernel_or_mix_is_refused(f, capsys, caplog, tmp_path):
    from pngan.data.specs import open_dataset
    from pngan.noise.calibrated import fit_calibrated, load_calibration, save_calibration

    cal = tmp_path / "cal.json"
    _run(capsys, ["synth", "--input", f"clean:{f}/C", "--output", tmp_path / "O", "--setting", "calibrated",
                  "--fit", f"pairs:{f}/A", "--save-fit", cal])
    d = json.loads(cal.read_text())
    assert d["kernel"] is not None and d["mix"] is not None
    for key in ("kernel", "mix"):
        bad = tmp_path / f"no-{key}.json"
        bad.write_text(json.dumps({k: v for k, v in d.items() if k != key}))
        out = tmp_path / f"out-{key}"
        line = _one_line(capsys, ["synth", "--setting", f"calibrated:{bad}", "--input", f"clean:{f}/C",
                                  "--output", out], f"missing calibration key '{key}'")
        assert str(bad) in line and not out.exists()
    # an uncorrelated fit writes kernel and mix as null: it still loads, without a warning
    white = tmp_path / "white.json"
    save_calibration(fit_calibrated(open_dataset(f"pairs:{f}/A"), correlated=False), white)
    assert json.loads(white.read_text())["kernel"] is None
    caplog.clear()
    m = load_calibration(white)
    assert m.kernel is None and m.mix is None and "white" not in caplog.text
    _run(capsys, ["synth", "--setting", f"calibrated:{white}", "--input", f"clean:{f}/C", "--output",
                  tmp_path / "out-white"])


# ------------------------------------------------------------------ #8 a broken symlink in an input folder
def test_broken_symlink_in_an_input_folder_is_named_once(f, capsys, tmp_path):
    import warnings

    src = tmp_path / "in"
    src.mkdir()
    (src / "c0.png").symlink_to(f / "C" / "c0.png")
    (src / "broken.png").symlink_to(tmp_path / "nonexistent.png")
    (src / "notes.txt").symlink_to(tmp_path / "nonexistent.txt")  # not an image name: ignored like any
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        _run(capsys, ["synth", "--setting", "awgn", "--input", f"clean:{src}", "--output", tmp_path / "out"])
    said = [str(x.message) for x in w if "broken symbolic link" in str(x.message)]
    assert len(said) == 1 and "broken.png" in said[0] and "notes.txt" not in said[0], said
    assert sorted(p.name for p in (tmp_path / "out" / "noisy").iterdir()) == ["c0.png"]


# ------------------------------------------------------------------ #11 KEY=VALUE on both sides of options
def test_overrides_may_stand_before_and_after_other_options(f, capsys, tmp_path):
    run = tmp_path / "run"
    tiny = [a for a in TINY if "=" in a]
    _run(capsys, ["train", "--data", f"pairs:{f}/A", *tiny[:3], "--out", run, "--setting", "awgn", *tiny[3:],
                  "--config", "cpu-small", "run.steps=1", "--quiet", "optim.lr=0.002"])
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["generator"]["channels"] == 4 and cfg["loss"]["d_channels"] == 4 and cfg["run"]["steps"] == 1
    assert cfg["optim"]["lr"] == 0.002
    # the later of two overrides of one key wins, and a bad late one is refused naming it
    _one_line(capsys, ["train", "--data", f"pairs:{f}/A", "optim.lr=0.001", "--out", tmp_path / "r2", "optim.lr=nan"],
              "optim.lr")
    assert not (tmp_path / "r2").exists()
    # anything else left over is still refused
    _one_line(capsys, ["train", "--data", f"pairs:{f}/A", "a.b=1", "--out", tmp_path / "r3", "stray"],
              "unrecognized arguments: stray")
    assert not (tmp_path / "r3").exists()


# ------------------------------------------------------------------ #15 demo checks its config before work
@pytest.mark.parametrize("bad, needle", [
    (["--config", "nosuch"], "no such config file or preset"),
    (["--config", "nosuch.yaml"], "no such config file or preset"),
    (["optim.lr=nan"], "optim.lr"),
    (["run.steps=0"], "run.steps"),
    (["generator.chanels=4"], "did you mean"),
])
def test_demo_refuses_a_bad_config_before_any_work(tmp_path, bad, needle):
    import subprocess
    import sys
    import time

    out = tmp_path / "demo"
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "pngan.cli", "demo", "--out", str(out), "--quiet", *bad],
                       capture_output=True, text=True, timeout=60)  # a regression trains for minutes: killed here
    dt = time.perf_counter() - t
    err = [line for line in p.stderr.splitlines() if line.strip()]
    assert p.returncode == 2 and len(err) == 1 and needle in err[0], (p.returncode, err)
    assert dt < 30, f"{dt:.1f} s before the error"
    assert not out.exists()


# ------------------------------------------------------------------ #12 Literal / Optional config types in words
def test_bad_literal_config_value_lists_the_allowed_values(f, capsys, tmp_path):
    line = _one_line(capsys, ["train", "--data", f"pairs:{f}/A", "--out", tmp_path / "r", "generator.downsample=foo"],
                     "generator.downsample")
    assert "one of sid, stride, bilinear (or null)" in line and "typing" not in line, line
    assert not (tmp_path / "r").exists()
