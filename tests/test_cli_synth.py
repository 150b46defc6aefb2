"""pngan synth: synthetic noisy/clean pairs written as a pairs: folder."""

import json

import numpy as np
import pytest
from PIL import Image

from pngan.cli import main


def _make_clean(d, names=("a", "b", "c"), size=(40, 32)):
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for n in names:
        arr = (96 + rng.integers(0, 64, size=(size[1], size[0], 3))).astype(np.uint8)  # mid-grey
        Image.fromarray(arr).save(d / f"{n}.png")
    return d


def _read(p):
    return np.asarray(Image.open(p), dtype=np.float64) / 255


def test_awgn_writes_pairs_and_manifest(tmp_path, capsys):
    src = _make_clean(tmp_path / "photos")
    out = tmp_path / "out"
    assert main(["synth", "--setting", "awgn", "--input", str(src), "--output", str(out), "--seed", "3"]) == 0
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["name"] for r in lines] == ["a.png", "b.png", "c.png"] or [r["name"] for r in lines] == ["a", "b", "c"]
    for r in lines:
        assert r["synthetic"]["setting"] == "awgn" and r["params"]["sigma"] == 50.0 and r["run_seed"] == 3
        noisy, clean = _read(out / r["noisy"]), _read(out / r["clean"])
        assert np.array_equal(clean, _read(src / (r["clean"].split("/")[-1])))
        assert abs((noisy - clean).std() * 255 - 50) < 5  # mid-grey input: little clipping
    # it is a pairs: folder that pngan can read back
    from pngan.data.specs import open_dataset

    back = open_dataset(f"pairs:{out}")
    assert len(back) == 3 and back.has_noisy and back.has_clean


def test_rerun_after_an_input_is_removed_keeps_only_the_jobs_pairs(tmp_path, capsys):
    src = _make_clean(tmp_path / "photos")
    out = tmp_path / "out"
    cmd = ["synth", "--setting", "awgn", "--input", str(src), "--output", str(out), "--quiet"]
    assert main(cmd) == 0
    (src / "c.png").unlink()
    assert main(cmd) == 0
    assert "removed 2 file(s) of an earlier run whose input image is gone: clean/c.png, noisy/c.png" in capsys.readouterr().out
    from pngan.data.specs import open_dataset

    assert sorted(open_dataset(f"pairs:{out}").names) == ["a", "b"]
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 2
    # a file the user changed is left (and named), not removed
    (src / "b.png").unlink()
    (out / "noisy" / "b.png").write_bytes(b"edited")
    assert main(cmd) == 0
    text = capsys.readouterr().out
    assert "removed 1 file(s)" in text and "left 1 file(s)" in text and "noisy/b.png" in text
    assert (out / "noisy" / "b.png").read_bytes() == b"edited" and not (out / "clean" / "b.png").exists()


def test_per_image_seeds_do_not_depend_on_other_images(tmp_path):
    full = _make_clean(tmp_path / "full")
    part = tmp_path / "part"
    part.mkdir()
    (part / "b.png").write_bytes((full / "b.png").read_bytes())
    for src, out in ((full, tmp_path / "o1"), (part, tmp_path / "o2"), (full, tmp_path / "o3")):
        assert main(["synth", "--setting", "raw", "--input", str(src), "--output", str(out), "--seed", "7"]) == 0
    b1, b2, b3 = ((tmp_path / o / "noisy" / "b.png").read_bytes() for o in ("o1", "o2", "o3"))
    assert b1 == b2 == b3
    assert main(["synth", "--setting", "raw", "--input", str(full), "--output", str(tmp_path / "o4"), "--seed", "8"]) == 0
    assert (tmp_path / "o4" / "noisy" / "b.png").read_bytes() != b1
    rec = json.loads((tmp_path / "o1" / "manifest.jsonl").read_text().splitlines()[0])
    assert rec["synthetic"]["setting"] == "raw" and 1e-4 <= rec["params"]["shot"] <= 1.2e-2


def test_sigma_range_and_formats(tmp_path):
    src = _make_clean(tmp_path / "in", names=("x",))
    out = tmp_path / "out"
    assert main(["synth", "--setting", "1", "--input", f"clean:{src}", "--output", str(out), "--sigma", "10,20",
                 "--format", "png16"]) == 0
    rec = json.loads((out / "manifest.jsonl").read_text())
    assert 10 <= rec["params"]["sigma"] <= 20
    data = (out / "noisy" / "x.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[24] == 16  # IHDR bit depth: 16-bit PNG


def test_refusals(tmp_path, capsys):
    src = _make_clean(tmp_path / "in", names=("x",))
    for out in (src, src / "sub"):
        assert main(["synth", "--setting", "awgn", "--input", str(src), "--output", str(out)]) == 2
        assert "inside" in capsys.readouterr().err
    assert main(["synth", "--setting", "raw", "--sigma", "5", "--input", str(src), "--output", str(tmp_path / "o")]) == 2
    assert "--sigma applies to --setting awgn" in capsys.readouterr().err
    assert main(["synth", "--setting", "gauss", "--input", str(src), "--output", str(tmp_path / "o")]) == 2
    assert "unknown synthetic setting" in capsys.readouterr().err
    assert main(["synth", "--setting", "awgn", "--sigma", "a,b", "--input", str(src), "--output", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_help_has_example(capsys):
    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    text = capsys.readouterr().out
    assert "pngan synth --setting raw" in text and "--sigma" in text


def test_camera_builtin_input(tmp_path):
    out = tmp_path / "cam"
    assert main(["synth", "--setting", "raw", "--input", "camera:builtin@test", "--output", str(out)]) == 0
    recs = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["name"] for r in recs] == ["coffee", "rocket"] and recs[0]["source"] == "camera:builtin@test"
    assert (out / "noisy" / "coffee.png").exists() and (out / "clean" / "rocket.png").exists()


def test_a_refused_input_leaves_no_job_record(tmp_path, capsys):
    """a.png and a.jpg map to one output name: refused before the output folder is claimed."""
    src = _make_clean(tmp_path / "photos", names=("a",))
    Image.open(src / "a.png").convert("RGB").save(src / "a.jpg")
    out = tmp_path / "out"
    assert main(["synth", "--setting", "awgn", "--input", str(src), "--output", str(out), "--quiet"]) == 2
    assert "share the name 'a'" in capsys.readouterr().err
    assert not (out / "job.json").exists()
