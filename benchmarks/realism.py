"""Realism on held-out real pairs: learned generators against the fitted baseline and settings 1/2.

    python benchmarks/realism.py --train polyu:../shared/data/real/polyu@train \\
        --test polyu:../shared/data/real/polyu@test --run pngan=runs/polyu --out benchmarks/results/realism-polyu

Every source generates noisy versions of the held-out clean images (seeded per image and sample)
and is scored against the held-out real noise with every metric of ``pngan evaluate noise``
(KLD, AKLD, MMD; noise level, radial spectrum, content leakage, channel correlation). The
calibrated baselines are fitted on ``--train`` only. Writes ``OUT/realism.json``, ``OUT/realism.md``
(a table) and ``OUT/crops.png`` (clean | real | each source, 96x96 crops of the first test images,
and the same crops' noise x4 + 0.5 below) to look at.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

COLUMNS = ("kld_noiseflow", "akld", "mmd", "std_ratio", "std_ratio_pooled", "spectrum_shape", "lowfreq_gen", "leakage_gen",
           "chan_corr_gen", "mean_offset")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, help="training pairs (fits the calibrated baselines)")
    ap.add_argument("--test", required=True, help="held-out real pairs (scenes the generators never saw)")
    ap.add_argument("--run", action="append", default=[], metavar="LABEL=RUN", help="a trained generator")
    ap.add_argument("--settings", default="awgn,raw,calibrated-white,calibrated",
                    help="baselines to include (comma-separated)")
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--crops", type=int, default=4, help="test images shown in crops.png")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)

    from pngan.data.specs import open_dataset
    from pngan.eval.denoise_eval import evaluate_noise, generator_sampler, synthetic_sampler
    from pngan.noise.calibrated import CalibratedNoise, fit_calibrated

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    train, test = open_dataset(a.train), open_dataset(a.test)
    sources = {}
    t = time.perf_counter()
    settings = [s for s in a.settings.split(",") if s]
    if any(s.startswith("calibrated") for s in settings):
        fitted = fit_calibrated(train)
        print(f"calibrated fit on {train.describe()} in {time.perf_counter() - t:.1f} s: a={fitted.a} b={fitted.b}")
        (out / "calibration.json").write_text(json.dumps(fitted.describe(), indent=2) + "\n")
    for s in settings:
        if s == "calibrated":
            sources[s] = synthetic_sampler(fitted, a.seed)
        elif s == "calibrated-white":
            sources[s] = synthetic_sampler(CalibratedNoise(fitted.a, fitted.b), a.seed)
        else:
            sources[s] = synthetic_sampler(s, a.seed)
    for r in a.run:
        label, _, path = r.partition("=")
        sources[label] = generator_sampler(path, a.seed)
    results = {}
    for label, fn in sources.items():
        t = time.perf_counter()
        res = evaluate_noise(test, sample_fn=fn, samples=a.samples)
        results[label] = res
        print(f"{label}: {time.perf_counter() - t:.1f} s", flush=True)
    for res in results.values():  # the level over the whole set (per-image ratios over-weight quiet images)
        imgs = res["images"].values()
        res["mean"]["std_ratio_pooled"] = (sum(r["std_gen"] ** 2 for r in imgs) / sum(r["std_real"] ** 2 for r in imgs)) ** 0.5
    real_level = {k: results[next(iter(results))]["mean"][k] for k in ("std_real", "lowfreq_real", "leakage_real",
                                                                       "chan_corr_real")}
    summary = {"train": train.describe(), "test": test.describe(), "samples": a.samples, "seed": a.seed,
               "real": real_level, "mean": {k: v["mean"] for k, v in results.items()},
               "images": {k: v["images"] for k, v in results.items()}, "command": " ".join(sys.argv)}
    (out / "realism.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"held-out: {test.describe()}; real noise: std {real_level['std_real']:.2f}, low-freq share "
             f"{real_level['lowfreq_real']:.3f}, leakage {real_level['leakage_real']:+.3f}, channel corr "
             f"{real_level['chan_corr_real']:.3f}", "",
             "| source | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for label, res in results.items():
        lines.append(f"| {label} | " + " | ".join(f"{res['mean'][k]:.4f}" for k in COLUMNS) + " |")
    (out / "realism.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    _crops(test, sources, out / "crops.png", a.crops)
    return 0


def _crops(test, sources, path: Path, n: int, size: int = 96) -> None:
    from pngan.io.images import write_image

    rows = []
    for i in range(min(n, len(test))):
        s = test.load(i)
        h, w = s.clean.shape[-2:]
        y, x = max(0, h // 2 - size // 2), max(0, w // 2 - size // 2)
        crop = lambda t: t[:, y:y + size, x:x + size]  # noqa: E731
        with torch.inference_mode():
            imgs = [s.clean, s.noisy] + [fn(s.clean, s.name, 0).clamp(0, 1) for fn in sources.values()]
        top = [crop(t) for t in imgs]
        bottom = [crop((t - s.clean) * 4 + 0.5).clamp(0, 1) for t in imgs]
        rows.append(torch.cat(top, -1))
        rows.append(torch.cat(bottom, -1))
    write_image(path, torch.cat(rows, -2))
    print(f"crops: {path} (columns: clean, real, {', '.join(sources)}; odd rows images, even rows noise x4)")


if __name__ == "__main__":
    raise SystemExit(main())
