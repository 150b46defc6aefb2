"""Property: every numeric option of every command, and every numeric config key, driven through
boundary values (0, negative, NaN, inf, huge, non-numbers) gives a one-line error with exit 2 (an
out-of-range value names its option) or runs on -- never a traceback, and never heavy work first.

The commands run in-process (``pngan.cli.main``) with inputs that do not exist, so a value that
passes validation ends quickly at the missing input (also a one-line exit 2)."""

from __future__ import annotations

import dataclasses
import itertools
import math
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pngan.cli import main

NOWHERE = "/nonexistent-pngan-input"
_fresh = itertools.count()  # a new output folder for every example


def _int_in(lo, hi):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _float_in(lo, hi, lo_open=False):
    return lambda v: isinstance(v, (int, float)) and math.isfinite(v) and (v > lo if lo_open else v >= lo) and v <= hi


ABL = ["--data", f"pairs:{NOWHERE}", "--test", f"pairs:{NOWHERE}"]
ABL3 = ABL + ["--denoiser", f"dncnn:{NOWHERE}"]

# (command words, option, other required arguments, valid(v), what an out-of-range error names)
OPTIONS = [
    (["train"], "--steps", ["--data", f"pairs:{NOWHERE}"], _int_in(1, 10**9), "--steps"),
    (["train-denoiser"], "--steps", ["--arch", "dncnn", "--data", f"pairs:{NOWHERE}"], _int_in(1, 10**9), "--steps"),
    (["train-denoiser"], "--ratio", ["--arch", "dncnn", "--data", f"pairs:{NOWHERE}", "--data", f"pairs:{NOWHERE}2"],
     # rho >= 0 (0: real data only; exact per sample, so any ratio is realisable), up to 1e6
     _float_in(0.0, 1e6), "ratio"),
    (["generate"], "--samples", ["--generator", NOWHERE, "--input", f"clean:{NOWHERE}"], _int_in(1, 10**6), "--samples"),
    (["generate"], "--seed", ["--generator", NOWHERE, "--input", f"clean:{NOWHERE}"], _int_in(0, 2**63 - 1), "--seed"),
    (["generate"], "--tile", ["--generator", NOWHERE, "--input", f"clean:{NOWHERE}"],
     lambda v: isinstance(v, int) and (v == 0 or 8 <= v <= 65536), "--tile"),
    (["generate"], "--overlap", ["--generator", NOWHERE, "--input", f"clean:{NOWHERE}"], _int_in(0, 4096), "--overlap"),
    (["generate"], "--gain", ["--generator", NOWHERE, "--input", f"clean:{NOWHERE}"], _float_in(0, 100), "--gain"),
    (["synth"], "--sigma", ["--setting", "awgn", "--input", NOWHERE], _float_in(0, 1000), "--sigma"),
    (["synth"], "--gain", ["--setting", "calibrated", "--fit", f"pairs:{NOWHERE}", "--input", NOWHERE], _float_in(0, 100), "--gain"),
    (["synth"], "--seed", ["--setting", "awgn", "--input", NOWHERE], _int_in(0, 2**63 - 1), "--seed"),
    (["evaluate", "noise"], "--samples", ["--real", f"pairs:{NOWHERE}", "--setting", "awgn"], _int_in(1, 10**6), "--samples"),
    (["evaluate", "noise"], "--seed", ["--real", f"pairs:{NOWHERE}", "--setting", "awgn"], _int_in(0, 2**63 - 1), "--seed"),
    (["evaluate", "denoiser"], "--tile", ["--model", NOWHERE, "--data", f"pairs:{NOWHERE}"],
     lambda v: isinstance(v, int) and (v == 0 or 8 <= v <= 65536), "--tile"),
    (["report"], "--max-images", [NOWHERE + ".json"], _int_in(1, 10**6), "--max-images"),
    (["report"], "--seed", [NOWHERE + ".json"], _int_in(0, 2**63 - 1), "--seed"),
    (["ablation", "table3"], "--steps", ABL3, _int_in(1, 10**9), "--steps"),
    (["ablation", "table3"], "--seed", ABL3, _int_in(0, 2**63 - 1), "--seed"),
    (["ablation", "table3"], "--samples", ABL3, _int_in(1, 10**6), "--samples"),
    (["ablation", "table3"], "--psnr-steps", ABL3, _int_in(1, 10**9), "--psnr-steps"),
    (["ablation", "rho"], "--steps", ABL + ["--generated", f"pairs:{NOWHERE}"], _int_in(1, 10**9), "--steps"),
    (["ablation", "rho"], "--seed", ABL + ["--generated", f"pairs:{NOWHERE}"], _int_in(0, 2**63 - 1), "--seed"),
    (["benchmark", "denoise"], "--steps", ["--train", f"pairs:{NOWHERE}", "--test", f"pairs:{NOWHERE}"],
     _int_in(1, 10**9), "--steps"),
    (["benchmark", "augment"], "--steps", ["--train", f"pairs:{NOWHERE}", "--test", f"pairs:{NOWHERE}", "--extra",
                                           f"pairs:{NOWHERE}"], _int_in(1, 10**9), "--steps"),
    (["demo"], "--steps", ["--data", f"pairs:{NOWHERE}"], _int_in(1, 10**9), "--steps"),
    (["demo"], "--denoiser-steps", ["--data", f"pairs:{NOWHERE}"], _int_in(1, 10**9), "--denoiser-steps"),
    (["demo"], "--seed", ["--data", f"pairs:{NOWHERE}"], _int_in(0, 2**63 - 1), "--seed"),
]
OUT_OPTION = {"train": "--out", "train-denoiser": "--out", "generate": "--output", "synth": "--output",
              "report": "--out", "demo": "--out", "ablation": "--out", "benchmark": "--out"}

BOUNDARY = [0, -1, 1, 7, 8, -(2**63), 2**63, 10**30, 0.5, -0.0, 1e-300, 1e300,
            float("nan"), float("inf"), float("-inf"), "1e400", "-nan", "0x10", "", "abc", "1,2,3", "5,1"]
values = st.one_of(st.sampled_from(BOUNDARY), st.integers(-(10**20), 10**20),
                   st.floats(allow_nan=True, allow_infinity=True))


def _parse(text: str):
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


@pytest.fixture(scope="module")
def outdir(tmp_path_factory):
    return tmp_path_factory.mktemp("boundaries")


def _run(capsys, argv):
    capsys.readouterr()
    t = time.perf_counter()
    rc = main(argv)
    dt = time.perf_counter() - t
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return rc, err, dt


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(OPTIONS), value=values)
def test_numeric_options_at_boundaries(case, value, capsys, outdir):
    words, opt, required, valid, names = case
    text = str(value)
    argv = [*words, *required, f"{opt}={text}"]
    if words[0] in OUT_OPTION:
        argv += [OUT_OPTION[words[0]], str(outdir / f"o{next(_fresh)}")]
    rc, err, dt = _run(capsys, argv)
    assert rc == 2, (argv, err)
    assert len(err) == 1 and "error:" in err[0] and "Traceback" not in err[0], (argv, err)
    assert dt < 10, f"{argv}: {dt:.1f} s before the error (validation must come before the work)"
    v = _parse(text)
    if opt == "--sigma" and "," in text:
        parts = [_parse(p) for p in text.split(",")]
        ok = len(parts) == 2 and all(p is not None and valid(p) for p in parts) and parts[0] <= parts[1]
    elif opt == "--gain" and ("," in text or "-" in text.lstrip("-")):
        # --gain is a level policy: a list G1,G2,... or a range LO-HI of gains in [0, 100] (pngan.noise.level)
        from pngan.errors import PnganError
        from pngan.noise.level import parse_level

        try:
            ok = parse_level(text) is not None
        except PnganError:
            ok = False
    else:
        ok = v is not None and valid(v)
    if ok:
        assert NOWHERE in err[0] or "no such" in err[0].lower() or "not a folder" in err[0], (argv, err)
    else:
        assert names in err[0], (argv, err)


def _numeric_fields(cfg, prefix=""):
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            yield from _numeric_fields(v, prefix + f.name + ".")
        elif f.type in ("int", "float", "float | None", "int | None") or isinstance(v, (int, float)) \
                and not isinstance(v, bool):
            yield prefix + f.name


def _config_keys():
    from pngan.train.config import TrainConfig
    from pngan.train.denoiser_config import DenoiserTrainConfig

    return ([("train", k) for k in _numeric_fields(TrainConfig())]
            + [("train-denoiser", k) for k in _numeric_fields(DenoiserTrainConfig())])


CONFIG_KEYS = _config_keys()


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(CONFIG_KEYS), value=values)
def test_numeric_config_keys_at_boundaries(case, value, capsys, outdir):
    """KEY=VALUE overrides of every numeric config field: NaN/inf/non-numbers name the key; any other
    value is accepted or refused in one line -- never a traceback, and the run folder is not made."""
    cmd, key = case
    text = str(value)
    required = ["--data", f"pairs:{NOWHERE}"] + (["--arch", "dncnn"] if cmd == "train-denoiser" else [])
    out = outdir / f"cfg{next(_fresh)}"
    argv = [cmd, *required, "--out", str(out), "--config", "cpu-small", f"{key}={text}"]
    rc, err, dt = _run(capsys, argv)
    assert rc == 2, (argv, err)
    assert len(err) == 1 and "Traceback" not in err[0], (argv, err)
    assert dt < 10
    from pngan.config import parse_overrides

    v = parse_overrides([f"k={text}"])["k"]  # the value as YAML reads it (0x10 is 16)
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            pass
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        assert key in err[0], (argv, err)
    if key in err[0]:
        assert not out.exists()  # refused before the run folder is made


def test_every_command_has_its_numeric_options_listed():
    """A new numeric option must be added to OPTIONS (and so to the property above)."""
    import argparse
    import importlib

    from pngan.cli import COMMANDS

    listed = {(" ".join(w), o) for w, o, *_ in OPTIONS}
    found = set()

    def walk(parser, words):
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sub in a.choices.items():
                    walk(sub, words + [name])
            elif a.option_strings and (a.type in (int, float) or getattr(a.type, "__name__", "") in
                                       ("integer", "number", "tile_size", "_sigma_arg")):
                found.add((" ".join(words), a.option_strings[0]))

    for name, (module, *_rest) in COMMANDS.items():
        p = argparse.ArgumentParser()
        importlib.import_module(module).add_arguments(p)
        walk(p, [name])
    assert found <= listed, sorted(found - listed)
