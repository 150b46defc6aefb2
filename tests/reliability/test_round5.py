"""QA round 5 (issue 24): the fifth adversarial CLI pass's findings: --overwrite never replaces
another command's output, a DND submission folder is claimed like every output folder, pngan
never writes through a symlink it did not make, and more (in-process, tiny networks)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import TINY_NETS
from helpers import folder_bytes as _bytes
from helpers import one_line_error as _one_line
from helpers import run_cli as _run
from helpers import write_images, write_pairs

DN = ["--config", "cpu-small", "--quiet", "--steps", "1", "data.patch_size=16", "data.batch_size=2",
      "net.kwargs={depth: 2, channels: 4}", "run.threads=1"]


@pytest.fixture(scope="module")
def f(tmp_path_factory) -> Path:
    """Pairs A (train) and T (test), clean images C, a tiny denoiser run d."""
    from pngan.cli import main

    root = tmp_path_factory.mktemp("qa5")
    write_pairs(root / "A", 2, 24, 24, seed=0, sigma=0.05)
    write_pairs(root / "T", 2, 24, 24, seed=1, sigma=0.05)
    write_images(root / "C", ["c0", "c1"], 20, 20, torch.Generator().manual_seed(2))
    assert main(["train-denoiser", "--arch", "dncnn", "--data", f"pairs:{root}/A", "--out", str(root / "d"), *DN]) == 0
    return root


# ------------------------------------------------------------------ D1 --overwrite and another command's folder
def test_overwrite_never_replaces_another_commands_output(f, capsys, tmp_path):
    bench = tmp_path / "bench"
    _run(capsys, ["benchmark", "denoise", "--train", f"pairs:{f}/A", "--test", f"pairs:{f}/T", "--seeds", "1",
                  "--source", "real", "--source", "calibrated", "--out", bench, "--arch", "dncnn", *DN])
    before = _bytes(bench)
    _one_line(capsys, ["synth", "--setting", "awgn", "--input", f / "C", "--output", bench, "--overwrite", "--quiet"],
              "not of 'pngan synth'")
    _one_line(capsys, ["synth", "--setting", "calibrated", "--fit", f"pairs:{f}/T", "--input", f / "C", "--output",
                       tmp_path / "s", "--save-fit", bench / "calibration.json", "--overwrite", "--quiet"],
              "calibration of 'pngan benchmark denoise'")
    assert _bytes(bench) == before
    syn = tmp_path / "syn"
    _run(capsys, ["synth", "--setting", "awgn", "--input", f / "C", "--output", syn, "--quiet"])
    before = _bytes(syn)
    _one_line(capsys, ["evaluate", "denoiser", "--model", f / "d" / "denoiser.safetensors", "--data", f"pairs:{f}/T",
                       "--save-images", syn, "--overwrite"], "not of 'pngan evaluate denoiser --save-images'")
    assert _bytes(syn) == before


# ------------------------------------------------------------------ D3 a symlink where pngan writes
def test_pngan_never_writes_through_a_symlink_it_did_not_make(f, capsys, tmp_path):
    import shutil

    out = tmp_path / "o"
    _run(capsys, ["synth", "--setting", "awgn", "--input", f / "C", "--output", out, "--quiet"])
    precious = tmp_path / "precious"
    shutil.copytree(f / "C", precious)
    before = _bytes(precious)
    shutil.rmtree(out / "noisy")
    (out / "noisy").symlink_to(precious)
    _one_line(capsys, ["synth", "--setting", "awgn", "--input", f / "C", "--output", out, "--quiet"], "symbolic link")
    assert _bytes(precious) == before
    _run(capsys, ["synth", "--setting", "awgn", "--input", f / "C", "--output", out, "--quiet", "--overwrite"])
    assert _bytes(precious) == before and not (out / "noisy").is_symlink()


# ------------------------------------------------------------------ D2 the DND submission folder
def _dnd(root: Path, n: int) -> str:
    import h5py

    (root / "images_srgb").mkdir(parents=True)
    rng = np.random.default_rng(n)
    with h5py.File(root / "info.mat", "w", userblock_size=512) as fh:
        refs = fh.create_group("#refs#")
        rl = [refs.create_dataset(f"b{i}", data=np.asarray([[1, 1, 16, 16]], np.float64).T).ref for i in range(n)]
        fh.create_group("info").create_dataset("boundingboxes", data=np.array([rl], dtype=h5py.ref_dtype))
    for i in range(n):
        with h5py.File(root / "images_srgb" / f"{i + 1:04d}.mat", "w", userblock_size=512) as fh:
            fh.create_dataset("InoisySRGB", data=np.ascontiguousarray(rng.random((24, 24, 3)).astype(np.float32).T))
    return f"dnd:{root}"


def test_dnd_submission_folder_is_claimed(f, capsys, tmp_path):
    pytest.importorskip("h5py")
    d1, d2 = _dnd(tmp_path / "dnd1", 2), _dnd(tmp_path / "dnd2", 1)
    model = f / "d" / "denoiser.safetensors"
    ev = ["evaluate", "denoiser", "--model", model]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "0001_01.mat").write_text("important")
    data = _bytes(tmp_path / "dnd1")
    for out, needle in ((mine, "not empty"), (tmp_path / "dnd1", "evaluated data"),
                        (tmp_path / "dnd1" / "images_srgb", "evaluated data")):
        _one_line(capsys, [*ev, "--data", d1, "--out", out], needle)
    assert (mine / "0001_01.mat").read_text() == "important" and _bytes(tmp_path / "dnd1") == data
    _one_line(capsys, [*ev, "--data", d1, "--data", d2, "--out", tmp_path / "both"], "one dnd: set")
    sub = tmp_path / "sub"
    _run(capsys, [*ev, "--data", d1, "--out", sub])
    _run(capsys, [*ev, "--data", d1, "--out", sub])  # the same evaluation again: its own folder
    _one_line(capsys, [*ev, "--data", d2, "--out", sub], "another job")
    _run(capsys, [*ev, "--data", d2, "--out", sub, "--overwrite"])
    assert sorted(p.name for p in (sub / "bundled").iterdir()) == ["0001.mat"]  # not a mix of two sets
    _one_line(capsys, [*ev, "--data", f"pairs:{f}/T", "--out", tmp_path / "x"], "--out is where a DND")
    _one_line(capsys, ["evaluate", "denoiser", "--model", f / "d", "--data", f"pairs:{f}/T"], "denoiser.safetensors")


# ------------------------------------------------------------------ T1/S7/U6 net.kwargs
@pytest.mark.parametrize("kwargs,needle", [("{channels: 0}", "integer >= 1, got 0"), ("{depth: 2, channels: -4}", "got -4"),
                                           ("{depth:2,channels:4}", "with a space after the colon"),
                                           ("{channels: abc}", "got 'abc'"), ("{depth: 2.5}", "got 2.5"),
                                           ("{depth: true}", "got True"), ("{width: 3}", "takes no argument 'width'")])
def test_network_arguments_are_checked_before_a_run_folder_is_made(f, capsys, tmp_path, kwargs, needle):
    out = tmp_path / "r"
    _one_line(capsys, ["train-denoiser", "--arch", "dncnn", "--data", f"pairs:{f}/A", "--out", out, *DN[:-3],
                       f"net.kwargs={kwargs}", "run.threads=1"], needle)
    assert not out.exists()


# ------------------------------------------------------------------ S5 a hand edit and --config on resume
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


# ------------------------------------------------------------------ T2/T3/S1/S4 what is scored
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


# ------------------------------------------------------------------ S3 names that collide with NAME_K
def test_input_names_that_read_as_samples_are_refused(f, capsys, tmp_path):
    from pngan.infer.generate import check_sample_names
    from pngan.errors import PnganError

    with pytest.raises(PnganError, match="'a' and 'a_0' would collide"):
        check_sample_names(["a.png", "a_0.png"])
    check_sample_names(["a_0.png", "b_1.png", "c.png"])  # no stem is another's sample


# ------------------------------------------------------------------ S8/U2/U3 --init and the network's shape
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


# ------------------------------------------------------------------ S6 --denoiser-config on resume
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


# ------------------------------------------------------------------ U8/U9/U12/S9 clearer words
def test_words_for_records_splits_formats_and_duplicates(f, capsys, tmp_path, recwarn):
    import shutil

    from pngan.io.json_out import file_kind

    assert file_kind(f / "d" / "run.json") == "a pngan run record (run.json)"
    (tmp_path / "job.json").write_text(json.dumps({"command": "synth", "setting": "awgn"}))
    assert file_kind(tmp_path / "job.json") == "the job record of 'pngan synth'"
    shutil.copytree(f / "T", tmp_path / "x@train")
    _one_line(capsys, ["evaluate", "noise", "--real", f"pairs:{tmp_path}/x@train", "--setting", "awgn"],
              "was read as the split")
    _run(capsys, ["evaluate", "noise", "--real", f"pairs:{tmp_path}/x@train@all", "--setting", "awgn"])
    _one_line(capsys, ["train-denoiser", "--arch", "dncnn", "--data", f"pairs:{f}/A", "--data", f"pairs:{f}/A/",
                       "--out", tmp_path / "r", *DN], "given twice")
    (tmp_path / "x@train" / "clean" / "extra.webp").write_bytes(b"RIFF")
    from pngan.io.images import list_images

    list_images(tmp_path / "x@train" / "clean")
    assert any(".webp" in str(w.message) for w in recwarn)


def test_report_draws_pngans_own_tables(f, capsys, tmp_path):
    bench = tmp_path / "b"
    _run(capsys, ["benchmark", "denoise", "--train", f"pairs:{f}/A", "--test", f"pairs:{f}/T", "--seeds", "1",
                  "--source", "real", "--out", bench, "--arch", "dncnn", *DN])
    _run(capsys, ["report", bench / "benchmark.json", "--out", tmp_path / "rep"])
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "<h2>benchmark: benchmark.json</h2>" in page and "<td>real</td>" in page


# ------------------------------------------------------------------ S2 files that saw the held-out pairs
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


# ------------------------------------------------------------------ U5 a file that is not a checkpoint
def test_a_file_that_is_not_a_checkpoint_is_named_without_torchs_advice(f, capsys, tmp_path):
    bad = tmp_path / "a.pth"
    bad.write_text("x\n")
    line = _one_line(capsys, ["evaluate", "denoiser", "--model", f"dncnn:{bad}", "--data", f"pairs:{f}/T"],
                     "not a PyTorch checkpoint")
    assert "weights_only` set to `False" not in line


# ------------------------------------------------------------------ review: generated copies of held-out images
def test_pairs_generated_from_held_out_images_are_refused(f, capsys, tmp_path):
    gen = tmp_path / "g"  # synth re-encodes clean/: not the same bytes, the same images
    _run(capsys, ["synth", "--setting", "awgn", "--input", f"pairs:{f}/T", "--output", gen, "--quiet"])
    _one_line(capsys, ["ablation", "rho", "--generated", f"pairs:{gen}", "--data", f"pairs:{f}/A", "--test",
                       f"pairs:{f}/T", "--out", tmp_path / "rho"], "is also a training image")


def test_an_init_runs_record_holds_its_shape_from_the_start(f, capsys, tmp_path):
    run = tmp_path / "r"
    _run(capsys, ["train-denoiser", "--arch", "dncnn", "--data", f"pairs:{f}/A", "--config", "cpu-small", "--quiet",
                  "data.patch_size=16", "data.batch_size=2", "run.threads=1", "--init", f / "d" / "denoiser.safetensors",
                  "--out", run, "--steps", "1"])
    rec = json.loads((run / "run.json").read_text())
    assert rec["config"]["net"]["kwargs"] == {"depth": 2, "channels": 4}  # a hard kill cannot leave it behind


# ------------------------------------------------------------------ sixth pass
def test_sixth_pass_overwrite_never_takes_the_fit_or_a_run_folder(f, capsys, tmp_path):
    import shutil

    proj = tmp_path / "proj"  # the real pairs the fit reads, given as the output folder
    shutil.copytree(f / "A", proj)
    before = _bytes(proj)
    _one_line(capsys, ["synth", "--setting", "calibrated", "--fit", f"pairs:{proj}", "--input", f / "C", "--output",
                       proj, "--overwrite", "--quiet"], "--fit")
    assert _bytes(proj) == before
    run = tmp_path / "run"  # a copy of a training run folder
    shutil.copytree(f / "d", run)
    before = _bytes(run)
    _one_line(capsys, ["synth", "--setting", "awgn", "--input", f / "C", "--output", run, "--overwrite", "--quiet"],
              "run or report folder")
    assert _bytes(run) == before


@pytest.mark.parametrize("arch,kwargs", [("dncnn", "{in_channels: 1, depth: 2, channels: 4}"), ("ridnet", "{channels: 15}")])
def test_sixth_pass_network_arguments_that_cannot_run(f, capsys, tmp_path, arch, kwargs):
    out = tmp_path / "r"
    _one_line(capsys, ["train-denoiser", "--arch", arch, "--data", f"pairs:{f}/A", "--out", out, "--config", "cpu-small",
                       "--quiet", "--steps", "1", "data.patch_size=16", "data.batch_size=2", f"net.kwargs={kwargs}",
                       "run.threads=1"], "cannot run")
    assert not out.exists()


def test_sixth_pass_a_benchmark_is_its_effective_config_not_the_text(f, capsys, tmp_path):
    out = tmp_path / "b"
    base = ["benchmark", "denoise", "--train", f"pairs:{f}/A", "--test", f"pairs:{f}/T", "--seeds", "1", "--source",
            "real", "--out", out, "--arch", "dncnn", "--config", "cpu-small", "--quiet", "--steps", "1"]
    _run(capsys, [*base, "data.patch_size=16", "data.batch_size=2", "net.kwargs={depth: 2, channels: 4}", "run.threads=1"])
    first = _bytes(out / "runs")
    _run(capsys, [*base, "net.kwargs={channels: 4, depth: 2}", "data.batch_size=2", "data.patch_size=16"])
    assert {k: v for k, v in _bytes(out / "runs").items() if "benchmark_eval" not in k} == \
        {k: v for k, v in first.items() if "benchmark_eval" not in k}  # reused, nothing trained again


def test_sixth_pass_a_generated_noisy_folder_is_checked_through_its_manifest(f, capsys, tmp_path):
    other = tmp_path / "other"  # other images under the real pairs' names
    write_images(other, ["i0", "i1"], 24, 24, torch.Generator().manual_seed(9))
    gen = tmp_path / "g"
    _run(capsys, ["synth", "--setting", "awgn", "--input", other, "--output", gen, "--quiet"])
    if not (gen / "manifest.jsonl").is_file():
        pytest.skip("synth writes no manifest")
    for spec in (gen / "noisy", f"noisy:{gen}/noisy"):
        _one_line(capsys, ["evaluate", "noise", "--real", f"pairs:{f}/T", "--generated", spec], "another clean image")
