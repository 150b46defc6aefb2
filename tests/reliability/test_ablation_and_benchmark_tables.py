"""Round 2: ``pngan ablation`` keeps the rows of earlier runs in its table, never mixes rows of another
config into it, never reuses a row's run trained with another config, and refuses empty or duplicate
row lists (tiny runs, in-process)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from helpers import write_pairs

from pngan.cli import main
from pngan.nets.loading import save_network
from pngan.nets.registry import build

GEN = ["generator.channels=4", "generator.groups=1", "generator.blocks=1", "loss.d_channels=4",
       "data.patch_size=16", "data.batch_size=2", "run.threads=1"]
DN = ["net.kwargs={depth: 2, channels: 4}", "data.patch_size=16", "data.batch_size=2", "run.threads=1"]


@pytest.fixture(scope="module")
def f(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("abl2")
    write_pairs(root / "train", 2, 20, 20, seed=0)
    write_pairs(root / "test", 1, 20, 20, seed=1)
    torch.manual_seed(0)
    save_network(build("dncnn", channels=4, depth=2), root / "dn.safetensors")
    return root


def _run(capsys, argv, code=0) -> list[str]:
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip() and "it/s" not in x and "img/s" not in x]
    assert rc == code, err
    return err


def _one_line(capsys, argv, needle) -> str:
    err = _run(capsys, argv, 2)
    assert len(err) == 1 and err[0].startswith("pngan: error: ") and needle in err[0], err
    return err[0]


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
