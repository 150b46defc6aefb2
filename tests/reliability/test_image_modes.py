"""Every colour mode Pillow can hand back decodes to the right RGB, checked against a reference
conversion of the same file; what is dropped (alpha) or reinterpreted (CMYK, YCbCr, LAB, HSV) is
said once per folder."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from pngan.io import images
from pngan.io.images import pillow_to_array, read_image

RNG = np.random.default_rng(0)
BASE = Image.fromarray(RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8), "RGB")


def _make(mode: str) -> Image.Image:
    if mode in ("I;16", "I;16B", "I;16L"):
        a = RNG.integers(0, 65536, (6, 8)).astype(">u2" if mode == "I;16B" else "<u2")
        return Image.frombytes(mode, (8, 6), a.tobytes())
    if mode == "I":
        return Image.fromarray(RNG.integers(0, 65536, (6, 8)).astype(np.int32), "I")
    if mode == "F":
        return Image.fromarray(RNG.random((6, 8), dtype=np.float32), "F")
    if mode == "La":
        return BASE.convert("LA").convert("La")
    if mode == "RGBa":
        return BASE.convert("RGBA").convert("RGBa")
    if mode == "PA":
        return BASE.convert("P").convert("PA")
    if mode in ("LA", "RGBA"):
        im = BASE.convert(mode)
        im.putalpha(Image.fromarray(RNG.integers(0, 256, (6, 8), dtype=np.uint8), "L"))
        return im
    return BASE.convert(mode)


def _reference(im: Image.Image) -> np.ndarray:
    """What the image means as RGB in [0, 1]: 16/32-bit integer grey / 65535, float grey as is, every
    other mode through Pillow's own conversion to RGB."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        g = np.asarray(im).astype(np.float64) / 65535
        return np.repeat(g[:, :, None], 3, axis=2)
    if im.mode == "F":
        return np.repeat(np.asarray(im).astype(np.float64)[:, :, None], 3, axis=2)
    if im.mode == "La":
        im = im.convert("LA")
    return np.asarray(im.convert("RGB")).astype(np.float64) / 255


MODES = ["1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV",
         "I", "I;16", "I;16B", "I;16L", "F"]
SAYS = {"LA": "alpha", "La": "alpha", "PA": "alpha", "RGBA": "alpha", "RGBa": "alpha",
        "CMYK": "converted", "YCbCr": "converted", "LAB": "converted", "HSV": "converted"}


@pytest.mark.parametrize("mode", MODES)
def test_mode_decodes_like_the_reference(mode, tmp_path):
    im = _make(mode)
    assert im.mode == mode
    # in memory (modes no format stores, e.g. HSV, RGBa, La, come only this way)
    images._noted.clear()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        arr = pillow_to_array(im, tmp_path / "mem.png")
        got = images._channels(images._to_float(arr, tmp_path / "mem.png"), tmp_path / "mem.png")
    np.testing.assert_allclose(got, _reference(im), atol=1e-6)
    said = [str(x.message) for x in w]
    if mode in SAYS:
        assert len(said) == 1 and SAYS[mode] in said[0], said
    else:
        assert not said, said
    # every file format that can hold the mode, read back through read_image
    stored = 0
    for ext, fmt in ((".png", "PNG"), (".tif", "TIFF"), (".jpg", "JPEG")):
        d = tmp_path / fmt
        d.mkdir()
        try:
            im.save(d / f"a{ext}", fmt)
            im.save(d / f"b{ext}", fmt)
        except (OSError, ValueError, KeyError):
            continue
        stored += 1
        images._noted.clear()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            for name in ("a", "b"):
                x = read_image(d / f"{name}{ext}").numpy().transpose(1, 2, 0)
                with Image.open(d / f"{name}{ext}") as ref_im:
                    ref_im.load()
                    ref = _reference(ref_im)
                np.testing.assert_allclose(x, ref, atol=1e-6, err_msg=f"{mode} as {fmt}")
        said = [str(x.message) for x in w]
        assert len(said) <= 1, said  # once per folder, not once per file
    if mode in ("1", "L", "RGB", "RGBA", "P", "I;16", "CMYK", "LAB", "F", "I"):
        assert stored, f"{mode}: no format could store it"
