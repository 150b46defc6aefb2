"""MIRNet and MPRNet: exact published state-dict layouts, strict loading of released-style
checkpoints ({"state_dict": {"module."+k: v}}), forward/denoise shapes on odd sizes."""

from __future__ import annotations

from pathlib import Path

import re

import pytest
import torch

from pngan.errors import PnganError
from pngan.nets.loading import load_network
from pngan.nets.registry import available, build

NETS = ["mirnet", "mprnet"]


def _read_tsv(path: Path) -> tuple[list[tuple[str, list[int]]], int]:
    rows, header_params = [], None
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            m = re.search(r"(\d+) parameters", line)
            if m:
                header_params = int(m.group(1))
            continue
        if not line.strip():
            continue
        key, shape, _dtype = line.split("\t")
        rows.append((key, [int(s) for s in shape.strip("[]").split(",") if s.strip()]))
    assert header_params is not None
    return rows, header_params


@pytest.fixture(scope="module")
def nets() -> dict[str, torch.nn.Module]:
    return {n: build(n).eval() for n in NETS}


def test_registered_as_denoisers() -> None:
    assert set(NETS) <= set(available("denoiser"))


@pytest.mark.parametrize("name", NETS)
def test_state_dict_equals_published_layout(shared: Path, nets, name: str) -> None:
    rows, n_params = _read_tsv(shared / "reference" / f"{name}_state_dict_keys.tsv")
    net = nets[name]
    mine = [(k, list(v.shape)) for k, v in net.state_dict().items()]
    assert mine == rows  # keys, shapes and order, entry for entry
    # the published count: unique parameters (shared DAUs / shared PReLU counted once)
    assert sum(p.numel() for p in net.parameters()) == n_params
    assert all(v.dtype == torch.float32 for v in net.state_dict().values())


def test_published_weight_sharing(nets) -> None:
    mir = nets["mirnet"]
    msrb = mir.body[0].body[0]
    assert msrb.blocks[1][0] is msrb.blocks[1][1]  # ModuleList([DAU] * width)
    slopes = {id(m.body[1]) for m in mir.modules() if type(m).__name__ == "_DAU"}
    assert len(slopes) == 1  # one PReLU for every DAU
    mpr = nets["mprnet"]
    assert mpr.shallow_feat1[1].body[1] is mpr.stage3_orsnet.orb3.body[0].body[1]
    # a second instance does not share with the first
    assert build("mprnet").shallow_feat1[1].body[1] is not mpr.shallow_feat1[1].body[1]


def _random_checkpoint(net: torch.nn.Module, path: Path, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    # a module used in several places (MIRNet's DAU list) is saved under each of its names with the
    # same values, as a checkpoint saved from the network holds them
    by_ptr: dict[int, torch.Tensor] = {}
    sd = {}
    for k, v in net.state_dict().items():
        if v.data_ptr() not in by_ptr or not v.numel():
            by_ptr[v.data_ptr()] = torch.randn(v.shape, generator=g) * 0.05
        sd[k] = by_ptr[v.data_ptr()].clone()
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in sd.items()}}, path)
    return sd


@pytest.mark.parametrize("name", NETS)
def test_load_released_style_checkpoint_and_run(tmp_path: Path, nets, name: str) -> None:
    ckpt = tmp_path / f"{name}.pth"
    sd = _random_checkpoint(nets[name], ckpt, seed=7)
    net = load_network(name, ckpt).eval()
    loaded = net.state_dict()
    # every entry holds exactly the file's value
    counts: dict[int, int] = {}
    for v in loaded.values():
        counts[v.data_ptr()] = counts.get(v.data_ptr(), 0) + 1
    unshared = [k for k, v in loaded.items() if counts[v.data_ptr()] == 1]
    assert len(unshared) > 0.5 * len(loaded)
    for k in loaded:
        assert torch.equal(loaded[k], sd[k]), k
    shared = [k for k, v in loaded.items() if counts[v.data_ptr()] > 1]
    if shared:  # a file whose copies of one shared weight differ did not come from this network
        from pngan.errors import PnganError

        bad = {**sd, shared[0]: sd[shared[0]] + 1.0}
        torch.save({"state_dict": bad}, tmp_path / "bad.pth")
        with pytest.raises(PnganError, match="one shared weight"):
            load_network(name, tmp_path / "bad.pth")
    x = torch.rand(1, 3, 21, 27, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = net.denoise(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert not torch.allclose(y, x, atol=1e-4)  # the random weights really act on the image


def test_mprnet_forward_returns_stages_final_first(nets) -> None:
    net = nets["mprnet"]
    x = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        outs = net(x)
        den = net.denoise(x)
    assert len(outs) == 3 and all(o.shape == x.shape and torch.isfinite(o).all() for o in outs)
    assert torch.equal(den, outs[0])  # size already a multiple of 8: no padding, final stage
    assert not torch.allclose(outs[0], outs[1])


def test_mirnet_forward_is_global_residual(nets) -> None:
    net = nets["mirnet"]
    x = torch.rand(1, 3, 12, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = net(x)
        assert torch.equal(net.denoise(x), y)
        w = net.conv_out.weight.clone()
        net.conv_out.weight.zero_()
        try:
            assert torch.equal(net(x), x)  # x + residual, residual from conv_out
        finally:
            net.conv_out.weight.copy_(w)


@pytest.mark.parametrize("name", NETS)
def test_denoise_odd_and_tiny_sizes(nets, name: str) -> None:
    net = nets[name]
    for h, w in [(13, 11), (5, 3)]:
        x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(h))
        with torch.no_grad():
            y = net.denoise(x)
        assert y.shape == x.shape and torch.isfinite(y).all()


def test_wrong_layout_is_a_clear_error(tmp_path: Path, nets) -> None:
    ckpt = tmp_path / "mpr.pth"
    _random_checkpoint(nets["mprnet"], ckpt, seed=3)
    with pytest.raises(PnganError, match="mirnet"):
        load_network("mirnet", ckpt)


def test_bad_constructor_argument_is_a_clear_error() -> None:
    with pytest.raises(PnganError, match="mirnet"):
        build("mirnet", n_feats=32)
    from pngan.nets.mprnet import MPRNet

    with pytest.raises(TypeError):
        MPRNet(80)  # keyword-only constructor


def test_small_configs_run() -> None:
    x = torch.rand(1, 3, 19, 23, generator=torch.Generator().manual_seed(4))
    small = {"mirnet": dict(n_feat=8, n_RRG=1, n_MSRB=1), "mprnet": dict(n_feat=8, scale_unetfeats=4,
                                                                          scale_orsnetfeats=4, num_cab=1)}
    for name, kw in small.items():
        net = build(name, **kw).eval()
        with torch.no_grad():
            y = net.denoise(x)
        assert y.shape == x.shape and torch.isfinite(y).all()
