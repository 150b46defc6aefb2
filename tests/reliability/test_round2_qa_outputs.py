"""QA round 2 (issue 24), outputs: nothing written over a file pngan did not write (--save-images,
--json), tiled results equal to untiled ones (or refused), jobs that know their own settings, and
clear one-line errors (in-process, tiny networks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from helpers import folder_bytes as _bytes
from helpers import one_line_error as _one_line
from helpers import run_cli as _run
from helpers import write_images, write_pairs



@pytest.fixture(scope="module")
def f(tmp_path_factory) -> Path:
    from pngan.nets.loading import save_network
    from pngan.nets.registry import build

    root = tmp_path_factory.mktemp("r2out")
    write_pairs(root / "P", 2, 24, 24, seed=0, sigma=0.05)
    write_images(root / "C", ["c0", "c1"], 20, 20, torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    save_network(build("dncnn", depth=3, channels=4), root / "dn.safetensors", {})
    return root





# ------------------------------------------------------------------ #1 --save-images never overwrites data
def test_save_images_refuses_the_evaluated_data_and_foreign_folders(f, capsys, tmp_path):
    import shutil

    data = tmp_path / "P"
    shutil.copytree(f / "P", data)
    before = _bytes(data)
    ev = ["evaluate", "denoiser", "--model", f / "dn.safetensors", "--data", f"pairs:{data}", "--tile", 0]
    for target in (data / "clean", data / "noisy", data, data / "clean" / "sub"):
        for extra in ([], ["--overwrite"]):  # never, not even with --overwrite
            _one_line(capsys, ev + ["--save-images", target, *extra], "folder of the evaluated data")
    assert _bytes(data) == before
    # a folder of other files (e.g. a copy of the clean images) is refused without --overwrite
    other = tmp_path / "copy"
    shutil.copytree(f / "P" / "clean", other)
    keep = _bytes(other)
    _one_line(capsys, ev + ["--save-images", other], "holds no pngan job record")
    assert _bytes(other) == keep
    # a new folder; then the same evaluation again replaces its own images; another model is refused
    out = tmp_path / "den"
    _run(capsys, ev + ["--save-images", out])
    assert sorted(p.name for p in out.iterdir()) == ["i0.png", "i1.png", "job.json"]
    _run(capsys, ev + ["--save-images", out])
    from pngan.nets.loading import save_network
    from pngan.nets.registry import build

    torch.manual_seed(1)
    save_network(build("dncnn", depth=3, channels=4), tmp_path / "dn2.safetensors", {})
    ev2 = [*ev[:3], tmp_path / "dn2.safetensors", *ev[4:]]
    _one_line(capsys, ev2 + ["--save-images", out], "another job")
    _run(capsys, ev2 + ["--save-images", out, "--overwrite"])
    _run(capsys, ev + ["--save-images", other, "--overwrite"])  # asked for: same-named files replaced


# ------------------------------------------------------------------ #2 --json replaces only its own output
def test_json_refuses_files_pngan_did_not_write(f, capsys, tmp_path):
    cal = tmp_path / "cal.json"
    _run(capsys, ["synth", "--input", f"clean:{f}/C", "--output", tmp_path / "s", "--setting", "calibrated",
                  "--fit", f"pairs:{f}/P", "--save-fit", cal])
    png = tmp_path / "victim.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    noise = ["evaluate", "noise", "--real", f"pairs:{f}/P", "--setting", "awgn", "--json"]
    den = ["evaluate", "denoiser", "--model", f / "dn.safetensors", "--data", f"pairs:{f}/P", "--json"]
    for victim in (cal, png):
        keep = victim.read_bytes()
        _one_line(capsys, noise + [victim], "not replaced")
        _one_line(capsys, den + [victim], "not replaced")
        assert victim.read_bytes() == keep
    # its own earlier output is replaced (a rerun); another command's output is not
    out = tmp_path / "m.json"
    _run(capsys, noise + [out])
    rec = json.loads(out.read_text())
    assert rec["pngan"]["command"] == "evaluate noise" and "version" in rec["pngan"] and "mean" in rec
    _run(capsys, noise + [out])
    _one_line(capsys, den + [out], "'pngan evaluate noise'")
    d = tmp_path / "d.json"
    _run(capsys, den + [d])
    assert json.loads(d.read_text())["pngan"]["command"] == "evaluate denoiser"


# ------------------------------------------------------------------ #14 a file where a folder is expected
def test_a_file_given_as_a_folder_spec_says_so(f, capsys, tmp_path):
    line = _one_line(capsys, ["synth", "--setting", "awgn", "--input", f"clean:{f}/C/c0.png", "--output",
                              tmp_path / "x"], "c0.png is a file; clean: takes a folder")
    assert "no such folder" not in line
    _one_line(capsys, ["evaluate", "noise", "--real", f"pairs:{f}/P/clean/i0.png", "--setting", "awgn"],
              "is a file; pairs: takes a folder")


# ------------------------------------------------------------------ #6 evaluate denoiser: tiles change nothing
def test_denoiser_tiles_equal_the_whole_image_or_are_labelled(f, capsys, tmp_path):
    from pngan.nets.loading import save_network
    from pngan.nets.registry import build

    ev = ["evaluate", "denoiser", "--model", f / "dn.safetensors", "--data", f"pairs:{f}/P"]
    _run(capsys, ev + ["--tile", 0, "--json", tmp_path / "w.json", "--save-images", tmp_path / "w"])
    _run(capsys, ev + ["--tile", 8, "--json", tmp_path / "t.json", "--save-images", tmp_path / "t"])
    whole, tiled = (json.loads((tmp_path / n).read_text()) for n in ("w.json", "t.json"))
    assert tiled["tiling"]["exact"] is True and tiled["tiling"]["halo"] == 3
    for name, row in whole["images"].items():
        assert tiled["images"][name]["psnr"] == pytest.approx(row["psnr"], abs=1e-5)
        assert (tmp_path / "t" / f"{name}.png").read_bytes() == (tmp_path / "w" / f"{name}.png").read_bytes()
    # channel attention pools the whole image: tiling it is approximate, said once and recorded
    torch.manual_seed(0)
    save_network(build("ridnet", channels=16), tmp_path / "rid.safetensors", {})
    with pytest.warns(UserWarning, match="approximate") as rec:
        _run(capsys, [*ev[:3], tmp_path / "rid.safetensors", *ev[4:], "--tile", 8, "--json", tmp_path / "r.json"])
    assert sum("approximate" in str(w.message) for w in rec) == 1
    assert json.loads((tmp_path / "r.json").read_text())["tiling"]["exact"] is False


# ------------------------------------------------------------------ #7 generate: the halo covers the field
def test_generate_exact_tiles_need_the_receptive_field(capsys, tmp_path):
    from pngan.infer.tiling import min_exact_overlap
    from pngan.nets.loading import save_network
    from pngan.nets.registry import build

    torch.manual_seed(1)
    net = build("smnet", channels=4, groups=1, blocks=1)
    g = save_network(net, tmp_path / "g.safetensors", {"pngan.synthetic": {"setting": "awgn", "sigma": 50.0}})
    need = min_exact_overlap(net.eval())
    assert need is not None and need > 4
    write_images(tmp_path / "in", ["a", "b"], 40, 36, torch.Generator().manual_seed(0))
    gen = ["generate", "--generator", g, "--input", f"clean:{tmp_path}/in", "--quiet"]
    _run(capsys, gen + ["--output", tmp_path / "whole", "--tile", 0])
    line = _one_line(capsys, gen + ["--output", tmp_path / "t4", "--tile", 16, "--overlap", 4], "receptive field")
    assert f"--overlap {need}" in line and not (tmp_path / "t4" / "job.json").exists()
    _run(capsys, gen + ["--output", tmp_path / "t16", "--tile", 16])  # default: the field, exact
    _run(capsys, gen + ["--output", tmp_path / "t16b", "--tile", 16, "--overlap", need + 8])
    for out in ("t16", "t16b"):
        for name in ("a_0.png", "b_0.png"):
            assert (tmp_path / out / "noisy" / name).read_bytes() == (tmp_path / "whole" / "noisy" / name).read_bytes()


# ------------------------------------------------------------------ #10 synth: the default spelled out
def test_synth_default_sigma_spelled_out_is_the_same_job(f, capsys, tmp_path):
    out = tmp_path / "s"
    synth = ["synth", "--setting", "awgn", "--input", f"clean:{f}/C", "--output", out]
    _run(capsys, synth)
    assert json.loads((out / "job.json").read_text())["sigma"] == 50.0
    _run(capsys, synth + ["--sigma", "50"])
    _one_line(capsys, synth + ["--sigma", "25"], "another job")
    # a job.json of an older pngan (sigma null) still matches its own reruns, either spelling
    job = json.loads((out / "job.json").read_text())
    (out / "job.json").write_text(json.dumps({**job, "sigma": None}))
    _run(capsys, synth)
    (out / "job.json").write_text(json.dumps({**job, "sigma": None}))
    _run(capsys, synth + ["--sigma", "50"])


# ------------------------------------------------------------------ #9 pgap: advice that works, no stale claim
def test_pgap_failure_leaves_no_claim_and_advice_names_no_missing_option(f, capsys, tmp_path):
    out = tmp_path / "pg"
    write_pairs(tmp_path / "T", 1, 24, 24, seed=5, sigma=0.05)  # held out: not the training pairs
    pg = ["evaluate", "pgap", "--real-train", f"pairs:{f}/P", "--generated-train", f"pairs:{f}/P", "--test",
          f"pairs:{tmp_path}/T", "--out", out, "--arch", "ridnet", "data.patch_size=16", "data.batch_size=2",
          "run.steps=1", "run.log_every=1", "run.ckpt_every=1", "run.threads=1"]
    bad = pg + ["net.kwargs={depth: 2, channels: 4}"]  # ridnet takes no depth: fails as training starts
    _one_line(capsys, bad, "ridnet")
    assert not (out / "job.json").exists() and not (out / "real").exists()
    _one_line(capsys, bad, "ridnet")  # the same error again, not "another job"
    # another job in the folder: the advice works (pgap has no --overwrite)
    out.mkdir(exist_ok=True)
    (out / "job.json").write_text(json.dumps({"command": "pgap", "arch": "dncnn"}))
    line = _one_line(capsys, pg + ["net.kwargs={channels: 16}"], "another job")
    assert "--overwrite to" not in line and "choose another --out" in line


# ------------------------------------------------------------------ #13 tiny images: named, refused cleanly
def test_tiny_images_are_named_and_report_refuses_them(f, capsys, tmp_path):
    tiny = write_pairs(tmp_path / "tiny", 1, 1, 1)
    line = _one_line(capsys, ["evaluate", "noise", "--real", f"pairs:{tiny}", "--setting", "awgn"], "'i0")
    assert "1x1" in line and "(1, 3, 1, 1)" not in line
    _one_line(capsys, ["report", "--real", f"pairs:{tiny}", "--out", tmp_path / "rep"], "1x1")
    assert not (tmp_path / "rep" / "index.html").exists()
