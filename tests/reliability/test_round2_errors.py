"""Round 2's unclear errors: each is one clear line (exit 2) before any output, and the documented
forms they point to work (in-process, fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from helpers import write_images, write_pairs

from pngan.cli import main
from pngan.nets.loading import save_network
from pngan.nets.registry import build

DN = ["--config", "cpu-small", "--quiet", "--steps", "1", "net.kwargs={depth: 2, channels: 4}", "data.patch_size=16",
      "data.batch_size=2", "run.threads=1"]


@pytest.fixture(scope="module")
def f(tmp_path_factory) -> Path:
    r = tmp_path_factory.mktemp("round2err")
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


CASES = [
    (["train-denoiser", "--arch", "dncnn", "--data", "synth:calibrated:clean:{r}/C", "--out", "{r}/o1", *DN],
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
    (["train-denoiser", "--arch", "dncnn", "--data", "gen:{r}/dnrun:clean:{r}/C", "--out", "{r}/o4", *DN],
     "'pngan train-denoiser' run folder"),
    (["train", "--data", "pairs:{r}/A", "--out", "{r}/o5", "--quiet", "synthetic.setting=calibrated",
      "synthetic.calibration={r}/nowhere.json", "loss.lambda_align=0"], "nowhere.json"),
    (["train-denoiser", "--arch", "dncnn", "--data", "synth:{r}/nowhere.json:clean:{r}/C", "--out", "{r}/o7", *DN],
     "nowhere.json"),
    (["train-denoiser", "--arch", "dncnn", "--data", "pairs:{r}/C", "--out", "{r}/o8", *DN], "noisy"),
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


@pytest.mark.parametrize("argv, needle", CASES, ids=[f"{c[0][0]} [{c[1][:30]}]" for c in CASES])
def test_one_clear_line_before_any_output(f, capsys, argv, needle):
    argv = [a.replace("{r}", str(f)) for a in argv]
    capsys.readouterr()
    rc = main(argv)
    cap = capsys.readouterr()
    err = [x for x in cap.err.splitlines() if x.strip()]
    assert rc == 2 and len(err) == 1 and needle.replace("{r}", str(f)) in err[0], err
    assert cap.out.strip() == "", cap.out  # e.g. no table header before a --checkpoints error
    assert not any((f / o).exists() for o in ("o1", "o2", "o3", "o4", "o5", "o6", "o7", "o8", "o9"))


@pytest.mark.parametrize("spec", ["synth:{r}/cal.json:clean:{r}/C", "synth:calibrated:{r}/cal.json:clean:{r}/C",
                                  "gen:{r}/gen:run:clean:{r}/C"])
def test_documented_on_the_fly_forms_work(f, tmp_path, spec):
    assert main(["train-denoiser", "--arch", "dncnn", "--data", spec.replace("{r}", str(f)), "--out", str(tmp_path / "dn"),
                 *DN]) == 0
