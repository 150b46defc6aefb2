import os
from pathlib import Path

import pytest
import torch

from pngan.shared import shared_dir

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def shared() -> Path:
    """The ../shared folder (or $PNGAN_SHARED); tests that need it skip when it is absent."""
    d = shared_dir()
    if d is None:
        pytest.skip("../shared (or $PNGAN_SHARED) is absent: real data and weights not available")
    return d
