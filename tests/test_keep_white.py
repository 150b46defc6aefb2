"""generator.keep_white (not in the paper; cpu-sidd): values whose clean value is 8-bit white pass
through unchanged, in training and in every generation path, and the choice travels in the
generator file."""

from __future__ import annotations

import torch

from helpers import TINY_NETS, write_pairs

from pngan.cli import main
from pngan.io.images import read_image, write_image
from pngan.noise.clipping import WHITE, keep_white

TINY = [*TINY_NETS, "run.log_every=1", "run.sample_every=100", "run.ckpt_every=2", "run.threads=1",
        "run.channels_last=false", "generator.init=default"]


def test_keep_white_replaces_white_values_only_and_stops_their_gradient():
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(2, 3, 8, 8, generator=g) * 0.9
    clean[0, 1, :4] = 1.0
    clean[1, :, 2, 2] = 254 / 255  # one level below white: not white
    fake = torch.rand(2, 3, 8, 8, generator=g, requires_grad=True)
    out = keep_white(fake, clean)
    white = clean >= WHITE
    assert int(white.sum()) == 32
    assert torch.equal(out[white], clean[white]) and torch.equal(out[~white], fake.detach()[~white])
    out.sum().backward()
    assert torch.equal(fake.grad, (~white).float())


def _white_pairs(root):
    """Random pairs whose top-left 10x10 block is white in the clean and the noisy image."""
    write_pairs(root, 3, 24, 28, sigma=0.05)
    for k in range(3):
        for side in ("clean", "noisy"):
            p = root / side / f"i{k}.png"
            im = read_image(p)
            im[:, :10, :10] = 1.0
            write_image(p, im)
    return root


def test_keep_white_trains_and_generates(tmp_path):
    from pngan.infer.api import NoiseGenerator

    data = f"pairs:{_white_pairs(tmp_path / 'p')}"
    common = ["train", "--data", data, "--config", "cpu-sidd", "--quiet", "--steps", "2", *TINY]
    assert main(common + ["--out", str(tmp_path / "kw")]) == 0
    assert main(common + ["generator.keep_white=false", "--out", str(tmp_path / "off")]) == 0
    clean = read_image(tmp_path / "p" / "clean" / "i0.png")
    white = clean >= WHITE
    outs = {}
    for run in ("kw", "off"):
        gen = NoiseGenerator.load(tmp_path / run)
        assert gen.keep_white == (run == "kw")
        outs[run] = gen(clean, generator=torch.Generator().manual_seed(0), gain=1.0)
    assert torch.equal(outs["kw"][white], clean[white])
    assert not torch.equal(outs["off"][white], clean[white])  # the random generator moves them otherwise
    # pngan generate writes them white too
    out = tmp_path / "gen"
    assert main(["generate", "--generator", str(tmp_path / "kw"), "--input", data, "--output", str(out),
                 "--quiet"]) == 0
    noisy = read_image(out / "noisy" / "i0_0.png")
    assert torch.equal(noisy[white], clean[white])
