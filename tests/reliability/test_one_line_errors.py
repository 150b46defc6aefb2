"""What the CLI says when it refuses, and the words it uses (in-process, fast).

A refusal is one line naming the problem and what to give instead, exit 2, before any work or output
(no run folder, nothing on stdout), where there used to be tracebacks or unclear messages: a file of
the wrong kind or role (an existing file as --out, a generator as --denoiser, a torch file without
pngan metadata, a denoiser run as a generator, a file that is not a checkpoint), on-the-fly data specs
and calibrated settings, options that the setting would ignore, config values and network arguments
(also of pngan demo), option lists with empty items, report inputs of another shape. The documented
forms these errors point to work; KEY=VALUE overrides may stand anywhere on the command line; a
broken symbolic link, a folder named like a split, a skipped image format and a spec given twice are
named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from helpers import one_line_error as _one_line
from helpers import run_cli as _run
from helpers import write_images, write_pairs

from pngan.cli import main
from pngan.nets.loading import save_network
from pngan.nets.registry import build

# a tiny PNGAN run without the alignment loss
TINY = ["--config", "cpu-small", "--quiet", "generator.channels=4", "generator.groups=1", "generator.blocks=1",
        "loss.d_channels=4", "data.patch_size=16", "data.batch_size=2", "run.threads=1", "loss.lambda_align=0"]
# a one-step tiny DnCNN
DN = ["--config", "cpu-small", "--quiet", "--steps", "1", "data.patch_size=16", "data.batch_size=2",
      "net.kwargs={depth: 2, channels: 4}", "run.threads=1"]
# the same options in the order that the data-spec cases give them
SPEC_DN = ["--config", "cpu-small", "--quiet", "--steps", "1", "net.kwargs={depth: 2, channels: 4}",
           "data.patch_size=16", "data.batch_size=2", "run.threads=1"]
# a tiny DnCNN's overrides
ABL_DN = ["net.kwargs={depth: 2, channels: 4}", "data.patch_size=16", "data.batch_size=2", "run.threads=1"]


@pytest.fixture(scope="module")
def oneline_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("oneline")
    torch.manual_seed(0)
    save_network(build("dncnn", channels=4, depth=3), root / "dn.safetensors")
    save_network(build("smnet", channels=4, groups=1, blocks=1), root / "gen.safetensors",
                 {"pngan.synthetic": {"setting": "awgn", "sigma": 50.0}})
    torch.save(build("smnet", channels=4, groups=1, blocks=1).state_dict(), root / "plain.pth")
    (root / "afile").write_text("x")
    (root / "base.yaml").write_text("base: [1]\n")
    (root / "latin1.yaml").write_bytes(b"run:\n  steps: \xff\xfe\n")
    for sub in ("noisy", "clean"):
        (root / "pairs" / sub).mkdir(parents=True)
    return root


CASES = [
    (["train", "--data", "pairs:{r}/pairs", "--out", "{r}/afile", "--denoiser", "{r}/dn.safetensors"], "existing file"),
    (["train", "--data", "pairs:{r}/pairs", "--out", "{r}/afile/run"], "is a file"),
    (["train", "--data", "pairs:{r}/pairs", "--out", "{r}/o1", "--config", "{r}/base.yaml"], "unknown base preset"),
    (["train", "--data", "pairs:{r}/pairs", "--out", "{r}/o2", "--config", "{r}/latin1.yaml"], "not a UTF-8"),
    (["train", "--data", "pairs:{r}/pairs", "--out", "{r}/o3", "--denoiser", "{r}/gen.safetensors"], "not a denoiser"),
    (["train", "--data", "pairs:{r}/pairs", "--out", "{r}/o4", "--resume"], "not a pngan run folder"),
    (["train", "--data", "pairs:{r}/pairs", "--out", "{r}/o5", "run.device=tpu"], "run.device"),
    (["train-denoiser", "--arch", "dncnn", "--data", "pairs:{r}/pairs", "--out", "{r}/o6",
      "--init", "{r}/gen.safetensors"], "not a denoiser"),
    (["evaluate", "denoiser", "--model", "{r}/gen.safetensors", "--data", "pairs:{r}/pairs"], "not a denoiser"),
    (["evaluate", "denoiser", "--model", "{r}/dn.safetensors", "--data", "pairs:{r}/pairs", "--json", "{r}"],
     "existing folder"),
    (["evaluate", "denoiser", "--model", "{r}/dn.safetensors", "--data", "pairs:{r}/pairs", "--json",
      "{r}/afile/x.json"], "is an existing file"),
    (["evaluate", "noise", "--real", "pairs:{r}/pairs", "--generator", "{r}/plain.pth"], "no pngan metadata"),
    (["generate", "--generator", "{r}/plain.pth", "--input", "clean:{r}/pairs/clean", "--output", "{r}/g1"],
     "no pngan metadata"),
    (["generate", "--generator", "{r}/dn.safetensors", "--input", "clean:{r}/pairs/clean", "--output", "{r}/g2"],
     "not a generator"),
    (["report", "--out", "{r}/afile"], "existing file"),
    (["demo", "--out", "{r}/afile"], "existing file"),
]
if not torch.cuda.is_available():
    CASES += [
        (["generate", "--generator", "{r}/gen.safetensors", "--input", "clean:{r}/pairs/clean", "--output", "{r}/g3",
          "--device", "cuda"], "CUDA is not available"),
        (["train", "--data", "pairs:{r}/pairs", "--out", "{r}/o7", "run.device=cuda"], "CUDA is not available"),
    ]


@pytest.fixture(scope="module")
def spec_files(tmp_path_factory) -> Path:
    r = tmp_path_factory.mktemp("spec_files")
    write_pairs(r / "A", 2, 24, 24, seed=0)
    write_images(r / "C", ["c0", "c1"], 24, 24, torch.Generator().manual_seed(1))
    (r / "cal.json").write_text(json.dumps({"setting": "calibrated", "a": [0.001] * 3, "b": [0.0005] * 3,
                                            "kernel": None, "mix": None, "clip": True, "fitted_on": "test"}))
    torch.manual_seed(0)
    save_network(build("dncnn", channels=4, depth=2), r / "dnrun" / "denoiser.safetensors")
    for run in ("genrun", "gen:run"):  # a run folder whose path holds ':'
        save_network(build("smnet", channels=4, groups=1, blocks=1), r / run / "generator.safetensors",
                     {"pngan.synthetic": {"setting": "awgn", "sigma": 25.0}})
    ck = r / "ckrun" / "checkpoints" / "00000001"
    save_network(build("smnet", channels=4, groups=1, blocks=1), ck / "generator.safetensors",
                 {"pngan.synthetic": {"setting": "awgn", "sigma": 25.0}})
    (ck / "state.pt").write_bytes(b"")
    return r


SPEC_CASES = [
    (["train-denoiser", "--arch", "dncnn", "--data", "synth:calibrated:clean:{r}/C", "--out", "{r}/o1", *SPEC_DN],
     "--save-fit FILE.json"),
    (["synth", "--setting", "calibrated:", "--input", "clean:{r}/C", "--output", "{r}/o2"], "after 'calibrated:'"),
    (["synth", "--setting", "calibrated:{r}", "--input", "clean:{r}/C", "--output", "{r}/o2"], "folder"),
    (["synth", "--setting", "calibrated", "--fit", "pairs:{r}/A", "--sigma", "5", "--input", "clean:{r}/C",
      "--output", "{r}/o2"], "scale it with --gain"),
    (["evaluate", "noise", "--real", "pairs:{r}/A", "--setting", "awgn", "--level", "match"],
     "only the calibrated setting can take"),
    (["evaluate", "noise", "--real", "pairs:{r}/A", "--generator", "{r}/genrun", "--level", "match"],
     "only the calibrated setting can take"),
    (["evaluate", "noise", "--real", "pairs:{r}/A", "--generated", "{r}/A"], "pairs:{r}/A"),
    (["ablation", "rho", "--generated", "{r}/A", "--data", "pairs:{r}/A", "--test", "pairs:{r}/A", "--out", "{r}/o3"],
     "pairs:{r}/A"),
    (["train-denoiser", "--arch", "dncnn", "--data", "gen:{r}/dnrun:clean:{r}/C", "--out", "{r}/o4", *SPEC_DN],
     "'pngan train-denoiser' run folder"),
    (["train", "--data", "pairs:{r}/A", "--out", "{r}/o5", "--quiet", "synthetic.setting=calibrated",
      "synthetic.calibration={r}/nowhere.json", "loss.lambda_align=0"], "nowhere.json"),
    (["train-denoiser", "--arch", "dncnn", "--data", "synth:{r}/nowhere.json:clean:{r}/C", "--out", "{r}/o7", *SPEC_DN],
     "nowhere.json"),
    (["train-denoiser", "--arch", "dncnn", "--data", "pairs:{r}/C", "--out", "{r}/o8", *SPEC_DN], "noisy"),
    (["generate", "--generator", "{r}/dnrun", "--input", "clean:{r}/C", "--output", "{r}/o6"],
     "'pngan train-denoiser' run folder"),
    (["evaluate", "noise", "--real", "pairs:{r}/A", "--generator", "{r}/dnrun"], "'pngan train-denoiser' run folder"),
    (["generate", "--generator", "{r}/dnrun/denoiser.safetensors", "--input", "clean:{r}/C", "--output", "{r}/o9"],
     "not a generator"),
    (["evaluate", "noise", "--real", "pairs:{r}/A", "--generator", "{r}/genrun", "--checkpoints"],
     "no generator checkpoints"),
    (["evaluate", "noise", "--real", "pairs:{r}/A", "--generator", "{r}/ckrun", "--checkpoints", "--fit",
      "pairs:{r}/nowhere"], "nowhere"),
]


# --- one line, exit 2, before any work: files of the wrong kind or role, data specs ---------------------------
@pytest.mark.files("oneline_files")
@pytest.mark.parametrize("argv, needle", CASES, ids=[" ".join(c[0][:2]) + f" [{c[1]}]" for c in CASES])
def test_one_line_error(f, capsys, argv, needle):
    argv = [a.format(r=f) for a in argv]
    capsys.readouterr()
    rc = main(argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2 and len(err) == 1 and needle in err[0], (argv, err)
    assert not (f / "o5").exists() and not (f / "o7").exists()  # a refused config makes no run folder


@pytest.mark.files("spec_files")
@pytest.mark.parametrize("argv, needle", SPEC_CASES, ids=[f"{c[0][0]} [{c[1][:30]}]" for c in SPEC_CASES])
def test_one_clear_line_before_any_output(f, capsys, argv, needle):
    argv = [a.replace("{r}", str(f)) for a in argv]
    capsys.readouterr()
    rc = main(argv)
    cap = capsys.readouterr()
    err = [x for x in cap.err.splitlines() if x.strip()]
    assert rc == 2 and len(err) == 1 and needle.replace("{r}", str(f)) in err[0], err
    assert cap.out.strip() == "", cap.out  # e.g. no table header before a --checkpoints error
    assert not any((f / o).exists() for o in ("o1", "o2", "o3", "o4", "o5", "o6", "o7", "o8", "o9"))


@pytest.mark.files("spec_files")
@pytest.mark.parametrize("spec", ["synth:{r}/cal.json:clean:{r}/C", "synth:calibrated:{r}/cal.json:clean:{r}/C",
                                  "gen:{r}/gen:run:clean:{r}/C"])
def test_documented_on_the_fly_forms_work(f, tmp_path, spec):
    assert main(["train-denoiser", "--arch", "dncnn", "--data", spec.replace("{r}", str(f)), "--out", str(tmp_path / "dn"),
                 *SPEC_DN]) == 0


@pytest.mark.files("oneline_files")
def test_pgap_resume_of_another_job_is_refused(f, capsys):
    out = f / "pgap"
    base = ["evaluate", "pgap", "--real-train", f"pairs:{f}/pairs", "--generated-train", f"pairs:{f}/pairs",
            "--out", str(out)]
    assert main(base + ["--test", f"pairs:{f}/pairs"]) == 2  # the (empty) data stop it before any work ...
    assert not (out / "job.json").exists()  # ... and a job that did nothing is not recorded
    import json

    from pngan.train.runid import data_content, normalize_spec

    out.mkdir(exist_ok=True)  # the record of a job that started (as evaluate pgap writes it)
    tr = normalize_spec(f"pairs:{f}/pairs")
    (out / "job.json").write_text(json.dumps({
        "command": "pgap", "real_train": [tr], "generated_train": [tr], "test": tr, "arch": "dncnn",
        "config": "cpu-small", "overrides": [], "content": [data_content(f"pairs:{f}/pairs", strict=False)] * 2}))
    capsys.readouterr()
    assert main(base + ["--test", f"pairs:{f}/other", "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another job" in err[0] and "test:" in err[0], err


@pytest.mark.files("generator_run")
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


@pytest.mark.files("denoiser_run")
def test_a_file_that_is_not_a_checkpoint_is_named_without_torchs_advice(f, capsys, tmp_path):
    bad = tmp_path / "a.pth"
    bad.write_text("x\n")
    line = _one_line(capsys, ["evaluate", "denoiser", "--model", f"dncnn:{bad}", "--data", f"pairs:{f}/T"],
                     "not a PyTorch checkpoint")
    assert "weights_only` set to `False" not in line


# --- options that the setting would ignore --------------------------------------------------------------------
@pytest.mark.files("sigma_pairs")
def test_options_that_the_setting_would_ignore_are_refused(f, capsys, tmp_path):
    _run(capsys, ["synth", "--input", f"clean:{f}/C", "--output", tmp_path / "O", "--setting", "calibrated",
                  "--fit", f"pairs:{f}/A", "--save-fit", tmp_path / "a.json"])
    cal = f"calibrated:{tmp_path / 'a.json'}"
    synth = ["synth", "--input", f"clean:{f}/C", "--output", tmp_path / "N"]
    ev = ["evaluate", "noise", "--real", f"pairs:{f}/B"]
    _one_line(capsys, synth + ["--setting", cal, "--fit", f"pairs:{f}/B"], "drop --fit")
    _one_line(capsys, ev + ["--setting", cal, "--fit", f"pairs:{f}/B"], "drop --fit")
    _one_line(capsys, ev + ["--setting", "awgn", "--fit", f"pairs:{f}/B"], "--fit applies to --setting calibrated")
    _one_line(capsys, ev + ["--generated", f"{f}/B/noisy", "--fit", f"pairs:{f}/B"], "--fit")
    assert not (tmp_path / "N").exists()


# --- config values and network arguments, checked before a folder is made -------------------------------------
@pytest.mark.files("sigma_pairs")
def test_bad_literal_config_value_lists_the_allowed_values(f, capsys, tmp_path):
    line = _one_line(capsys, ["train", "--data", f"pairs:{f}/A", "--out", tmp_path / "r", "generator.downsample=foo"],
                     "generator.downsample")
    assert "one of sid, stride, bilinear (or null)" in line and "typing" not in line, line
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("bad, needle", [
    (["--config", "nosuch"], "no such config file or preset"),
    (["--config", "nosuch.yaml"], "no such config file or preset"),
    (["optim.lr=nan"], "optim.lr"),
    (["run.steps=0"], "run.steps"),
    (["generator.chanels=4"], "did you mean"),
])
def test_demo_refuses_a_bad_config_before_any_work(tmp_path, bad, needle):
    import subprocess
    import sys
    import time

    out = tmp_path / "demo"
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "pngan.cli", "demo", "--out", str(out), "--quiet", *bad],
                       capture_output=True, text=True, timeout=60)  # a regression trains for minutes: killed here
    dt = time.perf_counter() - t
    err = [line for line in p.stderr.splitlines() if line.strip()]
    assert p.returncode == 2 and len(err) == 1 and needle in err[0], (p.returncode, err)
    assert dt < 30, f"{dt:.1f} s before the error"
    assert not out.exists()


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


@pytest.mark.files("denoiser_run")
@pytest.mark.parametrize("kwargs,needle", [("{channels: 0}", "integer >= 1, got 0"), ("{depth: 2, channels: -4}", "got -4"),
                                           ("{depth:2,channels:4}", "with a space after the colon"),
                                           ("{channels: abc}", "got 'abc'"), ("{depth: 2.5}", "got 2.5"),
                                           ("{depth: true}", "got True"), ("{width: 3}", "takes no argument 'width'")])
def test_network_arguments_are_checked_before_a_run_folder_is_made(f, capsys, tmp_path, kwargs, needle):
    out = tmp_path / "r"
    _one_line(capsys, ["train-denoiser", "--arch", "dncnn", "--data", f"pairs:{f}/A", "--out", out, *DN[:-3],
                       f"net.kwargs={kwargs}", "run.threads=1"], needle)
    assert not out.exists()


@pytest.mark.files("denoiser_run")
@pytest.mark.parametrize("arch,kwargs", [("dncnn", "{in_channels: 1, depth: 2, channels: 4}"), ("ridnet", "{channels: 15}")])
def test_sixth_pass_network_arguments_that_cannot_run(f, capsys, tmp_path, arch, kwargs):
    out = tmp_path / "r"
    _one_line(capsys, ["train-denoiser", "--arch", arch, "--data", f"pairs:{f}/A", "--out", out, "--config", "cpu-small",
                       "--quiet", "--steps", "1", "data.patch_size=16", "data.batch_size=2", f"net.kwargs={kwargs}",
                       "run.threads=1"], "cannot run")
    assert not out.exists()


# --- KEY=VALUE overrides anywhere on the command line ---------------------------------------------------------
@pytest.mark.files("sigma_pairs")
def test_overrides_may_stand_before_and_after_other_options(f, capsys, tmp_path):
    run = tmp_path / "run"
    tiny = [a for a in TINY if "=" in a]
    _run(capsys, ["train", "--data", f"pairs:{f}/A", *tiny[:3], "--out", run, "--setting", "awgn", *tiny[3:],
                  "--config", "cpu-small", "run.steps=1", "--quiet", "optim.lr=0.002"])
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["generator"]["channels"] == 4 and cfg["loss"]["d_channels"] == 4 and cfg["run"]["steps"] == 1
    assert cfg["optim"]["lr"] == 0.002
    # the later of two overrides of one key wins, and a bad late one is refused naming it
    _one_line(capsys, ["train", "--data", f"pairs:{f}/A", "optim.lr=0.001", "--out", tmp_path / "r2", "optim.lr=nan"],
              "optim.lr")
    assert not (tmp_path / "r2").exists()
    # anything else left over is still refused
    _one_line(capsys, ["train", "--data", f"pairs:{f}/A", "a.b=1", "--out", tmp_path / "r3", "stray"],
              "unrecognized arguments: stray")
    assert not (tmp_path / "r3").exists()


# --- report's inputs ------------------------------------------------------------------------------------------
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


@pytest.mark.files("denoiser_run")
def test_report_draws_pngans_own_tables(f, capsys, tmp_path):
    bench = tmp_path / "b"
    _run(capsys, ["benchmark", "denoise", "--train", f"pairs:{f}/A", "--test", f"pairs:{f}/T", "--seeds", "1",
                  "--source", "real", "--out", bench, "--arch", "dncnn", *DN])
    _run(capsys, ["report", bench / "benchmark.json", "--out", tmp_path / "rep"])
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "<h2>benchmark: benchmark.json</h2>" in page and "<td>real</td>" in page


# --- words for records, splits, formats, duplicates and broken links ------------------------------------------
@pytest.mark.files("denoiser_run")
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


@pytest.mark.files("sigma_pairs")
def test_broken_symlink_in_an_input_folder_is_named_once(f, capsys, tmp_path):
    import warnings

    src = tmp_path / "in"
    src.mkdir()
    (src / "c0.png").symlink_to(f / "C" / "c0.png")
    (src / "broken.png").symlink_to(tmp_path / "nonexistent.png")
    (src / "notes.txt").symlink_to(tmp_path / "nonexistent.txt")  # not an image name: ignored like any
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        _run(capsys, ["synth", "--setting", "awgn", "--input", f"clean:{src}", "--output", tmp_path / "out"])
    said = [str(x.message) for x in w if "broken symbolic link" in str(x.message)]
    assert len(said) == 1 and "broken.png" in said[0] and "notes.txt" not in said[0], said
    assert sorted(p.name for p in (tmp_path / "out" / "noisy").iterdir()) == ["c0.png"]
