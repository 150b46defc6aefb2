"""What pngan writes, and what it never replaces (in-process, tiny networks).

An output folder (synth, generate, ``evaluate denoiser --save-images`` and its DND ``--out``,
``report --out``) holds one job, recorded in its job.json by what determines the output (the
calibration's numbers, the ISP networks' files, the effective sigma): the same job continues, another
job is refused unless ``--overwrite``. ``--overwrite`` replaces only the same command's output: never a
folder or file pngan did not write, never another command's output, never the command's own input,
never through a symbolic link it did not make. Single files (``--json``, ``--plot``, ``--save-fit``)
replace only what the same command wrote. A job that fails before any work leaves no claim. Written
files follow the umask.

The first checks of generate and synth folders and the folder lock are in test_jobs_and_signals.py;
run folders in test_resume_and_runs.py; ablation and benchmark tables in
test_ablation_and_benchmark_tables.py."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import TINY_NETS
from helpers import folder_bytes as _bytes
from helpers import one_line_error as _one_line
from helpers import run_cli as _run
from helpers import write_pairs

# a tiny PNGAN run
TINY = ["--config", "cpu-small", "--quiet", "generator.channels=4", "generator.groups=1", "generator.blocks=1",
        "loss.d_channels=4", "data.patch_size=16", "data.batch_size=2", "run.threads=1", "run.log_every=1"]
# a one-step tiny DnCNN
DN = ["--config", "cpu-small", "--quiet", "--steps", "1", "data.patch_size=16", "data.batch_size=2",
      "net.kwargs={depth: 2, channels: 4}", "run.threads=1"]


def _photo(path: Path) -> bytes:
    """A real PNG that pngan did not draw."""
    from pngan.io.images import write_image

    write_image(path, torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(7)))
    return path.read_bytes()


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


def _modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def umask():
    def set_(mask: int) -> None:
        os.umask(mask)

    old = os.umask(0o022)
    yield set_
    os.umask(old)


# --- a job is what determines its output: the same job continues, another one is refused ----------------------
@pytest.mark.files("sigma_pairs")
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


@pytest.mark.files("sigma_pairs")
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


@pytest.mark.files("sigma_pairs")
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


@pytest.mark.files("pairs_and_denoiser")
def test_synth_default_sigma_spelled_out_is_the_same_job(f, capsys, tmp_path):
    out = tmp_path / "s"
    synth = ["synth", "--setting", "awgn", "--input", f"clean:{f}/C", "--output", out]
    _run(capsys, synth)
    assert json.loads((out / "job.json").read_text())["sigma"] == 50.0
    _run(capsys, synth + ["--sigma", "50"])
    _one_line(capsys, synth + ["--sigma", "25"], "another job")
    # a job.json of an older pngan (sigma null) still matches its own reruns, either spelling
    job = json.loads((out / "job.json").read_text())
    (out / "job.json").write_text(json.dumps({**job, "sigma": None}))
    _run(capsys, synth)
    (out / "job.json").write_text(json.dumps({**job, "sigma": None}))
    _run(capsys, synth + ["--sigma", "50"])


# --- --overwrite replaces the same command's output only, never its input, never through a link ---------------
@pytest.mark.files("train_test_clean")
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


@pytest.mark.files("train_test_clean")
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


@pytest.mark.files("denoiser_run")
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


@pytest.mark.files("denoiser_run")
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


@pytest.mark.files("denoiser_run")
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


# --- folders of evaluate and report: never the data, never a user's folder ------------------------------------
@pytest.mark.files("pairs_and_denoiser")
def test_save_images_refuses_the_evaluated_data_and_foreign_folders(f, capsys, tmp_path):
    import shutil

    data = tmp_path / "P"
    shutil.copytree(f / "P", data)
    before = _bytes(data)
    ev = ["evaluate", "denoiser", "--model", f / "dn.safetensors", "--data", f"pairs:{data}", "--tile", 0]
    for target in (data / "clean", data / "noisy", data, data / "clean" / "sub"):
        for extra in ([], ["--overwrite"]):  # never, not even with --overwrite
            _one_line(capsys, ev + ["--save-images", target, *extra], "folder of the evaluated data")
    assert _bytes(data) == before
    # a folder of other files (e.g. a copy of the clean images) is refused without --overwrite
    other = tmp_path / "copy"
    shutil.copytree(f / "P" / "clean", other)
    keep = _bytes(other)
    _one_line(capsys, ev + ["--save-images", other], "holds no pngan job record")
    assert _bytes(other) == keep
    # a new folder; then the same evaluation again replaces its own images; another model is refused
    out = tmp_path / "den"
    _run(capsys, ev + ["--save-images", out])
    assert sorted(p.name for p in out.iterdir()) == ["i0.png", "i1.png", "job.json"]
    _run(capsys, ev + ["--save-images", out])
    from pngan.nets.loading import save_network
    from pngan.nets.registry import build

    torch.manual_seed(1)
    save_network(build("dncnn", depth=3, channels=4), tmp_path / "dn2.safetensors", {})
    ev2 = [*ev[:3], tmp_path / "dn2.safetensors", *ev[4:]]
    _one_line(capsys, ev2 + ["--save-images", out], "another job")
    _run(capsys, ev2 + ["--save-images", out, "--overwrite"])
    _run(capsys, ev + ["--save-images", other, "--overwrite"])  # asked for: same-named files replaced


@pytest.mark.files("denoiser_run")
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


@pytest.mark.files("generator_run")
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


# --- single files: --json, --plot and --save-fit replace only their own ---------------------------------------
@pytest.mark.files("pairs_and_denoiser")
def test_json_refuses_files_pngan_did_not_write(f, capsys, tmp_path):
    cal = tmp_path / "cal.json"
    _run(capsys, ["synth", "--input", f"clean:{f}/C", "--output", tmp_path / "s", "--setting", "calibrated",
                  "--fit", f"pairs:{f}/P", "--save-fit", cal])
    png = tmp_path / "victim.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    noise = ["evaluate", "noise", "--real", f"pairs:{f}/P", "--setting", "awgn", "--json"]
    den = ["evaluate", "denoiser", "--model", f / "dn.safetensors", "--data", f"pairs:{f}/P", "--json"]
    for victim in (cal, png):
        keep = victim.read_bytes()
        _one_line(capsys, noise + [victim], "not replaced")
        _one_line(capsys, den + [victim], "not replaced")
        assert victim.read_bytes() == keep
    # its own earlier output is replaced (a rerun); another command's output is not
    out = tmp_path / "m.json"
    _run(capsys, noise + [out])
    rec = json.loads(out.read_text())
    assert rec["pngan"]["command"] == "evaluate noise" and "version" in rec["pngan"] and "mean" in rec
    _run(capsys, noise + [out])
    _one_line(capsys, den + [out], "'pngan evaluate noise'")
    d = tmp_path / "d.json"
    _run(capsys, den + [d])
    assert json.loads(d.read_text())["pngan"]["command"] == "evaluate denoiser"


@pytest.mark.files("generator_run")
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


@pytest.mark.files("train_test_clean")
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


@pytest.mark.files("sigma_pairs")
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


@pytest.mark.files("generator_run")
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


@pytest.mark.files("train_test_clean")
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


# --- a job that fails before its first step leaves no claim ---------------------------------------------------
@pytest.mark.files("pairs_and_denoiser")
def test_pgap_failure_leaves_no_claim_and_advice_names_no_missing_option(f, capsys, tmp_path):
    out = tmp_path / "pg"
    write_pairs(tmp_path / "T", 1, 24, 24, seed=5, sigma=0.05)  # held out: not the training pairs
    pg = ["evaluate", "pgap", "--real-train", f"pairs:{f}/P", "--generated-train", f"pairs:{f}/P", "--test",
          f"pairs:{tmp_path}/T", "--out", out, "--arch", "ridnet", "data.patch_size=16", "data.batch_size=2",
          "run.steps=1", "run.log_every=1", "run.ckpt_every=1", "run.threads=1"]
    bad = pg + ["net.kwargs={depth: 2, channels: 4}"]  # ridnet takes no depth: fails as training starts
    _one_line(capsys, bad, "ridnet")
    assert not (out / "job.json").exists() and not (out / "real").exists()
    _one_line(capsys, bad, "ridnet")  # the same error again, not "another job"
    # another job in the folder: the advice works (pgap has no --overwrite)
    out.mkdir(exist_ok=True)
    (out / "job.json").write_text(json.dumps({"command": "pgap", "arch": "dncnn"}))
    line = _one_line(capsys, pg + ["net.kwargs={channels: 16}"], "another job")
    assert "--overwrite to" not in line and "choose another --out" in line


@pytest.mark.files("train_test_clean")
def test_a_benchmark_that_fails_before_training_leaves_nothing(f, capsys, tmp_path):
    out = tmp_path / "b"
    bad = ["benchmark", "denoise", "--train", f"pairs:{f}/A", "--test", f"pairs:{f}/T", "--out", out, "--quiet",
           "--config", "cpu-small", "--seeds", "1", "--source", "real", "--source", "calibrated", "--arch", "ridnet",
           "data.patch_size=16", "data.batch_size=2", "run.steps=1", "run.threads=1",
           "net.kwargs={depth: 2, channels: 4}"]  # ridnet takes no depth: fails as its first run starts
    for _ in range(2):  # the same error again, not "another job"
        _one_line(capsys, bad, "ridnet")
        assert not out.exists() or not any(p for p in out.iterdir() if not p.name.startswith("."))


# --- file modes follow the umask ------------------------------------------------------------------------------
@pytest.mark.files("sigma_pairs")
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
