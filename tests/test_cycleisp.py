"""CycleISP's RGB2RAW / RAW2RGB / CCM networks in their published state-dict layouts, loaded
strictly, and wired into setting 2 (build_synthetic, SyntheticConfig, ``pngan synth --cycleisp``).

The expected layouts below are written out from swz30/CycleISP ``networks/cycleisp.py`` (module
registration order = state-dict order), independently of pngan's implementation."""

import json

import pytest
import torch

from pngan.cli import main
from pngan.errors import PnganError
from pngan.io.images import write_image
from pngan.nets.loading import load_network
from pngan.nets.registry import build

NF = 96


def _conv(p, cin, cout, k, bias=True):
    out = [(f"{p}.weight", (cout, cin, k, k))]
    return out + [(f"{p}.bias", (cout,))] if bias else out


def _dab(p):  # DAB registers SA, CA, body, conv1x1 in this order
    return ([(f"{p}.SA.spatial.conv.weight", (1, 2, 3, 3))] + _conv(f"{p}.CA.conv_du.0", NF, NF // 8, 1)
            + _conv(f"{p}.CA.conv_du.2", NF // 8, NF, 1) + _conv(f"{p}.body.0", NF, NF, 3)
            + [(f"{p}.body.1.weight", (NF,))] + _conv(f"{p}.body.2", NF, NF, 3) + _conv(f"{p}.conv1x1", 2 * NF, NF, 1))


def _body(nrrg, ndab):
    out = []
    for i in range(nrrg):
        for j in range(ndab):
            out += _dab(f"body.{i}.body.{j}")
        out += _conv(f"body.{i}.body.{ndab}", NF, NF, 3)
    return out + _conv(f"body.{nrrg}", NF, NF, 3) + [(f"body.{nrrg + 1}.weight", (NF,))]


PUBLISHED = {
    "cycleisp_rgb2raw": _conv("head.0", 3, NF, 3) + _body(3, 5) + _conv("tail.0", NF, 3, 3),
    "cycleisp_ccm": _conv("head.0", 3, NF, 3) + _body(2, 2) + _conv("tail.0", NF, NF, 3)
    + [("blur.weight", (3, 1, 21, 21))],
    "cycleisp_raw2rgb": _conv("head.0", 4, NF, 3) + _body(3, 5) + _conv("tail.0", NF, NF, 3)
    + [("tail.1.weight", (NF,))] + _conv("tail_rgb.0", NF, 12, 1) + _conv("conv1x1.0", 2 * NF, NF, 1),
}


def _published_checkpoint(name, path, seed):
    """A checkpoint as CycleISP's training code saves it: {'state_dict': ...} with 'module.' keys,
    the shared PReLU written once per name with one value, random conv weights."""
    g = torch.Generator().manual_seed(seed)
    prelu = torch.full((NF,), 0.25)
    sd = {}
    for k, shape in PUBLISHED[name]:
        if len(shape) == 1 and k.endswith(".weight"):
            sd[k] = prelu.clone()
        elif k == "blur.weight":
            r = torch.arange(21.0) - 10
            e = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 12.0**2))
            sd[k] = (e / e.sum()).expand(3, 1, 21, 21).clone()
        else:
            sd[k] = torch.randn(shape, generator=g) * (0.5 / (shape[1] * shape[-1] ** 2) ** 0.5 if len(shape) == 4 else 0.01)
    torch.save({"epoch": 1, "state_dict": {"module." + k: v for k, v in sd.items()}}, path)
    return sd


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("cycleisp")
    out = {}
    for i, name in enumerate(("cycleisp_rgb2raw", "cycleisp_raw2rgb", "cycleisp_ccm")):
        out[name] = d / f"{name}.pth"
        _published_checkpoint(name, out[name], i)
    return out


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_state_dict_layout_is_the_published_one(name):
    sd = build(name).state_dict()
    assert [(k, tuple(v.shape)) for k, v in sd.items()] == PUBLISHED[name]


def test_load_strictly_and_forward_shapes(ckpts):
    nets = {n: load_network(n, p) for n, p in ckpts.items()}
    want = {k: v for k, v in torch.load(ckpts["cycleisp_raw2rgb"])["state_dict"].items()}
    got = nets["cycleisp_raw2rgb"].state_dict()
    assert all(torch.equal(got[k[len("module."):]], v) for k, v in want.items())
    x = torch.rand(2, 3, 16, 24)
    with torch.no_grad():
        raw = nets["cycleisp_rgb2raw"](x)
        feat = nets["cycleisp_ccm"](x)
        rgb = nets["cycleisp_raw2rgb"](raw, feat)
        assert raw.shape == (2, 4, 8, 12) and feat.shape == (2, NF, 8, 12) and rgb.shape == (2, 3, 16, 24)
        assert float(feat.min()) >= 0 and float(feat.max()) <= 1  # sigmoid attention features
        # the CCM features gate the RAW2RGB body (x * ccm + x): other features, other output
        assert not torch.allclose(rgb, nets["cycleisp_raw2rgb"](raw, torch.zeros_like(feat)))
        # RGB2RAW ends in the RGGB mosaic of its 3-channel output
        full = nets["cycleisp_rgb2raw"].tail(nets["cycleisp_rgb2raw"].body(nets["cycleisp_rgb2raw"].head(x)))
        assert torch.equal(raw[:, 1], full[:, 1, 0::2, 1::2]) and torch.equal(raw[:, 3], full[:, 2, 1::2, 1::2])


def test_wrong_keys_are_refused(ckpts, tmp_path):
    sd = torch.load(ckpts["cycleisp_rgb2raw"])["state_dict"]
    bad = dict(sd)
    bad["module.head.0.kernel"] = bad.pop("module.head.0.weight")
    torch.save({"state_dict": bad}, tmp_path / "bad.pth")
    with pytest.raises(PnganError, match="missing.*head.0.weight.*unexpected.*head.0.kernel"):
        load_network("cycleisp_rgb2raw", tmp_path / "bad.pth")
    with pytest.raises(PnganError, match="does not fit"):  # a RAW2RGB file given as RGB2RAW
        load_network("cycleisp_rgb2raw", ckpts["cycleisp_raw2rgb"])


def test_setting2_with_cycleisp_networks(ckpts):
    from pngan.noise import build_synthetic
    from pngan.train.config import SyntheticConfig

    paths = [str(ckpts[n]) for n in ("cycleisp_rgb2raw", "cycleisp_raw2rgb", "cycleisp_ccm")]
    cfg = SyntheticConfig(setting="raw", cycleisp_rgb2raw=paths[0], cycleisp_raw2rgb=paths[1], cycleisp_ccm=paths[2])
    syn = build_synthetic(cfg.setting, **cfg.kwargs())
    x = torch.rand(2, 3, 13, 18)  # odd height: padded for the Bayer pattern and cropped back
    out, params = syn(x, generator=torch.Generator().manual_seed(0), return_params=True)
    again = syn(x, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.equal(out, again)
    assert float(out.min()) >= 0 and float(out.max()) <= 1 and params[0]["isp"] == "networks"
    d = syn.describe()
    assert d["cycleisp"] == paths and "rgb2raw_net.head.0.weight" not in syn.state_dict()
    assert torch.equal(build_synthetic(**d)(x, generator=torch.Generator().manual_seed(0)), out)
    # CycleISP's noise levels (log10 line): shot within [1e-4, 1.2e-2]
    assert all(1e-4 <= p["shot"] <= 1.2e-2 for p in params)
    with pytest.raises(PnganError, match="all three"):
        SyntheticConfig(setting="raw", cycleisp_rgb2raw=paths[0]).kwargs()
    with pytest.raises(PnganError, match="at least 11 pixels"):
        syn(torch.rand(1, 3, 8, 30))
    with pytest.raises(PnganError, match="three checkpoints"):
        build_synthetic("raw", cycleisp=paths[:2])
    assert SyntheticConfig(setting="raw").kwargs() == {}  # the analytic pipeline stays the default


def test_synth_cli_cycleisp(ckpts, tmp_path, capsys):
    g = torch.Generator().manual_seed(1)
    for i in range(2):
        write_image(tmp_path / "clean" / f"c{i}.png", torch.rand(3, 20, 26, generator=g))
    arg = ",".join(str(ckpts[n]) for n in ("cycleisp_rgb2raw", "cycleisp_raw2rgb", "cycleisp_ccm"))
    out = tmp_path / "out"
    assert main(["synth", "--setting", "raw", "--input", str(tmp_path / "clean"), "--output", str(out),
                 "--cycleisp", arg]) == 0
    rec = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(rec) == 2 and rec[0]["synthetic"]["cycleisp"] == arg.split(",")
    assert main(["synth", "--setting", "awgn", "--input", str(tmp_path / "clean"), "--output", str(tmp_path / "o2"),
                 "--cycleisp", arg]) == 2
    assert main(["synth", "--setting", "raw", "--input", str(tmp_path / "clean"), "--output", str(tmp_path / "o3"),
                 "--cycleisp", arg.rsplit(",", 1)[0]]) == 2
    assert "RGB2RAW.pth,RAW2RGB.pth,CCM.pth" in capsys.readouterr().err
