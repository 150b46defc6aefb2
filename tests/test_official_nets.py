"""The authors' released generator (SIMNet) and pixel-level discriminator (Discriminator_dense),
checked against the reference weights and outputs in shared/reference/pngan_official/."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pngan.errors import PnganError
from pngan.nets.loading import load_saved_network, load_state_dict_strict, save_network
from pngan.nets.registry import build

REF = ("reference", "pngan_official")
NETS = [("simnet", "simnet"), ("dense_discriminator", "discriminator_dense")]


def _tsv(path: Path) -> dict[str, tuple[int, ...]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert rows[0] == ["key", "shape"]
    return {k: tuple(int(d) for d in shape.strip("()").split(",") if d.strip()) for k, shape in rows[1:]}


def _reference(shared: Path, stem: str) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    from safetensors.torch import load_file

    ref = load_file(str(shared.joinpath(*REF, f"{stem}_reference.safetensors")))
    weights = {k[len("weights."):]: v for k, v in ref.items() if k.startswith("weights.")}
    return weights, ref["input"], ref["output"]


def test_parameter_counts_are_the_releases():
    assert sum(p.numel() for p in build("simnet").parameters()) == 802_207  # the paper's "0.8M"
    assert sum(p.numel() for p in build("dense_discriminator").parameters()) == 371_329


@pytest.mark.shared
@pytest.mark.parametrize("name,stem", NETS)
def test_state_dict_keys_and_shapes_are_the_released_layout(shared, name, stem):
    want = _tsv(shared.joinpath(*REF, f"{stem}_state_dict_keys.tsv"))
    got = {k: tuple(v.shape) for k, v in build(name).state_dict().items()}
    assert got == want


@pytest.mark.shared
@pytest.mark.parametrize("name,stem", NETS)
def test_reference_outputs_match(shared, name, stem):
    weights, x, y = _reference(shared, stem)
    net = build(name).eval()
    load_state_dict_strict(net, weights, stem, name)
    with torch.no_grad():
        out = net.score(x) if name == "dense_discriminator" else net(x)
    assert out.shape == y.shape
    assert (out - y).abs().max() < 1e-5
    if name == "dense_discriminator":  # forward gives the logits the relativistic loss needs
        with torch.no_grad():
            assert torch.allclose(torch.sigmoid(net(x)), y, atol=1e-5)


def test_simnet_shares_its_cau_and_prelu():
    net = build("simnet", channels=8)
    sd = net.state_dict()
    a, b = sd["body.0.body.0.blocks.0.0.body.0.weight"], sd["body.0.body.0.blocks.0.1.body.0.weight"]
    assert a.data_ptr() == b.data_ptr()  # one CAU applied twice
    prelus = {id(m) for m in net.modules() if isinstance(m, torch.nn.PReLU)}
    assert len(prelus) == 1
    assert sd["body.0.body.0.blocks.0.0.body.1.weight"].data_ptr() == sd["body.2.body.1.blocks.0.1.body.1.weight"].data_ptr()


def test_a_checkpoint_whose_shared_copies_differ_is_refused():
    net = build("simnet", channels=8)
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    sd["body.1.body.0.blocks.0.1.conv1x1.weight"] += 1.0
    with pytest.raises(PnganError, match="one shared weight"):
        load_state_dict_strict(net, sd, "x.safetensors", "simnet")


def test_channel_attention_is_x_times_y_plus_x():
    from pngan.nets.simnet import CA

    ca = CA()
    torch.nn.init.zeros_(ca.conv.weight)  # y = sigmoid(0) = 0.5 for every channel
    x = torch.randn(2, 6, 5, 4)
    assert torch.allclose(ca(x), 1.5 * x)


def test_simnet_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    net = build("simnet", channels=8, groups=2, blocks=1).eval()
    p = save_network(net, tmp_path / "g.safetensors")  # shared tensors are written once per name
    back, meta = load_saved_network(p)
    x = torch.rand(1, 3, 17, 23)
    with torch.no_grad():
        assert torch.equal(net(x), back.eval()(x))
    assert meta["pngan.network"] == "simnet"


def test_simnet_exact_tiling_equals_whole_image():
    from pngan.infer.tiling import tiled_forward

    torch.manual_seed(0)
    net = build("simnet", channels=8, groups=2, blocks=1).eval()
    for m in net.modules():  # strong attention, so per-tile statistics would show
        if m.__class__.__name__ == "CA":
            torch.nn.init.constant_(m.conv.weight, 3.0)
    x = torch.rand(1, 3, 160, 136)
    x[..., :60, :] *= 0.1  # tiles with very different means
    with torch.no_grad():
        full = net(x)
        exact = tiled_forward(net, x, tile=32, overlap=32)
        approx = tiled_forward(net, x, tile=32, overlap=32, exact=False)
    assert (exact - full).abs().max() < 1e-5
    assert (approx - full).abs().max() > 1e-4  # the test can see a wrong statistic (10x the bound above)


def test_channels_last_and_bf16():
    torch.manual_seed(0)
    for name in ("simnet", "dense_discriminator"):
        net = build(name, channels=8).eval()
        x = torch.rand(2, 3, 20, 24)
        with torch.no_grad():
            ref = net(x)
            cl = net.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
            with torch.autocast("cpu", dtype=torch.bfloat16):
                bf = net(x)
        assert torch.allclose(cl, ref, atol=1e-5)
        assert torch.isfinite(bf).all() and (bf.float() - ref).abs().max() < 0.1 * ref.abs().max() + 0.05


def test_identity_init_starts_at_the_input():
    net = build("simnet", channels=8)
    net.identity_init()
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        assert torch.equal(net(x), x)


def test_info_lists_the_released_networks_with_their_counts():
    out = subprocess.run([sys.executable, "-m", "pngan", "info", "--params"], capture_output=True, text=True, check=True).stdout
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith("  ")}
    assert "802,207 parameters" in lines["simnet"]
    assert "371,329 parameters" in lines["dense_discriminator"]
    assert "903,481 parameters" in lines["smnet"]


def test_smnet_only_options_are_refused_for_simnet():
    from pngan.train.config import load_train_config
    from pngan.validate import validate_config

    for ov in ("generator.multiscale=false", "generator.downsample=bilinear", "generator.downsample=stride"):
        with pytest.raises(PnganError, match="smnet"):
            load_train_config("paper", [ov])
    validate_config(load_train_config("paper", ["generator.fca=false"]))  # no attention: allowed
    validate_config(load_train_config("paper", ["generator.name=smnet", "generator.multiscale=false"]))


def test_paper_preset_trains_the_released_networks(tmp_path):
    """``pngan train --config paper`` builds SIMNet and the dense discriminator (a 2-step run at a
    reduced width and patch; the full-size 2-step run is in docs/experiments.md)."""
    from helpers import write_pairs

    from pngan.cli import main
    from pngan.nets.loading import read_metadata

    write_pairs(tmp_path / "p", 2, 24, 24)
    torch.manual_seed(0)
    dn = save_network(build("dncnn", channels=4, depth=2), tmp_path / "dn.safetensors")
    assert main(["train", "--data", f"pairs:{tmp_path / 'p'}", "--denoiser", f"dncnn:{dn}", "--config", "paper",
                 "--quiet", "--steps", "2", "--out", str(tmp_path / "run"), "loss.perceptual=off",
                 "generator.channels=8", "loss.d_channels=8", "data.patch_size=16", "data.batch_size=2",
                 "run.threads=1"]) == 0
    ck = tmp_path / "run" / "checkpoints" / "00000002"
    assert read_metadata(tmp_path / "run" / "generator.safetensors")["pngan.network"] == "simnet"
    d_meta = read_metadata(ck / "discriminator.safetensors")
    assert d_meta["pngan.network"] == "dense_discriminator"
    from pngan.nets.loading import read_state_dict

    sd = read_state_dict(ck / "discriminator.safetensors")
    assert int(sd["net.3.num_batches_tracked"]) > 0  # BatchNorm trained on the batches
