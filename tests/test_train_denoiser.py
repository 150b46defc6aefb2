import json

import torch

from pngan.cli import main
from pngan.io.images import write_image
from pngan.nets.loading import load_saved_network


def _pairs(root, n=3, size=32, sigma=0.08, seed=0):
    g = torch.Generator().manual_seed(seed)
    for i in range(n):
        clean = torch.rand(3, size, size, generator=g) * 0.6 + 0.2
        write_image(root / "clean" / f"im{i}.png", clean)
        write_image(root / "noisy" / f"im{i}.png", (clean + sigma * torch.randn(clean.shape, generator=g)).clamp(0, 1))
    return f"pairs:{root}"


TINY = ["net.kwargs={depth: 3, channels: 8}", "data.patch_size=16", "data.batch_size=4",
        "run.log_every=1", "run.ckpt_every=2", "optim.lr=0.01",
        "optim.lr_min=0.01"]  # constant lr: a 4-step run resumed to 6 sees the same schedule as a 6-step run


def _state(run):
    net, meta = load_saved_network(run / "denoiser.safetensors")
    return {k: v.clone() for k, v in net.state_dict().items()}, meta


def test_train_resume_matches_uninterrupted(tmp_path):
    data = _pairs(tmp_path / "d")
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train-denoiser", "--arch", "dncnn", "--data", data, "--out", str(a), "--config", "cpu-small",
                 "--steps", "6", "--quiet", *TINY]) == 0
    assert main(["train-denoiser", "--arch", "dncnn", "--data", data, "--out", str(b), "--config", "cpu-small",
                 "--steps", "4", "--quiet", *TINY]) == 0
    assert main(["train-denoiser", "--arch", "dncnn", "--data", data, "--out", str(b), "--resume",
                 "--steps", "6", "--quiet"]) == 0
    sa, meta = _state(a)
    sb, _ = _state(b)
    assert meta["pngan.network"] == "dncnn" and meta["pngan.step"] == "6"
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    steps = [json.loads(x)["step"] for x in (b / "stats.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    losses = [json.loads(x)["loss_l1"] for x in (a / "stats.jsonl").read_text().splitlines()]
    assert all(l > 0 for l in losses)
    assert sorted(p.name for p in (a / "checkpoints").iterdir()) == ["00000004", "00000006"]
    # existing run without --resume is refused
    assert main(["train-denoiser", "--arch", "dncnn", "--data", data, "--out", str(a), "--quiet"]) == 2


def test_worker_prepared_batches_train_identically(tmp_path):
    data = _pairs(tmp_path / "d")
    runs = {}
    for w in (0, 2):
        runs[w] = tmp_path / f"w{w}"
        assert main(["train-denoiser", "--arch", "dncnn", "--data", data, "--data", data, "--ratio", "0.5",
                     "--out", str(runs[w]), "--config", "cpu-small", "--steps", "3", "--quiet", *TINY,
                     f"data.num_workers={w}"]) == 0
    sa, _ = _state(runs[0])
    sb, _ = _state(runs[2])
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_training_reduces_loss_and_finetune_lr(tmp_path):
    data = _pairs(tmp_path / "d", n=2, size=48)
    run = tmp_path / "r"
    assert main(["train-denoiser", "--arch", "dncnn", "--data", data, "--out", str(run), "--steps", "40",
                 "--quiet", *TINY, "run.log_every=10", "run.ckpt_every=40"]) == 0
    rec = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
    assert rec[-1]["loss_l1"] < rec[0]["loss_l1"]
    ft = tmp_path / "ft"
    assert main(["train-denoiser", "--arch", "dncnn", "--data", data, "--out", str(ft), "--steps", "2",
                 "--init", str(run / "denoiser.safetensors"), "--quiet", "run.log_every=1",
                 "data.patch_size=16", "data.batch_size=4"]) == 0
    rec = [json.loads(x) for x in (ft / "stats.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in rec] == [1e-6, 1e-6]
    s0, _ = _state(run)
    s1, _ = _state(ft)
    diff = max((s0[k].float() - s1[k].float()).abs().max().item() for k in s0 if "running" not in k and "num_batches" not in k)
    assert 0 < diff < 1e-3  # tiny lr: moved, but barely


def test_ratio_mixes_batches_and_errors(tmp_path, capsys):
    gen = _pairs(tmp_path / "g", seed=1)
    real = _pairs(tmp_path / "r", seed=2)
    run = tmp_path / "m"
    assert main(["train-denoiser", "--arch", "dncnn", "--data", gen, "--data", real, "--ratio", "1", "--out", str(run),
                 "--steps", "2", "--quiet", *TINY]) == 0
    assert "pairs:" in load_saved_network(run / "denoiser.safetensors")[1]["pngan.data"]
    assert main(["train-denoiser", "--arch", "dncnn", "--data", gen, "--ratio", "1", "--out", str(tmp_path / "x"),
                 "--quiet"]) == 2
    assert "first is the generated set" in capsys.readouterr().err
    assert main(["train-denoiser", "--arch", "nosuchnet", "--data", gen, "--out", str(tmp_path / "y"), "--quiet"]) == 2
    assert "unknown denoiser" in capsys.readouterr().err


def test_nan_stops_with_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    from pngan.train.engine import Engine

    data = _pairs(tmp_path / "d")
    run = tmp_path / "n"
    monkeypatch.setattr(Engine, "nan_at_step", 3)
    assert main(["train-denoiser", "--arch", "dncnn", "--data", data, "--out", str(run), "--steps", "6", "--quiet",
                 *TINY]) == 2
    err = capsys.readouterr().err
    assert "non-finite loss" in err and "00000002" in err
    assert load_saved_network(run / "denoiser.safetensors")[1]["pngan.step"] == "2"


def test_a_run_with_a_removed_config_key_is_used_but_not_resumed(tmp_path, capsys, caplog):
    import yaml

    data = _pairs(tmp_path / "d")
    run = tmp_path / "old"
    args = ["train-denoiser", "--arch", "dncnn", "--data", data, "--out", str(run), "--quiet", *TINY]
    assert main([*args, "--steps", "2"]) == 0
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["run"]["debug_nan_at_step"] = 1  # written by an older pngan, set to something it no longer does
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    capsys.readouterr()
    assert main([*args, "--steps", "4", "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "run.debug_nan_at_step" in err and "removed" in err and len(err.splitlines()) == 1
    assert load_saved_network(run / "denoiser.safetensors")[1]["pngan.step"] == "2"  # what evaluate reads
    # every older config.yaml holds the key at its 'off' value: that trains as today, so it resumes
    cfg["run"]["debug_nan_at_step"] = -1
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    with caplog.at_level("WARNING", logger="pngan"):
        assert main([*args, "--steps", "4", "--resume"]) == 0
    assert "was removed from pngan" in caplog.text
    assert load_saved_network(run / "denoiser.safetensors")[1]["pngan.step"] == "4"
