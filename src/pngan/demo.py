"""The end-to-end demo: the paper's whole loop on built-in (or given) data, in minutes on a CPU.

1. real pairs: ``camera:builtin`` (a simulated camera, see ``pngan.data.camera``) or ``--data SPEC``,
   split by scene into train and held-out test;
2. the frozen real denoiser: ``--denoiser NAME:CKPT``, or a DnCNN trained here on the real
   training pairs (``frozen-cpu`` on CPU, as ``pngan train`` does without --denoiser); its own
   PSNR gain on the held-out pairs is reported (a denoiser that does not denoise blinds the
   alignment loss to blur);
3. the fitted baseline: the calibrated setting fitted on the real training pairs;
4. PNGAN: SMNet trained against the real training pairs (``cpu-small`` for 200 steps on CPU,
   ``paper`` on GPU);
5. four identical small denoisers (``frozen-cpu``: DnCNN depth 8, 800 steps), same budget, each
   trained on the training clean images with fresh noise every step from: setting 1, the
   calibrated baseline, PNGAN's generator, and (for reference) the real noisy training images; all
   evaluated (PSNR/SSIM) on the held-out real pairs, beside the noisy input's PSNR. On CPU the
   real-pairs row is the frozen denoiser of stage 2 itself (the same preset, data and seed: the
   same deterministic run, not trained twice);
6. noise realism of setting 1, setting 2, the calibrated baseline and PNGAN against the held-out
   real noise: KLD, AKLD, MMD and the structure measures (level, spectrum, content leakage);
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

# The same-budget denoisers of stage 5 (and, on CPU, the frozen denoiser of stage 2): a DnCNN of
# depth 8, 32 channels, 800 steps on 48x48 patches, about 75 s each on 2 CPU cores. (cpu-small's
# 300 steps did not denoise at all: 26.66 dB on a 26.50 dB input, docs/experiments.md.)
DEMO_DENOISER = "frozen-cpu"
# PNGAN steps of the demo on CPU without --steps/--config (cpu-small itself has 400): keeps the whole
# demo under 10 minutes on 2 cores with three 800-step denoisers (571 s measured on a slow day, when 250
# steps took 614 s with the same realism and denoiser PSNR: docs/experiments.md, "The demo").
DEMO_CPU_STEPS = 200


def _finished(res):
    """A stage stopped by SIGINT/SIGTERM (it wrote its checkpoint) stops the demo too."""
    if getattr(res, "interrupted", False):
        raise KeyboardInterrupt
    return res


RECORD = "demo.json"


def _record(run: Path, kind: str, data: list[str], networks: dict) -> None:
    """The stage's run record (run.json, as the training commands write it): what it learned from, for
    the held-out checks of later commands and for a --resume of the run by hand."""
    from pngan.train import runid

    if not (run / runid.RUN_FILE).is_file():
        run.mkdir(parents=True, exist_ok=True)
        runid.record_new(run, runid.identity(kind, data, networks))


def _started(run: Path) -> bool:
    """A stage's training run that an earlier (stopped) demo began: it continues rather than restarts."""
    return (run / "config.yaml").is_file()


def _job(base, denoiser, config, preset, overrides, steps, denoiser_steps, seed) -> dict:
    """What defines a demo: its data (the path resolved, and the files' content), the frozen
    denoiser's file, the config (its file's content when it is one) and what the machine chose (a GPU
    runs the paper presets), the overrides, budgets and seed."""
    from pngan.data.specs import data_fingerprint
    from pngan.io.records import file_sha256
    from pngan.train.runid import network_identity, normalize_spec

    cfg_file = Path(config).expanduser() if config else None
    return {"data": normalize_spec(base), "data_content": data_fingerprint(base, strict=True),
            "denoiser": network_identity(denoiser), "config": preset,
            "config_sha256": file_sha256(cfg_file) if cfg_file is not None and cfg_file.is_file() else None,
            "gpu": torch.cuda.is_available(), "overrides": list(overrides or []), "steps": steps,
            "denoiser_steps": denoiser_steps, "seed": seed}


def _claim_folder(out: Path, job: dict, resume: bool) -> None:
    """A new demo needs a new or empty folder; ``resume`` needs the record of a demo started there with
    the same options (``demo.json``)."""
    from pngan.io.json_out import MARKER, write_json
    from pngan.io.records import read_json_record

    rec_path = out / RECORD
    rec = read_json_record(rec_path, "demo record") if rec_path.is_file() else None
    if resume:
        if rec is None:
            raise PnganError(f"nothing to continue: the folder holds no demo record ({RECORD}); start the demo "
                             "without --resume", out)
        old = {k: v for k, v in rec.items() if k != MARKER}
        diff = [k for k in sorted(set(old) | set(job)) if old.get(k) != job.get(k)]
        words = {"data_content": "the data's files changed", "config_sha256": "the config file changed",
                 "gpu": "started on a machine with%s a GPU" % ("" if old.get("gpu") else "out"),
                 "denoiser": "another --denoiser file"}
        if diff:
            raise PnganError("--resume continues the demo with the options and data it started with; "
                             + "; ".join(words.get(k, f"{k}: {old.get(k)!r} -> {job.get(k)!r}") for k in diff[:3]),
                             out)
        return
    if out.exists() and any(not p.name.startswith(".") for p in out.iterdir()):
        hint = "; continue the stopped demo there with --resume" if rec is not None else ""
        raise PnganError(f"demo output folder exists and is not empty; choose another --out{hint}", out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(rec_path, job, "demo")


def demo_configs(data: str | None = None, config: str | None = None, overrides: list[str] | None = None,
                 steps: int | None = None, denoiser_steps: int | None = None, seed: int = 0):
    """Check everything the demo's options name before any work (``pngan demo`` calls this before it
    makes its folder): the data spec's form, the PNGAN config (``--config``, ``KEY=VALUE``, ``--steps``)
    and the small denoisers' config. Returns ``(base spec, PNGAN preset, PNGAN config, denoiser
    overrides)``; a bad one is a one-line :class:`PnganError`."""
    from pngan.data.specs import parse_spec
    from pngan.train.config import load_train_config
    from pngan.train.denoiser_config import load_denoiser_config
    from pngan.validate import check_device

    base = data or "camera:builtin@all"
    _, _, split = parse_spec(base)
    if split != "all":
        raise PnganError(f"give the whole data set to the demo (it splits it by scene itself), not '{base}'")
    gpu = torch.cuda.is_available()
    preset = config or ("paper" if gpu else "cpu-small")
    # a run.steps override is the user's choice as much as --steps: the demo's shorter CPU default yields to it
    given = any(o.split("=", 1)[0].strip() == "run.steps" for o in overrides or [])
    if steps is None and config is None and not gpu and not given:
        steps = DEMO_CPU_STEPS
    ov = list(overrides or []) + [f"run.seed={seed}"] + ([f"run.steps={steps}"] if steps else [])
    cfg = load_train_config(preset, ov)
    check_device(cfg.run.device)
    if cfg.loss.perceptual == "imagenet" and cfg.loss.lambda_p > 0:  # the demo has no VGG16 weights
        cfg.loss.perceptual = "off"
    dn_overrides = [f"run.seed={seed}"] + ([f"run.steps={denoiser_steps}"] if denoiser_steps else [])
    load_denoiser_config(DEMO_DENOISER, dn_overrides)
    return base, preset, cfg, dn_overrides


def run_demo(out: str | Path, data: str | None = None, denoiser: str | None = None, config: str | None = None,
             overrides: list[str] | None = None, steps: int | None = None, denoiser_steps: int | None = None,
             seed: int = 0, progress: bool = True, resume: bool = False) -> dict:
    """The demo into ``out`` (new or empty). ``resume``: continue a demo that was stopped (SIGINT,
    SIGTERM, a crash) in ``out`` with the same options: finished stages are kept, an interrupted
    training continues from its last checkpoint, the quick stages run again."""
    from pngan.data.specs import open_dataset, parse_spec
    from pngan.eval.denoise_eval import evaluate_denoiser, evaluate_noise, generator_sampler, synthetic_sampler
    from pngan.eval.report import write_report
    from pngan.infer.api import NoiseGenerator
    from pngan.infer.generate import generate
    from pngan.io.atomic import atomic_write_text
    from pngan.nets.loading import load_network, load_saved_network, parse_net_spec
    from pngan.noise.calibrated import fit_calibrated, save_calibration
    from pngan.train.denoiser import train_denoiser
    from pngan.train.denoiser_config import load_denoiser_config
    from pngan.train.loop import train_pngan

    t0 = time.perf_counter()
    out = Path(out)
    # the options are checked before any work (and before the folder is made)
    base, preset, cfg, dn_overrides = demo_configs(data, config, overrides, steps, denoiser_steps, seed)
    from pngan.data.specs import folder_in_data, network_training_data, warn_overlap

    if folder_in_data(out, [base], roots_only=True) is not None:  # its outputs would join the data it reads
        raise PnganError(f"the demo folder must not be inside its data {base}: choose another --out", out)
    _claim_folder(out, _job(base, denoiser, config, preset, overrides, steps, denoiser_steps, seed), resume)
    fmt, path, split = parse_spec(base)
    train_spec = "camera:builtin" if fmt == "camera" else f"{fmt}:{path}@train"
    test_spec = "camera:builtin@test" if fmt == "camera" else f"{fmt}:{path}@test"
    train_set, test_set = open_dataset(train_spec), open_dataset(test_spec)
    if denoiser is not None:
        warn_overlap(network_training_data(denoiser), [test_spec], f"the frozen denoiser {denoiser}",
                     "the demo's held-out pairs", "its alignment term pulls towards the held-out pairs' own noise")
    log.info("real pairs: %s for training, %s held out", train_set.describe(), test_set.describe())
    timings: dict[str, float] = {}
    gpu = torch.cuda.is_available()

    def lap(name: str, t: float) -> None:
        timings[name] = round(time.perf_counter() - t, 1)
        log.info("%s: %.1f s", name, timings[name])

    results: dict = {"data": base, "train": train_set.describe(), "test": test_set.describe()}
    # 2. the frozen real denoiser
    t = time.perf_counter()
    frozen_trained_here = denoiser is None and not gpu
    if denoiser is None:
        dn_preset = "paper" if gpu else DEMO_DENOISER
        log.info("training the frozen real denoiser (DnCNN, %s) on the real training pairs", dn_preset)
        _record(out / "real-denoiser", "train-denoiser", [train_spec], {"init": None})
        _finished(train_denoiser(load_denoiser_config(dn_preset, [f"run.seed={seed}"]), [train_spec],
                                 out / "real-denoiser", progress=progress, resume=_started(out / "real-denoiser")))
        denoiser = str(out / "real-denoiser" / "denoiser.safetensors")
        dn_net, _ = load_saved_network(denoiser)
    else:
        name, dpath = parse_net_spec(denoiser)
        dn_net = load_network(name, dpath)
    results["frozen_denoiser"] = evaluate_denoiser(dn_net.eval(), test_set)["mean"]
    log.info("frozen denoiser on the held-out pairs: %.2f dB (noisy input %.2f dB)",
             results["frozen_denoiser"]["psnr"], results["frozen_denoiser"]["psnr_input"])
    lap("frozen denoiser", t)
    # 3. the fitted baseline
    t = time.perf_counter()
    calib = fit_calibrated(train_set)
    save_calibration(calib, out / "calibration.json")
    lap("calibrated fit", t)
    # 4. PNGAN
    t = time.perf_counter()
    results["config"] = preset
    _record(out / "pngan", "train", [train_spec], {"denoiser": denoiser, "vgg": None})
    _finished(train_pngan(cfg, [train_spec], out / "pngan", denoiser=denoiser, progress=progress,
                          resume=_started(out / "pngan")))
    lap("PNGAN training", t)
    # generated held-out pairs, for the report's crops
    t = time.perf_counter()
    gen = NoiseGenerator.load(out / "pngan")
    generate(gen, test_spec, out / "generated-test", samples=1, seed=seed, progress=False)
    lap("generation", t)
    # 5. same-budget denoisers on fresh noise from each source, evaluated on held-out real pairs
    t = time.perf_counter()
    sources = {"setting1": f"synth:awgn:{train_spec}", "calibrated": f"synth:{out / 'calibration.json'}:{train_spec}",
               "pngan": f"gen:{out / 'pngan'}:{train_spec}", "real": train_spec}
    dn_eval = {}
    for tag, spec in sources.items():
        if tag == "real" and frozen_trained_here and not denoiser_steps:
            # the same preset, data and seed as the frozen denoiser trained in stage 2: the same
            # (deterministic) run, so its weights are reused rather than trained twice
            dn_eval[tag] = dict(results["frozen_denoiser"], reused="real-denoiser")
            continue
        _record(out / f"denoiser-{tag}", "train-denoiser", [spec], {"init": None})
        _finished(train_denoiser(load_denoiser_config(DEMO_DENOISER, dn_overrides), [spec], out / f"denoiser-{tag}",
                                 progress=progress, resume=_started(out / f"denoiser-{tag}")))
        net, _ = load_saved_network(out / f"denoiser-{tag}" / "denoiser.safetensors")
        dn_eval[tag] = evaluate_denoiser(net.eval(), test_set)["mean"]
    results["denoiser"] = dn_eval
    lap("denoisers", t)
    # 6. realism
    t = time.perf_counter()
    samplers = {"setting1": synthetic_sampler("awgn", seed), "setting2": synthetic_sampler("raw", seed),
                "calibrated": synthetic_sampler(calib, seed), "pngan": generator_sampler(out / "pngan", seed)}
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
                          generated=f"pairs:{out / 'generated-test'}", baselines={"calibrated (fitted)": calib})
    lap("report", t)
    results["report"] = str(report)
    results["timings_s"] = timings
    results["total_s"] = round(time.perf_counter() - t0, 1)
    atomic_write_text(out / "summary.json", json.dumps(results, indent=2) + "\n")
    return results


def summary_table(res: dict) -> str:
    first = next(iter(res["realism"].values()))
    lines = [f"noise realism on held-out real pairs (real noise: std {first['std_real']:.2f}, low-frequency share "
             f"{first['lowfreq_real']:.3f}, leakage {first['leakage_real']:+.3f}); KLD/AKLD/MMD/spectrum: lower is better, "
             "std ratio: 1 is right, leakage: the real value is right, mean off(set): 0 is right (0-255)",
             f"  {'':10s} {'KLD(NF)':>8s} {'KLD(FsRGB)':>10s} {'KLD(NAF)':>8s} {'AKLD':>7s} {'MMD':>7s} {'std x':>6s} "
             f"{'spectrum':>8s} {'leakage':>8s} {'mean off':>8s}"]
    for k, v in res["realism"].items():
        lines.append(f"  {k:10s} {v['kld_noiseflow']:8.4f} {v['kld_flowsrgb']:10.4f} {v['kld_naflow']:8.4f} "
                     f"{v['akld']:7.4f} {v['mmd']:7.4f} {v['std_ratio']:6.2f} {v['spectrum_shape']:8.3f} "
                     f"{v['leakage_gen']:+8.3f} {v['mean_offset']:8.2f}")
    fd = res.get("frozen_denoiser")
    if fd:
        lines.append(f"frozen denoiser on the held-out pairs: PSNR {fd['psnr']:.2f} dB (noisy input {fd['psnr_input']:.2f} dB)")
    lines.append("same-budget denoisers trained on each noise source, tested on held-out real pairs:")
    for k, v in res["denoiser"].items():
        lines.append(f"  {k:10s} PSNR {v['psnr']:.2f} dB (input {v['psnr_input']:.2f})  SSIM (Y) {v['ssim_y']:.4f}  "
                     f"SSIM (RGB) {v['ssim_rgb']:.4f}")
    lines.append(f"report: {res['report']}   (total {res['total_s']} s)")
    return "\n".join(lines)
