"""Image I/O, every data-set reader (on real files in ../shared and on files written in the
published layouts), splits and the patch sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pngan.data.patches import PatchSampler
from pngan.data.specs import open_dataset, parse_spec
from pngan.errors import PnganError
from pngan.io.images import read_image, write_image


def _img(h, w, seed=0):
    return torch.rand(3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("ext,bits,tol", [(".png", 8, 0.5 / 255), (".png", 16, 0.5 / 65535), (".tif", 8, 0.5 / 255),
                                          (".tif", 16, 0.5 / 65535), (".jpg", 8, 0.25)])
def test_image_round_trip(tmp_path, ext, bits, tol):
    x = _img(19, 23)
    p = write_image(tmp_path / f"a{ext}", x, bits=bits)
    y = read_image(p)
    assert y.shape == x.shape and y.dtype == torch.float32
    err = (y - x).abs()
    assert (err.mean() if ext == ".jpg" else err.max()) <= tol + 1e-7


def test_grey_and_rgba(tmp_path):
    from PIL import Image

    g = (np.arange(20 * 10).reshape(20, 10) % 256).astype(np.uint8)
    Image.fromarray(g).save(tmp_path / "g.png")
    y = read_image(tmp_path / "g.png")
    assert y.shape == (3, 20, 10) and torch.equal(y[0], y[2])
    rgba = np.zeros((5, 6, 4), np.uint8)
    rgba[..., 0] = 200
    Image.fromarray(rgba).save(tmp_path / "a.png")
    with pytest.warns(UserWarning, match="alpha"):
        y = read_image(tmp_path / "a.png")
    assert y.shape == (3, 5, 6) and abs(float(y[0, 0, 0]) - 200 / 255) < 1e-6


def test_write_never_clobbers_when_asked(tmp_path):
    p = write_image(tmp_path / "x.png", _img(4, 4))
    before = p.read_bytes()
    with pytest.raises(PnganError, match="x.png"):
        write_image(p, _img(4, 4, 1), overwrite=False)
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["x.png"]  # no temp files left


def test_spec_parsing():
    assert parse_spec("polyu:/d/PolyU@test") == ("polyu", "/d/PolyU", "test")
    assert parse_spec("pairs:rel/dir") == ("pairs", "rel/dir", "all")
    with pytest.raises(PnganError, match="unknown data format"):
        parse_spec("foo:/x")
    with pytest.raises(PnganError, match="FORMAT:PATH"):
        parse_spec("/just/a/path")


def test_pairs_and_generated_naming(tmp_path):
    for sub in ("noisy", "clean"):
        (tmp_path / sub).mkdir()
    write_image(tmp_path / "clean" / "a.png", _img(8, 9))
    write_image(tmp_path / "noisy" / "a_0.png", _img(8, 9, 1))
    write_image(tmp_path / "noisy" / "a_1.png", _img(8, 9, 2))
    d = open_dataset(f"pairs:{tmp_path}")
    assert d.names == ["a_0", "a_1"]
    s = d[1]
    assert s.clean.shape == s.noisy.shape == (3, 8, 9) and s.meta["source"] == "a"


def test_pair_errors_name_the_file(tmp_path):
    for sub in ("noisy", "clean"):
        (tmp_path / sub).mkdir()
    write_image(tmp_path / "clean" / "a.png", _img(8, 9))
    write_image(tmp_path / "noisy" / "a.png", _img(8, 10))  # one pixel wider
    with pytest.raises(PnganError, match=r"a\.png.*8x10"):
        open_dataset(f"pairs:{tmp_path}")
    write_image(tmp_path / "noisy" / "a.png", _img(8, 9))
    write_image(tmp_path / "noisy" / "b.png", _img(8, 9))
    with pytest.raises(PnganError, match=r"b\.png.*no clean partner"):
        open_dataset(f"pairs:{tmp_path}")
    assert open_dataset(f"pairs:{tmp_path}", skip_bad=True).names == ["a"]


def test_sidd_medium_layout(tmp_path):
    scene = tmp_path / "Data" / "0001_001_S6_00100_00060_3200_L"
    scene.mkdir(parents=True)
    for i in ("010", "011"):
        write_image(scene / f"GT_SRGB_{i}.PNG", _img(12, 16))
        write_image(scene / f"NOISY_SRGB_{i}.PNG", _img(12, 16, 3))
    d = open_dataset(f"sidd:{tmp_path}")
    assert d.names == ["0001_001_S6_00100_00060_3200_L_010", "0001_001_S6_00100_00060_3200_L_011"]
    assert d[0].meta["iso"] == 100 and d[0].meta["phone"] == "S6" and d[0].meta["brightness"] == "L"
    (scene / "GT_SRGB_011.PNG").unlink()
    with pytest.raises(PnganError, match="NOISY_SRGB_011"):
        open_dataset(f"sidd:{tmp_path}")


def _blocks(seed, n=2, b=3, h=8, w=8):
    return np.random.default_rng(seed).integers(0, 256, (n, b, h, w, 3), dtype=np.uint8)


def _write_v73(path, arrays: dict):
    import h5py

    with h5py.File(path, "w", userblock_size=512) as f:
        for k, a in arrays.items():
            f.create_dataset(k, data=np.ascontiguousarray(a.T))  # MATLAB stores column-major
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 .".ljust(116, b" "))


@pytest.mark.parametrize("version", ["v5", "v7.3"])
def test_sidd_mat_blocks(tmp_path, version):
    import scipy.io

    noisy, gt = _blocks(0), _blocks(1)
    if version == "v5":
        scipy.io.savemat(tmp_path / "ValidationNoisyBlocksSrgb.mat", {"ValidationNoisyBlocksSrgb": noisy})
        scipy.io.savemat(tmp_path / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": gt})
    else:
        _write_v73(tmp_path / "ValidationNoisyBlocksSrgb.mat", {"ValidationNoisyBlocksSrgb": noisy})
        _write_v73(tmp_path / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": gt})
    d = open_dataset(f"sidd-mat:{tmp_path}")
    assert len(d) == 6 and d.names[4] == "val_0001-0001"
    s = d[4]
    assert torch.allclose(s.noisy, torch.from_numpy(noisy[1, 1].astype(np.float32) / 255).permute(2, 0, 1))
    assert torch.allclose(s.clean, torch.from_numpy(gt[1, 1].astype(np.float32) / 255).permute(2, 0, 1))


def test_sidd_mat_wrong_variable(tmp_path):
    import scipy.io

    scipy.io.savemat(tmp_path / "ValidationNoisyBlocksSrgb.mat", {"Noisy": _blocks(0)})
    scipy.io.savemat(tmp_path / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": _blocks(1)})
    with pytest.raises(PnganError, match="ValidationNoisyBlocksSrgb"):
        open_dataset(f"sidd-mat:{tmp_path}")
    scipy.io.savemat(tmp_path / "ValidationNoisyBlocksSrgb.mat", {"ValidationNoisyBlocksSrgb": _blocks(0)[0]})
    with pytest.raises(PnganError, match="shape"):
        open_dataset(f"sidd-mat:{tmp_path}")


def _write_dnd(root, images, boxes):
    import h5py

    (root / "images_srgb").mkdir(parents=True)
    with h5py.File(root / "info.mat", "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        rl = []
        for i, b in enumerate(boxes):
            ds = refs.create_dataset(f"b{i}", data=np.asarray(b, np.float64).T)
            rl.append(ds.ref)
        info = f.create_group("info")
        info.create_dataset("boundingboxes", data=np.array([rl], dtype=h5py.ref_dtype))
    for i, img in enumerate(images):
        with h5py.File(root / "images_srgb" / f"{i + 1:04d}.mat", "w", userblock_size=512) as f:
            f.create_dataset("InoisySRGB", data=np.ascontiguousarray(img.T))


def test_dnd_boxes_and_submission(tmp_path):
    import scipy.io

    from pngan.data.dnd import denoise_dnd

    rng = np.random.default_rng(0)
    imgs = [rng.random((20, 30, 3)).astype(np.float32) for _ in range(2)]
    boxes = [[[1, 1, 8, 10], [5, 11, 20, 30]], [[2, 3, 9, 12], [11, 1, 20, 5]]]  # 1-based inclusive
    _write_dnd(tmp_path / "dnd", imgs, boxes)
    d = open_dataset(f"dnd:{tmp_path / 'dnd'}")
    assert d.names == ["0001_01", "0001_02", "0002_01", "0002_02"] and not d.has_clean
    s = d[1]
    assert np.allclose(s.noisy.permute(1, 2, 0).numpy(), imgs[0][4:20, 10:30])
    bundle = denoise_dnd(d, lambda x: x * 0.5, tmp_path / "sub")
    m = scipy.io.loadmat(bundle / "0002.mat")
    assert m["Idenoised"].shape == (1, 2) and not bool(m["israw"])
    assert np.allclose(m["Idenoised"][0, 1], 0.5 * imgs[1][10:20, 0:5], atol=1e-6)
    crop = scipy.io.loadmat(tmp_path / "sub" / "0001_02.mat")["Idenoised_crop"]
    assert crop.dtype == np.float32 and crop.shape == (16, 20, 3)


def test_patch_sampler_is_a_function_of_seed_and_step(tmp_path):
    for sub in ("noisy", "clean"):
        (tmp_path / sub).mkdir()
    for k in range(3):
        write_image(tmp_path / "clean" / f"i{k}.png", _img(20, 24, k))
        write_image(tmp_path / "noisy" / f"i{k}.png", _img(20, 24, 10 + k))
    d = open_dataset(f"pairs:{tmp_path}")
    a = PatchSampler(d, 8, 4, seed=3)
    b = PatchSampler(d, 8, 4, seed=3, cache_bytes=1)  # evicts constantly: same batches
    ba, bb = a.batch(7), b.batch(7)
    assert torch.equal(ba["clean"], bb["clean"]) and torch.equal(ba["noisy"], bb["noisy"])
    halves = [a.batch(7, r, 2) for r in range(2)]
    assert torch.equal(torch.cat([h["clean"] for h in halves]), ba["clean"])
    assert not torch.equal(a.batch(8)["clean"], ba["clean"])
    # aligned: each clean patch is the crop of the same place as its noisy patch
    idx, top, left, hf, vf = a.draw(7, 0)
    s = d[idx]
    c = s.clean[:, top:top + 8, left:left + 8]
    c = c.flip(-1) if hf else c
    c = c.flip(-2) if vf else c
    assert torch.allclose(ba["clean"][0], c, atol=1 / 255)
    with pytest.raises(PnganError, match=r"20x24.*smaller than the 32x32"):
        PatchSampler(d, 32, 4)


@pytest.mark.shared
def test_real_readers_on_shared(shared):
    real = shared / "data" / "real"
    polyu = open_dataset(f"polyu:{real / 'polyu'}")
    cc15 = open_dataset(f"nam:{real / 'cc15'}")
    nam = open_dataset(f"pairs:{real / 'nam25'}")
    sidd = open_dataset(f"sidd:{real / 'sidd'}")
    assert (len(polyu), len(cc15), len(nam), len(sidd)) == (81, 15, 25, 18)
    tr, te = open_dataset(f"polyu:{real / 'polyu'}@train"), open_dataset(f"polyu:{real / 'polyu'}@test")
    assert len(tr) + len(te) == 81 and len(te) > 0
    scene = lambda n: n.rsplit("_", 1)[0]  # noqa: E731
    assert not {scene(n) for n in tr.names} & {scene(n) for n in te.names}
    s = cc15[0]
    assert s.noisy.shape == s.clean.shape == (3, 512, 512)
    assert float((s.noisy - s.clean).abs().mean()) > 0.005  # real noise is there
    assert len(open_dataset(f"clean:{shared / 'data' / 'clean' / 'mcmaster'}")) == 18


def test_held_out_overlap_is_found_by_pixels_too(tmp_path):
    """A held-out pair saved again with another PNG compression (other bytes, same pixels) is still
    the same image: refused like a byte copy; an image of the same size with other pixels is not."""
    from PIL import Image

    from pngan.data.specs import refuse_overlap
    from pngan.errors import PnganError

    g = torch.Generator().manual_seed(0)
    for d, names in (("train", ["a", "b"]), ("test", ["t"])):
        for n in names:
            c = torch.rand(3, 24, 24, generator=g)
            write_image(tmp_path / d / "clean" / f"{n}.png", c)
            write_image(tmp_path / d / "noisy" / f"{n}.png", c)
    refuse_overlap([f"pairs:{tmp_path / 'train'}"], [f"pairs:{tmp_path / 'test'}"])  # other pixels: fine
    src = tmp_path / "test" / "clean" / "t.png"
    for sub in ("clean", "noisy"):
        Image.open(tmp_path / "test" / sub / "t.png").save(tmp_path / "train" / sub / "zz.png", compress_level=1)
    assert (tmp_path / "train" / "clean" / "zz.png").read_bytes() != src.read_bytes()
    with pytest.raises(PnganError, match="'t' is also a training image .*'zz'"):
        refuse_overlap([f"pairs:{tmp_path / 'train'}"], [f"pairs:{tmp_path / 'test'}"])


def test_training_data_follows_the_networks_a_model_was_trained_with(tmp_path):
    """A generator whose frozen denoiser, or a denoiser whose --init, was trained on some pairs learned
    from them too: their data is part of what it saw (and a cycle of records ends)."""
    from pngan.data.specs import generator_training_data, network_training_data
    from pngan.train import runid

    dte, gen, ft = tmp_path / "dte", tmp_path / "gen", tmp_path / "ft"
    for d in (dte, gen, ft):
        d.mkdir()
    runid.record_new(dte, {"kind": "train-denoiser", "data": ["pairs:T"], "networks": {"init": None}})
    runid.record_new(gen, {"kind": "train", "data": ["pairs:A"],
                           "networks": {"denoiser": {"sha256": "x", "spec": str(dte / "denoiser.safetensors")}}})
    runid.record_new(ft, {"kind": "train-denoiser", "data": ["pairs:B"],
                          "networks": {"init": {"sha256": "y", "spec": f"dncnn:{gen / 'generator.safetensors'}"}}})
    (dte / "denoiser.safetensors").write_bytes(b"")
    (gen / "generator.safetensors").write_bytes(b"")
    assert generator_training_data(gen) == ["pairs:A", "pairs:T"]
    assert network_training_data(f"dncnn:{gen / 'generator.safetensors'}") == ["pairs:A", "pairs:T"]
    assert generator_training_data(ft) == ["pairs:B", "pairs:A", "pairs:T"]
    runid.record_new(dte, {"kind": "train-denoiser", "data": ["pairs:T"],
                           "networks": {"init": {"sha256": "z", "spec": str(ft / "denoiser.safetensors")}}})
    (ft / "denoiser.safetensors").write_bytes(b"")
    assert generator_training_data(ft) == ["pairs:B", "pairs:A", "pairs:T"]  # the cycle ends


def test_save_images_of_a_dnd_set_alone_is_refused(tmp_path, capsys):
    """DND has no clean images: --save-images would make a folder with a job record and no image."""
    import torch

    from pngan.cli import main
    from pngan.nets.loading import save_network
    from pngan.nets.registry import build

    rng = np.random.default_rng(0)
    _write_dnd(tmp_path / "dnd", [rng.random((20, 30, 3)).astype(np.float32)], [[[1, 1, 8, 10]]])
    torch.manual_seed(0)
    model = save_network(build("dncnn", depth=2, channels=4), tmp_path / "dn.safetensors", {})
    assert main(["evaluate", "denoiser", "--model", f"dncnn:{model}", "--data", f"dnd:{tmp_path / 'dnd'}",
                 "--out", str(tmp_path / "sub"), "--save-images", str(tmp_path / "imgs")]) == 2
    assert "submission bundle" in capsys.readouterr().err
    assert not (tmp_path / "imgs").exists() and not (tmp_path / "sub").exists()


def test_training_data_follows_on_the_fly_sources_and_copied_weights(tmp_path):
    """A denoiser trained on gen:RUN pairs learned from RUN's data; a calibration's pairs count for a
    synth:FILE.json source; weights copied out of their run folder name their data in metadata."""
    from pngan.data.specs import generator_training_data, network_training_data
    from pngan.nets.loading import save_network
    from pngan.nets.registry import build
    from pngan.noise.calibrated import CalibratedNoise, save_calibration
    from pngan.train import runid

    gen, dn = tmp_path / "gen", tmp_path / "dn"
    gen.mkdir()
    dn.mkdir()
    (gen / "generator.safetensors").write_bytes(b"")
    runid.record_new(gen, {"kind": "train", "data": ["pairs:/x/T@all"], "networks": {}})
    cal = tmp_path / "cal.json"
    save_calibration(CalibratedNoise([0.01] * 3, [1e-4] * 3, fitted_on="pairs:/x/U@all (2 pairs)"), cal)
    runid.record_new(dn, {"kind": "train-denoiser", "data": [f"gen:{gen}:clean:/x/C@all", f"synth:{cal}:clean:/x/C@all"],
                          "networks": {"init": None}})
    assert generator_training_data(dn)[2:] == ["pairs:/x/T@all", "pairs:/x/U@all"]
    copied = save_network(build("dncnn", depth=2, channels=4), tmp_path / "elsewhere" / "w.safetensors",
                          {"pngan.data": "pairs:/x/T@all (3 pairs) + gen:/r:clean:/x/C@all (2 clean images)"})
    assert network_training_data(f"dncnn:{copied}") == ["pairs:/x/T@all", "clean:/x/C@all"]


def test_large_files_with_the_same_ends_are_not_taken_for_one_image(tmp_path, monkeypatch):
    """Large files are fingerprinted by their size and ends; an overlap found that way is confirmed on
    the whole file before a held-out set is refused (two scans with the same white border are not one)."""
    import pngan.data.specs as specs
    from pngan.data.specs import refuse_overlap

    monkeypatch.setattr(specs, "_WHOLE_HASH_BYTES", 1 << 20)  # 3 MiB files: fingerprinted by their ends
    monkeypatch.setattr(specs, "_DIGESTS", {})
    for d, value in (("train", 0.2), ("test", 0.8)):
        img = torch.ones(3, 1024, 1024)
        img[:, 500:510, 500:510] = value  # the same first and last MiB, another middle
        write_image(tmp_path / d / "clean" / "x.bmp", img)
        write_image(tmp_path / d / "noisy" / "x.bmp", img)
    refuse_overlap([f"pairs:{tmp_path / 'train'}"], [f"pairs:{tmp_path / 'test'}"])


def test_single_file_outputs_never_go_into_the_data_read(tmp_path, capsys):
    """--json / --save-fit inside a data set's clean/ or noisy/ would join the data set and break every
    later read of it: refused before any work."""
    from pngan.cli import main

    g = torch.Generator().manual_seed(0)
    for n in ("a", "b"):
        c = torch.rand(3, 24, 24, generator=g) * 0.6 + 0.2
        write_image(tmp_path / "t" / "clean" / f"{n}.png", c)
        write_image(tmp_path / "t" / "noisy" / f"{n}.png", (c + 0.05 * torch.randn(c.shape, generator=g)).clamp(0, 1))
    spec = f"pairs:{tmp_path / 't'}"
    for argv, opt in ((["evaluate", "noise", "--real", spec, "--setting", "awgn", "--json", str(tmp_path / "t/clean/m.json")], "--json"),
                      (["synth", "--setting", "calibrated", "--fit", spec, "--input", f"clean:{tmp_path / 't/clean'}",
                        "--output", str(tmp_path / "o"), "--save-fit", str(tmp_path / "t/noisy/f.json")], "--save-fit")):
        assert main(argv) == 2
        assert f"{opt}" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "t" / "clean").iterdir()) == ["a.png", "b.png"]
    assert sorted(p.name for p in (tmp_path / "t" / "noisy").iterdir()) == ["a.png", "b.png"]


def test_the_built_in_cameras_splits_are_checked_like_files():
    from pngan.data.specs import refuse_overlap

    refuse_overlap(["camera:builtin"], ["camera:builtin@test"])  # the training split and the test split
    for train, test in (("camera:builtin@test", "camera:builtin@test"), ("camera:builtin@all", "camera:builtin@test"),
                        ("synth:awgn:camera:builtin", "camera:builtin@all")):
        with pytest.raises(PnganError, match="is also a training image"):
            refuse_overlap([train], [test])


def test_a_calibration_fitted_on_the_held_out_pairs_is_warned_about(tmp_path, caplog):
    from pngan.data.specs import generator_training_data, refuse_overlap
    from pngan.noise.calibrated import CalibratedNoise, save_calibration
    from pngan.train import runid

    g = torch.Generator().manual_seed(0)
    for d in ("A", "T"):
        c = torch.rand(3, 16, 16, generator=g)
        write_image(tmp_path / d / "clean" / "x.png", c)
        write_image(tmp_path / d / "noisy" / "x.png", c)
    test = f"pairs:{tmp_path / 'T'}@all"
    cal = tmp_path / "cal.json"
    save_calibration(CalibratedNoise([0.01] * 3, [1e-4] * 3, fitted_on=f"{test} (1 pairs)"), cal)
    with caplog.at_level("WARNING", logger="pngan"):
        refuse_overlap([f"synth:{cal}:pairs:{tmp_path / 'A'}"], [test])
    assert "the calibration" in caplog.text and "fitted on the held-out pairs" in caplog.text
    gen = tmp_path / "gen"
    gen.mkdir()
    runid.write(gen, {"identity": {"kind": "train", "data": [f"pairs:{tmp_path / 'A'}@all"], "networks": {}},
                      "resumes": [], "config": {"synthetic": {"calibration": str(cal)}}})
    assert test in generator_training_data(gen)  # a generator fed by that calibration
