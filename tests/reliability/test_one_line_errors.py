"""Issue 13's former tracebacks and unclear messages: each is one line naming the problem, exit 2,
and comes before any work (in-process, fast)."""

from __future__ import annotations

import pytest
import torch

from pngan.cli import main
from pngan.nets.loading import save_network
from pngan.nets.registry import build


@pytest.fixture(scope="module")
def f(tmp_path_factory):
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


@pytest.mark.parametrize("argv, needle", CASES, ids=[" ".join(c[0][:2]) + f" [{c[1]}]" for c in CASES])
def test_one_line_error(f, capsys, argv, needle):
    argv = [a.format(r=f) for a in argv]
    capsys.readouterr()
    rc = main(argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2 and len(err) == 1 and needle in err[0], (argv, err)
    assert not (f / "o5").exists() and not (f / "o7").exists()  # a refused config makes no run folder


def test_pgap_resume_of_another_job_is_refused(f, capsys):
    out = f / "pgap"
    base = ["evaluate", "pgap", "--real-train", f"pairs:{f}/pairs", "--generated-train", f"pairs:{f}/pairs",
            "--out", str(out)]
    assert main(base + ["--test", f"pairs:{f}/pairs"]) == 2  # the (empty) data stop it before any work ...
    assert not (out / "job.json").exists()  # ... and a job that did nothing is not recorded (QA round 2 #9)
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
