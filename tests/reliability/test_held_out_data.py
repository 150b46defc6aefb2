"""Held-out data stays held out (in-process, tiny networks).

A test or scored set that holds a training image (under any path or name, or re-encoded from the
held-out images by synth or generate) is refused before any work; a generator, fit, model or extra
pairs that saw the scored pairs are warned about, naming the shared image. Generated pairs are scored
only against the clean images they were made from (found through their manifest), and what
``report`` and ``evaluate noise`` score must be real noisy/clean pairs of the same size."""

from __future__ import annotations

import pytest
import torch

from helpers import TINY_NETS
from helpers import one_line_error as _one_line
from helpers import run_cli as _run
from helpers import write_images


# --- a held-out set that is training data is refused ----------------------------------------------------------
@pytest.mark.files("train_test_clean")
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
        _one_line(capsys, argv, "is also a training image")
        assert not any(tmp_path.glob("t3")) and not any(tmp_path.glob("rho")) and not any(tmp_path.glob("pg"))


@pytest.mark.files("denoiser_run")
def test_pairs_generated_from_held_out_images_are_refused(f, capsys, tmp_path):
    gen = tmp_path / "g"  # synth re-encodes clean/: not the same bytes, the same images
    _run(capsys, ["synth", "--setting", "awgn", "--input", f"pairs:{f}/T", "--output", gen, "--quiet"])
    _one_line(capsys, ["ablation", "rho", "--generated", f"pairs:{gen}", "--data", f"pairs:{f}/A", "--test",
                       f"pairs:{f}/T", "--out", tmp_path / "rho"], "is also a training image")


# --- files that saw the scored pairs are warned about ---------------------------------------------------------
@pytest.mark.files("train_test_clean")
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


@pytest.mark.files("denoiser_run")
def test_a_fit_or_model_that_saw_the_scored_pairs_is_warned_about(f, capsys, tmp_path, caplog):
    cal = tmp_path / "cal.json"
    _run(capsys, ["synth", "--setting", "calibrated", "--fit", f"pairs:{f}/T", "--input", f / "C", "--output",
                  tmp_path / "s", "--save-fit", cal, "--quiet"])
    caplog.clear()
    _run(capsys, ["evaluate", "noise", "--real", f"pairs:{f}/T", "--setting", f"calibrated:{cal}"])
    assert "fitted on the scored pairs' own noise" in caplog.text
    caplog.clear()
    _run(capsys, ["evaluate", "denoiser", "--model", f / "d" / "denoiser.safetensors", "--data", f"pairs:{f}/A"])
    assert "scored on its own training pairs" in caplog.text
    caplog.clear()
    _run(capsys, ["evaluate", "denoiser", "--model", f / "d" / "denoiser.safetensors", "--data", f"pairs:{f}/T"])
    assert "share images" not in caplog.text


# --- generated pairs are scored against their own clean images ------------------------------------------------
@pytest.mark.files("denoiser_run")
def test_report_and_evaluate_check_what_they_score(f, capsys, tmp_path):
    import shutil

    noisy_only = tmp_path / "ref"
    shutil.copytree(f / "T" / "noisy", noisy_only)
    _one_line(capsys, ["report", "--real", f"noisy:{noisy_only}", "--out", tmp_path / "r1"], "noisy/clean pairs")
    big = tmp_path / "big"
    write_images(big, ["i0", "i1"], 40, 40, torch.Generator().manual_seed(3))
    _one_line(capsys, ["report", "--real", f"pairs:{f}/T", "--generated", big, "--out", tmp_path / "r2"], "40x40")
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()
    other = tmp_path / "other"  # generated pairs made from other clean images under the real names
    shutil.copytree(f / "A", other)
    _one_line(capsys, ["evaluate", "noise", "--real", f"pairs:{f}/T", "--generated", f"pairs:{other}"],
              "made from another clean image")
    _run(capsys, ["evaluate", "noise", "--real", f"pairs:{f}/T", "--generated", f"pairs:{f}/T"])  # its own: scored
    zero = tmp_path / "zero"
    shutil.copytree(f / "T" / "clean", zero / "clean")
    shutil.copytree(f / "T" / "clean", zero / "noisy")
    _one_line(capsys, ["evaluate", "noise", "--real", f"pairs:{zero}", "--setting", "awgn"], "identical")


@pytest.mark.files("denoiser_run")
def test_sixth_pass_a_generated_noisy_folder_is_checked_through_its_manifest(f, capsys, tmp_path):
    other = tmp_path / "other"  # other images under the real pairs' names
    write_images(other, ["i0", "i1"], 24, 24, torch.Generator().manual_seed(9))
    gen = tmp_path / "g"
    _run(capsys, ["synth", "--setting", "awgn", "--input", other, "--output", gen, "--quiet"])
    if not (gen / "manifest.jsonl").is_file():
        pytest.skip("synth writes no manifest")
    for spec in (gen / "noisy", f"noisy:{gen}/noisy"):
        _one_line(capsys, ["evaluate", "noise", "--real", f"pairs:{f}/T", "--generated", spec], "another clean image")
