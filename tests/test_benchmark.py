"""``pngan benchmark``: the downstream benchmark's statistics, rows, reuse and refusals (tiny networks)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from helpers import TINY_NETS, write_images, write_pairs
from helpers import folder_bytes as _bytes
from helpers import one_line_error as _one_line
from helpers import run_cli as _run

from pngan.eval.benchmark import mean_se, paired

DN = ["net.kwargs={depth: 2, channels: 4}", "data.patch_size=16", "data.batch_size=2", "run.threads=1"]


def test_mean_se_and_paired_differences_are_the_textbook_ones():
    m = mean_se([30.0, 31.0, 32.5])
    assert m["mean"] == pytest.approx(31.1666666667)
    sd = math.sqrt(((30 - 31.1666666667) ** 2 + (31 - 31.1666666667) ** 2 + (32.5 - 31.1666666667) ** 2) / 2)
    assert m["sd"] == pytest.approx(sd) and m["se"] == pytest.approx(sd / math.sqrt(3))
    assert mean_se([1.0]) == {"n": 1, "mean": 1.0, "sd": None, "se": None}
    # a seed effect shared by both rows cancels in the paired difference
    a, b = {0: 30.0, 1: 32.0, 2: 28.0}, {0: 29.5, 1: 31.6, 2: 27.4}
    d = paired(a, b)
    assert d["mean"] == pytest.approx(0.5) and d["se"] == pytest.approx(math.sqrt(0.01 / 3))
    assert d["seeds"] == [0, 1, 2] and d["ci"] == pytest.approx(4.3027 * d["se"], rel=1e-4)  # t(0.975, 2)
    assert d["resolved"]  # 0.5 > 4.30 x 0.058
    # resolved means beyond the 95% t half-width, not 2 se: with 3 seeds 2.5 se is not enough
    e = paired({0: 1.0, 1: 1.5, 2: 2.0}, {0: 0.0, 1: 0.0, 2: 0.0})  # mean 1.5, se 0.289: 5.2 se
    f = paired({0: 0.2, 1: 1.5, 2: 2.8}, {0: 0.0, 1: 0.0, 2: 0.0})  # mean 1.5, se 0.751: 2.0 se
    assert e["resolved"] and not f["resolved"] and abs(f["mean"]) > 1.99 * f["se"]
    assert paired({0: 1.0}, {1: 2.0})["n"] == 0  # no common seed: nothing to compare


@pytest.fixture(scope="module")
def f(tmp_path_factory) -> Path:
    from pngan.cli import main
    from pngan.nets.loading import save_network
    from pngan.nets.registry import build

    root = tmp_path_factory.mktemp("bench")
    write_pairs(root / "A", 2, 24, 24, seed=0, sigma=0.06)
    write_pairs(root / "T", 2, 24, 24, seed=1, sigma=0.06)
    write_images(root / "X", ["x0", "x1"], 24, 24, torch.Generator().manual_seed(3))
    torch.manual_seed(0)
    save_network(build("dncnn", depth=2, channels=4), root / "dn.safetensors", {})
    assert main(["train", "--data", f"pairs:{root}/A", "--out", str(root / "gen"), "--config", "cpu-small", "--quiet",
                 "--denoiser", f"dncnn:{root}/dn.safetensors", *TINY_NETS, "run.steps=2", "run.threads=1"]) == 0
    return root


def _runs(out: Path) -> dict[str, float]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.glob("runs/*/seed*/denoiser.safetensors")}


def test_denoise_table_rows_statistics_and_reuse(f, capsys, tmp_path):
    out = tmp_path / "b"
    base = ["benchmark", "denoise", "--train", f"pairs:{f}/A", "--test", f"pairs:{f}/T", "--out", out, "--steps", "2",
            "--config", "cpu-small", "--quiet", *DN]
    _run(capsys, [*base, "--seeds", "2", "--source", "real", "--source", "setting1", "--source", "calibrated",
                  "--source", f"gen:{f}/gen"])
    res = json.loads((out / "benchmark.json").read_text())
    assert res["pngan"]["command"] == "benchmark denoise"
    table = res["summary"][f"pairs:{f}/T"]["rows"]
    assert [r["row"] for r in table] == ["real", "setting 1", "calibrated", "pngan (gen)"]
    by = {r["row"]: r for r in table}
    for r in table:  # every number is what the per-seed scores give
        ps = [v["psnr"] for v in r["per_seed"].values()]
        assert r["psnr"]["n"] == 2 and r["psnr"]["mean"] == pytest.approx(sum(ps) / 2)
        if r["row"] != "real":
            gap = [by["real"]["per_seed"][s]["psnr"] - r["per_seed"][s]["psnr"] for s in ("0", "1")]
            assert r["pgap"]["mean"] == pytest.approx(sum(gap) / 2)
    assert by["pngan (gen)"]["data"] == [f"gen:{f}/gen:pairs:{f}/A"]
    assert by["calibrated"]["data"] == [f"synth:{out / 'calibration.json'}:pairs:{f}/A"]
    md = (out / "benchmark.md").read_text()
    assert "| pngan (gen) |" in md and "PGap" in md and (out / "benchmark.png").stat().st_size > 1000
    # the same again: nothing trained; one more seed: only that seed's runs are trained
    before = _runs(out)
    assert len(before) == 8
    _run(capsys, [*base, "--seeds", "2", "--source", "real", "--source", "setting1", "--source", "calibrated",
                  "--source", f"gen:{f}/gen"])
    assert _runs(out) == before
    _run(capsys, [*base, "--seeds", "0,1,2", "--source", "real", "--source", "calibrated"])
    after = _runs(out)
    assert {k: v for k, v in after.items() if k in before} == before and len(after) == 10
    table = json.loads((out / "benchmark.json").read_text())["summary"][f"pairs:{f}/T"]["rows"]
    assert [r["row"] for r in table] == ["real", "calibrated"]  # the rows asked for, now over three seeds
    assert table[0]["vs_reference"]["n"] == 3 and table[1]["pgap"]["n"] == 3


def test_denoise_refuses_another_benchmark_and_bad_options(f, capsys, tmp_path):
    out = tmp_path / "b"
    base = ["benchmark", "denoise", "--test", f"pairs:{f}/T", "--out", out, "--steps", "1", "--config", "cpu-small",
            "--quiet", "--seeds", "1", "--source", "real", *DN]
    _run(capsys, [*base, "--train", f"pairs:{f}/A"])
    write_pairs(tmp_path / "B", 2, 24, 24, seed=5)
    _one_line(capsys, [*base, "--train", f"pairs:{tmp_path}/B"], "another job")  # other training pairs
    # a test pair that is also a training image: refused before any training, whatever the spelling
    leak = ["benchmark", "denoise", "--train", f"pairs:{f}/A", "--test", f"pairs:{f}/T", "--test", f"pairs:{f}/A/",
            "--out", tmp_path / "leak", "--steps", "1", "--config", "cpu-small", "--seeds", "1", "--source", "setting1",
            *DN]
    _one_line(capsys, leak, "its pair 'i0' is also a training image")
    assert not (tmp_path / "leak").exists()
    for seeds in ("0", "-1", "1,1", "a"):
        _one_line(capsys, [*base, "--train", f"pairs:{f}/A", "--seeds", seeds], "--seeds")
    _one_line(capsys, [*base, "--train", f"pairs:{f}/A", "--source", "nosuch"], "give real, setting1")
    _one_line(capsys, [*base, "--train", f"pairs:{f}/A", "--source", f"gen:{f}/A"], "generator.safetensors")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    _one_line(capsys, [*base, "--train", f"pairs:{f}/A", "--out", mine], "holds no pngan job record")
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_augment_rows_are_the_ratios_against_real_alone(f, capsys, tmp_path):
    out = tmp_path / "aug"
    _run(capsys, ["benchmark", "augment", "--train", f"pairs:{f}/A", "--test", f"pairs:{f}/T", "--out", out,
                  "--extra", f"gen:{f}/gen:clean:{f}/X", "--ratios", "1", "--seeds", "2", "--steps", "2",
                  "--config", "cpu-small", "--quiet", *DN])
    table = json.loads((out / "benchmark.json").read_text())["summary"][f"pairs:{f}/T"]["rows"]
    assert [r["row"] for r in table] == ["rho 0", "rho 1"]
    assert table[1]["vs_reference"]["n"] == 2 and "pgap" not in table[1]
    cfg = (out / "runs" / "rho_1" / "seed0" / "config.yaml").read_text()
    assert "ratio: 1.0" in cfg


def test_scores_are_cached_by_weights_and_test_files_and_one_table_is_one_budget(f, capsys, tmp_path):
    import shutil

    test = tmp_path / "T"
    shutil.copytree(f / "T", test)
    out = tmp_path / "b"
    base = ["benchmark", "denoise", "--train", f"pairs:{f}/A", "--test", f"pairs:{test}", "--out", out,
            "--config", "cpu-small", "--quiet", "--seeds", "1", "--source", "real", *DN]
    _run(capsys, [*base, "--steps", "2"])
    cache = out / "runs" / "real" / "seed0" / "benchmark_eval.json"
    first = json.loads(cache.read_text())
    psnr = json.loads((out / "benchmark.json").read_text())["summary"][f"pairs:{test}"]["rows"][0]["psnr"]["mean"]
    _run(capsys, [*base, "--steps", "2", "run.threads=2"])  # a run setting is not another benchmark
    assert json.loads(cache.read_text()) == first  # nothing trained, nothing scored again
    # the test files change: the run is scored again (not the stale score)
    shutil.copy(test / "clean" / "i0.png", test / "noisy" / "i0.png")
    _run(capsys, [*base, "--steps", "2"])
    again = json.loads((out / "benchmark.json").read_text())["summary"][f"pairs:{test}"]["rows"][0]["psnr"]["mean"]
    assert again != psnr and json.loads(cache.read_text()) != first
    # a run of another budget is refused, not mixed into the table (shorter) nor extended on a new
    # schedule (longer: not what a fresh run of that budget learns)
    before = _bytes(out / "runs")
    _one_line(capsys, [*base, "--steps", "1"], "started with run.steps=2, not 1")
    _one_line(capsys, [*base, "--steps", "3"], "started with run.steps=2, not 3")
    assert _bytes(out / "runs") == before


def test_rows_that_would_share_a_folder_and_defaults_with_two_training_sets(f, capsys, tmp_path):
    base = ["benchmark", "denoise", "--train", f"pairs:{f}/A", "--test", f"pairs:{f}/T", "--config", "cpu-small",
            "--quiet", "--seeds", "1", "--steps", "1", *DN]
    _one_line(capsys, [*base, "--out", tmp_path / "a", "--source", "setting1", "--source",
                       f"setting_1=synth:awgn:pairs:{f}/A"], "share the run folder runs/setting_1")
    write_pairs(tmp_path / "B", 1, 24, 24, seed=9)
    two = [*base, "--train", f"pairs:{tmp_path}/B", "--out", tmp_path / "b"]
    _one_line(capsys, [*two, "--source", "calibrated"], "give one --train")
    assert not (tmp_path / "b").exists()  # refused before the folder is claimed
    _run(capsys, two)  # the defaults leave the calibrated row out with two training sets
    rows = json.loads((tmp_path / "b" / "benchmark.json").read_text())["summary"][f"pairs:{f}/T"]["rows"]
    assert [r["row"] for r in rows] == ["real", "setting 1", "setting 2"]
    assert rows[0]["data"] == [f"pairs:{f}/A", f"pairs:{tmp_path}/B"]


def test_an_interrupted_run_stops_the_table_before_it_is_written(f, capsys, tmp_path, monkeypatch):
    """SIGINT/SIGTERM during a row's training (the trainer writes its checkpoint and returns
    ``interrupted``): exit 130, no table scored on a half-trained row; the rerun goes on."""
    import dataclasses

    import pngan.train.denoiser as td

    real = td.train_denoiser
    monkeypatch.setattr(td, "train_denoiser", lambda *a, **k: dataclasses.replace(real(*a, **k), interrupted=True))
    out = tmp_path / "b"
    argv = ["benchmark", "denoise", "--train", f"pairs:{f}/A", "--test", f"pairs:{f}/T", "--out", out, "--steps", "1",
            "--config", "cpu-small", "--quiet", "--seeds", "2", "--source", "real", *DN]
    _run(capsys, argv, 130)
    assert not (out / "benchmark.json").exists() and not (out / "runs" / "real" / "seed1").exists()
    monkeypatch.undo()
    _run(capsys, argv)
    assert json.loads((out / "benchmark.json").read_text())["summary"][f"pairs:{f}/T"]["rows"][0]["psnr"]["n"] == 2


def test_a_moved_benchmark_folder_continues(f, capsys, tmp_path):
    """Rows record their data by path (the calibrated row: the benchmark folder's own calibration.json);
    a moved or copied folder holds the same files, so its rows are reused, not refused."""
    out = tmp_path / "b"
    base = ["benchmark", "denoise", "--train", f"pairs:{f}/A", "--test", f"pairs:{f}/T", "--steps", "1",
            "--config", "cpu-small", "--quiet", "--seeds", "1", "--source", "real", "--source", "calibrated", *DN]
    _run(capsys, [*base, "--out", out])
    moved = tmp_path / "moved"
    out.rename(moved)
    before = _runs(moved)
    _run(capsys, [*base, "--out", moved])
    assert _runs(moved) == before  # nothing trained again


def test_same_files_at_another_path_must_be_the_same_kind_of_source():
    """Only the paths may differ: another synthetic setting, split or format with equal content hashes
    (camera:builtin and .mat sets hash alike for every split) is other data."""
    from pngan.train.runid import _same_content

    c = [{"data": "h"}]

    def same(x, y):
        return _same_content({"data": [x], "content": c}, {"data": [y], "content": c})

    assert same("synth:/x/calibration.json:pairs:/a@all", "synth:/y/calibration.json:pairs:/b@all")
    assert same("pairs:/a@all", "pairs:/b@all") and same("gen:/r1:pairs:/a@all", "gen:/r2:pairs:/a@all")
    assert not same("synth:awgn:clean:/a@all", "synth:raw:clean:/a@all")
    assert not same("camera:builtin@train", "camera:builtin@test")
    assert not same("sidd-mat:/a@train", "sidd-mat:/b@test")
    assert not same("pairs:/a@all", "polyu:/a@all")
    assert not _same_content({"data": ["pairs:/a@all"], "content": c}, {"data": ["pairs:/b@all"], "content": [{"data": "i"}]})


def test_camera_builtin_alone_is_recorded_as_its_training_split():
    """camera:builtin opens the training split: recorded as @train (an older pngan wrote @all, which
    a resume takes as @train, with a warning); camera:builtin@all is the whole set."""
    from pngan.train.runid import _camera_spelling, normalize_spec

    assert normalize_spec("camera:builtin") == "camera:builtin@train"
    assert normalize_spec("camera:builtin@all") == "camera:builtin@all"
    assert normalize_spec("synth:awgn:camera:builtin") == "synth:awgn:camera:builtin@train"
    assert _camera_spelling(["camera:builtin@all"], ["camera:builtin@train"])
    assert _camera_spelling(["gen:/r:camera:builtin@all"], ["gen:/r:camera:builtin@train"])
    assert not _camera_spelling(["camera:builtin@all"], ["camera:builtin@test"])
