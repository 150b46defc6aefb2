"""The level policy of generated pairs (pngan.noise.level): parsing, seeded
draws that follow the policy, the recorded per-pair levels of a calibration, the noise actually
following the drawn level, manifests and job identity of ``generate`` / ``synth``, the on-the-fly
sources of ``train-denoiser`` (``data.gain``) and the Python API."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from pngan.cli import main
from pngan.errors import PnganError
from pngan.io.images import read_image, write_image
from pngan.noise.calibrated import CalibratedNoise, calibration_from_dict, load_calibration, save_calibration
from pngan.noise.level import LEVEL_SPREAD, LevelPolicy, default_policy, parse_level, resolve_level

# flat grey images and a white, channel-independent model (std 0.01 at gain 1): the noise std of a
# generated image is exactly gain * 0.01, far from clipping at the gains used here (<= 2)
CAL = {"setting": "calibrated", "a": [0.0, 0.0, 0.0], "b": [1e-4, 1e-4, 1e-4]}


def _cal(levels=None, **kw) -> CalibratedNoise:
    return calibration_from_dict({**CAL, **kw, **({"pair_gains": levels} if levels is not None else {})})


def _grey(folder, n: int, side: int = 48) -> None:
    for i in range(n):
        write_image(folder / f"g{i:02d}.png", torch.full((3, side, side), 0.5))


def _records(out) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("text, kind, values, canon", [
    ("1", "fixed", (1.0,), "1"), ("1.7", "fixed", (1.7,), "1.7"), (" 2 ", "fixed", (2.0,), "2"), (0.4, "fixed", (0.4,), "0.4"),
    ("0.5,1,2", "list", (0.5, 1.0, 2.0), "0.5,1,2"), ("0.5, 2", "list", (0.5, 2.0), "0.5,2"),
    ("0.3-2.3", "range", (0.3, 2.3), "0.3-2.3"), ("1e-3-2", "range", (0.001, 2.0), "0.001-2"), ("-0.0", "fixed", (0.0,), "0"),
    ("fitted", "fitted", (), "fitted"), ("FITTED", "fitted", (), "fitted"),
])
def test_every_form_parses_and_round_trips(text, kind, values, canon):
    p = parse_level(text)
    assert (p.kind, p.values, p.text()) == (kind, pytest.approx(values), canon)
    assert parse_level(p.text()) == p  # the canonical text (recorded in job.json) reads back the same


@pytest.mark.parametrize("bad", ["", "abc", "-1", "nan", "inf", "1e400", "101", "2-1", "0-2", "1-1", "1,,2",
                                 "1,2,-3", "fitted,1", "1-2-3", "0.5;2", True, None, [1, 2]])
def test_bad_forms_are_one_clear_error(bad):
    with pytest.raises(PnganError, match="--gain"):
        parse_level(bad)


def test_draws_are_reproducible_and_follow_the_policy():
    n = 4000
    rng = parse_level("0.3-2.3")
    g = np.array([rng.draw(7, "level", "img", k) for k in range(n)])
    assert g.min() >= 0.3 and g.max() <= 2.3
    assert [rng.draw(7, "level", "img", k) for k in range(5)] == list(g[:5])  # a pure function of the parts
    assert rng.draw(8, "level", "img", 0) != g[0]  # another seed, another draw
    # log-uniform: the position of log g in [log 0.3, log 2.3] is uniform; its quantiles within 0.03
    # (the standard error of a quantile of 4000 draws is <= 0.008)
    pos = (np.log(g) - math.log(0.3)) / (math.log(2.3) - math.log(0.3))
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        assert abs(np.quantile(pos, q) - q) < 0.03, q
    # a plain uniform draw would put its median at 1.3, the log-uniform one at sqrt(0.3 * 2.3) = 0.83
    assert np.median(g) == pytest.approx(math.sqrt(0.3 * 2.3), rel=0.05)
    lst = parse_level("0.5,1,2")
    d = [lst.draw(0, "level", k) for k in range(3000)]
    assert set(d) == {0.5, 1.0, 2.0} and all(abs(d.count(v) / 3000 - 1 / 3) < 0.04 for v in (0.5, 1.0, 2.0))
    assert {parse_level("1.7").draw(0, "level", k) for k in range(50)} == {1.7}
    levels = (0.32, 0.51, 0.87, 1.49, 2.26)
    fitted = resolve_level("fitted", _cal(list(levels)))
    d = [fitted.draw(3, "level", "x", k) for k in range(2000)]
    assert set(d) == set(levels)  # only the recorded levels, and every one of them
    with pytest.raises(PnganError, match="bind"):
        LevelPolicy("fitted").draw(0)


def test_the_default_is_fitted_only_for_a_model_of_several_levels():
    assert default_policy(_cal([0.5, 2.0])) == LevelPolicy("fitted", (0.5, 2.0))
    assert default_policy(_cal([0.9, 1.0, 1.12])) is None  # one ISO: the fitted level, as before
    assert default_policy(_cal([1.0, LEVEL_SPREAD])) is None and default_policy(_cal([1.0, LEVEL_SPREAD * 1.01]))
    assert default_policy(_cal()) is None  # a calibration saved by an older pngan: no recorded levels
    from pngan.noise import build_synthetic

    awgn = build_synthetic("awgn")
    assert default_policy(awgn) is None
    # a generator: only one trained with synthetic.level=match follows its input's level
    assert default_policy(_cal([0.5, 2.0]), {}) is None
    assert default_policy(_cal([0.5, 2.0]), {"pngan.level": "match"}).kind == "fitted"
    with pytest.raises(PnganError, match="records no per-pair levels"):
        resolve_level("fitted", _cal())
    with pytest.raises(PnganError, match="calibrated"):
        resolve_level("0.5,2", awgn)


def test_a_fit_records_its_pair_levels_and_older_files_still_load(tmp_path):
    from helpers import write_pairs

    from pngan.data.specs import open_dataset
    from pngan.noise.calibrated import fit_calibrated

    write_pairs(tmp_path / "p", 2, 48, 48, sigma=0.02)
    write_pairs(tmp_path / "p2", 2, 48, 48, seed=1, sigma=0.06)  # three times the level
    for i in range(2):
        for side in ("clean", "noisy"):
            (tmp_path / "p" / side / f"j{i}.png").write_bytes((tmp_path / "p2" / side / f"i{i}.png").read_bytes())
    m = fit_calibrated(open_dataset(f"pairs:{tmp_path / 'p'}"), levels=True)
    g = m.describe()["pair_gains"]
    assert len(g) == 4 and max(g) / min(g) == pytest.approx(3.0, rel=0.1)
    save_calibration(m, tmp_path / "c.json")
    assert load_calibration(tmp_path / "c.json").pair_gains == g
    old = tmp_path / "old.json"
    old.write_text(json.dumps(CAL))  # no pair_gains: loads, describes (and hashes) as before
    assert load_calibration(old).pair_gains is None and "pair_gains" not in load_calibration(old).describe()
    for bad in ([], [1.0, -0.5], [float("nan")], "1,2", [1.0, True]):
        with pytest.raises(PnganError, match="pair_gains"):
            _cal(bad)


def test_save_fit_over_an_older_file_of_the_same_fit_adds_the_levels(tmp_path):
    from helpers import write_pairs

    write_pairs(tmp_path / "p", 2, 48, 48, sigma=0.02)
    _grey(tmp_path / "in", 1, side=32)
    fit = tmp_path / "fit.json"
    cmd = ["synth", "--setting", "calibrated", "--fit", f"pairs:{tmp_path / 'p'}", "--input", str(tmp_path / "in"),
           "--output", str(tmp_path / "o"), "--save-fit", str(fit)]
    assert main(cmd) == 0
    d = json.loads(fit.read_text())
    assert len(d.pop("pair_gains")) == 2
    fit.write_text(json.dumps(d))  # as an older pngan saved it: the same fit without its levels
    assert main(cmd) == 0  # the same job: no --overwrite needed, and the file gets its levels back
    assert len(json.loads(fit.read_text())["pair_gains"]) == 2


def test_synth_fitted_draws_the_recorded_levels_and_the_noise_follows_them(tmp_path, capsys):
    _grey(tmp_path / "in", 16)
    cal = tmp_path / "c.json"
    save_calibration(_cal([0.5, 2.0]), cal)
    out = tmp_path / "o"
    base = ["synth", "--setting", f"calibrated:{cal}", "--input", str(tmp_path / "in"), "--format", "png16"]
    assert main([*base, "--output", str(out)]) == 0  # no --gain: fitted (the levels spread 4x)
    recs = _records(out)
    assert {r["gain"] for r in recs} == {0.5, 2.0}  # every image records its level; both are drawn
    std = {0.5: [], 2.0: []}
    for r in recs:
        noise = read_image(out / r["noisy"]) - read_image(out / r["clean"])
        std[r["gain"]].append(float(noise.double().std()))
    ratio = np.mean(std[2.0]) / np.mean(std[0.5])
    with capsys.disabled():
        print(f"std ratio at gains 2 / 0.5: {ratio:.4f} (std {np.mean(std[0.5]):.5f}, {np.mean(std[2.0]):.5f}; "
              f"{len(std[0.5])} and {len(std[2.0])} images)")
    assert ratio == pytest.approx(4.0, rel=0.02)
    assert np.mean(std[0.5]) == pytest.approx(0.005, rel=0.02)
    job = json.loads((out / "job.json").read_text())
    assert job["gain"] == "fitted" and job["levels"] == [0.5, 2.0]
    # the same job again (--gain fitted is the default spelled out) continues; another policy is refused
    assert main([*base, "--output", str(out), "--gain", "fitted"]) == 0
    capsys.readouterr()
    assert main([*base, "--output", str(out), "--gain", "0.5,2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another job" in err[0] and "gain" in err[0]
    assert main([*base, "--output", str(out), "--gain", "0.5,2", "--overwrite"]) == 0
    assert {r["gain"] for r in _records(out)} <= {0.5, 2.0}
    # a fixed gain as before (the job records the number); a range stays in its bounds
    assert main([*base, "--output", str(tmp_path / "f"), "--gain", "1.7"]) == 0
    assert json.loads((tmp_path / "f" / "job.json").read_text())["gain"] == 1.7
    assert {r["gain"] for r in _records(tmp_path / "f")} == {1.7}
    assert main([*base, "--output", str(tmp_path / "r"), "--gain", "0.3-2.3"]) == 0
    assert all(0.3 <= r["gain"] <= 2.3 for r in _records(tmp_path / "r"))
    capsys.readouterr()
    # a level for a setting without one, and a bad form: one line, exit 2
    assert main(["synth", "--setting", "awgn", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "a"),
                 "--gain", "0.5,2"]) == 2
    assert "--gain applies to --setting calibrated only" in capsys.readouterr().err
    assert main([*base, "--output", str(tmp_path / "b"), "--gain", "2-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--gain" in err[0] and "LO < HI" in err[0]


def test_a_single_level_model_keeps_gain_1_bit_identical(tmp_path):
    # today's behaviour is a calibration without recorded levels; one with levels of one ISO
    # (spread below LEVEL_SPREAD) must write the same bytes
    _grey(tmp_path / "in", 3, side=32)
    outs = {}
    for name, levels in (("today", None), ("one-iso", [0.95, 1.0, 1.1])):
        save_calibration(_cal(levels), tmp_path / f"{name}.json")
        out = tmp_path / name
        assert main(["synth", "--setting", f"calibrated:{tmp_path / name}.json", "--input", str(tmp_path / "in"),
                     "--output", str(out)]) == 0
        outs[name] = sorted((p.name, p.read_bytes()) for p in (out / "noisy").iterdir())
        assert "gain" not in json.loads((out / "job.json").read_text())
        assert {r["gain"] for r in _records(out)} == {1.0}
    assert outs["today"] == outs["one-iso"]
    # and it is the same synth job as the older calibration's: its folder continues, no --overwrite
    assert main(["synth", "--setting", f"calibrated:{tmp_path / 'one-iso'}.json", "--input", str(tmp_path / "in"),
                 "--output", str(tmp_path / "today")]) == 0


def _generator(path, levels=None, level_match=True):
    from pngan.nets.loading import save_network
    from pngan.nets.registry import build

    torch.manual_seed(0)
    syn = {**CAL, **({"pair_gains": levels} if levels is not None else {})}
    meta = {"pngan.synthetic": json.dumps(syn), **({"pngan.level": "match"} if level_match else {})}
    return save_network(build("smnet", channels=4, groups=1, blocks=1), path, meta)


def test_generate_records_each_level_and_a_new_policy_is_another_job(tmp_path, capsys):
    _grey(tmp_path / "in", 4, side=24)
    gen = _generator(tmp_path / "g.safetensors", [0.5, 1.0, 2.0])
    out = tmp_path / "o"
    base = ["generate", "--generator", str(gen), "--input", str(tmp_path / "in"), "--samples", "3", "--quiet"]
    assert main([*base, "--output", str(out)]) == 0  # default for a level-match generator: fitted
    recs = _records(out)
    assert len(recs) == 12 and {r["gain"] for r in recs} == {0.5, 1.0, 2.0}
    assert all(r["params"]["gain"] == r["gain"] for r in recs)
    assert json.loads((out / "job.json").read_text())["gain"] == "fitted"
    from pngan.noise.level import parse_level as pl

    pol = resolve_level(pl("fitted"), _cal([0.5, 1.0, 2.0]))
    assert all(r["gain"] == pol.draw(0, "level", r["source"], r["sample"]) for r in recs)  # (seed, image, sample)
    before = {r["noisy"]: r["sha256"] for r in recs}
    capsys.readouterr()
    assert main([*base, "--output", str(out), "--gain", "fitted"]) == 0  # the same job: nothing redone
    assert "wrote 0 noisy images (12 already there)" in capsys.readouterr().out
    assert {r["noisy"]: r["sha256"] for r in _records(out)} == before
    assert main([*base, "--output", str(out), "--gain", "0.3-2.3"]) == 2
    assert "another job" in capsys.readouterr().err
    assert main([*base, "--output", str(out), "--gain", "0.3-2.3", "--overwrite"]) == 0
    assert all(0.3 <= r["gain"] <= 2.3 for r in _records(out))
    capsys.readouterr()
    assert main([*base, "--output", str(tmp_path / "x"), "--gain", "fitted,2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--gain" in err[0]
    old = _generator(tmp_path / "old.safetensors")  # no recorded levels: fitted cannot be drawn
    assert main(["generate", "--generator", str(old), "--input", str(tmp_path / "in"), "--quiet",
                 "--output", str(tmp_path / "old"), "--gain", "fitted"]) == 2
    assert "records no per-pair levels" in capsys.readouterr().err
    # (a generator trained at one level keeps gain 1 by default: test_the_default_is_fitted_only_...)


def test_python_api_policies(tmp_path):
    from pngan.infer.api import ApiArgumentError, GeneratedPairs, NoiseGenerator

    gen = NoiseGenerator.load(_generator(tmp_path / "g.safetensors", [0.5, 2.0]))
    x = torch.full((4, 3, 16, 16), 0.5)
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    a, b = gen(x, generator=g(), gain="fitted"), gen(x, generator=g(), gain="fitted")
    assert torch.equal(a, b)  # the levels come from the caller's generator
    assert torch.equal(gen(x, generator=g()), a)  # the default of a level-match generator is fitted
    # the levels drawn are those a per-image tensor of the same values gives
    u = torch.rand(4, generator=g(), dtype=torch.float64)
    levels = torch.tensor([0.5 if v < 0.5 else 2.0 for v in u.tolist()])
    gg = g()
    torch.rand(4, generator=gg, dtype=torch.float64)
    assert torch.equal(gen(x, generator=gg, gain=levels), a)
    # evaluate --level fixed passes gain 1 for the fitted level: the same bytes as no gain at all
    m = _cal([0.5, 2.0], kappa=[-0.6, -0.6, -0.6])
    y = torch.rand(2, 3, 16, 16, generator=g())
    assert torch.equal(m(y, generator=g(), gain=1.0), m(y, generator=g()))
    for bad in ("2", "2-1", "loud"):
        with pytest.raises(ApiArgumentError, match="gain"):
            gen(x, gain=bad)
    _grey(tmp_path / "in", 2, side=16)
    ds = GeneratedPairs(f"clean:{tmp_path / 'in'}", gen, seed=0, samples=4, gain="0.5,2")
    items = [ds[i] for i in range(len(ds))]
    assert {it["gain"] for it in items} == {0.5, 2.0} and torch.equal(ds[3]["noisy"], items[3]["noisy"])
    assert "gain" not in GeneratedPairs(f"clean:{tmp_path / 'in'}",
                                        NoiseGenerator.load(_generator(tmp_path / "h.safetensors", [1.0, 1.1])))[0]
    with pytest.raises(ApiArgumentError, match="gain"):
        GeneratedPairs(f"clean:{tmp_path / 'in'}", gen, gain="0-1")


def test_on_the_fly_sources_take_data_gain(tmp_path):
    from pngan.train.denoiser_config import load_denoiser_config
    from pngan.data.pairsources import open_sources as _open_sources

    _grey(tmp_path / "in" / "clean", 2, side=48)
    cal = tmp_path / "c.json"
    save_calibration(_cal([0.5, 2.0]), cal)
    spec = f"synth:{cal}:clean:{tmp_path / 'in' / 'clean'}"
    over = ["data.patch_size=40", "data.batch_size=8", "data.flips=false"]
    src = _open_sources(load_denoiser_config("cpu-small", over), [spec])[0]
    assert src.level.kind == "fitted" and src.describe().startswith("synth:") and "@gain=fitted" in src.describe()
    # each sample's noise std is its drawn level times 0.01 (the patch's own std, within 3%)
    seen = set()
    for step in range(3):
        for j in range(8):
            s = src.sample(step, j)
            gain = src.level.draw(src.seed, "level", step, j)
            seen.add(gain)
            assert float((s["noisy"] - s["clean"]).double().std()) == pytest.approx(0.01 * gain, rel=0.03)
    assert seen == {0.5, 2.0}
    fixed = _open_sources(load_denoiser_config("cpu-small", [*over, "data.gain=1.7"]), [spec])[0]
    assert fixed.level == LevelPolicy("fixed", (1.7,))
    with pytest.raises(PnganError, match="data.gain"):
        load_denoiser_config("cpu-small", ["data.gain=0.3-"])  # refused when the config is read
    with pytest.raises(PnganError, match="calibrated"):
        _open_sources(load_denoiser_config("cpu-small", [*over, "data.gain=2"]),
                      [f"synth:awgn:clean:{tmp_path / 'in' / 'clean'}"])
    with pytest.raises(PnganError, match="on-the-fly"):
        from helpers import write_pairs

        write_pairs(tmp_path / "real", 1, 48, 48)
        _open_sources(load_denoiser_config("cpu-small", [*over, "data.gain=2"]), [f"pairs:{tmp_path / 'real'}"])


# --- the level of a reference noisy image (pngan.noise.estimate) ---

def _noisy_refs(folder, gains, side=64, clean=False):
    """Flat grey images with the white CAL noise at ``gains`` (16-bit: no quantisation at gain 0.5),
    as noisy:DIR (or, ``clean``: pairs, DIR/noisy + DIR/clean)."""
    m = _cal()
    x = torch.full((1, 3, side, side), 0.5)
    for i, gn in enumerate(gains):
        noisy = m(x, generator=torch.Generator().manual_seed(100 + i), gain=gn)[0]
        write_image((folder / "noisy" if clean else folder) / f"r{i}.png", noisy, bits=16)
        if clean:
            write_image(folder / "clean" / f"r{i}.png", x[0], bits=16)


def test_generate_reference_draws_the_reference_images_levels(tmp_path, capsys):
    _grey(tmp_path / "in", 4, side=24)
    _noisy_refs(tmp_path / "ref", [0.5, 2.0])
    gen = _generator(tmp_path / "g.safetensors", [1.0, 1.1])  # one level recorded: default gain 1
    out = tmp_path / "o"
    base = ["generate", "--generator", str(gen), "--input", str(tmp_path / "in"), "--samples", "2", "--quiet"]
    assert main([*base, "--output", str(out), "--reference", str(tmp_path / "ref")]) == 0
    job = json.loads((out / "job.json").read_text())
    # the levels are read from the noisy images alone, within 10% of the true ones
    assert job["gain"] == "reference" and job["levels"] == pytest.approx([0.5, 2.0], rel=0.1)
    recs = _records(out)
    assert {r["gain"] for r in recs} == set(job["levels"])  # every image at one of them; both drawn
    capsys.readouterr()
    assert main([*base, "--output", str(out), "--reference", f"noisy:{tmp_path / 'ref'}"]) == 0  # the same job
    assert "wrote 0 noisy images (8 already there)" in capsys.readouterr().out
    assert main([*base, "--output", str(tmp_path / "x"), "--reference", str(tmp_path / "ref"), "--gain", "1"]) == 2
    assert "give one" in capsys.readouterr().err
    awgn = tmp_path / "awgn.safetensors"
    from pngan.nets.loading import save_network
    from pngan.nets.registry import build

    save_network(build("smnet", channels=4, groups=1, blocks=1), awgn,
                 {"pngan.synthetic": json.dumps({"setting": "awgn", "sigma": 50.0})})
    assert main(["generate", "--generator", str(awgn), "--input", str(tmp_path / "in"), "--quiet",
                 "--output", str(tmp_path / "y"), "--reference", str(tmp_path / "ref")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--reference" in err[0] and "calibrated" in err[0]
    assert not (tmp_path / "y").exists()  # refused before the output folder is made
    write_image(tmp_path / "tiny" / "t0.png", torch.full((3, 8, 8), 0.5))  # too small to read a level from
    assert main([*base, "--output", str(tmp_path / "z"), "--reference", str(tmp_path / "tiny")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "reference image 't0'" in err[0] and not (tmp_path / "z").exists()


def test_evaluate_noise_level_reference_reads_the_level_from_the_noisy_image(tmp_path, capsys):
    from pngan.data.specs import open_dataset
    from pngan.eval import denoise_eval as de

    _noisy_refs(tmp_path / "t", [2.0, 2.0, 0.5], clean=True)
    real = open_dataset(f"pairs:{tmp_path / 't'}")
    model = _cal()
    res = {lv: de.evaluate_noise(real, sample_fn=de.synthetic_sampler(model, 0, level=lv))["images"]
           for lv in ("fixed", "match", "reference")}
    for name in ("r0", "r1", "r2"):  # fixed: gain 1 against 2 and 0.5; match and reference: the pair's level
        assert res["fixed"][name]["std_ratio"] == pytest.approx(0.5 if name != "r2" else 2.0, rel=0.05)
        assert res["match"][name]["std_ratio"] == pytest.approx(1.0, rel=0.05)
        assert res["reference"][name]["std_ratio"] == pytest.approx(1.0, rel=0.1)
    cal = tmp_path / "c.json"
    save_calibration(model, cal)
    out = tmp_path / "r.json"
    assert main(["evaluate", "noise", "--real", f"pairs:{tmp_path / 't'}", "--setting", f"calibrated:{cal}",
                 "--level", "reference", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["level"] == "reference"
    capsys.readouterr()
    assert main(["evaluate", "noise", "--real", f"pairs:{tmp_path / 't'}", "--setting", "awgn",
                 "--level", "reference"]) == 2
    assert "--level reference" in capsys.readouterr().err


def test_generate_default_gain_spelled_out_is_the_same_job(tmp_path, capsys):
    """``--gain 1`` for a generator whose default is its own level (one recorded level) is the default
    job, not another one; an older job.json that recorded it as 1.0 still matches."""
    _grey(tmp_path / "in", 2, side=24)
    gen = _generator(tmp_path / "g.safetensors", [1.0, 1.1])
    out = tmp_path / "o"
    base = ["generate", "--generator", str(gen), "--input", str(tmp_path / "in"), "--quiet", "--output", str(out)]
    assert main(base) == 0
    job = json.loads((out / "job.json").read_text())
    assert "gain" not in job
    first = {p.name: p.read_bytes() for p in (out / "noisy").iterdir()}
    capsys.readouterr()
    assert main([*base, "--gain", "1"]) == 0, capsys.readouterr().err
    assert "wrote 0 noisy images (2 already there)" in capsys.readouterr().out
    for again in (["--gain", "1"], []):  # an older pngan's record of --gain 1 matches both spellings
        (out / "job.json").write_text(json.dumps({**job, "gain": 1.0}))
        assert main([*base, *again]) == 0, capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in (out / "noisy").iterdir()} == first
    assert main([*base, "--gain", "2"]) == 2  # another level is another job
    assert "another job" in capsys.readouterr().err


def test_reference_without_measurable_noise_is_refused(tmp_path, capsys):
    _grey(tmp_path / "in", 1, side=24)
    _grey(tmp_path / "flat", 1, side=64)  # a clean grey "reference": level 0
    gen = _generator(tmp_path / "g.safetensors", [1.0, 1.1])
    out = tmp_path / "o"
    assert main(["generate", "--generator", str(gen), "--input", str(tmp_path / "in"), "--quiet", "--output", str(out),
                 "--reference", str(tmp_path / "flat")]) == 2
    err = capsys.readouterr().err
    assert "reference image 'g00' shows no measurable noise" in err and not out.exists()
