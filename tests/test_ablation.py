"""pngan ablation: Table 3 (every row, 2 steps on tiny data) and Table 4's rho sweep; SMNet's
downsampling modes."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from pngan.cli import main
from pngan.io.images import write_image
from pngan.nets.loading import save_network
from pngan.nets.registry import build


def test_smnet_downsample_modes():
    from pngan.nets.smnet import SID

    x = torch.randn(2, 4, 8, 10)
    assert torch.allclose(SID(4, mode="bilinear")(x), F.avg_pool2d(x, 2), atol=1e-6)  # even: 2x2 means
    assert SID(4, mode="bilinear")(torch.randn(1, 4, 7, 9)).shape[-2:] == (4, 5)  # as sid / stride
    assert torch.equal(SID(4, mode="stride")(x), SID(4, anti_alias=False)(x))
    outs = {}
    for kw in ({}, {"downsample": "sid"}, {"sid": False}, {"downsample": "stride"}, {"downsample": "bilinear"}):
        torch.manual_seed(0)
        net = build("smnet", channels=8, groups=1, blocks=1, **kw)
        outs[json.dumps(kw)] = net(torch.rand(1, 3, 16, 16))
        assert set(net.state_dict()) == set(build("smnet", channels=8, groups=1, blocks=1).state_dict())
    assert torch.equal(outs["{}"], outs['{"downsample": "sid"}'])  # the default (paper) is unchanged
    assert torch.equal(outs['{"sid": false}'], outs['{"downsample": "stride"}'])  # old name still works
    assert not torch.allclose(outs["{}"], outs['{"downsample": "bilinear"}'])
    from pngan.errors import PnganError

    with pytest.raises(PnganError, match="downsample"):  # a one-line CLI error, not a ValueError
        build("smnet", downsample="nearest")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("abl")
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 2), ("test", 1)):
        for k in range(n):
            clean = torch.rand(3, 20, 20, generator=g) * 0.6 + 0.2
            write_image(root / split / "clean" / f"{split}{k}.png", clean)
            write_image(root / split / "noisy" / f"{split}{k}.png",
                        (clean + 0.05 * torch.randn(3, 20, 20, generator=g)).clamp(0, 1))
    torch.manual_seed(0)
    dn = save_network(build("dncnn", channels=4, depth=2), root / "dn.safetensors")
    return root, f"pairs:{root / 'train'}", f"pairs:{root / 'test'}", f"dncnn:{dn}"


TINY = ["generator.channels=4", "generator.groups=1", "generator.blocks=1", "loss.d_channels=4",
        "data.patch_size=16", "data.batch_size=2", "run.threads=1"]


def test_table3_trains_and_evaluates_every_row(tiny, tmp_path):
    root, train, test, dn = tiny
    torch.manual_seed(0)
    vgg = save_network(build("vgg16"), tmp_path / "vgg.safetensors")  # random weights: the plumbing only
    out = tmp_path / "t3"
    args = ["ablation", "table3", "--data", train, "--test", test, "--denoiser", dn, "--vgg", str(vgg),
            "--config", "cpu-small", "--steps", "2", "--psnr-arch", "dncnn", "--psnr-steps", "1", "--quiet", *TINY,
            "--out", str(out)]
    assert main(args) == 0
    res = json.loads((out / "table3.json").read_text())
    names = [r["row"] for r in res["rows"]]
    assert names == ["Baseline 1", "+D_R", "+D", "+VGG", "Baseline 2", "+Multi-scale", "+SID", "+FCA", "SIMNet"]
    for r in res["rows"]:
        assert all(isinstance(r[k], float) for k in ("kld_noiseflow", "akld", "mmd", "psnr", "ssim_y")), r
    rows = {r["row"]: r for r in res["rows"]}
    assert "same run as +VGG" in rows["+FCA"]["note"]  # identical configs train once
    # what each row trained (the saved config of its run)
    import yaml

    def cfg(name):
        return yaml.safe_load((out / "runs" / name / "config.yaml").read_text())

    b1 = cfg("baseline-1")
    assert (b1["loss"]["alignment"], b1["loss"]["discriminator"], b1["loss"]["perceptual"]) == ("naive", "none", "off")
    assert cfg("d-r")["loss"]["alignment"] == "denoiser" and cfg("d")["loss"]["discriminator"] == "dense"
    assert cfg("simnet")["generator"]["name"] == "simnet" and cfg("sid")["generator"]["name"] == "smnet"
    # the table says what each CPU row adds beyond the paper's row (cpu-small's CPU choices), and
    # nothing for what is only scale
    beyond = set(rows["Baseline 1"]["beyond_paper"])
    assert {"synthetic.setting=calibrated", "generator.init=identity", "loss.align_lowpass=4.0",
            "loss.lambda_spectrum=0.01", "generator.name=smnet"} <= beyond
    assert not any(b.startswith(("generator.channels", "data.", "run.")) for b in beyond)
    assert "generator.name=smnet" not in rows["+FCA"]["beyond_paper"]  # the row's own change, not beyond it
    assert cfg("vgg")["loss"]["perceptual"] == "imagenet"
    assert cfg("baseline-2")["generator"]["multiscale"] is False
    assert cfg("multi-scale")["generator"]["downsample"] == "bilinear" and cfg("sid")["generator"]["fca"] is False
    md = (out / "table3.md").read_text()
    assert "| +Multi-scale |" in md and "akld" in md and "beyond the paper's row" in md
    assert "synthetic.setting=calibrated" in md.split("| Baseline 1 |")[1].splitlines()[0]
    # a rerun reuses the finished runs (no training; same table)
    assert main(args) == 0
    assert json.loads((out / "table3.json").read_text())["rows"] == res["rows"]


def test_rho_sweep_writes_table4(tiny, tmp_path):
    root, train, test, _ = tiny
    out = tmp_path / "rho"
    assert main(["ablation", "rho", "--generated", f"synth:awgn:{train}", "--data", train, "--test", test,
                 "--ratios", "0,0.5,1", "--config", "cpu-small", "--steps", "2", "--quiet", "--out", str(out),
                 "net.kwargs={depth: 2, channels: 4}", "data.patch_size=16", "data.batch_size=2"]) == 0
    res = json.loads((out / "table4_rho.json").read_text())
    assert [r["rho"] for r in res["rows"]] == [0.0, 0.5, 1.0]
    assert all(r["psnr"] > 0 and 0 < r["ssim_y"] <= 1 for r in res["rows"])
    assert "| 0.5 |" in (out / "table4_rho.md").read_text()
    # --generated is required: a one-line usage error, exit 2
    assert main(["ablation", "rho", "--data", train, "--test", test, "--out", str(tmp_path / "x"), "--quiet"]) == 2


def test_refused_rho_row_leaves_no_run_record(tiny, tmp_path, capsys):
    """A row refused before training (here: --init holding another shape than net.kwargs) leaves no
    run folder, as train-denoiser's refusal does: the corrected command then starts cleanly."""
    root, train, test, dn = tiny
    out = tmp_path / "rho"
    assert main(["ablation", "rho", "--generated", f"synth:awgn:{train}", "--data", train, "--test", test,
                 "--ratios", "0", "--config", "cpu-small", "--steps", "1", "--quiet", "--out", str(out),
                 "--init", str(dn), "net.kwargs={depth: 5, channels: 8}", "data.patch_size=16",
                 "data.batch_size=2"]) == 2
    assert "net.kwargs" in capsys.readouterr().err
    assert not (out / "runs").exists()


def test_an_ablation_folder_in_use_is_refused(tiny, tmp_path, capsys):
    """Two ablations into one --out would each write the table of their own rows: the second is refused."""
    import subprocess
    import sys

    root, train, test, _ = tiny
    out = tmp_path / "abl"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); "
                               "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)", str(out)],
                              stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"locked"
        assert main(["ablation", "rho", "--generated", f"synth:awgn:{train}", "--data", train, "--test", test,
                     "--ratios", "0", "--config", "cpu-small", "--steps", "1", "--quiet", "--out", str(out),
                     "net.kwargs={depth: 2, channels: 4}", "data.patch_size=16", "data.batch_size=2"]) == 2
    finally:
        holder.kill()
        holder.wait()
    assert "another pngan process is using this ablation folder" in capsys.readouterr().err
    assert not any(out.iterdir())
