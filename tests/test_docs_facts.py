"""Numbers and descriptions the docs state about the networks, checked against the code."""

from pathlib import Path

import torch.nn as nn

from pngan.nets import discriminator
from pngan.nets.registry import build

DOCS = Path(__file__).resolve().parents[1] / "docs" / "paper-mapping.md"


def test_smnet_single_scale_parameter_count_in_docs():
    n = sum(p.numel() for p in build("smnet", multiscale=False).parameters())
    assert n == 360_853
    text = DOCS.read_text()
    assert "360,853 parameters" in text and "481k" not in text


def test_image_discriminator_docstring_matches_its_convs():
    convs = [m for m in build("image_discriminator").modules() if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size[0] for c in convs] == [4, 4, 4, 3]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1]
    doc = discriminator.__doc__
    assert "three 4x4" in doc and "then a 3x3 convolution" in doc and "four 4x4" not in doc


README = DOCS.parents[1] / "README.md"


def _count(name: str, **kw) -> int:
    return sum(p.numel() for p in build(name, **kw).parameters())


def test_network_parameter_counts_stated_in_the_docs():
    text, readme = DOCS.read_text(), README.read_text()
    assert _count("simnet") == 802_207 and "802,207 parameters" in text and "802,207 parameters" in readme
    assert _count("dense_discriminator") == 371_329 and "371,329 parameters" in text
    assert _count("smnet") == 903_481 and "903,481 parameters" in text
    assert _count("pixel_discriminator") == 224_385 and "224,385 parameters" in text


def test_receptive_fields_stated_in_the_docs():
    import torch

    def field(name: str) -> int:  # how far one output pixel sees: the support of its input gradient
        net = build(name, channels=4).eval()
        x = torch.zeros(1, 3, 31, 31, requires_grad=True)
        net(x)[0, 0, 15, 15].backward()
        rows = x.grad.abs().sum(dim=(0, 1, 3)).nonzero()
        return int(rows.max() - rows.min() + 1)

    assert field("dense_discriminator") == 7 and field("pixel_discriminator") == 9
    text = DOCS.read_text()
    assert "7x7" in text and "9x9 view" in text
    assert "paper's 9x9" not in text and "paper's 9x9" not in README.read_text()


def test_docs_do_not_claim_what_the_paper_does_not_say():
    text, readme = DOCS.read_text(), README.read_text()
    for claim in ("exactly the paper's setting", "the paper's order", "The paper clamps", "Sec. 4.1", "Sec. 4.3",
                  "Realism metrics (paper Table 2)", "(DnCNN, RIDNet, MIRNet, MPRNet)"):
        assert claim not in text and claim not in readme, claim


def test_generator_flops_per_megapixel_stated_in_the_docs():
    import torch

    from pngan.perf import count_flops

    x = torch.rand(1, 3, 64, 64)
    per_mp = {}
    for name in ("simnet", "smnet"):
        net = build(name).eval()
        with torch.no_grad():
            per_mp[name] = count_flops(lambda: net(x)) / 1e9 / (64 * 64 / 1e6)
    assert round(per_mp["simnet"]) == 2538 and round(per_mp["smnet"]) == 896
    assert "2,538 GFLOP per megapixel" in DOCS.read_text() and "2,538 GFLOP per megapixel" in README.read_text()
