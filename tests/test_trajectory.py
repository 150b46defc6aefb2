"""``pngan evaluate noise --generator RUN --checkpoints``: realism of every kept checkpoint."""

from __future__ import annotations

import json

import torch

from helpers import TINY_NETS, write_pairs

from pngan.cli import main
from pngan.nets.loading import save_network
from pngan.nets.registry import build


def test_checkpoint_trajectory_matches_single_evaluations(tmp_path, capsys):
    write_pairs(tmp_path / "p", 2, 24, 24)
    write_pairs(tmp_path / "t", 2, 24, 24, seed=1)
    torch.manual_seed(0)
    dn = save_network(build("dncnn", channels=4, depth=2), tmp_path / "dn.safetensors")
    run = tmp_path / "run"
    assert main(["train", "--data", f"pairs:{tmp_path / 'p'}", "--denoiser", f"dncnn:{dn}", "--config", "cpu-small",
                 "--quiet", "--out", str(run), *TINY_NETS, "run.steps=4", "run.ckpt_every=2",
                 "run.keep_checkpoints=5", "run.threads=1"]) == 0
    out, png = tmp_path / "traj.json", tmp_path / "traj.png"
    capsys.readouterr()
    assert main(["evaluate", "noise", "--real", f"pairs:{tmp_path / 't'}", "--generator", str(run), "--checkpoints",
                 "--fit", f"pairs:{tmp_path / 'p'}", "--plot", str(png), "--json", str(out), "--seed", "5"]) == 0
    printed = capsys.readouterr().out
    res = json.loads(out.read_text())
    assert res["kind"] == "noise-trajectory" and [r["step"] for r in res["checkpoints"]] == [2, 4]
    assert png.is_file() and png.stat().st_size > 1000
    assert "| calibrated |" in printed and "| 2 |" in printed and "| 4 |" in printed
    (label, base), = res["baselines"].items()
    assert label.startswith("calibrated")
    # each row is exactly what a single evaluation of that checkpoint's weights gives (same seeds)
    for r in res["checkpoints"]:
        one = tmp_path / f"one{r['step']}.json"
        assert main(["evaluate", "noise", "--real", f"pairs:{tmp_path / 't'}", "--generator", r["weights"],
                     "--seed", "5", "--json", str(one)]) == 0
        assert json.loads(one.read_text())["mean"] == r["mean"]
    assert min(res["checkpoints"], key=lambda r: r["mean"]["akld"])["step"] == res["best_step"]["akld"]
    # the calibrated row is what --setting calibrated --fit gives
    cal = tmp_path / "cal.json"
    assert main(["evaluate", "noise", "--real", f"pairs:{tmp_path / 't'}", "--setting", "calibrated", "--fit",
                 f"pairs:{tmp_path / 'p'}", "--seed", "5", "--json", str(cal)]) == 0
    assert json.loads(cal.read_text())["mean"] == base


def test_checkpoint_trajectory_errors(tmp_path, capsys):
    write_pairs(tmp_path / "t", 1, 16, 16)
    real = f"pairs:{tmp_path / 't'}"
    assert main(["evaluate", "noise", "--real", real, "--setting", "awgn", "--checkpoints"]) == 2
    assert "--checkpoints needs --generator" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", "noise", "--real", real, "--generator", str(tmp_path / "empty"), "--checkpoints"]) == 2
    assert "no generator checkpoints" in capsys.readouterr().err
    assert main(["evaluate", "noise", "--real", real, "--generator", str(tmp_path / "empty"), "--plot", "x.png"]) == 2
    assert "add --checkpoints" in capsys.readouterr().err
