"""Disk full and read-only file systems: one line, exit 1, no traceback, no half-written file
(synth, report, evaluate --json; simulated by making the final rename of every atomic write fail)."""

from __future__ import annotations

import errno
import os

import pytest
import torch

from pngan.cli import main
from pngan.io.images import write_image


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    root = tmp_path_factory.mktemp("disk") / "pairs"
    g = torch.Generator().manual_seed(0)
    for sub in ("noisy", "clean"):
        (root / sub).mkdir(parents=True)
    for k in range(2):
        write_image(root / "clean" / f"i{k}.png", torch.rand(3, 24, 28, generator=g))
        write_image(root / "noisy" / f"i{k}.png", torch.rand(3, 24, 28, generator=g))
    return root


@pytest.mark.parametrize("code, text", [(errno.ENOSPC, "No space left on device"),
                                        (errno.EROFS, "Read-only file system")])
def test_disk_errors_are_one_line(pairs, tmp_path, monkeypatch, capsys, code, text):
    import pngan.io.atomic as atomic

    def fail(src, dst):
        raise OSError(code, os.strerror(code), str(dst))

    commands = [
        ["synth", "--setting", "awgn", "--input", f"pairs:{pairs}", "--output", str(tmp_path / "s")],
        ["evaluate", "noise", "--real", f"pairs:{pairs}", "--setting", "awgn", "--json", str(tmp_path / "n.json")],
        ["report", "--out", str(tmp_path / "rep"), "--real", f"pairs:{pairs}", "--max-images", "1"],
    ]
    for argv in commands:
        monkeypatch.setattr(atomic.os, "replace", fail)
        capsys.readouterr()
        rc = main(argv)
        monkeypatch.undo()
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "%|" not in line]
        assert rc == 1, (argv, err)
        assert len(err) == 1 and text in err[0] and err[0].startswith("pngan: error:"), (argv, err)
    # nothing half-written is left under a final name
    assert not (tmp_path / "n.json").exists() and not list((tmp_path / "s").rglob("*.png"))


def test_evaluate_json_is_strict_json_with_infinite_psnr(pairs, tmp_path, capsys):
    """PSNR of a perfect denoiser is inf: the JSON says "inf" (strict JSON), not the Infinity token."""
    import json

    from pngan.nets.loading import save_network
    from pngan.nets.registry import build

    same = tmp_path / "same"
    for sub in ("noisy", "clean"):
        (same / sub).mkdir(parents=True)
    img = torch.rand(3, 24, 28, generator=torch.Generator().manual_seed(3))
    write_image(same / "clean" / "a.png", img)
    write_image(same / "noisy" / "a.png", img)
    net = build("dncnn", channels=4, depth=3)
    for p in net.parameters():  # DnCNN predicts the noise: all-zero weights give the identity
        torch.nn.init.zeros_(p)
    f = save_network(net, tmp_path / "id.safetensors")
    out = tmp_path / "m.json"
    assert main(["evaluate", "denoiser", "--model", str(f), "--data", f"pairs:{same}", "--json", str(out)]) == 0
    text = out.read_text()
    assert "Infinity" not in text and "NaN" not in text
    res = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert res["mean"]["psnr"] == "inf"
