"""Tiled inference gives the whole image's result (in-process, tiny networks).

``evaluate denoiser --tile`` equals ``--tile 0`` for a network of finite receptive field (a halo of that
field, only tile cores kept) and says once, and records, that it is approximate for one with
whole-image statistics. ``generate``'s exact tiles need a halo covering the generator's receptive
field: a smaller ``--overlap`` is refused naming the minimum, which is the default. (The tiling
property itself: tests/test_generation.py.)"""

from __future__ import annotations

import json

import pytest
import torch

from helpers import one_line_error as _one_line
from helpers import run_cli as _run
from helpers import write_images


@pytest.mark.files("pairs_and_denoiser")
def test_denoiser_tiles_equal_the_whole_image_or_are_labelled(f, capsys, tmp_path):
    from pngan.nets.loading import save_network
    from pngan.nets.registry import build

    ev = ["evaluate", "denoiser", "--model", f / "dn.safetensors", "--data", f"pairs:{f}/P"]
    _run(capsys, ev + ["--tile", 0, "--json", tmp_path / "w.json", "--save-images", tmp_path / "w"])
    _run(capsys, ev + ["--tile", 8, "--json", tmp_path / "t.json", "--save-images", tmp_path / "t"])
    whole, tiled = (json.loads((tmp_path / n).read_text()) for n in ("w.json", "t.json"))
    assert tiled["tiling"]["exact"] is True and tiled["tiling"]["halo"] == 3
    for name, row in whole["images"].items():
        assert tiled["images"][name]["psnr"] == pytest.approx(row["psnr"], abs=1e-5)
        assert (tmp_path / "t" / f"{name}.png").read_bytes() == (tmp_path / "w" / f"{name}.png").read_bytes()
    # channel attention pools the whole image: tiling it is approximate, said once and recorded
    torch.manual_seed(0)
    save_network(build("ridnet", channels=16), tmp_path / "rid.safetensors", {})
    with pytest.warns(UserWarning, match="approximate") as rec:
        _run(capsys, [*ev[:3], tmp_path / "rid.safetensors", *ev[4:], "--tile", 8, "--json", tmp_path / "r.json"])
    assert sum("approximate" in str(w.message) for w in rec) == 1
    assert json.loads((tmp_path / "r.json").read_text())["tiling"]["exact"] is False


def test_generate_exact_tiles_need_the_receptive_field(capsys, tmp_path):
    from pngan.infer.tiling import min_exact_overlap
    from pngan.nets.loading import save_network
    from pngan.nets.registry import build

    torch.manual_seed(1)
    net = build("smnet", channels=4, groups=1, blocks=1)
    g = save_network(net, tmp_path / "g.safetensors", {"pngan.synthetic": {"setting": "awgn", "sigma": 50.0}})
    need = min_exact_overlap(net.eval())
    assert need is not None and need > 4
    write_images(tmp_path / "in", ["a", "b"], 40, 36, torch.Generator().manual_seed(0))
    gen = ["generate", "--generator", g, "--input", f"clean:{tmp_path}/in", "--quiet"]
    _run(capsys, gen + ["--output", tmp_path / "whole", "--tile", 0])
    line = _one_line(capsys, gen + ["--output", tmp_path / "t4", "--tile", 16, "--overlap", 4], "receptive field")
    assert f"--overlap {need}" in line and not (tmp_path / "t4" / "job.json").exists()
    _run(capsys, gen + ["--output", tmp_path / "t16", "--tile", 16])  # default: the field, exact
    _run(capsys, gen + ["--output", tmp_path / "t16b", "--tile", 16, "--overlap", need + 8])
    for out in ("t16", "t16b"):
        for name in ("a_0.png", "b_0.png"):
            assert (tmp_path / out / "noisy" / name).read_bytes() == (tmp_path / "whole" / "noisy" / name).read_bytes()
