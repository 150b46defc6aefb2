"""Tiled inference, `pngan generate` and the Python API."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings, strategies as st

from pngan.errors import PnganError
from pngan.infer.api import GeneratedPairs, NoiseGenerator
from pngan.infer.generate import generate
from pngan.infer.tiling import tiled_forward
from pngan.io.images import read_image, write_image
from pngan.nets.loading import save_network
from pngan.nets.registry import build


def test_tiled_equals_untiled_for_paper_smnet():
    torch.manual_seed(0)
    net = build("smnet").eval()  # paper size: C=64, 3 groups x 2 blocks
    x = torch.rand(1, 3, 48, 75)
    with torch.no_grad():
        ref = net(x)
        out = tiled_forward(net, x, tile=32, overlap=24)
    assert out.shape == ref.shape
    assert (out - ref).abs().max() < 1e-4


_small = build("smnet", channels=4, groups=1, blocks=1).eval()


@settings(max_examples=12, deadline=None)
@given(h=st.integers(9, 60), w=st.integers(9, 60), tile=st.sampled_from([8, 12, 16, 24]), overlap=st.integers(16, 32))
def test_tiling_property(h, w, tile, overlap):
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h * 100 + w))
    with torch.no_grad():
        ref = _small(x)
        out = tiled_forward(_small, x, tile=tile, overlap=overlap)
    assert (out - ref).abs().max() < 1e-4


@pytest.fixture()
def gen_file(tmp_path):
    torch.manual_seed(1)
    return save_network(build("smnet", channels=4, groups=1, blocks=1), tmp_path / "g.safetensors",
                        {"pngan.synthetic": {"setting": "awgn", "sigma": 50.0}})


@pytest.fixture()
def clean_dir(tmp_path):
    d = tmp_path / "clean_in"
    d.mkdir()
    g = torch.Generator().manual_seed(0)
    for name, (h, w) in {"a": (20, 24), "b": (33, 17), "c": (16, 16)}.items():
        write_image(d / f"{name}.png", torch.rand(3, h, w, generator=g))
    return d


def test_generate_writes_a_pairs_set_and_is_resumable(gen_file, clean_dir, tmp_path):
    from pngan.data.specs import open_dataset

    gen = NoiseGenerator.load(gen_file)
    out = tmp_path / "out"
    res = generate(gen, f"clean:{clean_dir}", out, samples=2, seed=5, progress=False)
    assert res["written"] == 6
    pairs = open_dataset(f"pairs:{out}")
    assert sorted(pairs.names) == ["a_0", "a_1", "b_0", "b_1", "c_0", "c_1"]
    first = {p.name: p.read_bytes() for p in (out / "noisy").iterdir()}
    assert first["a_0.png"] != first["a_1.png"]
    # interrupted run: a missing output and a stray temp file
    (out / "noisy" / "b_1.png").unlink()
    (out / "noisy" / ".b_1.png.xyz.tmp.png").write_bytes(b"\x89PNG truncated")
    res = generate(gen, f"clean:{clean_dir}", out, samples=2, seed=5, progress=False)
    assert res["written"] == 1 and res["skipped"] == 5
    assert (out / "noisy" / "b_1.png").read_bytes() == first["b_1.png"]
    lines = [json.loads(l) for l in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and len({(l["source"], l["sample"]) for l in lines}) == 6
    assert all(l["params"]["sigma"] == 50.0 for l in lines)


def test_generate_folder_holds_only_the_pairs_the_job_defines(gen_file, clean_dir, tmp_path, capsys):
    """A rerun with fewer --samples, or after an input image was removed, leaves no pair the job no
    longer defines (they were silently kept: a pairs: reader saw them); the command says what went."""
    from pngan.cli import main
    from pngan.data.specs import open_dataset

    out = tmp_path / "out"
    base = ["generate", "--generator", str(gen_file), "--input", f"clean:{clean_dir}", "--output", str(out), "--quiet"]
    assert main(base + ["--samples", "2"]) == 0
    kept = (out / "noisy" / "a_0.png").read_bytes()
    (clean_dir / "c.png").unlink()
    assert main(base + ["--samples", "1"]) == 0
    msg = capsys.readouterr().out
    assert "removed 4 noisy image(s)" in msg and "noisy/a_1.png" in msg
    assert sorted(open_dataset(f"pairs:{out}").names) == ["a_0", "b_0"]
    assert sorted(p.name for p in (out / "clean").iterdir()) == ["a.png", "b.png"]
    assert (out / "noisy" / "a_0.png").read_bytes() == kept  # the pairs it still defines are untouched
    lines = [json.loads(l) for l in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted((l["source"], l["sample"]) for l in lines) == [("a", 0), ("b", 0)]
    assert json.loads((out / "job.json").read_text())["samples"] == 1


def test_generate_removes_only_its_own_unchanged_files(gen_file, clean_dir, tmp_path, capsys):
    """A file the job no longer defines is removed only if it is still what pngan wrote: an edited one
    is left and named; a hand-edited manifest cannot point the removal outside the folder."""
    from pngan.cli import main

    out = tmp_path / "out"
    base = ["generate", "--generator", str(gen_file), "--input", f"clean:{clean_dir}", "--output", str(out), "--quiet"]
    assert main(base + ["--samples", "2"]) == 0
    (out / "noisy" / "b_1.png").write_bytes(b"edited by the user")
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"mine")
    with open(out / "manifest.jsonl", "a") as f:
        f.write(json.dumps({"noisy": "noisy/../../victim.png", "source": "../../victim", "sample": 0}) + "\n")
        f.write(json.dumps({"noisy": "noisy/../../victim_0.png", "source": "../../victim", "sample": 0,
                            "sha256": "x"}) + "\n")
    assert main(base + ["--samples", "1"]) == 0
    text = capsys.readouterr().out
    assert "left 1 file(s)" in text and "noisy/b_1.png" in text
    assert (out / "noisy" / "b_1.png").read_bytes() == b"edited by the user"
    assert not (out / "noisy" / "a_1.png").exists() and victim.read_bytes() == b"mine"
    # a file this job did not write, put into noisy/: named on the next run (it joins the pairs)
    (out / "noisy" / "zz_0.png").write_bytes((out / "noisy" / "a_0.png").read_bytes())
    assert main(base + ["--samples", "1"]) == 0
    text = capsys.readouterr().out
    assert "this job did not write: b_1.png, zz_0.png" in text  # the edited file left earlier, and the stranger


def test_generate_names_the_pngan_folder_it_refuses(gen_file, clean_dir, tmp_path, capsys):
    """A training run or a report folder is named as what it is, not "holds no pngan job record"."""
    from pngan.cli import main
    from pngan.io.json_out import write_json

    run, rep = tmp_path / "run", tmp_path / "rep"
    run.mkdir()
    (run / "config.yaml").write_text("seed: 0\n")
    (run / "stats.jsonl").write_text("")
    rep.mkdir()
    write_json(rep / "report.json", {"inputs": []}, "report")
    for out, words in ((run, "holds a pngan training run"), (rep, "holds the output of 'pngan report'")):
        before = sorted(p.name for p in out.iterdir())
        assert main(["generate", "--generator", str(gen_file), "--input", f"clean:{clean_dir}", "--output", str(out),
                     "--quiet"]) == 2
        err = capsys.readouterr().err
        assert words in err and "no pngan job record" not in err, err
        assert sorted(p.name for p in out.iterdir()) == before


def test_output_independent_of_sharding_and_tiling(gen_file, clean_dir, tmp_path):
    one = tmp_path / "one"
    generate(NoiseGenerator.load(gen_file), f"clean:{clean_dir}", one, samples=1, seed=3, progress=False)
    two = tmp_path / "two"
    small_tiles = NoiseGenerator.load(gen_file, tile=12, overlap=16)
    for r in (1, 0):  # two "processes"; rank 0 merges the manifest parts after the (here: sequential) barrier
        generate(small_tiles, f"clean:{clean_dir}", two, samples=1, seed=3, rank=r, world_size=2, progress=False)
    for p in (one / "noisy").iterdir():
        a, b = read_image(p), read_image(two / "noisy" / p.name)
        assert (a - b).abs().max() <= 1 / 255 + 1e-6  # tiled within 1e-4 before 8-bit rounding
    assert (two / "manifest.jsonl").read_text().count("\n") == 3


def test_generate_refuses_bad_outputs(gen_file, clean_dir, tmp_path):
    gen = NoiseGenerator.load(gen_file)
    with pytest.raises(PnganError, match="input folder"):
        generate(gen, f"clean:{clean_dir}", clean_dir, progress=False)
    with pytest.raises(PnganError, match="input folder"):
        generate(gen, f"clean:{clean_dir}", clean_dir / "sub", progress=False)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        import os

        if os.geteuid() != 0:  # root ignores permissions
            with pytest.raises(PnganError, match="cannot write"):
                generate(gen, f"clean:{clean_dir}", ro / "x", progress=False)
    finally:
        ro.chmod(0o700)
    with pytest.raises(PnganError, match="not a generator|holds a"):
        NoiseGenerator.load(save_network(build("dncnn", channels=4, depth=3), tmp_path / "d.safetensors"))


def test_api_and_dataset(gen_file, clean_dir):
    gen = NoiseGenerator.load(gen_file)
    clean = torch.rand(2, 3, 16, 16)
    a = gen(clean, generator=torch.Generator().manual_seed(0))
    b = gen(clean, generator=torch.Generator().manual_seed(0))
    assert a.shape == clean.shape and torch.equal(a, b)
    ds = GeneratedPairs(f"clean:{clean_dir}", gen, patch_size=12, seed=1, samples=2)
    assert len(ds) == 6
    item = ds[3]
    assert item["noisy"].shape == item["clean"].shape == (3, 12, 12) and item["name"] == "b_1"
    assert torch.equal(ds[3]["noisy"], item["noisy"])
    assert float((item["noisy"] - item["clean"]).std()) > 0.05  # sigma-50 input noise is visible


def test_bf16_precision_runs_close_to_fp32(gen_file):
    """--precision bf16 (autocast; meant for GPUs) runs on CPU too and stays close to fp32."""
    clean = torch.rand(1, 3, 40, 40)
    fp32 = NoiseGenerator.load(gen_file)(clean, generator=torch.Generator().manual_seed(0))
    bf16 = NoiseGenerator.load(gen_file, precision="bf16")(clean, generator=torch.Generator().manual_seed(0))
    assert bf16.dtype == torch.float32
    d = (bf16 - fp32).abs().max()
    assert 0 < d < 0.05  # really computed in bf16 (differs), yet close
    with pytest.raises(PnganError):
        NoiseGenerator.load(gen_file, precision="fp16")
