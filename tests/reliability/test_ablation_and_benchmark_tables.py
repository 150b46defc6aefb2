"""The tables of ``pngan ablation`` and ``pngan benchmark`` (tiny runs, in-process).

A later run adds its rows to the table (merged in the paper's or rho order) and reuses the run of a
row already done only when it was trained with the same effective config (however the overrides are
spelled) on the same files; another config, ``--test`` files that changed under the same path, or a
user's table in ``--out`` are refused before any training, the table's bytes unchanged; an older
pngan's table is merged when it lists the same config; empty or duplicate row lists are refused.

A new benchmark that fails before training leaves nothing: test_output_folders.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from helpers import folder_bytes as _bytes
from helpers import one_line_error as _one_line
from helpers import run_cli as _run
from helpers import write_pairs

from pngan.nets.loading import save_network
from pngan.nets.registry import build

# a tiny PNGAN generator
GEN = ["generator.channels=4", "generator.groups=1", "generator.blocks=1", "loss.d_channels=4",
       "data.patch_size=16", "data.batch_size=2", "run.threads=1"]
# a tiny DnCNN (depth 2)
DN = ["net.kwargs={depth: 2, channels: 4}", "data.patch_size=16", "data.batch_size=2", "run.threads=1"]
ABL_DN = DN


@pytest.fixture(scope="module")
def ablation_files(tmp_path_factory) -> Path:
    """Pairs train/ (two 20x20) and test/ (one), a tiny DnCNN ``dn.safetensors``."""
    root = tmp_path_factory.mktemp("abl2")
    write_pairs(root / "train", 2, 20, 20, seed=0)
    write_pairs(root / "test", 1, 20, 20, seed=1)
    torch.manual_seed(0)
    save_network(build("dncnn", channels=4, depth=2), root / "dn.safetensors")
    return root


# --- rows of earlier runs are kept; another config is refused -------------------------------------------------
@pytest.mark.files("ablation_files")
def test_rho_table_keeps_earlier_rows_and_refuses_another_config(f, capsys, tmp_path):
    out = tmp_path / "rho"
    base = ["ablation", "rho", "--generated", f"synth:awgn:pairs:{f}/train", "--data", f"pairs:{f}/train", "--test",
            f"pairs:{f}/test", "--config", "cpu-small", "--steps", "1", "--quiet", "--out", out]
    _run(capsys, base + ["--ratios", "0,1", *DN])
    _run(capsys, base + ["--ratios", "0.5", *DN])  # a later run with fewer rows adds to the table
    res = json.loads((out / "table4_rho.json").read_text())
    assert [r["rho"] for r in res["rows"]] == [0.0, 0.5, 1.0]
    md = (out / "table4_rho.md").read_text()
    assert "| 0 |" in md and "| 0.5 |" in md and "| 1 |" in md
    before = {p: p.read_bytes() for p in (out / "table4_rho.json", out / "table4_rho.md")}
    # another config into the same --out: refused before any training, the table untouched
    other = base + ["--ratios", "0.2", "net.kwargs={depth: 3, channels: 4}", *DN[1:]]
    _one_line(capsys, other, "another config")
    assert not (out / "runs" / "rho-0.2").exists()
    assert {p: p.read_bytes() for p in before} == before
    # empty and duplicate ratio lists
    _one_line(capsys, base + ["--ratios", "1,1.0", *DN], "twice")
    _one_line(capsys, base + ["--ratios", ",", *DN], "no ratio")


@pytest.mark.files("ablation_files")
def test_table3_row_trained_with_another_config_is_not_reused(f, capsys, tmp_path):
    out = tmp_path / "t3"
    base = ["ablation", "table3", "--data", f"pairs:{f}/train", "--test", f"pairs:{f}/test", "--config", "cpu-small",
            "--steps", "1", "--quiet", "--out", out, "--denoiser", f"dncnn:{f}/dn.safetensors"]
    _run(capsys, base + ["--rows", "Baseline 1", *GEN])
    _run(capsys, base + ["--rows", "+D_R", *GEN])
    res = json.loads((out / "table3.json").read_text())
    assert [r["row"] for r in res["rows"]] == ["Baseline 1", "+D_R"]  # merged, in the paper's order
    # the same rows with another generator: refused at the table, and (table gone, e.g. an interrupted
    # run) at the row's own run, naming the key; the earlier run is not touched
    wider = [g if not g.startswith("generator.channels") else "generator.channels=8" for g in GEN]
    _one_line(capsys, base + ["--rows", "Baseline 1", *wider], "another config")
    for name in ("table3.json", "table3.md"):
        shutil.move(out / name, tmp_path / name)
    line = _one_line(capsys, base + ["--rows", "Baseline 1", *wider], "generator.channels 4 -> 8")
    assert "Baseline 1" in line
    # --rows '' runs nothing (before: every row)
    _one_line(capsys, base + ["--rows", "", *GEN], "--rows names no row")
    _one_line(capsys, base + ["--rows", " , ", *GEN], "--rows names no row")


@pytest.mark.files("ablation_files")
def test_table_of_an_older_pngan_is_merged_when_it_lists_the_same_config(f, capsys, tmp_path):
    out = tmp_path / "rho"
    base = ["ablation", "rho", "--generated", f"synth:awgn:pairs:{f}/train", "--data", f"pairs:{f}/train", "--test",
            f"pairs:{f}/test", "--config", "cpu-small", "--steps", "1", "--quiet", "--out", out]
    _run(capsys, base + ["--ratios", "0", *DN])
    res = json.loads((out / "table4_rho.json").read_text())
    del res["job"]  # as an older pngan wrote it
    res["overrides"] = [*res["overrides"], "run.steps=1"]
    (out / "table4_rho.json").write_text(json.dumps(res))
    _one_line(capsys, base + ["--ratios", "0.5", "net.kwargs={depth: 3, channels: 4}", *DN[1:]], "another config")
    _run(capsys, base + ["--ratios", "1", *DN])
    assert [r["rho"] for r in json.loads((out / "table4_rho.json").read_text())["rows"]] == [0.0, 1.0]


@pytest.mark.files("denoiser_run")
def test_sixth_pass_a_benchmark_is_its_effective_config_not_the_text(f, capsys, tmp_path):
    out = tmp_path / "b"
    base = ["benchmark", "denoise", "--train", f"pairs:{f}/A", "--test", f"pairs:{f}/T", "--seeds", "1", "--source",
            "real", "--out", out, "--arch", "dncnn", "--config", "cpu-small", "--quiet", "--steps", "1"]
    _run(capsys, [*base, "data.patch_size=16", "data.batch_size=2", "net.kwargs={depth: 2, channels: 4}", "run.threads=1"])
    first = _bytes(out / "runs")
    _run(capsys, [*base, "net.kwargs={channels: 4, depth: 2}", "data.batch_size=2", "data.patch_size=16"])
    assert {k: v for k, v in _bytes(out / "runs").items() if "benchmark_eval" not in k} == \
        {k: v for k, v in first.items() if "benchmark_eval" not in k}  # reused, nothing trained again


# --- a user's table, and rows scored on other test files ------------------------------------------------------
@pytest.mark.files("generator_run")
def test_ablation_never_writes_over_a_users_table_and_never_mixes_other_test_files(f, capsys, tmp_path):
    test = tmp_path / "T"
    shutil.copytree(f / "T", test)
    base = ["ablation", "rho", "--generated", f"synth:awgn:pairs:{f}/A", "--data", f"pairs:{f}/A", "--test",
            f"pairs:{test}", "--config", "cpu-small", "--steps", "1", "--quiet", *ABL_DN]
    mine = tmp_path / "abl"
    mine.mkdir()
    (mine / "table4_rho.md").write_text("my notes\n")
    _one_line(capsys, [*base, "--ratios", "0", "--out", mine], "holds no earlier 'table4_rho' ablation")
    assert _bytes(mine) == {"table4_rho.md": b"my notes\n"}
    out = tmp_path / "rho"
    _run(capsys, [*base, "--ratios", "0,1", "--out", out])
    for name in ("table4_rho.json", "table4_rho.md"):  # an interrupted first run leaves only runs/: it may go on
        (out / name).unlink()
    _run(capsys, [*base, "--ratios", "0", "--out", out])
    _run(capsys, [*base, "--ratios", "1", "--out", out])
    assert [r["rho"] for r in json.loads((out / "table4_rho.json").read_text())["rows"]] == [0, 1]
    # the test set's files change under the same path: the kept rows were scored on the old ones
    shutil.copy(test / "clean" / "i0.png", test / "noisy" / "i0.png")
    keep = (out / "table4_rho.json").read_bytes()
    _one_line(capsys, [*base, "--ratios", "0", "--out", out], "the files behind --test changed")
    assert (out / "table4_rho.json").read_bytes() == keep
