"""Run folders and ``--resume`` (in-process, tiny networks).

A new run folder is refused when it holds files pngan did not write (a user's run.json), and taken
over when pngan itself left it (a run that stopped before its config.yaml). ``--resume`` continues a
run only when nothing that defines it changed: not its config (a hand edit of RUN/config.yaml, also
when the original ``--config`` is repeated; another ``--denoiser-config``; the shape an ``--init``
defines), not the contents of its data files, calibration file or generator (run.json records content
hashes, so paths alone do not count). A resume that fails to load is not recorded. Jobs of other
commands (synth, evaluate pgap) compare file contents the same way, and their refusals name the
changed files, not hashes.

Resume with changed options, data or networks, and of an older run without run.json, is also in
test_jobs_and_signals.py; ablation and benchmark rows reused across runs in
test_ablation_and_benchmark_tables.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from helpers import TINY_NETS
from helpers import folder_bytes as _bytes
from helpers import one_line_error as _one_line
from helpers import run_cli as _run
from helpers import write_pairs

from pngan.cli import main

# a tiny PNGAN run
TINY = ["--config", "cpu-small", "--quiet", "generator.channels=4", "generator.groups=1", "generator.blocks=1",
        "loss.d_channels=4", "data.patch_size=16", "data.batch_size=2", "run.threads=1", "run.log_every=1"]
# the same without the alignment loss (so no frozen denoiser is trained first)
TINY_NO_ALIGN = ["--config", "cpu-small", "--quiet", "generator.channels=4", "generator.groups=1",
                 "generator.blocks=1", "loss.d_channels=4", "data.patch_size=16", "data.batch_size=2",
                 "run.threads=1", "loss.lambda_align=0"]
# a tiny DnCNN (depth 3), steps given by the test
DN = ["--config", "cpu-small", "--quiet", "net.kwargs={depth: 3, channels: 4}", "data.patch_size=16",
      "data.batch_size=2", "run.threads=1"]
# train-denoiser options: one step of a tiny DnCNN (depth 2)
DNCNN_ONE_STEP = ["--arch", "dncnn", "--config", "cpu-small", "--quiet", "--steps", "1", "data.patch_size=16",
                  "data.batch_size=2", "net.kwargs={depth: 2, channels: 4}", "run.threads=1"]


def _edit_yaml(path: Path, section: str, key: str, value) -> None:
    d = yaml.safe_load(path.read_text())
    d[section][key] = value
    path.write_text(yaml.safe_dump(d, sort_keys=False))


def _swap(a: Path, b: Path) -> None:
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)


# --- a new run folder takes over only what pngan itself left --------------------------------------------------
@pytest.mark.files("train_test_clean")
@pytest.mark.parametrize("content", ['{"mine": 1}\n', '{"identity": {"kind": "train"}, "resumes": []}\n', "notes\n"])
def test_a_run_folder_with_a_users_run_json_is_refused(f, capsys, tmp_path, content):
    out = tmp_path / "o"
    out.mkdir()
    (out / "run.json").write_text(content)
    before = _bytes(out)
    _one_line(capsys, ["train-denoiser", *DNCNN_ONE_STEP, "--data", f"pairs:{f}/A", "--out", out], "run.json")
    assert _bytes(out) == before


@pytest.mark.files("train_test_clean")
def test_a_generator_run_folder_with_a_users_files_is_refused(f, capsys, tmp_path):
    out = tmp_path / "o"
    (out / "frozen-denoiser").mkdir(parents=True)
    (out / "frozen-denoiser" / "run.json").write_text('{"mine": 1}\n')
    before = _bytes(out)
    _one_line(capsys, ["train", "--data", f"pairs:{f}/A", "--out", out, "--setting", "awgn", "--quiet",
                       "--config", "cpu-small", *TINY_NETS, "run.steps=1", "run.threads=1"], "run.json")
    assert _bytes(out) == before
    (out / "frozen-denoiser" / "run.json").unlink()
    (out / "run.json").write_text('{"mine": 1}\n')
    before = _bytes(out)
    _one_line(capsys, ["train", "--data", f"pairs:{f}/A", "--out", out, "--setting", "awgn", "--quiet",
                       "--config", "cpu-small", *TINY_NETS, "run.steps=1", "run.threads=1"], "run.json")
    assert _bytes(out) == before


@pytest.mark.files("train_test_clean")
def test_a_run_that_stopped_before_config_yaml_can_start_again(f, capsys, tmp_path):
    """What pngan itself left (its run.json of the same command) is no reason to refuse."""
    from pngan.train import runid

    out = tmp_path / "o"
    out.mkdir()
    runid.record_new(out, runid.identity("train-denoiser", [f"pairs:{f}/A"], {"init": None}))
    _run(capsys, ["train-denoiser", *DNCNN_ONE_STEP, "--data", f"pairs:{f}/A", "--out", out])
    assert (out / "denoiser.safetensors").is_file()


# --- the config on --resume: hand edits, a repeated --config, --denoiser-config -------------------------------
@pytest.mark.files("sigma_pairs")
def test_resume_refuses_a_hand_edited_config_yaml(f, capsys, caplog, tmp_path):
    run = tmp_path / "run"
    train = ["train", "--data", f"pairs:{f}/A", "--out", run, "--setting", "awgn"]
    _run(capsys, train + [*TINY_NO_ALIGN, "run.steps=2"])
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


@pytest.mark.files("sigma_pairs")
def test_train_denoiser_resume_refuses_a_hand_edited_config_yaml(f, capsys, tmp_path):
    run = tmp_path / "dn"
    argv = ["train-denoiser", "--arch", "dncnn", "--data", f"pairs:{f}/A", "--out", run]
    _run(capsys, argv + ["--steps", "2", *DN])
    _edit_yaml(run / "config.yaml", "optim", "lr", 0.5)
    _one_line(capsys, argv + ["--resume", "--quiet", "--steps", "3"], "optim.lr")


@pytest.mark.files("denoiser_run")
def test_a_hand_edit_is_not_dropped_by_a_resume_that_repeats_its_config(f, capsys, tmp_path):
    import shutil

    run = tmp_path / "d"
    shutil.copytree(f / "d", run)
    cfg = (run / "config.yaml").read_text()
    assert "  lr: 0.001\n" in cfg
    (run / "config.yaml").write_text(cfg.replace("  lr: 0.001\n", "  lr: 0.5\n"))
    before = _bytes(run)
    argv = ["train-denoiser", "--arch", "dncnn", "--data", f"pairs:{f}/A", "--out", run, "--resume", "--config",
            "cpu-small", "--quiet", "--steps", "2", "data.patch_size=16", "data.batch_size=2",
            "net.kwargs={depth: 2, channels: 4}", "run.threads=1"]
    _one_line(capsys, argv, "edited into config.yaml")
    assert _bytes(run) == before


@pytest.mark.files("denoiser_run")
def test_another_denoiser_config_on_resume_is_refused(f, capsys, tmp_path):
    cfg = tmp_path / "d.yaml"
    cfg.write_text("base: cpu-small\nrun:\n  steps: 2\n  threads: 1\ndata:\n  patch_size: 16\n  batch_size: 2\n"
                   "net:\n  kwargs: {depth: 2, channels: 4}\n")
    other = tmp_path / "d2.yaml"
    other.write_text(cfg.read_text().replace("channels: 4", "channels: 8"))
    run = tmp_path / "g"
    base = ["train", "--data", f"pairs:{f}/A", "--out", run, "--setting", "awgn", "--quiet", "--config", "cpu-small",
            *TINY_NETS, "run.threads=1"]
    _run(capsys, [*base, "run.steps=1", "--denoiser-config", cfg])
    _one_line(capsys, [*base, "run.steps=2", "--resume", "--denoiser-config", other], "differs from the config")
    _run(capsys, [*base, "run.steps=2", "--resume", "--denoiser-config", cfg])


# --- --init defines the network's shape, from the first record on ---------------------------------------------
@pytest.mark.files("denoiser_run")
def test_init_defines_the_shape_and_its_run_resumes(f, capsys, tmp_path):
    init = f / "d" / "denoiser.safetensors"  # depth 2, 4 channels
    base = ["train-denoiser", "--arch", "dncnn", "--data", f"pairs:{f}/A", "--config", "cpu-small", "--quiet",
            "data.patch_size=16", "data.batch_size=2", "run.threads=1"]
    _one_line(capsys, [*base, "--init", init, "--out", tmp_path / "x", "--steps", "1",
                       "net.kwargs={depth: 5, channels: 8}"], "leave net.kwargs out")
    run = tmp_path / "r"
    _run(capsys, [*base, "--init", init, "--out", run, "--steps", "1"])
    _run(capsys, [*base, "--out", run, "--steps", "2", "--resume"])  # the preset again: the init's shape is kept
    from pngan.nets.loading import read_metadata

    assert json.loads(read_metadata(run / "denoiser.safetensors")["pngan.kwargs"]) == {"depth": 2, "channels": 4}


def test_init_from_a_published_checkpoint_takes_its_default_shape(shared, capsys, tmp_path):
    kair = shared / "weights" / "dncnn_sidd_naflow.pth"
    write_pairs(tmp_path / "p", 1, 20, 20)
    base = ["train-denoiser", "--arch", "dncnn", "--data", f"pairs:{tmp_path}/p", "--config", "cpu-small", "--quiet",
            "data.patch_size=16", "data.batch_size=1", "run.threads=1", "--out", tmp_path / "r"]
    _run(capsys, [*base, "--init", f"dncnn:{kair}", "--steps", "1"])
    _run(capsys, [*base, "--steps", "2", "--resume"])


@pytest.mark.files("denoiser_run")
def test_an_init_runs_record_holds_its_shape_from_the_start(f, capsys, tmp_path):
    run = tmp_path / "r"
    _run(capsys, ["train-denoiser", "--arch", "dncnn", "--data", f"pairs:{f}/A", "--config", "cpu-small", "--quiet",
                  "data.patch_size=16", "data.batch_size=2", "run.threads=1", "--init", f / "d" / "denoiser.safetensors",
                  "--out", run, "--steps", "1"])
    rec = json.loads((run / "run.json").read_text())
    assert rec["config"]["net"]["kwargs"] == {"depth": 2, "channels": 4}  # a hard kill cannot leave it behind


# --- a resume that fails is not recorded ----------------------------------------------------------------------
@pytest.mark.files("sigma_pairs")
def test_a_resume_that_fails_to_load_is_not_recorded(f, capsys, tmp_path):
    run = tmp_path / "run"
    _run(capsys, ["train", "--data", f"pairs:{f}/A", "--out", run, "--setting", "awgn", *TINY_NO_ALIGN, "run.steps=2"])
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


# --- resume compares file contents, not paths -----------------------------------------------------------------
@pytest.mark.files("sigma_pairs")
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


@pytest.mark.files("sigma_pairs")
def test_resume_of_a_run_inside_its_data_folder(f, capsys, tmp_path):
    import shutil

    data = tmp_path / "pairs"  # the run folder beside noisy/ and clean/: its own files are not the data
    shutil.copytree(f / "A", data)
    argv = ["train", "--data", f"pairs:{data}", "--out", data / "run", "--setting", "awgn", *TINY,
            "loss.lambda_align=0"]
    _run(capsys, argv + ["run.steps=2"])
    _run(capsys, argv + ["--resume", "--steps", "3"])


@pytest.mark.files("sigma_pairs")
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


@pytest.mark.files("sigma_pairs")
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


@pytest.mark.files("sigma_pairs")
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


@pytest.mark.files("train_test_clean")
def test_refusals_name_changed_files_not_hashes(f, capsys, tmp_path):
    import shutil

    data = tmp_path / "A"
    shutil.copytree(f / "A", data)
    out = tmp_path / "o"
    synth = ["synth", "--setting", "calibrated", "--fit", f"pairs:{data}", "--input", f / "C", "--output", out, "--quiet"]
    _run(capsys, synth)
    shutil.copy(f / "T" / "noisy" / "i0.png", data / "noisy" / "i0.png")  # other pairs under the same path
    line = _one_line(capsys, synth, "different contents")
    assert not any(c * 16 in line for c in "0123456789abcdef") and "sha256:" not in line
