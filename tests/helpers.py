"""Shared test fixtures' building blocks (imported as ``helpers``: pytest puts tests/ on sys.path)."""

from __future__ import annotations

from pathlib import Path

import torch

from pngan.io.images import write_image

# the smallest PNGAN networks and patches the training tests use
TINY_NETS = ["generator.channels=4", "generator.groups=1", "generator.blocks=1", "loss.d_channels=4",
             "data.patch_size=16", "data.batch_size=2"]


def write_pairs(root: Path, n: int, h: int, w: int, seed: int = 0, sigma: float = 0.05) -> Path:
    """``root/clean/i{k}.png`` uniform random and ``root/noisy/i{k}.png`` = clean + N(0, sigma),
    clamped, for k < n; one generator seeded ``seed`` draws clean then noise per image."""
    g = torch.Generator().manual_seed(seed)
    for k in range(n):
        clean = torch.rand(3, h, w, generator=g)
        write_image(root / "clean" / f"i{k}.png", clean)
        write_image(root / "noisy" / f"i{k}.png", (clean + sigma * torch.randn(3, h, w, generator=g)).clamp(0, 1))
    return root


def write_images(folder: Path, names: list[str], h: int, w: int, generator: torch.Generator) -> None:
    """Uniform random RGB images ``folder/NAME.png``."""
    for name in names:
        write_image(folder / f"{name}.png", torch.rand(3, h, w, generator=generator))


def run_cli(capsys, argv: list, code: int = 0) -> list[str]:
    """Run ``pngan ARGV`` in-process; assert its exit code; return its stderr lines without progress bars."""
    from pngan.cli import main

    capsys.readouterr()
    rc = main([str(a) for a in argv])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "it/s" not in line
           and "img/s" not in line and "s/it" not in line and "%|" not in line]
    assert rc == code, err
    return err


def one_line_error(capsys, argv: list, needle: str) -> str:
    """``pngan ARGV`` exits 2 with exactly one ``pngan: error:`` line containing ``needle``."""
    err = run_cli(capsys, argv, 2)
    assert len(err) == 1 and err[0].startswith("pngan: error: ") and needle in err[0], err
    return err[0]


def folder_bytes(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes): to show that nothing was touched."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
