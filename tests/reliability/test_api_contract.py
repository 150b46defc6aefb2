"""The Python API (NoiseGenerator) keeps the CLI's contract: float input in [0, 1], finite,
(3, H, W) or (B, 3, H, W), non-empty; output clamped to [0, 1]; violations are one clear error
(ImageInputError: a PnganError and a ValueError), never a traceback from deep inside torch."""

from __future__ import annotations

import pytest
import torch

from pngan.errors import PnganError
from pngan.infer.api import NoiseGenerator
from pngan.nets.loading import save_network
from pngan.nets.registry import build
from pngan.validate import ImageInputError


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    torch.manual_seed(0)
    f = save_network(build("smnet", channels=4, groups=1, blocks=1), root / "g.safetensors",
                     {"pngan.synthetic": {"setting": "awgn", "sigma": 50.0}})
    return NoiseGenerator.load(f)


@pytest.mark.parametrize("bad, needle", [
    (torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8), "0-255"),
    (torch.rand(1, 3, 16, 16) * 255, "divide by 255"),
    (torch.full((1, 3, 16, 16), float("nan")), "NaN"),
    (torch.rand(0, 3, 16, 16), "empty"),
    (torch.rand(1, 3, 0, 16), "empty"),
    (torch.rand(1, 1, 16, 16), "shape"),
    (torch.rand(16, 16), "shape"),
    ([[0.5]], "torch.Tensor"),
    (torch.rand(1, 3, 16, 16) - 0.5, "[0, 1]"),
])
def test_bad_input_is_one_clear_error(gen, bad, needle):
    with pytest.raises(ImageInputError, match=needle.replace("[", r"\[").replace("]", r"\]")) as e:
        gen(bad)
    assert isinstance(e.value, PnganError) and isinstance(e.value, ValueError)


def test_good_inputs_and_output_contract(gen):
    x = torch.rand(2, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    y = gen(x, generator=g())
    assert y.shape == x.shape and y.dtype == torch.float32 and 0 <= float(y.min()) and float(y.max()) <= 1
    y64 = gen(x.double(), generator=g())  # float64 in, float64 out, same values
    assert y64.dtype == torch.float64 and torch.allclose(y64.float(), y, atol=1e-6)
    yn = gen(x.numpy(), generator=g())  # numpy arrays are accepted as tensors
    assert torch.equal(yn, y)
    y3 = gen(x[0], generator=g())  # one (3, H, W) image
    assert y3.shape == x.shape[1:] and torch.equal(y3, y[0])


def test_tile_settings_are_checked(gen):
    for tile in (1, 4, -5, 2.5):
        with pytest.raises(PnganError, match="tile"):
            NoiseGenerator(gen.net, gen.synthetic, tile=tile)
    with pytest.raises(PnganError, match="overlap"):
        NoiseGenerator(gen.net, gen.synthetic, tile=32, overlap=-1)
    whole = NoiseGenerator(gen.net, gen.synthetic, tile=0)  # 0: one pass over the whole image
    x = torch.rand(1, 3, 40, 36, generator=torch.Generator().manual_seed(0))
    assert whole(x, generator=torch.Generator().manual_seed(1)).shape == x.shape


def test_generator_and_dataset_arguments_are_one_clear_error(gen, tmp_path):
    """A seed passed as the generator, a patch size of another type or below 1."""
    from pngan.infer.api import ApiArgumentError, GeneratedPairs
    from pngan.io.images import write_image

    with pytest.raises(ApiArgumentError, match="torch.Generator"):
        gen(torch.rand(1, 3, 16, 16), generator=5)
    write_image(tmp_path / "c" / "a.png", torch.rand(3, 16, 16))
    for bad in (1.5, "16", 0, -1, True):
        with pytest.raises(ApiArgumentError, match="patch_size"):
            GeneratedPairs(f"clean:{tmp_path}/c", gen, patch_size=bad)
    with pytest.raises(ApiArgumentError, match="samples"):
        GeneratedPairs(f"clean:{tmp_path}/c", gen, samples=0)
    assert len(GeneratedPairs(f"clean:{tmp_path}/c", gen, patch_size=8)) == 1
