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
