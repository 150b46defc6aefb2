"""The Python API's arguments besides the images: a device that does not exist here, meta tensors
and a gain that is not a number are one clear error (a PnganError and a ValueError), never a raw
RuntimeError / AssertionError / TypeError from inside torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pngan.errors import PnganError
from pngan.infer.api import NoiseGenerator
from pngan.nets.loading import save_network
from pngan.nets.registry import build

CAL = {"setting": "calibrated", "a": [0.004, 0.002, 0.003], "b": [0.0004, 0.0002, 0.0003]}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("api2")
    torch.manual_seed(0)
    net = build("smnet", channels=4, groups=1, blocks=1)
    return (save_network(net, root / "cal.safetensors", {"pngan.synthetic": CAL}),
            save_network(net, root / "awgn.safetensors", {"pngan.synthetic": {"setting": "awgn", "sigma": 50.0}}))


def _clear(e: pytest.ExceptionInfo, needle: str) -> None:
    assert isinstance(e.value, PnganError) and isinstance(e.value, ValueError), type(e.value)
    assert needle in str(e.value), str(e.value)


@pytest.mark.parametrize("device, needle", [
    ("tpu", "unknown device 'tpu'"),
    ("meta", "unknown device 'meta'"),
    ("cuda:x", "unknown device"),
    (3, "device must be"),
] + ([] if torch.cuda.is_available() else [("cuda", "CUDA is not available"), (torch.device("cuda:0"), "CUDA")]))
def test_load_on_a_device_that_is_not_there(files, device, needle):
    with pytest.raises(PnganError) as e:
        NoiseGenerator.load(files[0], device=device)
    _clear(e, needle)


def test_auto_and_cpu_devices_load(files):
    for device in ("auto", "cpu", torch.device("cpu")):
        gen = NoiseGenerator.load(files[0], device=device)
        assert gen.device.type == ("cuda" if device == "auto" and torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("gain", ["2", True, {"g": 1}, [1.0, "x"], float("nan"), -1.0, torch.tensor([]),
                                  np.array(["a"]), torch.tensor(1.0, device="meta")])
def test_bad_gain_is_one_clear_error(files, gain):
    gen = NoiseGenerator.load(files[0])
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with pytest.raises(PnganError) as e:
        gen(x, gain=gain)
    _clear(e, "gain")


def test_good_gains_and_a_gain_for_a_setting_without_levels(files):
    gen = NoiseGenerator.load(files[0])
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    ref = gen(x, generator=g(), gain=2.0)
    for same in (2, np.float32(2.0), [2.0, 2.0], torch.tensor([2.0, 2.0]), np.array([2.0, 2.0])):
        assert torch.equal(gen(x, generator=g(), gain=same), ref)
    with pytest.raises(PnganError) as e:
        NoiseGenerator.load(files[1])(x, gain=2.0)
    _clear(e, "calibrated")


def test_meta_tensors_are_one_clear_error(files):
    gen = NoiseGenerator.load(files[0])
    from pngan.validate import ImageInputError

    with pytest.raises(ImageInputError, match="meta"):
        gen(torch.empty(1, 3, 16, 16, device="meta"))
    with pytest.raises(ImageInputError, match="meta"):
        gen.realistic(torch.empty(1, 3, 16, 16, device="meta"))
