"""Networks, the loader and the losses."""

from __future__ import annotations

import math
import os
import pickle

import pytest
import torch
import torch.nn.functional as F

from pngan.errors import PnganError
from pngan.losses import alignment_l1, ra_d_loss, ra_g_loss
from pngan.nets.loading import load_network, load_saved_network, read_state_dict, save_network
from pngan.nets.registry import available, build


def test_smnet_parameters_and_shapes():
    net = build("smnet")
    assert sum(p.numel() for p in net.parameters()) == 903_481  # paper: ~0.8M (see docs/paper-mapping.md)
    small = build("smnet", channels=8, groups=1, blocks=1)
    for h, w in [(37, 53), (5, 7), (16, 16)]:
        x = torch.rand(2, 3, h, w)
        assert small(x).shape == x.shape
    for kw in (dict(multiscale=False), dict(sid=False), dict(fca=False)):
        n = build("smnet", channels=8, groups=1, blocks=1, **kw)
        assert n(torch.rand(1, 3, 13, 11)).shape == (1, 3, 13, 11)
    # the ablations really change the network
    assert sum(p.numel() for p in build("smnet", multiscale=False).parameters()) < 600_000
    assert sum(p.numel() for p in build("smnet", fca=False).parameters()) == 903_481 - 18 * 3


def test_smnet_fca_uses_global_statistics():
    torch.manual_seed(0)
    net = build("smnet", channels=8, groups=1, blocks=1).eval()
    x = torch.rand(1, 3, 32, 32)
    x2 = x.clone()
    x2[..., 24:, 24:] = 1.0  # change a far corner only
    with torch.no_grad():
        d = (net(x) - net(x2))[..., :4, :4].abs().max()
        nf = build("smnet", channels=8, groups=1, blocks=1, fca=False).eval()
        d_nf = (nf(x) - nf(x2))[..., :4, :4].abs().max()
    assert d > 0 and d_nf == 0  # only the global pooling carries the far change


def test_sid_equals_reflect_padded_binomial_blur():
    from pngan.nets.smnet import SID

    torch.manual_seed(0)
    sid = SID(4)
    k = torch.tensor([1.0, 2.0, 1.0])
    k = (torch.outer(k, k) / 16).expand(4, 1, 3, 3)
    for h, w in [(256, 256), (258, 300), (7, 9), (256, 257)]:  # the fast path and the fallback
        x = torch.randn(2, 4, h, w, requires_grad=True)
        ref = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), k, stride=2, groups=4)
        y = sid(x)
        assert y.shape == ref.shape and (y - ref).abs().max() < 1e-5
        g, = torch.autograd.grad(y.square().sum(), x)
        g_ref, = torch.autograd.grad(ref.square().sum(), x)
        assert (g - g_ref).abs().max() < 1e-5


def test_smnet_fast_forward_equals_reference_formulation():
    """MAB.forward reorders the paper's ops (1x1 convs before upsampling, no concatenation); it
    must compute the same function with the same gradients as the literal formulation."""
    for kw in ({}, {"sid": False}, {"fca": False}, {"multiscale": False}):  # the ablations too
        _check_fast_forward(kw)


def _check_fast_forward(kw):
    from pngan.nets.smnet import MAB

    torch.manual_seed(0)
    net = build("smnet", channels=16, groups=2, blocks=2, **kw)
    for p in net.parameters():  # non-trivial biases and weights everywhere
        p.data.normal_(0, 0.2)
    x = torch.rand(2, 3, 37, 22)

    def run(reference: bool):
        for m in net.modules():
            if isinstance(m, MAB):
                m.forward = m.forward_reference if reference else type(m).forward.__get__(m)
        net.zero_grad()
        xi = x.clone().requires_grad_(True)
        y = net(xi)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        return y.detach(), xi.grad, [p.grad.clone() for p in net.parameters()]

    y_ref, gx_ref, g_ref = run(True)
    y, gx, g = run(False)
    assert (y - y_ref).abs().max() < 1e-5 * y_ref.abs().max()
    assert (gx - gx_ref).abs().max() < 1e-4 * gx_ref.abs().max()
    for a, b in zip(g, g_ref):
        assert (a - b).abs().max() <= 1e-4 * b.abs().max() + 1e-7
    with torch.inference_mode():  # the in-place path taken without autograd
        assert (net(x) - y_ref).abs().max() < 1e-5 * y_ref.abs().max()


def test_discriminators():
    assert build("pixel_discriminator")(torch.rand(2, 3, 17, 19)).shape == (2, 1, 17, 19)
    assert build("image_discriminator")(torch.rand(2, 3, 32, 32)).shape == (2, 1)


def test_relativistic_losses_against_hand_computation():
    r = torch.tensor([[2.0], [0.0]])
    f = torch.tensor([[-1.0], [1.0]])
    sp = lambda z: math.log1p(math.exp(-z))  # noqa: E731  -log(sigmoid(z))
    # D_Ra(r, f) = sigmoid(r - mean f) with mean f = 0; D_Ra(f, r) = sigmoid(f - mean r), mean r = 1
    d = (sp(2) + sp(0)) / 2 + (sp(-(-2)) + sp(-(0))) / 2  # -log s(r - 0) ; -log(1 - s(f - 1))
    g = (sp(-2) + sp(0)) / 2 + (sp(-2) + sp(0)) / 2  # -log s(f - 1) ; -log(1 - s(r - 0))
    assert abs(float(ra_d_loss(r, f)) - d) < 1e-6
    assert abs(float(ra_g_loss(r, f)) - g) < 1e-6
    # stable for huge logits
    assert torch.isfinite(ra_d_loss(torch.full((2, 1, 3, 3), 1e4), torch.full((2, 1, 3, 3), -1e4)))


def test_alignment_gradients_reach_fake_not_denoiser():
    dn = build("dncnn", channels=8, depth=3).eval()
    for p in dn.parameters():
        p.requires_grad_(False)
    fake = torch.rand(1, 3, 8, 8, requires_grad=True)
    real = torch.rand(1, 3, 8, 8)
    loss = alignment_l1(dn, fake, real)
    loss.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert all(p.grad is None for p in dn.parameters())
    expected = F.l1_loss(dn.denoise(fake), dn.denoise(real))
    assert abs(float(loss.detach()) - float(expected.detach())) < 1e-7


def _random_state_dict(tsv):
    sd = {}
    for line in open(tsv):
        if line.startswith("#") or not line.strip():
            continue
        key, shape, dtype = line.rstrip("\n").split("\t")
        dims = [int(v) for v in shape.strip("[]").split(",") if v.strip()]
        sd[key] = torch.randint(0, 5, dims) if dtype == "int64" else torch.randn(dims)
    return sd


@pytest.mark.shared
@pytest.mark.parametrize("name,tsv", [("dncnn", "dncnn_kair_state_dict_keys.tsv"), ("vgg16", "vgg16_torchvision_state_dict_keys.tsv")])
def test_published_layouts_load_strictly(shared, tmp_path, name, tsv):
    sd = _random_state_dict(shared / "reference" / tsv)
    net = build(name)
    # vgg16: the torchvision checkpoint also has classifier.*; pngan's VGG16 is its `features`
    ours = {k: v for k, v in sd.items() if name != "vgg16" or k.startswith("features.")}
    assert list(net.state_dict()) == list(ours)
    assert all(net.state_dict()[k].shape == v.shape for k, v in ours.items())
    torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}}, tmp_path / "ck.pth")
    loaded = load_network(name, tmp_path / "ck.pth")
    k0 = next(iter(sd))
    assert torch.equal(loaded.state_dict()[k0], sd[k0])


def test_wrong_architecture_names_keys(tmp_path):
    torch.save(build("smnet", channels=8, groups=1, blocks=1).state_dict(), tmp_path / "g.pth")
    with pytest.raises(PnganError, match=r"g\.pth.*(missing|mis-shaped)"):
        load_network("dncnn", tmp_path / "g.pth")


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ.get('PNGAN_EVIL_MARKER', '/tmp/pngan-evil-marker')}",))


def test_malicious_pickle_is_refused(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("PNGAN_EVIL_MARKER", str(marker))
    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"state_dict": _Evil()}, f)
    with pytest.raises(PnganError, match="evil.pth"):
        read_state_dict(tmp_path / "evil.pth")
    assert not marker.exists()


def test_safetensors_round_trip_with_metadata(tmp_path):
    net = build("smnet", channels=8, groups=1, blocks=1).to(memory_format=torch.channels_last)
    save_network(net, tmp_path / "g.safetensors", {"pngan.synthetic": {"setting": "awgn", "sigma": 50.0}})
    net2, meta = load_saved_network(tmp_path / "g.safetensors")
    assert meta["pngan.network"] == "smnet" and '"channels": 8' in meta["pngan.kwargs"]
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        assert torch.allclose(net(x), net2(x), atol=1e-6)  # channels_last vs contiguous kernels
    assert set(available("denoiser")) >= {"dncnn"}


@pytest.mark.shared
def test_shared_dncnn_psnr_on_sidd(shared):
    from pngan.data.specs import open_dataset
    from pngan.eval.metrics import psnr

    net = load_network("dncnn", shared / "weights" / "dncnn_sidd_naflow.pth").eval()
    before, after = [], []
    with torch.inference_mode():
        for s in open_dataset(f"sidd:{shared / 'data' / 'real' / 'sidd'}"):
            before.append(float(psnr(s.noisy, s.clean)))
            after.append(float(psnr(net.denoise(s.noisy[None])[0].clamp(0, 1), s.clean)))
    b, a = sum(before) / len(before), sum(after) / len(after)
    assert abs(b - 22.6) < 0.2 and abs(a - 35.4) < 0.2, (b, a)
