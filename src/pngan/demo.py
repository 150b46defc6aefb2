"""The end-to-end demo: the paper's whole loop on built-in (or given) data, in minutes on a CPU.

1. real pairs: ``camera:builtin`` (a simulated camera, see ``pngan.data.camera``) or ``--data SPEC``,
   split by scene into train and held-out test;
2. the frozen real denoiser: ``--denoiser NAME:CKPT``, or a small DnCNN trained here on the real
   training pairs;
3. PNGAN: SMNet trained against the real training pairs (``cpu-small`` on CPU, ``paper`` on GPU);
4. generated pairs from the training clean images: PNGAN's, and setting 1's (AWGN sigma 50);
5. two identical small denoisers, same budget: one trained on setting-1 pairs, one on PNGAN pairs;
   both evaluated (PSNR/SSIM) on the held-out real pairs;
6. noise realism (KLD, AKLD, MMD) of setting 1, setting 2 and PNGAN against the held-out real noise;
7. an HTML report with figures, and a summary table.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch

from pngan.errors import PnganError

log = logging.getLogger("pngan")


def _synthetic_pairs(setting: str, clean_spec: str, out: Path, seed: int) -> str:
    """Write a pairs set of ``setting``'s noise on the clean images (per-image seeds)."""
    from pngan.data.specs import open_dataset
    from pngan.io.images import write_image
    from pngan.noise import build_synthetic
    from pngan.seeding import make_generator

    syn = build_synthetic(setting)
    images = open_dataset(clean_spec)
    for sub in ("noisy", "clean"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for s in images:
        g = make_generator(seed, s.name, 0)
        write_image(out / "clean" / f"{s.name}.png", s.clean)
        write_image(out / "noisy" / f"{s.name}_0.png", syn(s.clean[None], generator=g)[0].clamp(0, 1))
    return f"pairs:{out}"


def _finished(res):
    """A stage stopped by SIGINT/SIGTERM (it wrote its checkpoint) stops the demo too."""
    if getattr(res, "interrupted", False):
        raise KeyboardInterrupt
    return res


def run_demo(out: str | Path, data: str | None = None, denoiser: str | None = None, config: str | None = None,
             overrides: list[str] | None = None, steps: int | None = None, denoiser_steps: int | None = None,
             seed: int = 0, progress: bool = True) -> dict:
    from pngan.data.specs import open_dataset, parse_spec
    from pngan.eval.denoise_eval import evaluate_denoiser, evaluate_noise, generator_sampler, synthetic_sampler
    from pngan.eval.report import write_report
    from pngan.infer.api import NoiseGenerator
    from pngan.infer.generate import generate
    from pngan.io.atomic import atomic_write_text
    from pngan.nets.loading import load_saved_network
    from pngan.train.config import load_train_config
    from pngan.train.denoiser import load_denoiser_config, train_denoiser
    from pngan.train.loop import train_pngan

    t0 = time.perf_counter()
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise PnganError("demo output folder exists and is not empty; choose another --out", out)
    out.mkdir(parents=True, exist_ok=True)
    base = data or "camera:builtin@all"
    fmt, path, split = parse_spec(base)
    if split != "all":
        raise PnganError(f"give the whole data set to the demo (it splits it by scene itself), not '{base}'")
    train_spec = "camera:builtin" if fmt == "camera" else f"{fmt}:{path}@train"
    test_spec = "camera:builtin@test" if fmt == "camera" else f"{fmt}:{path}@test"
    train_set, test_set = open_dataset(train_spec), open_dataset(test_spec)
    log.info("real pairs: %s for training, %s held out", train_set.describe(), test_set.describe())
    timings: dict[str, float] = {}

    def lap(name: str, t: float) -> None:
        timings[name] = round(time.perf_counter() - t, 1)
        log.info("%s: %.1f s", name, timings[name])

    dn_overrides = [f"run.seed={seed}"] + ([f"run.steps={denoiser_steps}"] if denoiser_steps else [])
    # 2. the frozen real denoiser
    t = time.perf_counter()
    if denoiser is None:
        log.info("training the frozen real denoiser (DnCNN, cpu-small) on the real training pairs")
        _finished(train_denoiser(load_denoiser_config("cpu-small", dn_overrides), [train_spec], out / "real-denoiser",
                       progress=progress))
        denoiser = str(out / "real-denoiser" / "denoiser.safetensors")
    lap("frozen denoiser", t)
    # 3. PNGAN
    t = time.perf_counter()
    preset = config or ("paper" if torch.cuda.is_available() else "cpu-small")
    ov = list(overrides or []) + [f"run.seed={seed}"] + ([f"run.steps={steps}"] if steps else [])
    cfg = load_train_config(preset, ov)
    _finished(train_pngan(cfg, [train_spec], out / "pngan", denoiser=denoiser, progress=progress))
    lap("PNGAN training", t)
    # 4. generated pairs from the training clean images
    t = time.perf_counter()
    gen = NoiseGenerator.load(out / "pngan")
    generate(gen, train_spec, out / "pairs-pngan", samples=1, seed=seed, progress=False)
    generate(gen, test_spec, out / "generated-test", samples=1, seed=seed, progress=False)  # for the report
    s1_spec = _synthetic_pairs("awgn", train_spec, out / "pairs-setting1", seed)
    lap("generation", t)
    # 5. same-budget denoisers on setting-1 and PNGAN pairs, evaluated on held-out real pairs
    t = time.perf_counter()
    results: dict = {"data": base, "train": train_set.describe(), "test": test_set.describe(), "config": preset}
    dn_eval = {}
    for tag, spec in (("setting1", s1_spec), ("pngan", f"pairs:{out / 'pairs-pngan'}")):
        _finished(train_denoiser(load_denoiser_config("cpu-small", dn_overrides), [spec], out / f"denoiser-{tag}",
                                 progress=progress))
        net, _ = load_saved_network(out / f"denoiser-{tag}" / "denoiser.safetensors")
        dn_eval[tag] = evaluate_denoiser(net.eval(), test_set)["mean"]
    results["denoiser"] = dn_eval
    lap("denoisers", t)
    # 6. realism
    t = time.perf_counter()
    samplers = {"setting1": synthetic_sampler("awgn", seed), "setting2": synthetic_sampler("raw", seed),
                "pngan": generator_sampler(out / "pngan", seed)}
    realism, metric_files = {}, []
    for tag, fn in samplers.items():
        r = evaluate_noise(test_set, sample_fn=fn)
        r["kind"] = f"noise realism: {tag}"
        realism[tag] = r["mean"]
        metric_files.append(out / f"realism-{tag}.json")
        atomic_write_text(metric_files[-1], json.dumps(r, indent=2) + "\n")
    results["realism"] = realism
    lap("realism metrics", t)
    results["timings_s"] = timings
    atomic_write_text(out / "summary.json", json.dumps(results, indent=2) + "\n")
    # 7. report
    t = time.perf_counter()
    report = write_report([out / "pngan", *metric_files], out / "report", real=test_spec,
                          generated=f"pairs:{out / 'generated-test'}")
    lap("report", t)
    results["report"] = str(report)
    results["timings_s"] = timings
    results["total_s"] = round(time.perf_counter() - t0, 1)
    atomic_write_text(out / "summary.json", json.dumps(results, indent=2) + "\n")
    return results


def summary_table(res: dict) -> str:
    lines = ["noise realism on held-out real pairs (lower is better):",
             f"  {'':10s} {'KLD(NF)':>9s} {'KLD(NAF)':>9s} {'AKLD':>8s} {'MMD':>9s}"]
    for k, v in res["realism"].items():
        lines.append(f"  {k:10s} {v['kld_noiseflow']:9.4f} {v['kld_naflow']:9.4f} {v['akld']:8.4f} {v['mmd']:9.5f}")
    lines.append("denoiser trained on generated pairs, tested on held-out real pairs:")
    for k, v in res["denoiser"].items():
        lines.append(f"  {k:10s} PSNR {v['psnr']:.2f} dB  SSIM {v['ssim']:.4f}")
    lines.append(f"report: {res['report']}   (total {res['total_s']} s)")
    return "\n".join(lines)
