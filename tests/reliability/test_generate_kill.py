"""`pngan generate` SIGKILLed mid-run: no truncated image under a final name, the re-run completes
the rest, the manifest ends consistent (one line per written file)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import torch

from pngan.io.images import read_image, write_image
from pngan.nets.loading import save_network
from pngan.nets.registry import build


def test_generate_sigkill_then_rerun(tmp_path):
    src = tmp_path / "clean"
    src.mkdir()
    g = torch.Generator().manual_seed(0)
    n = 40
    for k in range(n):
        write_image(src / f"im{k:02d}.png", torch.rand(3, 48, 64, generator=g))
    torch.manual_seed(0)
    gen = save_network(build("smnet", channels=8, groups=1, blocks=1), tmp_path / "g.safetensors",
                       {"pngan.synthetic": {"setting": "awgn", "sigma": 50.0}})
    out = tmp_path / "out"
    args = [sys.executable, "-m", "pngan", "generate", "--generator", str(gen), "--input", f"clean:{src}",
            "--output", str(out), "--quiet"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t = time.time()
    while not ((out / "noisy").is_dir() and len(list((out / "noisy").glob("im*.png"))) >= 3):
        assert time.time() - t < 60 and p.poll() is None, "generation ended before it could be killed"
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    done = sorted((out / "noisy").glob("im*.png"))
    assert 3 <= len(done) < n
    for f in done:  # every file under a final name is complete
        assert read_image(f).shape == (3, 48, 64)
    first = {f.name: f.read_bytes() for f in done}
    assert subprocess.run(args, env=env).returncode == 0
    final = sorted((out / "noisy").glob("im*.png"))
    assert len(final) == n
    assert all((out / "noisy" / k).read_bytes() == v for k, v in first.items())  # not rewritten
    lines = [json.loads(l) for l in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted(l["noisy"] for l in lines) == sorted(f"noisy/{f.name}" for f in final)
    assert not list(out.glob(".manifest.rank*"))
