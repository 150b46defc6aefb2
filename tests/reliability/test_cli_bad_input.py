"""Bad input through the real CLI and the data readers: a one-line error naming the file, exit code
2, no partial output, inputs untouched. Broken, truncated, mismatched, empty, tiny or NaN images, wrong
``.mat`` variables, unknown config keys, checkpoints of the wrong architecture, an output inside the
input; a file where a folder is expected, a pairs folder given as ``noisy:``, two images for one name,
input names that read as generated samples (``NAME_K``), targets that cannot hold files. (Interruptions,
divergence and malicious pickles are in tests/test_training.py, tests/test_networks.py and
tests/test_generation.py.)"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from helpers import one_line_error as _one_line
from helpers import write_pairs

from pngan.cli import main
from pngan.data.specs import open_dataset
from pngan.errors import PnganError
from pngan.io.images import read_image, write_image
from pngan.nets.loading import save_network
from pngan.nets.registry import build

TINY = ["--config", "cpu-small", "--quiet", "generator.channels=4", "generator.groups=1", "generator.blocks=1",
        "loss.d_channels=4", "data.patch_size=16", "data.batch_size=2", "run.steps=2", "run.threads=1"]
# train-denoiser options: one step of a tiny DnCNN
DN = ["--arch", "dncnn", "--config", "cpu-small", "--quiet", "--steps", "1", "data.patch_size=16",
      "data.batch_size=2", "net.kwargs={depth: 2, channels: 4}", "run.threads=1"]


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _pairs(root: Path, sizes=((24, 28), (24, 28)), noisy_size=None) -> Path:
    for sub in ("noisy", "clean"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    for k, (h, w) in enumerate(sizes):
        write_image(root / "clean" / f"i{k}.png", torch.rand(3, h, w, generator=g))
        nh, nw = noisy_size if (noisy_size and k == 0) else (h, w)
        write_image(root / "noisy" / f"i{k}.png", torch.rand(3, nh, nw, generator=g))
    return root


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("files")
    torch.manual_seed(0)
    dn = save_network(build("dncnn", channels=4, depth=3), root / "dn.safetensors")
    gen = save_network(build("smnet", channels=4, groups=1, blocks=1), root / "gen.safetensors",
                       {"pngan.synthetic": {"setting": "awgn", "sigma": 50.0}})
    return dn, gen


def _run(capsys, args):
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def _expect_error(capsys, args, *needles):
    code, err = _run(capsys, args)
    assert code == 2, err
    assert err and err[-1].startswith("pngan: error: "), err
    for n in needles:
        assert n in err[-1], (n, err[-1])
    return err[-1]


@pytest.mark.parametrize("kind", ["truncated-png", "truncated-jpeg", "text-as-png"])
def test_broken_image_files(tmp_path, capsys, tiny_files, kind):
    data = _pairs(tmp_path / "d")
    victim = data / "noisy" / "i1.png"
    if kind == "truncated-png":
        victim.write_bytes(victim.read_bytes()[:60])
    elif kind == "truncated-jpeg":
        victim.unlink()
        write_image(data / "noisy" / "i1.jpg", torch.rand(3, 24, 28))
        victim = data / "noisy" / "i1.jpg"
        victim.write_bytes(victim.read_bytes()[:200])
    else:
        victim.write_text("this is not an image\n")
    before = _digest(data)
    _expect_error(capsys, ["train", "--data", f"pairs:{data}", "--denoiser", f"dncnn:{tiny_files[0]}",
                           "--out", str(tmp_path / "run"), *TINY], victim.name)
    assert _digest(data) == before
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_pair_off_by_one_pixel(tmp_path, capsys, tiny_files):
    data = _pairs(tmp_path / "d", noisy_size=(24, 29))
    _expect_error(capsys, ["evaluate", "noise", "--real", f"pairs:{data}", "--setting", "awgn"], "i0.png", "24x29")


def test_clean_image_smaller_than_patch(tmp_path, capsys, tiny_files):
    data = _pairs(tmp_path / "d", sizes=((24, 28), (10, 12)))
    _expect_error(capsys, ["train", "--data", f"pairs:{data}", "--denoiser", f"dncnn:{tiny_files[0]}",
                           "--out", str(tmp_path / "run"), *TINY], "10x12", "16x16")


def test_image_smaller_than_tile_still_generates(tmp_path, capsys, tiny_files):
    d = tmp_path / "clean"
    d.mkdir()
    write_image(d / "tiny.png", torch.rand(3, 5, 7))
    assert main(["generate", "--generator", str(tiny_files[1]), "--input", f"clean:{d}", "--output",
                 str(tmp_path / "out"), "--tile", "64", "--quiet"]) == 0
    assert read_image(tmp_path / "out" / "noisy" / "tiny_0.png").shape == (3, 5, 7)


@pytest.mark.parametrize("layout", ["empty", "only-noisy", "only-clean"])
def test_empty_and_one_sided_folders(tmp_path, capsys, layout):
    d = tmp_path / "d"
    (d / "noisy").mkdir(parents=True)
    (d / "clean").mkdir()
    if layout == "only-noisy":
        write_image(d / "noisy" / "a.png", torch.rand(3, 8, 8))
    if layout == "only-clean":
        write_image(d / "clean" / "a.png", torch.rand(3, 8, 8))
    msg = _expect_error(capsys, ["evaluate", "noise", "--real", f"pairs:{d}", "--setting", "awgn"], str(d))
    assert "no images" in msg


def test_wrong_mat_variables(tmp_path, capsys):
    import scipy.io

    blocks = np.zeros((2, 2, 8, 8, 3), np.uint8)
    scipy.io.savemat(tmp_path / "ValidationNoisyBlocksSrgb.mat", {"noisy": blocks})
    scipy.io.savemat(tmp_path / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": blocks})
    _expect_error(capsys, ["evaluate", "noise", "--real", f"sidd-mat:{tmp_path}", "--setting", "awgn"],
                  "ValidationNoisyBlocksSrgb.mat", "'ValidationNoisyBlocksSrgb' not found")


def test_nan_in_float_tiff(tmp_path, capsys):
    import tifffile

    d = tmp_path / "clean"
    d.mkdir()
    a = np.random.default_rng(0).random((8, 8, 3)).astype(np.float32)
    a[2, 3, 1] = np.nan
    tifffile.imwrite(d / "bad.tif", a)
    _expect_error(capsys, ["synth", "--setting", "awgn", "--input", f"clean:{d}", "--output", str(tmp_path / "o")],
                  "bad.tif", "NaN")
    assert not any((tmp_path / "o").rglob("*.png")) if (tmp_path / "o").exists() else True


def test_16bit_grey_rgba_work(tmp_path, capsys):
    from PIL import Image

    d = tmp_path / "clean"
    d.mkdir()
    write_image(d / "deep.png", torch.rand(3, 9, 10), bits=16)
    Image.fromarray((np.arange(90).reshape(9, 10) % 256).astype(np.uint8)).save(d / "grey.png")
    Image.fromarray(np.full((9, 10, 4), 120, np.uint8)).save(d / "rgba.png")
    with pytest.warns(UserWarning, match="alpha"):
        assert main(["synth", "--setting", "raw", "--input", f"clean:{d}", "--output", str(tmp_path / "o")]) == 0
    assert len(list((tmp_path / "o" / "noisy").iterdir())) == 3


@pytest.mark.parametrize("how", ["yaml", "override"])
def test_unknown_config_key(tmp_path, capsys, tiny_files, how):
    data = _pairs(tmp_path / "d")
    args = ["train", "--data", f"pairs:{data}", "--denoiser", f"dncnn:{tiny_files[0]}", "--out", str(tmp_path / "run")]
    if how == "yaml":
        (tmp_path / "c.yaml").write_text("base: cpu-small\ndata:\n  batch_sise: 4\n")
        msg = _expect_error(capsys, [*args, "--config", str(tmp_path / "c.yaml")], "c.yaml", "data.batch_sise")
    else:
        msg = _expect_error(capsys, [*args, "--config", "cpu-small", "optim.lrr=1e-3"], "optim.lrr")
    assert "did you mean" in msg
    assert not (tmp_path / "run").exists()


def test_wrong_architecture_checkpoint(tmp_path, capsys, tiny_files):
    data = _pairs(tmp_path / "d")
    _expect_error(capsys, ["train", "--data", f"pairs:{data}", "--denoiser", f"dncnn:{tiny_files[1]}",
                           "--out", str(tmp_path / "run"), *TINY], "gen.safetensors", "smnet")


def test_output_equal_to_input(tmp_path, capsys, tiny_files):
    d = tmp_path / "clean"
    d.mkdir()
    write_image(d / "a.png", torch.rand(3, 8, 8))
    before = _digest(d)
    _expect_error(capsys, ["generate", "--generator", str(tiny_files[1]), "--input", f"clean:{d}", "--output", str(d)],
                  "input folder")
    _expect_error(capsys, ["synth", "--setting", "awgn", "--input", f"clean:{d}", "--output", str(d)])
    assert _digest(d) == before


@settings(max_examples=40, deadline=None)
@given(data=st.binary(min_size=0, max_size=300), ext=st.sampled_from([".png", ".jpg", ".tif"]))
def test_decoder_fuzz_random_bytes(tmp_path_factory, data, ext):
    p = tmp_path_factory.mktemp("fz") / f"x{ext}"
    p.write_bytes(data)
    try:
        t = read_image(p)
        assert t.ndim == 3 and t.shape[0] == 3
    except PnganError:
        pass


_SEED_PNG = None


@settings(max_examples=40, deadline=None)
@given(pos=st.integers(0, 10_000), val=st.integers(0, 255), cut=st.integers(0, 10_000))
def test_decoder_fuzz_mutated_png(tmp_path_factory, pos, val, cut):
    from pngan.io.images import encode_image

    global _SEED_PNG
    if _SEED_PNG is None:
        _SEED_PNG = encode_image(torch.rand(3, 20, 20, generator=torch.Generator().manual_seed(0)), ".png")
    b = bytearray(_SEED_PNG)
    b[pos % len(b)] = val
    b = bytes(b[: max(8, cut % (len(b) + 1))])
    p = tmp_path_factory.mktemp("fz") / "m.png"
    p.write_bytes(b)
    try:
        read_image(p)
    except PnganError:
        pass


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), bits=st.sampled_from([8, 16]), ext=st.sampled_from([".png", ".tif"]))
def test_reader_round_trip_property(tmp_path_factory, h, w, bits, ext):
    x = torch.rand(3, h, w, generator=torch.Generator().manual_seed(h * 41 + w))
    p = write_image(tmp_path_factory.mktemp("rt") / f"a{ext}", x, bits=bits)
    y = read_image(p)
    assert y.shape == x.shape
    assert (y - x).abs().max() <= 0.5 / (255 if bits == 8 else 65535) + 1e-7


# --- data specs and folders that do not say what they hold ----------------------------------------------------
@pytest.mark.files("pairs_and_denoiser")
def test_a_file_given_as_a_folder_spec_says_so(f, capsys, tmp_path):
    line = _one_line(capsys, ["synth", "--setting", "awgn", "--input", f"clean:{f}/C/c0.png", "--output",
                              tmp_path / "x"], "c0.png is a file; clean: takes a folder")
    assert "no such folder" not in line
    _one_line(capsys, ["evaluate", "noise", "--real", f"pairs:{f}/P/clean/i0.png", "--setting", "awgn"],
              "is a file; pairs: takes a folder")


@pytest.mark.files("train_test_clean")
def test_a_pairs_folder_given_as_noisy_images_is_named(f, capsys):
    _one_line(capsys, ["evaluate", "noise", "--real", f"noisy:{f}/A", "--setting", "awgn"], f"give pairs:{f}/A")


def test_two_noisy_images_for_one_name_are_refused(tmp_path):
    g = torch.Generator().manual_seed(0)
    img = torch.rand(3, 8, 8, generator=g)
    for kind, noisy, clean in (("nam", "x_real", "x_mean"), ("polyu", "x_real", "x_mean")):
        d = tmp_path / kind
        write_image(d / f"{clean}.png", img)
        write_image(d / f"{noisy}.png", img)
        write_image(d / f"{noisy}.jpg", img)
        with pytest.raises(PnganError) as e:
            open_dataset(f"{kind}:{d}")
        assert "x_real.jpg" in str(e.value) and "x_real.png" in str(e.value), str(e.value)
    d = tmp_path / "nam_clean"  # the clean side too
    for name in ("x_real.png", "x_mean.png", "x_MEAN.tif"):
        write_image(d / name, img)
    with pytest.raises(PnganError, match="two clean images for 'x'"):
        open_dataset(f"nam:{d}")
    d = tmp_path / "pairs"  # the generic reader: noisy/X.png + noisy/X.jpg
    write_image(d / "clean" / "x.png", img)
    write_image(d / "noisy" / "x.png", img)
    write_image(d / "noisy" / "x.jpg", img)
    with pytest.raises(PnganError, match=r"x\.jpg, x\.png"):
        open_dataset(f"pairs:{d}")


def test_two_sidd_images_for_one_index_are_refused(tmp_path):
    img = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))
    sc = tmp_path / "Data" / "0001_001_S6_00100_00060_3200_L"
    for name in ("GT_SRGB_010.PNG", "NOISY_SRGB_010.PNG", "noisy_srgb_010.png"):
        write_image(sc / name, img)
    with pytest.raises(PnganError) as e:
        open_dataset(f"sidd:{tmp_path}")
    assert "NOISY_SRGB_010.PNG" in str(e.value) and "noisy_srgb_010.png" in str(e.value), str(e.value)


@pytest.mark.files("denoiser_run")
def test_input_names_that_read_as_samples_are_refused(f, capsys, tmp_path):
    from pngan.infer.generate import check_sample_names
    from pngan.errors import PnganError

    with pytest.raises(PnganError, match="'a' and 'a_0' would collide"):
        check_sample_names(["a.png", "a_0.png"])
    check_sample_names(["a_0.png", "b_1.png", "c.png"])  # no stem is another's sample


# --- images too small, targets that cannot hold files: refused before any work --------------------------------
@pytest.mark.files("pairs_and_denoiser")
def test_tiny_images_are_named_and_report_refuses_them(f, capsys, tmp_path):
    tiny = write_pairs(tmp_path / "tiny", 1, 1, 1)
    line = _one_line(capsys, ["evaluate", "noise", "--real", f"pairs:{tiny}", "--setting", "awgn"], "'i0")
    assert "1x1" in line and "(1, 3, 1, 1)" not in line
    _one_line(capsys, ["report", "--real", f"pairs:{tiny}", "--out", tmp_path / "rep"], "1x1")
    assert not (tmp_path / "rep" / "index.html").exists()


@pytest.mark.files("train_test_clean")
def test_unwritable_targets_and_tiny_test_images_are_refused_before_any_work(f, capsys, tmp_path):
    from pngan.io.images import write_image

    if Path("/proc").is_dir():  # a folder that cannot hold files even for root
        _one_line(capsys, ["synth", "--setting", "calibrated", "--fit", f"pairs:{f}/A", "--input", f / "C",
                           "--output", tmp_path / "o", "--quiet", "--save-fit", "/proc/x.json"], "cannot create files")
        assert not (tmp_path / "o").exists()
    tiny = tmp_path / "tiny"
    g = torch.Generator().manual_seed(0)
    for side in ("noisy", "clean"):
        write_image(tiny / side / "t.png", torch.rand(3, 9, 30, generator=g))
    _one_line(capsys, ["benchmark", "denoise", "--train", f"pairs:{f}/A", "--test", f"pairs:{tiny}", "--out",
                       tmp_path / "b", "--quiet", "--seeds", "1", "--source", "real", *DN[2:]], "9x30")
    assert not (tmp_path / "b").exists()
