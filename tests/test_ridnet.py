"""RIDNet in PNGAN's published layout."""

from __future__ import annotations

import pytest
import torch

from pngan.nets.loading import load_network
from pngan.nets.registry import build


def test_ridnet_shapes_and_residual():
    net = build("ridnet").eval()
    assert sum(p.numel() for p in net.state_dict().values()) == 1_499_371
    x = torch.rand(1, 3, 13, 11)
    with torch.no_grad():
        assert net.denoise(x).shape == x.shape
        torch.nn.init.zeros_(net.tail.weight)
        torch.nn.init.zeros_(net.tail.bias)
        assert torch.equal(net.denoise(x), x)  # forward = tail(...) + x


@pytest.mark.shared
def test_ridnet_layout_loads_strictly(shared, tmp_path):
    rows = [l.rstrip("\n").split("\t") for l in open(shared / "reference" / "ridnet_state_dict_keys.tsv")
            if l.strip() and not l.startswith("#")]
    net = build("ridnet")
    assert [k for k in net.state_dict()] == [r[0] for r in rows]
    sd = {}
    for key, shape, _ in rows:
        dims = [int(v) for v in shape.strip("[]").split(",") if v.strip()]
        assert list(net.state_dict()[key].shape) == dims
        sd[key] = torch.randn(dims)
    torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}}, tmp_path / "ridnet.pt")
    loaded = load_network("ridnet", tmp_path / "ridnet.pt")
    assert torch.equal(loaded.state_dict()["b3.r1.body3.0.weight"], sd["b3.r1.body3.0.weight"])
