"""The calibrated noise model's inputs, checked (in-process, fast).

A calibration that cannot be right (values out of range, wrong types, missing, extra or misspelt keys,
no ``kernel`` or no ``mix``) is refused whatever path it comes in by (a JSON file on any command, a
generator file or run folder's metadata, ``build_synthetic``, the Python API), naming the file and
the key; an uncorrelated fit (kernel and mix null) loads without a word. The fit works on any small
set of real pairs, refuses a pair too small to fit naming it, and warns once about a pair whose noisy
image shows another scene. (The pair readers' own checks: test_cli_bad_input.py.)"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from helpers import TINY_NETS, one_line_error, write_pairs
from helpers import run_cli as _run

from pngan.cli import main
from pngan.data.specs import open_dataset
from pngan.errors import PnganError
from pngan.io.images import read_image, write_image
from pngan.nets.loading import save_network
from pngan.nets.registry import build
from pngan.noise import build_synthetic
from pngan.noise.calibrated import (SCENE_SLOPE, CalibratedNoise, fit_calibrated, load_calibration,
                                    save_calibration, scene_slope)

GOOD = {"setting": "calibrated", "a": [0.004, 0.002, 0.003], "b": [0.0004, 0.0002, 0.0003],
        "kernel": [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]],
        "mix": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], "clip": True, "fitted_on": "x"}


def _one_line(err: str, *needles: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("pngan: warning")]
    assert len(lines) == 1 and lines[0].startswith("pngan: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cal")
    write_pairs(root / "pairs", 2, 64, 64, seed=0)
    return root


# (what is wrong, change to GOOD, the key the error must name)
BAD_VALUES = [
    ("all-zero kernel", {"kernel": [[0.0] * 3] * 3}, "kernel"),
    ("b = 1e30", {"b": [1e30, 0.0002, 0.0003]}, "'b'"),
    ("NaN", {"a": [float("nan"), 0.002, 0.003]}, "'a'"),
    ("falling below zero", {"a": [-0.01, 0.002, 0.003]}, "'a'"),
    ("no noise at all", {"a": [0.0] * 3, "b": [0.0] * 3}, "'a', 'b'"),
    ("kernel energy 100", {"kernel": [[0.0] * 3, [0.0, 10.0, 0.0], [0.0] * 3]}, "kernel"),
    ("even kernel", {"kernel": [[0.5, 0.5], [0.5, 0.5]]}, "kernel"),
    ("mix 2x3", {"mix": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]}, "mix"),
    ("mix zero row", {"mix": [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]}, "mix"),
    ("kappa 1e6", {"kappa": [1e6, 0.0, 0.0]}, "kappa"),
]
BAD_TYPES = [
    ("b a string", {"b": "0.01"}, "'b'"),
    ("b as strings", {"b": ["0.01", "0.01", "0.01"]}, "'b'"),
    ("two values", {"a": [0.004, 0.002]}, "'a'"),
    ("clip a string", {"clip": "yes"}, "'clip'"),
    ("kernel a number", {"kernel": 1.0}, "'kernel'"),
    ("extra key", {"sigma": 5}, "'sigma'"),
    ("misspelt key", {"kapa": [0.0] * 3}, "did you mean 'kappa'"),
    ("missing b", {"b": None}, "'b'"),
]


def _write(path: Path, change: dict) -> Path:
    d = {**GOOD, **change}
    d = {k: v for k, v in d.items() if v is not None}
    path.write_text(json.dumps(d))
    return path


@pytest.mark.parametrize("what, change, key", BAD_VALUES + BAD_TYPES, ids=[c[0] for c in BAD_VALUES + BAD_TYPES])
def test_bad_calibration_files_are_refused_naming_file_and_key(tmp_path, what, change, key):
    f = _write(tmp_path / "c.json", change)
    with pytest.raises(PnganError) as e:
        load_calibration(f)
    assert str(f) in str(e.value) and key in str(e.value), str(e.value)
    assert "__init__" not in str(e.value)  # the user's key, not the constructor's internals
    # the same dict through build_synthetic (checkpoints, the Python API): same check, same key
    with pytest.raises(PnganError, match=key) as e:
        build_synthetic(**{k: v for k, v in {**GOOD, **change}.items() if v is not None})
    assert "__init__" not in str(e.value)


def test_bad_calibration_is_refused_on_every_cli_path(data, tmp_path, capsys):
    bad = _write(tmp_path / "zero.json", {"kernel": [[0.0] * 3] * 3})
    huge = _write(tmp_path / "huge.json", {"b": [1e30, 0.0002, 0.0003]})
    typed = _write(tmp_path / "typed.json", {"b": "0.01"})
    pairs = f"pairs:{data / 'pairs'}"
    clean = f"clean:{data / 'pairs' / 'clean'}"
    cases = [
        (["synth", "--setting", f"calibrated:{bad}", "--input", clean, "--output", str(tmp_path / "o1")], bad, "kernel"),
        (["synth", "--setting", f"calibrated:{huge}", "--input", clean, "--output", str(tmp_path / "o2")], huge, "'b'"),
        (["synth", "--setting", f"calibrated:{typed}", "--input", clean, "--output", str(tmp_path / "o3")], typed, "'b'"),
        (["evaluate", "noise", "--real", pairs, "--setting", f"calibrated:{bad}"], bad, "kernel"),
        (["train-denoiser", "--arch", "dncnn", "--data", f"synth:{huge}:{clean}", "--out", str(tmp_path / "o4"),
          "--config", "cpu-small", "run.steps=1", "data.patch_size=16", "data.batch_size=2"], huge, "'b'"),
        (["train", "--data", pairs, "--out", str(tmp_path / "o5"), "synthetic.setting=calibrated",
          f"synthetic.calibration={typed}", "run.steps=1", "loss.lambda_align=0", *TINY_NETS], typed, "'b'"),
    ]
    for argv, f, key in cases:
        rc = main(argv)
        err = capsys.readouterr().err
        assert rc == 2, (argv, err)
        _one_line(err, str(f), key)
    for o in ("o1", "o2", "o3"):  # synth: nothing written
        assert not (tmp_path / o).exists()


@pytest.mark.files("sigma_pairs")
def test_calibration_file_missing_kernel_or_mix_is_refused(f, capsys, caplog, tmp_path):
    from pngan.data.specs import open_dataset
    from pngan.noise.calibrated import fit_calibrated, load_calibration, save_calibration

    cal = tmp_path / "cal.json"
    _run(capsys, ["synth", "--input", f"clean:{f}/C", "--output", tmp_path / "O", "--setting", "calibrated",
                  "--fit", f"pairs:{f}/A", "--save-fit", cal])
    d = json.loads(cal.read_text())
    assert d["kernel"] is not None and d["mix"] is not None
    for key in ("kernel", "mix"):
        bad = tmp_path / f"no-{key}.json"
        bad.write_text(json.dumps({k: v for k, v in d.items() if k != key}))
        out = tmp_path / f"out-{key}"
        line = one_line_error(capsys, ["synth", "--setting", f"calibrated:{bad}", "--input", f"clean:{f}/C",
                                  "--output", out], f"missing calibration key '{key}'")
        assert str(bad) in line and not out.exists()
    # an uncorrelated fit writes kernel and mix as null: it still loads, without a warning
    white = tmp_path / "white.json"
    save_calibration(fit_calibrated(open_dataset(f"pairs:{f}/A"), correlated=False), white)
    assert json.loads(white.read_text())["kernel"] is None
    caplog.clear()
    m = load_calibration(white)
    assert m.kernel is None and m.mix is None and "white" not in caplog.text
    _run(capsys, ["synth", "--setting", f"calibrated:{white}", "--input", f"clean:{f}/C", "--output",
                  tmp_path / "out-white"])


def _generator(path: Path, synthetic: dict) -> Path:
    torch.manual_seed(0)
    return save_network(build("smnet", channels=4, groups=1, blocks=1), path, {"pngan.synthetic": synthetic})


def test_calibration_from_a_generator_file_or_run_folder(tmp_path, capsys):
    good = CalibratedNoise(**{k: v for k, v in GOOD.items() if k != "setting"})
    run = tmp_path / "run"
    run.mkdir()
    f = _generator(run / "generator.safetensors", good.describe())
    for where in (f, run):  # the generator's own calibrated input, from its file or its run folder
        assert load_calibration(where).describe() == good.describe()
    save_calibration(good, tmp_path / "c.json")  # and a saved calibration, as before
    assert load_calibration(tmp_path / "c.json").describe() == good.describe()
    awgn = _generator(tmp_path / "awgn.safetensors", {"setting": "awgn", "sigma": 50.0})
    with pytest.raises(PnganError, match="'awgn' setting"):
        load_calibration(awgn)
    plain = tmp_path / "plain.safetensors"
    save_network(build("smnet", channels=4, groups=1, blocks=1), plain)
    with pytest.raises(PnganError, match="no pngan.synthetic"):
        load_calibration(plain)
    broken = _generator(tmp_path / "broken.safetensors", {**good.describe(), "kernel": [[0.0] * 3] * 3})
    with pytest.raises(PnganError) as e:
        load_calibration(broken)
    assert str(broken) in str(e.value) and "kernel" in str(e.value)
    from pngan.infer.api import NoiseGenerator

    with pytest.raises(PnganError) as e:  # the Python API checks the same metadata
        NoiseGenerator.load(broken)
    assert str(broken) in str(e.value) and "kernel" in str(e.value)
    with pytest.raises(PnganError, match="calibrated:FILE.json"):
        load_calibration("")
    with pytest.raises(PnganError, match="without generator.safetensors"):
        load_calibration(tmp_path)


# --- the fit -------------------------------------------------------------------------------------

def _crops(root: Path, files: list[tuple[str, Path, Path]], size: int, top: int = 0, left: int = 0) -> str:
    for name, noisy, clean in files:
        for side, f in (("noisy", noisy), ("clean", clean)):
            write_image(root / side / f"{name}.png", read_image(f)[:, top:top + size, left:left + size])
    return f"pairs:{root}"


def test_level_match_fit_works_on_small_real_crops_and_single_iso_sets(shared, tmp_path, capsys):
    real = shared / "data" / "real"
    sidd = [(f"sample_{i:02d}", real / "sidd" / "noisy" / f"sample_{i:02d}.png",
             real / "sidd" / "clean" / f"sample_{i:02d}.png") for i in range(4)]
    cc = [(n, real / "cc15" / f"{n}_real.png", real / "cc15" / f"{n}_mean.png")
          for n in ("d800_iso6400_1", "d800_iso6400_2", "d800_iso6400_3")]
    sets = [_crops(tmp_path / "sidd_a", sidd, 64), _crops(tmp_path / "sidd_b", sidd, 64, 200, 50),
            _crops(tmp_path / "iso6400", cc, 64, 200, 200), _crops(tmp_path / "one", sidd[:1], 64)]
    for spec in sets:  # four 64x64 SIDD crops (twice), one ISO of one camera, a single pair
        m = fit_calibrated(open_dataset(spec), levels=True)
        top = max(max(b, a + b) for a, b in zip(m.a, m.b))
        assert 1e-5 < top < 0.05, (spec, m.a, m.b)  # noise std between 1 and 57 levels of 255
        assert all(b >= 0 and a + b >= 0 for a, b in zip(m.a, m.b))
    rc = main(["evaluate", "noise", "--real", sets[1], "--setting", "calibrated", "--fit", sets[0],
               "--level", "match", "--json", str(tmp_path / "n.json")])
    assert rc == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "n.json").read_text())["mean"]["std_ratio"] > 0.5


def test_fit_refuses_a_pair_too_small_naming_it(data, tmp_path, capsys):
    root = tmp_path / "fit"
    write_pairs(root, 2, 24, 24, seed=1)
    g = torch.Generator().manual_seed(2)
    write_image(root / "clean" / "tiny.png", torch.rand(3, 1, 1, generator=g))
    write_image(root / "noisy" / "tiny.png", torch.rand(3, 1, 1, generator=g))
    with pytest.raises(PnganError, match="'tiny' is 1x1"):
        fit_calibrated(open_dataset(f"pairs:{root}"))
    out = tmp_path / "out"
    rc = main(["synth", "--setting", "calibrated", "--fit", f"pairs:{root}", "--input",
               f"clean:{data / 'pairs' / 'clean'}", "--output", str(out)])
    _one_line(capsys.readouterr().err, "'tiny' is 1x1")
    assert rc == 2 and not out.exists()  # nothing written, no job.json


def _scene_pairs(root: Path, swap: bool) -> str:
    """Two 64x64 pairs of smooth random scenes with noise std 10/255; ``swap``: pair b's noisy image
    shows pair a's scene."""
    g = torch.Generator().manual_seed(3)
    scenes = [torch.nn.functional.interpolate(torch.rand(1, 3, 8, 8, generator=g), size=64, mode="bilinear")[0]
              for _ in range(2)]
    for i, name in enumerate(("a", "b")):
        other = scenes[0] if swap and name == "b" else scenes[i]
        write_image(root / "clean" / f"{name}.png", scenes[i])
        write_image(root / "noisy" / f"{name}.png", (other + 10 / 255 * torch.randn(3, 64, 64, generator=g)).clamp(0, 1))
    return f"pairs:{root}"


def test_fit_warns_once_about_a_pair_of_another_scene(tmp_path):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        fit_calibrated(open_dataset(_scene_pairs(tmp_path / "same", swap=False)))
    assert not [x for x in w if "another scene" in str(x.message)]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        fit_calibrated(open_dataset(_scene_pairs(tmp_path / "swap", swap=True)), levels=True)
    msgs = [str(x.message) for x in w if "another scene" in str(x.message)]
    assert len(msgs) == 1 and "'b'" in msgs[0] and "'a'" not in msgs[0], msgs


def test_no_shared_real_pair_looks_like_another_scene(shared):
    # the warning's false-positive guard (it passes before the warning existed, by construction):
    # every shared real pair, whole and in 64x64 crops, stays clear of its threshold
    real = shared / "data" / "real"
    worst = 0.0
    for spec in (f"pairs:{real / 'sidd'}", f"nam:{real / 'cc15'}", f"pairs:{real / 'nam25'}", f"polyu:{real / 'polyu'}"):
        ds = open_dataset(spec)
        for i in range(len(ds)):
            s = ds.load(i)
            c = s.clean.double().numpy()
            nz = s.noisy.double().numpy() - c
            worst = min(worst, scene_slope(c, nz))
            h, w = c.shape[1:]
            for t in range(0, h - 63, 64):
                for l in range(0, w - 63, 64):
                    worst = min(worst, scene_slope(c[:, t:t + 64, l:l + 64], nz[:, t:t + 64, l:l + 64]))
    assert worst > SCENE_SLOPE + 0.1, worst
