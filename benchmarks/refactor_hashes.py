"""SHA-256 of trained weights after 20 steps, to check that a restructuring of the training code
changes no arithmetic: the generator of ``pngan train --config cpu-small`` and ``--config
cpu-sidd`` and the denoiser of ``pngan train-denoiser --config cpu-small``, each on four 96x96
crops of the shared CC15 pairs, one thread.

Only the tensors are hashed (names and bytes, in name order), not the file: the file's metadata
holds the config hash and the version, which may change without the weights changing.

    python benchmarks/refactor_hashes.py [--shared /work/shared] [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path


def tensor_hash(path: Path) -> str:
    from pngan.nets.loading import read_state_dict

    sd = read_state_dict(path)
    h = hashlib.sha256()
    for k in sorted(sd):
        t = sd[k].contiguous()
        h.update(k.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(-1).view(dtype=__import__("torch").uint8).numpy().tobytes())
    return h.hexdigest()


def make_pairs(shared: Path, root: Path) -> Path:
    from pngan.io.images import read_image, write_image

    src = shared / "data" / "real" / "cc15"
    names = sorted(p.name[: -len("_mean.png")] for p in src.glob("*_mean.png"))[:4]
    for n in names:
        clean = read_image(src / f"{n}_mean.png")
        noisy = read_image(src / f"{n}_real.png")
        write_image(root / "clean" / f"{n}.png", clean[:, 100:196, 100:196])
        write_image(root / "noisy" / f"{n}.png", noisy[:, 100:196, 100:196])
    return root


def run(args: list[str]) -> None:
    r = subprocess.run([sys.executable, "-m", "pngan", *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: pngan {' '.join(args)}\n{r.stdout}\n{r.stderr}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="/work/shared")
    ap.add_argument("--keep", default=None, help="write the runs here instead of a temporary folder")
    a = ap.parse_args()
    shared = Path(a.shared)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(a.keep) if a.keep else Path(tmp)
        pairs = make_pairs(shared, root / "pairs")
        dn = f"dncnn:{shared / 'weights' / 'dncnn_sidd_naflow.pth'}"
        common = ["--steps", "20", "--quiet", "run.threads=1"]
        for preset in ("cpu-small", "cpu-sidd"):
            out = root / f"g-{preset}"
            run(["train", "--data", f"pairs:{pairs}", "--denoiser", dn, "--config", preset, "--out", str(out), *common])
            print(f"generator {preset:10s} {tensor_hash(out / 'generator.safetensors')}")
        out = root / "denoiser"
        run(["train-denoiser", "--arch", "dncnn", "--data", f"pairs:{pairs}", "--config", "cpu-small",
             "--out", str(out), *common])
        print(f"denoiser  cpu-small  {tensor_hash(out / 'denoiser.safetensors')}")


if __name__ == "__main__":
    main()
