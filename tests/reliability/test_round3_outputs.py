"""QA round 3 (issue 24): single files and folders pngan writes into never replace what pngan did not
write (report --out, --plot, ablation --out, --save-fit), one path is not two outputs, an ablation
table never mixes rows scored on other files, and the errors met on the way say what is wrong
(in-process, tiny networks)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from helpers import TINY_NETS
from helpers import folder_bytes as _bytes
from helpers import one_line_error as _one_line
from helpers import run_cli as _run
from helpers import write_images, write_pairs


@pytest.fixture(scope="module")
def f(tmp_path_factory) -> Path:
    """Pairs A (train) and T (test), clean images C, a tiny dncnn and a 2-step generator run with a
    checkpoint at each step."""
    from pngan.cli import main
    from pngan.nets.loading import save_network
    from pngan.nets.registry import build

    root = tmp_path_factory.mktemp("qa3")
    write_pairs(root / "A", 2, 24, 24, seed=0, sigma=0.05)
    write_pairs(root / "T", 1, 24, 24, seed=1, sigma=0.05)
    write_images(root / "C", ["c0"], 20, 20, torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    save_network(build("dncnn", depth=2, channels=4), root / "dn.safetensors", {})
    assert main(["train", "--data", f"pairs:{root}/A", "--out", str(root / "run"), "--setting", "awgn", "--quiet", "--config", "cpu-small",
                 "--denoiser", f"dncnn:{root}/dn.safetensors",
                 *TINY_NETS, "run.steps=2", "run.ckpt_every=1", "run.keep_checkpoints=5", "run.threads=1"]) == 0
    return root


def _photo(path: Path) -> bytes:
    """A real PNG that pngan did not draw."""
    from pngan.io.images import write_image

    write_image(path, torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(7)))
    return path.read_bytes()


# ------------------------------------------------------------------ D1 report --out
def test_report_never_writes_over_a_users_folder(f, capsys, tmp_path):
    mine = tmp_path / "myrep"
    mine.mkdir()
    (mine / "index.html").write_text("mine")
    _photo(mine / "run0_curves.png")
    keep = _bytes(mine)
    for target in (mine, f / "run", f / "A"):  # a user's folder, a run folder, a data folder
        before = _bytes(target)
        _one_line(capsys, ["report", f / "run", "--out", target], "holds no earlier pngan report")
        assert _bytes(target) == before
    assert _bytes(mine) == keep
    out = tmp_path / "rep"
    _run(capsys, ["report", f / "run", "--out", out])
    rec = json.loads((out / "report.json").read_text())
    assert rec["pngan"]["command"] == "report" and (out / "index.html").is_file()
    _run(capsys, ["report", f / "run", "--out", out])  # its own folder: updated
    (out / "report.json").unlink()  # a report of an older pngan (no report.json): its page says what it is
    _run(capsys, ["report", f / "run", "--out", out])
    half = tmp_path / "half"  # a report stopped after its first figure: only pngan's figures, no record
    half.mkdir()
    shutil.copy(out / "run0_curves.png", half / "run0_curves.png")
    _run(capsys, ["report", f / "run", "--out", half])


# ------------------------------------------------------------------ D2, S2, U4 --plot / --json of a trajectory
def test_plot_replaces_only_its_own_figure_and_one_path_is_not_two_outputs(f, capsys, tmp_path):
    from pngan.io.json_out import PNG_KEYWORD, png_text

    cal = tmp_path / "cal.json"
    _run(capsys, ["synth", "--input", f"clean:{f}/C", "--output", tmp_path / "s", "--setting", "calibrated",
                  "--fit", f"pairs:{f}/A", "--save-fit", cal])
    photo = tmp_path / "photo.png"
    _photo(photo)
    ev = ["evaluate", "noise", "--real", f"pairs:{f}/T", "--generator", f / "run", "--checkpoints"]
    for victim, kind in ((photo, "a PNG image that pngan did not draw"), (cal, "a pngan calibration")):
        keep = victim.read_bytes()
        _one_line(capsys, ev + ["--plot", victim], f"--plot file exists and holds {kind}")
        assert victim.read_bytes() == keep
    same = tmp_path / "same.json"
    _one_line(capsys, ev + ["--plot", same, "--json", same], "--json and --plot name the same path")
    assert not same.exists()
    plot, traj = tmp_path / "t.png", tmp_path / "t.json"
    _run(capsys, ev + ["--plot", plot, "--json", traj])
    assert PNG_KEYWORD in png_text(plot)
    _run(capsys, ev + ["--plot", plot])  # its own figure: replaced
    # U4: report takes the trajectory JSON that evaluate wrote (a table of the checkpoints)
    _run(capsys, ["report", traj, "--out", tmp_path / "rep"])
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "checkpoint trajectory" in page and "<td>2</td>" in page


# ------------------------------------------------------------------ D4 --save-fit
def test_save_fit_never_replaces_a_file_that_is_not_a_calibration(f, capsys, tmp_path):
    photo, notes = tmp_path / "photo.png", tmp_path / "notes.txt"
    keep = _photo(photo)
    notes.write_text("my notes\n")
    synth = ["synth", "--input", f"clean:{f}/C", "--setting", "calibrated", "--fit", f"pairs:{f}/A"]
    for victim, kind in ((photo, "a PNG image that pngan did not draw"), (notes, "a text file that is not JSON")):
        for extra in ([], ["--overwrite"]):  # --overwrite is the output folder's flag, not this file's
            _one_line(capsys, synth + ["--output", tmp_path / "o", "--save-fit", victim, *extra],
                      f"holds {kind}, not a pngan calibration")
        assert not (tmp_path / "o").exists()
    assert photo.read_bytes() == keep and notes.read_text() == "my notes\n"
    # another calibration: named as one (with what it was fitted on); --overwrite replaces it
    cal = tmp_path / "cal.json"
    _run(capsys, synth + ["--output", tmp_path / "o1", "--save-fit", cal])
    other = json.loads(cal.read_text())
    other["b"] = [v * 2 for v in other["b"]]
    cal.write_text(json.dumps(other))
    _one_line(capsys, synth + ["--output", tmp_path / "o2", "--save-fit", cal], "holds another calibration (fitted on")
    _run(capsys, synth + ["--output", tmp_path / "o2", "--save-fit", cal, "--overwrite"])


# ------------------------------------------------------------------ D3, S1 ablation --out
ABL_DN = ["net.kwargs={depth: 2, channels: 4}", "data.patch_size=16", "data.batch_size=2", "run.threads=1"]


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


# ------------------------------------------------------------------ U5, U7, U8
def test_errors_name_the_missing_sample_the_run_kind_and_no_missing_option(f, capsys, tmp_path):
    gen = tmp_path / "g"
    _run(capsys, ["synth", "--input", f"clean:{f}/C", "--output", gen, "--setting", "awgn", "--quiet"])
    for p in (gen / "noisy").iterdir():
        p.unlink()
    from pngan.data.specs import open_dataset
    from pngan.errors import PnganError

    (gen / "noisy" / "x_0.png").write_bytes((f / "A" / "noisy" / "i0.png").read_bytes())
    shutil.copy(f / "A" / "clean" / "i0.png", gen / "clean" / "x.png")
    with pytest.raises(PnganError, match=r"no noisy partner named 'c0\.\*' or 'c0_K\.\*' \(generated sample K\)"):
        open_dataset(f"pairs:{gen}")
    # U7: train-denoiser --resume on a generator run names what it is
    _one_line(capsys, ["train-denoiser", "--arch", "dncnn", "--data", f"pairs:{f}/A", "--out", f / "run", "--resume"],
              "this is a generator run of 'pngan train', not of 'pngan train-denoiser'")
    # U8: pgap has no --overwrite: a foreign folder's refusal does not advise it
    mine = tmp_path / "pg"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    line = _one_line(capsys, ["evaluate", "pgap", "--real-train", f"pairs:{f}/A", "--generated-train",
                              f"synth:awgn:pairs:{f}/A", "--test", f"pairs:{f}/T", "--out", mine, *ABL_DN],
                     "choose an empty or new folder")
    assert "--overwrite" not in line and (mine / "notes.txt").read_text() == "mine"
