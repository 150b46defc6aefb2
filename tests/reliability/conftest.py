"""Data sets that the tests of several files here share, and the fixture ``f`` that hands a test the
data set its ``files`` marker names: a test marked ``@pytest.mark.files("denoiser_run")`` that takes
an argument ``f`` receives the folder that the ``denoiser_run`` fixture built.

Each data set is built once per session. No test writes into one: a test that changes data copies it
under its own tmp_path first."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers import TINY_NETS, write_images, write_pairs

# a one-step tiny DnCNN run of train-denoiser
DENOISER_ONE_STEP = ["--config", "cpu-small", "--quiet", "--steps", "1", "data.patch_size=16", "data.batch_size=2",
                     "net.kwargs={depth: 2, channels: 4}", "run.threads=1"]


def pytest_configure(config):
    config.addinivalue_line("markers", "files(name): the data set (the fixture NAME) that the test's argument f receives")


@pytest.fixture
def f(request) -> Path:
    """The data set that the test's ``files`` marker names."""
    marker = request.node.get_closest_marker("files")
    assert marker is not None, f"{request.node.nodeid} takes f but names no data set: @pytest.mark.files(NAME)"
    return request.getfixturevalue(marker.args[0])


@pytest.fixture(scope="session")
def sigma_pairs(tmp_path_factory) -> Path:
    """Pairs A (noise sigma 0.03) and B (sigma 0.10), three 32x32 each; clean images C (c0, c1; 24x24)."""
    root = tmp_path_factory.mktemp("sigma_pairs")
    write_pairs(root / "A", 3, 32, 32, seed=0, sigma=0.03)
    write_pairs(root / "B", 3, 32, 32, seed=1, sigma=0.10)
    write_images(root / "C", ["c0", "c1"], 24, 24, torch.Generator().manual_seed(2))
    return root


@pytest.fixture(scope="session")
def pairs_and_denoiser(tmp_path_factory) -> Path:
    """Pairs P (two 24x24), clean images C (c0, c1; 20x20) and a tiny DnCNN ``dn.safetensors`` (depth 3)."""
    from pngan.nets.loading import save_network
    from pngan.nets.registry import build

    root = tmp_path_factory.mktemp("pairs_and_denoiser")
    write_pairs(root / "P", 2, 24, 24, seed=0, sigma=0.05)
    write_images(root / "C", ["c0", "c1"], 20, 20, torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    save_network(build("dncnn", depth=3, channels=4), root / "dn.safetensors", {})
    return root


@pytest.fixture(scope="session")
def train_test_clean(tmp_path_factory) -> Path:
    """Pairs A (train, two 24x24) and T (test, one 24x24), clean images C (c0; 20x20)."""
    root = tmp_path_factory.mktemp("train_test_clean")
    write_pairs(root / "A", 2, 24, 24, seed=0, sigma=0.05)
    write_pairs(root / "T", 1, 24, 24, seed=1, sigma=0.05)
    write_images(root / "C", ["c0"], 20, 20, torch.Generator().manual_seed(2))
    return root


@pytest.fixture(scope="session")
def generator_run(tmp_path_factory) -> Path:
    """Pairs A (train) and T (test), clean images C, a tiny dncnn and a 2-step generator run with a
    checkpoint at each step."""
    from pngan.cli import main
    from pngan.nets.loading import save_network
    from pngan.nets.registry import build

    root = tmp_path_factory.mktemp("generator_run")
    write_pairs(root / "A", 2, 24, 24, seed=0, sigma=0.05)
    write_pairs(root / "T", 1, 24, 24, seed=1, sigma=0.05)
    write_images(root / "C", ["c0"], 20, 20, torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    save_network(build("dncnn", depth=2, channels=4), root / "dn.safetensors", {})
    assert main(["train", "--data", f"pairs:{root}/A", "--out", str(root / "run"), "--setting", "awgn", "--quiet", "--config", "cpu-small",
                 "--denoiser", f"dncnn:{root}/dn.safetensors",
                 *TINY_NETS, "run.steps=2", "run.ckpt_every=1", "run.keep_checkpoints=5", "run.threads=1"]) == 0
    return root


@pytest.fixture(scope="session")
def denoiser_run(tmp_path_factory) -> Path:
    """Pairs A (train) and T (test), two 24x24 each, clean images C (c0, c1; 20x20), a tiny denoiser
    run d (one step of train-denoiser)."""
    from pngan.cli import main

    root = tmp_path_factory.mktemp("denoiser_run")
    write_pairs(root / "A", 2, 24, 24, seed=0, sigma=0.05)
    write_pairs(root / "T", 2, 24, 24, seed=1, sigma=0.05)
    write_images(root / "C", ["c0", "c1"], 20, 20, torch.Generator().manual_seed(2))
    assert main(["train-denoiser", "--arch", "dncnn", "--data", f"pairs:{root}/A", "--out", str(root / "d"),
                 *DENOISER_ONE_STEP]) == 0
    return root
