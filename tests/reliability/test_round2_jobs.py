"""Round 2 of "nothing lost, nothing silently wrong": jobs defined by what determines their output
(the calibration's numbers, file contents), files written with the user's umask, options that a
setting would ignore refused, and the unclear errors made one clear line (in-process, fast)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch

from helpers import folder_bytes as _bytes
from helpers import one_line_error as _one_line
from helpers import run_cli as _run
from helpers import write_images, write_pairs


TINY = ["--config", "cpu-small", "--quiet", "generator.channels=4", "generator.groups=1", "generator.blocks=1",
        "loss.d_channels=4", "data.patch_size=16", "data.batch_size=2", "run.threads=1", "run.log_every=1"]


@pytest.fixture(scope="module")
def f(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("round2")
    write_pairs(root / "A", 3, 32, 32, seed=0, sigma=0.03)
    write_pairs(root / "B", 3, 32, 32, seed=1, sigma=0.10)
    write_images(root / "C", ["c0", "c1"], 24, 24, torch.Generator().manual_seed(2))
    return root





# ------------------------------------------------------------------ synth: the calibration defines the job
def test_synth_with_another_calibration_is_another_job(f, capsys, tmp_path):
    out = tmp_path / "O"
    synth = ["synth", "--input", f"clean:{f}/C", "--output", out]
    _run(capsys, synth + ["--setting", "calibrated", "--fit", f"pairs:{f}/A", "--save-fit", tmp_path / "a.json"])
    _run(capsys, ["synth", "--input", f"clean:{f}/C", "--output", tmp_path / "O2", "--setting", "calibrated",
                  "--fit", f"pairs:{f}/B", "--save-fit", tmp_path / "b.json"])
    before = _bytes(out)
    # another fit, or another saved calibration, into the same folder: refused, nothing rewritten
    line = _one_line(capsys, synth + ["--setting", "calibrated", "--fit", f"pairs:{f}/B"], "another job")
    assert "calibration:" in line and "--overwrite" in line
    _one_line(capsys, synth + ["--setting", f"calibrated:{tmp_path / 'b.json'}"], "calibration:")
    assert _bytes(out) == before
    # the saved fit of A is the same job as the fit of A: it continues, with the same files
    _run(capsys, synth + ["--setting", f"calibrated:{tmp_path / 'a.json'}"])
    assert _bytes(out) == before
    # --overwrite replaces it with B's output
    _run(capsys, synth + ["--setting", f"calibrated:{tmp_path / 'b.json'}", "--overwrite"])
    assert _bytes(out)["noisy/c0.png"] != before["noisy/c0.png"]


def test_synth_job_of_an_older_pngan_without_the_calibration(f, capsys, tmp_path):
    out = tmp_path / "O"
    synth = ["synth", "--input", f"clean:{f}/C", "--output", out, "--setting", "calibrated"]
    _run(capsys, synth + ["--fit", f"pairs:{f}/A"])
    job = json.loads((out / "job.json").read_text())
    del job["calibration"]  # as an older pngan wrote it
    (out / "job.json").write_text(json.dumps(job))
    before = _bytes(out)
    # the manifest still says which calibration made the files: the same one continues, another is refused
    _one_line(capsys, synth + ["--fit", f"pairs:{f}/B"], "calibration:")
    _run(capsys, synth + ["--fit", f"pairs:{f}/A"])
    assert {k: v for k, v in _bytes(out).items() if k != "job.json"} == \
        {k: v for k, v in before.items() if k != "job.json"}
    # without a manifest (an interrupted older job) nothing says which calibration it was: refused
    (out / "job.json").write_text(json.dumps(job))
    (out / "manifest.jsonl").unlink()
    line = _one_line(capsys, synth + ["--fit", f"pairs:{f}/A"], "older pngan")
    assert "--overwrite" in line


def test_save_fit(f, capsys, tmp_path):
    a = tmp_path / "a.json"
    synth = ["synth", "--input", f"clean:{f}/C", "--setting", "calibrated", "--fit", f"pairs:{f}/A"]
    _run(capsys, synth + ["--output", tmp_path / "O1", "--save-fit", a])
    saved = a.read_bytes()
    assert json.loads(saved)["setting"] == "calibrated"
    _run(capsys, synth + ["--output", tmp_path / "O1", "--save-fit", a])  # the same job again: fine
    assert a.read_bytes() == saved
    # an existing calibration file is not replaced without --overwrite; nothing is written
    _one_line(capsys, synth[:-1] + [f"pairs:{f}/B", "--output", tmp_path / "O2", "--save-fit", a], "another calibration")
    assert a.read_bytes() == saved and not (tmp_path / "O2").exists()
    # a refused output writes no fit file either
    _one_line(capsys, ["synth", "--input", f"clean:{f}/C", "--setting", "awgn", "--output", tmp_path / "O1",
                       "--save-fit", tmp_path / "x.json"], "--save-fit")
    _one_line(capsys, synth[:-1] + [f"pairs:{f}/B", "--output", tmp_path / "O1", "--save-fit", tmp_path / "b.json"],
              "another job")
    assert not (tmp_path / "b.json").exists()


# ------------------------------------------------------------------ file modes follow the umask
def _modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def umask():
    def set_(mask: int) -> None:
        os.umask(mask)

    old = os.umask(0o022)
    yield set_
    os.umask(old)


def test_written_files_follow_the_umask(f, capsys, tmp_path, umask):
    umask(0o022)
    _run(capsys, ["synth", "--setting", "awgn", "--input", f"clean:{f}/C", "--output", tmp_path / "s"])
    run = tmp_path / "run"
    _run(capsys, ["train", "--data", f"pairs:{f}/A", "--out", run, "--setting", "awgn", *TINY, "run.steps=2",
                  "loss.lambda_align=0"])
    _run(capsys, ["generate", "--generator", run, "--input", f"clean:{f}/C", "--output", tmp_path / "g"])
    modes = {**_modes(tmp_path / "s"), **{f"run/{k}": v for k, v in _modes(run).items()},
             **{f"g/{k}": v for k, v in _modes(tmp_path / "g").items()}}
    for must in ("noisy/c0.png", "manifest.jsonl", "job.json", "run/run.json", "run/config.yaml",
                 "run/generator.safetensors", "g/manifest.jsonl"):
        assert must in modes, sorted(modes)
    assert {k: oct(v) for k, v in modes.items() if v != 0o644} == {}
    umask(0o077)
    _run(capsys, ["synth", "--setting", "awgn", "--input", f"clean:{f}/C", "--output", tmp_path / "private"])
    assert set(_modes(tmp_path / "private").values()) == {0o600}


# ------------------------------------------------------------------ options a setting would ignore
def test_options_that_the_setting_would_ignore_are_refused(f, capsys, tmp_path):
    _run(capsys, ["synth", "--input", f"clean:{f}/C", "--output", tmp_path / "O", "--setting", "calibrated",
                  "--fit", f"pairs:{f}/A", "--save-fit", tmp_path / "a.json"])
    cal = f"calibrated:{tmp_path / 'a.json'}"
    synth = ["synth", "--input", f"clean:{f}/C", "--output", tmp_path / "N"]
    ev = ["evaluate", "noise", "--real", f"pairs:{f}/B"]
    _one_line(capsys, synth + ["--setting", cal, "--fit", f"pairs:{f}/B"], "drop --fit")
    _one_line(capsys, ev + ["--setting", cal, "--fit", f"pairs:{f}/B"], "drop --fit")
    _one_line(capsys, ev + ["--setting", "awgn", "--fit", f"pairs:{f}/B"], "--fit applies to --setting calibrated")
    _one_line(capsys, ev + ["--generated", f"{f}/B/noisy", "--fit", f"pairs:{f}/B"], "--fit")
    assert not (tmp_path / "N").exists()


# ------------------------------------------------------------------ resume compares contents, not paths
DN = ["--config", "cpu-small", "--quiet", "net.kwargs={depth: 3, channels: 4}", "data.patch_size=16",
      "data.batch_size=2", "run.threads=1"]


def _swap(a: Path, b: Path) -> None:
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)


def test_train_resume_refuses_changed_data_files(f, capsys, caplog, tmp_path):
    import shutil

    data = tmp_path / "pairs"
    shutil.copytree(f / "A", data)
    run = tmp_path / "run"
    _run(capsys, ["train", "--data", f"pairs:{data}", "--out", run, "--setting", "calibrated", *TINY,
                  "run.steps=2", "loss.lambda_align=0"])
    _swap(data / "noisy" / "i0.png", data / "noisy" / "i1.png")  # same names, other pairs
    line = _one_line(capsys, ["train", "--data", f"pairs:{data}", "--out", run, "--resume", "--quiet", "--steps", "3"],
                     "its files changed")
    assert str(data) in line
    _swap(data / "noisy" / "i0.png", data / "noisy" / "i1.png")
    # a run.json of an older pngan (no content hashes): adopted with a warning, later changes refused
    rec = json.loads((run / "run.json").read_text())
    del rec["identity"]["content"]
    (run / "run.json").write_text(json.dumps(rec))
    caplog.clear()
    _run(capsys, ["train", "--data", f"pairs:{data}", "--out", run, "--resume", "--quiet", "--steps", "3"])
    assert "no content hashes" in caplog.text
    assert "content" in json.loads((run / "run.json").read_text())["identity"]
    _swap(data / "noisy" / "i0.png", data / "noisy" / "i1.png")
    _one_line(capsys, ["train", "--data", f"pairs:{data}", "--out", run, "--resume", "--quiet", "--steps", "4"],
              "its files changed")


def test_train_denoiser_resume_refuses_an_edited_calibration_or_a_retrained_generator(f, capsys, tmp_path):
    import shutil

    cal = tmp_path / "a.json"
    _run(capsys, ["synth", "--input", f"clean:{f}/C", "--output", tmp_path / "O", "--setting", "calibrated",
                  "--fit", f"pairs:{f}/A", "--save-fit", cal])
    run = tmp_path / "dn"
    data = f"synth:{cal}:clean:{f}/C"
    _run(capsys, ["train-denoiser", "--arch", "dncnn", "--data", data, "--out", run, "--steps", "2", *DN])
    d = json.loads(cal.read_text())
    d["b"] = [v * 4 for v in d["b"]]
    cal.write_text(json.dumps(d))
    _one_line(capsys, ["train-denoiser", "--arch", "dncnn", "--data", data, "--out", run, "--resume", "--steps", "3",
                       "--quiet"], "the calibration file changed")
    # gen:RUN: the generator retrained (here: replaced) after the denoiser run started
    gen_run = tmp_path / "gen"
    _run(capsys, ["train", "--data", f"pairs:{f}/A", "--out", gen_run, "--setting", "awgn", *TINY, "run.steps=2",
                  "loss.lambda_align=0"])
    run2 = tmp_path / "dn2"
    data2 = f"gen:{gen_run}:clean:{f}/C"
    _run(capsys, ["train-denoiser", "--arch", "dncnn", "--data", data2, "--out", run2, "--steps", "2", *DN])
    shutil.copyfile(gen_run / "checkpoints" / "00000002" / "discriminator.safetensors",
                    gen_run / "generator.safetensors")
    _one_line(capsys, ["train-denoiser", "--arch", "dncnn", "--data", data2, "--out", run2, "--resume", "--steps",
                       "3", "--quiet"], "the generator was retrained")


def test_synth_with_other_isp_networks_is_another_job(f, capsys, tmp_path):
    from pngan.nets.registry import build

    def ckpts(tag: str, seed: int) -> str:
        torch.manual_seed(seed)
        paths = []
        for name in ("cycleisp_rgb2raw", "cycleisp_raw2rgb", "cycleisp_ccm"):
            p = tmp_path / tag / f"{name}.pth"
            p.parent.mkdir(exist_ok=True)
            torch.save({"state_dict": {"module." + k: v for k, v in build(name).state_dict().items()}}, p)
            paths.append(str(p))
        return ",".join(paths)

    out = tmp_path / "O"
    synth = ["synth", "--setting", "raw", "--input", f"clean:{f}/C", "--output", out]
    _run(capsys, synth)
    before = _bytes(out)
    _one_line(capsys, synth + ["--cycleisp", ckpts("a", 0)], "cycleisp:")  # the analytic pipeline's output
    _run(capsys, synth + ["--cycleisp", ckpts("a", 0), "--overwrite"])
    assert _bytes(out) != before
    before = _bytes(out)
    _one_line(capsys, synth + ["--cycleisp", ckpts("a", 1)], "cycleisp:")  # other weights under the same paths
    assert _bytes(out) == before


def test_pgap_resume_refuses_changed_training_files(f, capsys, tmp_path):
    import shutil

    data = tmp_path / "pairs"
    shutil.copytree(f / "A", data)
    (tmp_path / "empty" / "noisy").mkdir(parents=True)
    (tmp_path / "empty" / "clean").mkdir(parents=True)
    base = ["evaluate", "pgap", "--real-train", f"pairs:{data}", "--generated-train", f"pairs:{f}/B",
            "--test", f"pairs:{tmp_path / 'empty'}", "--out", tmp_path / "pg"]
    _one_line(capsys, base, "no images")  # the (empty) test set stops it; a new job that failed leaves nothing
    assert not (tmp_path / "pg").exists()
    (tmp_path / "pg").mkdir()  # a folder of an older pngan (no job.json): --resume records the job
    _one_line(capsys, base + ["--resume"], "no images")
    _one_line(capsys, base + ["--resume"], "no images")  # the same job continues
    _swap(data / "noisy" / "i0.png", data / "noisy" / "i1.png")
    _one_line(capsys, base + ["--resume"], "content:")


def test_frozen_denoiser_is_not_continued_on_changed_data(f, capsys, tmp_path):
    import shutil

    data = tmp_path / "pairs"
    shutil.copytree(f / "A", data)
    dcfg = tmp_path / "dn.yaml"
    dcfg.write_text("base: frozen-cpu\nrun: {steps: 2}\nnet: {kwargs: {depth: 2, channels: 4}}\n"
                    "data: {patch_size: 16, batch_size: 2}\n")
    run = tmp_path / "run"
    argv = ["train", "--data", f"pairs:{data}", "--out", run, "--denoiser-config", dcfg, *TINY, "run.steps=1"]
    _run(capsys, argv)
    # as if stopped while its frozen denoiser trained: only RUN/frozen-denoiser, not done
    for p in run.iterdir():
        if p.name != "frozen-denoiser":
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    (run / "frozen-denoiser" / "done").unlink()
    _swap(data / "noisy" / "i0.png", data / "noisy" / "i1.png")
    _one_line(capsys, argv + ["--resume"], "frozen denoiser of this run was started on other data")
    _swap(data / "noisy" / "i0.png", data / "noisy" / "i1.png")
    _run(capsys, argv + ["--resume"])  # the same files: it continues, then PNGAN trains
    assert (run / "generator.safetensors").is_file()


def test_resume_of_a_run_inside_its_data_folder(f, capsys, tmp_path):
    import shutil

    data = tmp_path / "pairs"  # the run folder beside noisy/ and clean/: its own files are not the data
    shutil.copytree(f / "A", data)
    argv = ["train", "--data", f"pairs:{data}", "--out", data / "run", "--setting", "awgn", *TINY,
            "loss.lambda_align=0"]
    _run(capsys, argv + ["run.steps=2"])
    _run(capsys, argv + ["--resume", "--steps", "3"])
