"""pngan demo: a stopped demo continues with --resume (finished stages kept, the same options)."""

from __future__ import annotations

import pytest
import torch

from helpers import TINY_NETS

from pngan.errors import PnganError
from pngan.nets.loading import save_network
from pngan.nets.registry import build


def test_a_stopped_demo_continues_with_resume(tmp_path, monkeypatch):
    import pngan.eval.denoise_eval as de
    from pngan.demo import run_demo

    torch.manual_seed(0)
    dn = save_network(build("dncnn", depth=2, channels=4), tmp_path / "dn.safetensors", {})
    out = tmp_path / "demo"
    kw = dict(denoiser=f"dncnn:{dn}", overrides=[*TINY_NETS, "run.threads=1"], steps=2, denoiser_steps=2,
              progress=False)

    def stop(*a, **k):
        raise KeyboardInterrupt

    real = de.evaluate_noise
    monkeypatch.setattr(de, "evaluate_noise", stop)  # stopped in the realism stage, after every training
    with pytest.raises(KeyboardInterrupt):
        run_demo(out, **kw)
    trained = {p: p.stat().st_mtime_ns for p in out.glob("*/*.safetensors")}
    assert len(trained) == 5  # the generator and the four same-budget denoisers
    with pytest.raises(PnganError, match="continue the stopped demo there with --resume"):
        run_demo(out, **kw)
    with pytest.raises(PnganError, match="seed"):
        run_demo(out, **{**kw, "seed": 1}, resume=True)
    import json

    rec = json.loads((out / "demo.json").read_text())
    (out / "demo.json").write_text(json.dumps({**rec, "data_content": "other"}))
    with pytest.raises(PnganError, match="the data's files changed"):
        run_demo(out, **kw, resume=True)
    (out / "demo.json").write_text(json.dumps(rec))
    monkeypatch.setattr(de, "evaluate_noise", real)
    res = run_demo(out, **kw, resume=True)
    assert {p: p.stat().st_mtime_ns for p in trained} == trained  # nothing trained again
    assert set(res["realism"]) == {"setting1", "setting2", "calibrated", "pngan"} and (out / "summary.json").is_file()
    from pngan.data.specs import generator_training_data

    assert generator_training_data(out / "pngan") == ["camera:builtin@train"]  # its run record: lineage checks
    with pytest.raises(PnganError, match="nothing to continue"):
        run_demo(tmp_path / "empty", **kw, resume=True)


def test_the_demo_folder_is_never_inside_its_data(tmp_path):
    from helpers import write_pairs

    from pngan.demo import run_demo

    root = write_pairs(tmp_path / "pairs", 2, 24, 24)
    with pytest.raises(PnganError, match="must not be inside its data"):
        run_demo(root / "demo", data=f"pairs:{root}")
    assert not (root / "demo").exists()
