"""QA round 4 (issue 24): the fourth adversarial CLI pass's findings. A folder or file that pngan did
not write is never replaced (run folders, --save-fit targets, figures of another command), an
--overwrite never deletes the command's own input, a held-out set that is also training data is
refused, and a malformed metric file is a one-line error (in-process, tiny networks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from helpers import TINY_NETS
from helpers import folder_bytes as _bytes
from helpers import one_line_error as _one_line
from helpers import run_cli as _run
from helpers import write_images, write_pairs

DN = ["--arch", "dncnn", "--config", "cpu-small", "--quiet", "--steps", "1", "data.patch_size=16",
      "data.batch_size=2", "net.kwargs={depth: 2, channels: 4}", "run.threads=1"]


@pytest.fixture(scope="module")
def f(tmp_path_factory) -> Path:
    """Pairs A (train) and T (test), clean images C."""
    root = tmp_path_factory.mktemp("qa4")
    write_pairs(root / "A", 2, 24, 24, seed=0, sigma=0.05)
    write_pairs(root / "T", 1, 24, 24, seed=1, sigma=0.05)
    write_images(root / "C", ["c0"], 20, 20, torch.Generator().manual_seed(2))
    return root


# ------------------------------------------------------------------ D1 a user's run.json
@pytest.mark.parametrize("content", ['{"mine": 1}\n', '{"identity": {"kind": "train"}, "resumes": []}\n', "notes\n"])
def test_a_run_folder_with_a_users_run_json_is_refused(f, capsys, tmp_path, content):
    out = tmp_path / "o"
    out.mkdir()
    (out / "run.json").write_text(content)
    before = _bytes(out)
    _one_line(capsys, ["train-denoiser", *DN, "--data", f"pairs:{f}/A", "--out", out], "run.json")
    assert _bytes(out) == before


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


def test_a_run_that_stopped_before_config_yaml_can_start_again(f, capsys, tmp_path):
    """What pngan itself left (its run.json of the same command) is no reason to refuse."""
    from pngan.train import runid

    out = tmp_path / "o"
    out.mkdir()
    runid.record_new(out, runid.identity("train-denoiser", [f"pairs:{f}/A"], {"init": None}))
    _run(capsys, ["train-denoiser", *DN, "--data", f"pairs:{f}/A", "--out", out])
    assert (out / "denoiser.safetensors").is_file()


# ------------------------------------------------------------------ D2 --save-fit over a job record
def test_save_fit_never_replaces_a_job_record(f, capsys, tmp_path):
    out = tmp_path / "o"
    _run(capsys, ["synth", "--setting", "calibrated", "--fit", f"pairs:{f}/A", "--input", f / "C",
                  "--output", out, "--quiet"])
    job = out / "job.json"
    assert json.loads(job.read_text())["setting"] == "calibrated"
    before = job.read_bytes()
    for extra in ([], ["--overwrite"]):
        _one_line(capsys, ["synth", "--setting", "calibrated", "--fit", f"pairs:{f}/T", "--input", f / "C",
                           "--output", tmp_path / "o2", "--quiet", "--save-fit", job, *extra], "not a pngan calibration")
        assert job.read_bytes() == before


# ------------------------------------------------------------------ D3/S4 --overwrite and the command's own inputs
def test_overwrite_never_deletes_the_commands_own_input(f, capsys, tmp_path):
    import shutil

    out = tmp_path / "o"
    _run(capsys, ["synth", "--setting", "awgn", "--input", f / "C", "--output", out, "--quiet"])
    shutil.copytree(f / "A", out / "noisy" / "pairs")  # real pairs the user keeps inside the output's noisy/
    (out / "noisy" / "cal.json").write_text("{}")
    before = _bytes(out)
    _one_line(capsys, ["synth", "--setting", "calibrated", "--fit", f"pairs:{out}/noisy/pairs", "--input", f / "C",
                       "--output", out, "--quiet", "--overwrite"], "--fit")
    _one_line(capsys, ["synth", "--setting", "calibrated", "--fit", f"pairs:{f}/A", "--input", f / "C",
                       "--output", out, "--quiet", "--overwrite", "--save-fit", out / "noisy" / "new.json"], "--save-fit")
    assert _bytes(out) == before


def test_generate_reference_inside_the_output_is_refused(f, capsys, tmp_path):
    run = tmp_path / "run"
    _run(capsys, ["train", "--data", f"pairs:{f}/A", "--out", run, "--setting", "calibrated", "--quiet",
                  "--config", "cpu-small", *TINY_NETS, "run.steps=1", "run.threads=1", "loss.lambda_align=0"])
    out = tmp_path / "g"
    _run(capsys, ["generate", "--generator", run, "--input", f / "C", "--output", out, "--quiet"])
    before = _bytes(out)
    _one_line(capsys, ["generate", "--generator", run, "--input", f / "C", "--output", out, "--quiet",
                       "--overwrite", "--reference", f"noisy:{out}/noisy"], "--reference")
    assert _bytes(out) == before


# ------------------------------------------------------------------ D4 --plot over another command's figure
def test_plot_never_replaces_another_commands_figure(f, capsys, tmp_path):
    from pngan.eval.plots import _plt, _save
    from pngan.io.json_out import PNG_KEYWORD, png_text

    run = tmp_path / "run"
    _run(capsys, ["train", "--data", f"pairs:{f}/A", "--out", run, "--setting", "calibrated", "--quiet",
                  "--config", "cpu-small", *TINY_NETS, "run.steps=2", "run.ckpt_every=1", "run.keep_checkpoints=5",
                  "run.threads=1", "loss.lambda_align=0"])
    ev = ["evaluate", "noise", "--real", f"pairs:{f}/T", "--generator", run, "--checkpoints"]
    for maker in ("benchmark", "report"):
        victim = tmp_path / f"{maker}.png"
        _save(_plt().figure(), victim, maker)
        keep = victim.read_bytes()
        _one_line(capsys, ev + ["--plot", victim], f"holds a figure drawn by 'pngan {maker}'")
        assert victim.read_bytes() == keep
    own = tmp_path / "t.png"
    _run(capsys, ev + ["--plot", own])
    assert png_text(own)[PNG_KEYWORD] == "evaluate noise --plot"
    _run(capsys, ev + ["--plot", own])  # its own figure: replaced


# ------------------------------------------------------------------ S1/S2 a held-out set that is training data
def test_held_out_sets_that_are_training_data_are_refused(f, capsys, tmp_path):
    import shutil

    shutil.copytree(f / "A", tmp_path / "copy")  # the same images under another path
    same = f"pairs:{tmp_path}/copy"
    for argv, needle in (
            (["ablation", "table3", "--data", f"pairs:{f}/A", "--test", same, "--out", tmp_path / "t3"], "--test"),
            (["ablation", "rho", "--generated", f"synth:awgn:pairs:{f}/T", "--data", f"pairs:{f}/A", "--test",
              f"pairs:{f}/T", "--out", tmp_path / "rho"], "--test"),
            (["evaluate", "pgap", "--real-train", f"pairs:{f}/A", "--generated-train", f"synth:awgn:pairs:{f}/A",
              "--test", same, "--out", tmp_path / "pg"], "--test"),
            (["evaluate", "noise", "--real", same, "--setting", "calibrated", "--fit", f"pairs:{f}/A"], "--real")):
        _one_line(capsys, argv, f"is also a training image")
        assert not any(tmp_path.glob("t3")) and not any(tmp_path.glob("rho")) and not any(tmp_path.glob("pg"))


def test_a_generator_or_extra_pairs_that_saw_the_data_are_warned_about(f, capsys, tmp_path, caplog):
    run = tmp_path / "run"
    _run(capsys, ["train", "--data", f"pairs:{f}/T", "--out", run, "--setting", "calibrated", "--quiet",
                  "--config", "cpu-small", *TINY_NETS, "run.steps=1", "run.threads=1", "loss.lambda_align=0"])
    caplog.clear()
    _run(capsys, ["evaluate", "noise", "--real", f"pairs:{f}/T", "--generator", run])
    assert "the generator learned the scored pairs' own noise" in caplog.text
    caplog.clear()
    _run(capsys, ["evaluate", "noise", "--real", f"pairs:{f}/A", "--generator", run])
    assert "share images" not in caplog.text


# ------------------------------------------------------------------ T1 report on a metric JSON of another shape
@pytest.mark.parametrize("value", [[1, 2], "text", {"mean": [1], "images": {}}, {"mean": {"psnr": 1.0}, "images": [1]},
                                   {"mean": {"psnr": 1.0}, "images": {"a": 3}}, {"sets": [1]},
                                   {"checkpoints": "x"}])
def test_report_names_a_metric_json_of_another_shape(capsys, tmp_path, value):
    bad = tmp_path / "m.json"
    bad.write_text(json.dumps(value))
    _one_line(capsys, ["report", bad, "--out", tmp_path / "rep"], "m.json")
    assert not (tmp_path / "rep").exists()


def test_report_refuses_a_folder_that_is_not_a_run_before_writing(capsys, tmp_path):
    (tmp_path / "notarun").mkdir()
    _one_line(capsys, ["report", tmp_path / "notarun", "--out", tmp_path / "rep"], "stats.jsonl")
    assert not (tmp_path / "rep").exists()


# ------------------------------------------------------------------ U1 a new benchmark that fails leaves no claim
def test_a_benchmark_that_fails_before_training_leaves_nothing(f, capsys, tmp_path):
    out = tmp_path / "b"
    bad = ["benchmark", "denoise", "--train", f"pairs:{f}/A", "--test", f"pairs:{f}/T", "--out", out, "--quiet",
           "--config", "cpu-small", "--seeds", "1", "--source", "real", "--source", "calibrated", "--arch", "ridnet",
           "data.patch_size=16", "data.batch_size=2", "run.steps=1", "run.threads=1",
           "net.kwargs={depth: 2, channels: 4}"]  # ridnet takes no depth: fails as its first run starts
    for _ in range(2):  # the same error again, not "another job"
        _one_line(capsys, bad, "ridnet")
        assert not out.exists() or not any(p for p in out.iterdir() if not p.name.startswith("."))


# ------------------------------------------------------------------ U2-U5 clearer refusals
def test_option_lists_with_empty_items_are_refused():
    from pngan.commands.ablation import parse_ratios
    from pngan.commands.benchmark import parse_seeds
    from pngan.errors import PnganError

    for text in ("3,", ",3", "1,,2"):
        with pytest.raises(PnganError, match="empty item"):
            parse_seeds(text)
    assert parse_seeds("3") == [0, 1, 2] and parse_seeds("3,5") == [3, 5]
    with pytest.raises(PnganError, match="empty item"):
        parse_ratios("0.5,")
    assert parse_ratios("0,0.5") == [0.0, 0.5]


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


def test_unwritable_targets_and_tiny_test_images_are_refused_before_any_work(f, capsys, tmp_path):
    from pngan.io.images import write_image

    if Path("/proc").is_dir():  # a folder that cannot hold files even for root
        _one_line(capsys, ["synth", "--setting", "calibrated", "--fit", f"pairs:{f}/A", "--input", f / "C",
                           "--output", tmp_path / "o", "--quiet", "--save-fit", "/proc/x.json"], "cannot create files")
        assert not (tmp_path / "o").exists()
    tiny = tmp_path / "tiny"
    g = torch.Generator().manual_seed(0)
    for side in ("noisy", "clean"):
        write_image(tiny / side / "t.png", torch.rand(3, 9, 30, generator=g))
    _one_line(capsys, ["benchmark", "denoise", "--train", f"pairs:{f}/A", "--test", f"pairs:{tiny}", "--out",
                       tmp_path / "b", "--quiet", "--seeds", "1", "--source", "real", *DN[2:]], "9x30")
    assert not (tmp_path / "b").exists()


def test_a_pairs_folder_given_as_noisy_images_is_named(f, capsys):
    _one_line(capsys, ["evaluate", "noise", "--real", f"noisy:{f}/A", "--setting", "awgn"], f"give pairs:{f}/A")
