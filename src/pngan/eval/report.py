"""``pngan report``: a self-contained HTML page (``DIR/index.html``) with PNG figures beside it.

Inputs are run folders (``stats.jsonl`` -> training curves, latest ``samples/`` strip, config) and
metric JSON files written by ``pngan evaluate`` (tables). With ``real`` (a pairs spec) and
``generated`` (folder/spec of generated noisy images for the same clean images) it also draws
side-by-side crops (clean, setting 1, setting 2, any given baselines, generated, real; each
with its noise x4 below), per-channel noise histograms,
the noise level function and noise power spectra for real / generated / both synthetic settings.
"""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from pngan.errors import PnganError


def _table(headers: list[str], rows: list[list]) -> str:
    def cell(v):
        if isinstance(v, float):
            return f"{v:.4f}"
        return html.escape(str(v))

    h = "".join(f"<th>{html.escape(x)}</th>" for x in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def _metric_section(path: Path, res: dict) -> str:
    if isinstance(res.get("sets"), list):  # 'pngan evaluate denoiser' with several --data
        return "\n".join(_metric_section(path, {**r, "kind": res.get("kind", r.get("kind"))}) for r in res["sets"])
    from pngan.eval.noise_metrics import METRIC_LABELS

    if isinstance(res.get("checkpoints"), list):  # 'pngan evaluate noise --checkpoints --json'
        rows = [r for r in res["checkpoints"] if isinstance(r, dict) and isinstance(r.get("mean"), dict)]
        if not rows:
            raise PnganError("a checkpoint trajectory JSON without checkpoints", path)
        keys = list(rows[0]["mean"])
        table = [[r.get("step", "")] + [r["mean"].get(k, "") for k in keys] for r in rows]
        table += [[name] + [b.get(k, "") for k in keys]
                  for name, b in (res.get("baselines") or {}).items() if isinstance(b, dict)]
        best = ", ".join(f"{k} {v}" for k, v in (res.get("best_step") or {}).items())
        return (f"<h2>checkpoint trajectory: {html.escape(path.name)}</h2><p>{html.escape(str(res.get('run', '')))} "
                f"on {html.escape(str(res.get('real', '')))}; best step: {html.escape(best)}</p>"
                + _table(["step"] + keys, table))
    if isinstance(res.get("summary"), dict):  # 'pngan benchmark' (benchmark.json)
        parts = []
        for test, t in res["summary"].items():
            table = [[e["row"], e["psnr"]["mean"], e["psnr"].get("se") or "", e["ssim_y"]["mean"],
                      (e.get("pgap") or {}).get("mean", ""), (e.get("vs_reference") or {}).get("mean", "")]
                     for e in t["rows"]]
            parts.append(f"<h2>benchmark: {html.escape(path.name)}</h2><p>held-out {html.escape(str(test))}</p>"
                         + _table(["row", "PSNR", "se", "SSIM (Y)", "PGap", "vs reference"], table))
        return "\n".join(parts)
    if isinstance(res.get("rows"), list) and "mean" not in res:  # 'pngan ablation' tables (table3.json, ...)
        rows = [r for r in res["rows"] if isinstance(r, dict)]
        keys = [k for k in dict.fromkeys(k for r in rows for k in r) if all(
            isinstance(r.get(k), (str, int, float, type(None))) for r in rows)]
        return (f"<h2>table: {html.escape(path.name)}</h2>"
                + _table(keys, [[r.get(k, "") if r.get(k) is not None else "" for k in keys] for r in rows]))
    if "mean" not in res or "images" not in res:
        raise PnganError("not a pngan metric JSON (needs 'mean' and 'images', as 'pngan evaluate ... --json' "
                         "writes)", path)

    keys = list(res["mean"])
    legend = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(METRIC_LABELS[k])}</li>" for k in keys
                     if k in METRIC_LABELS)
    if "samples" in res:
        legend += f"<li>generated samples per image (L): {html.escape(json.dumps(res['samples']))}</li>"
    title = res.get("kind", "metrics")
    what = next((v for v in (res.get("generated"), res.get("model")) if isinstance(v, str)), "")
    where = next((v for v in (res.get("real"), res.get("data"), res.get("test")) if isinstance(v, str)), "")
    rows = [[name] + [r.get(k, "") for k in keys] for name, r in res["images"].items()]
    rows.append(["mean"] + [res["mean"][k] for k in keys])
    return (f"<h2>{html.escape(str(title))}: {html.escape(path.name)}</h2><p>{html.escape(where)}"
            f" {html.escape(str(what))}</p>" + _table(["image"] + keys, rows)
            + (f"<ul>{legend}</ul>" if legend else ""))


def _metric_section_checked(path: Path, res) -> str:
    """:func:`_metric_section`, with a JSON value of another shape (a list, a string, a table of
    strings where numbers belong) named as not being a pngan metric JSON."""
    why = "needs 'mean' and 'images', as 'pngan evaluate ... --json' writes"
    if not isinstance(res, dict):
        raise PnganError(f"not a pngan metric JSON (it holds a JSON {type(res).__name__}; {why})", path)
    try:
        return _metric_section(path, res)
    except PnganError:
        raise
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as e:
        raise PnganError(f"not a pngan metric JSON (a value of an unexpected type or shape: {e}; {why})",
                         path) from None


def _run_section(run: Path, out: Path, idx: int) -> str:
    from pngan.eval.plots import plot_training_curves
    from pngan.train.runlog import read_stats

    parts = [f"<h2>run: {html.escape(str(run))}</h2>"]
    stats_path = run / "stats.jsonl"
    if not stats_path.is_file():
        raise PnganError("run folder has no stats.jsonl", run)
    stats = read_stats(stats_path)
    fig = plot_training_curves(out / f"run{idx}_curves.png", stats, title=run.name)
    if fig is not None:
        parts.append(f'<img src="{fig.name}" alt="training curves">')
    else:
        parts.append("<p>stats.jsonl holds no loss values yet.</p>")
    if stats:
        last = stats[-1]
        parts.append("<p>last logged step:</p>" + _table(list(last), [list(last.values())]))
    samples = sorted((run / "samples").glob("*.png")) if (run / "samples").is_dir() else []
    if samples:
        dst = out / f"run{idx}_{samples[-1].name}"
        shutil.copyfile(samples[-1], dst)
        parts.append(f"<p>latest sample ({html.escape(samples[-1].name)}; clean, synthetic, generated, real):</p>"
                     f'<img src="{dst.name}" alt="samples">')
    cfg = run / "config.yaml"
    if cfg.is_file():
        parts.append(f"<details><summary>config.yaml</summary><pre>{html.escape(cfg.read_text())}</pre></details>")
    return "\n".join(parts)


MIN_SIDE = 8  # the smallest image the noise figures can be drawn from (as the noise spectrum metric)


def _check_side(real_spec: str, s) -> None:
    """Refuse a pair too small for the noise figures (no spectrum / level function: drawn empty), or
    not a pair."""
    if s.clean is None or s.noisy is None:
        raise PnganError(f"{real_spec}: the report's noise figures need real noisy/clean pairs (pair '{s.name}' has "
                         f"no {'clean' if s.clean is None else 'noisy'} image)")
    if min(s.clean.shape[-2:]) < MIN_SIDE:
        raise PnganError(f"{real_spec}: real pair '{s.name}' is {s.clean.shape[-2]}x{s.clean.shape[-1]}; the "
                         f"report's noise figures need images of at least {MIN_SIDE}x{MIN_SIDE}")


def _noise_section(real_spec: str, samples: list, gen: dict | None, generated: str | None, out: Path, crop: int,
                   seed: int, baselines: dict | None = None) -> str:
    """The noise figures of ``samples`` (real pairs checked by :func:`_checked_inputs`) beside the
    synthetic settings, ``baselines`` and the generated images ``gen`` (or None)."""
    from pngan.eval import noise_stats as ns
    from pngan.eval.denoise_eval import match_generated, synthetic_sampler
    from pngan.eval.plots import plot_crops, plot_histograms, plot_nlf, plot_spectra

    s1, s2 = synthetic_sampler("awgn", seed), synthetic_sampler("raw", seed)
    sets: dict[str, list] = {"real": [], "setting 1 (AWGN)": [], "setting 2 (RAW)": []}
    extra = {name: synthetic_sampler(setting, seed) for name, setting in (baselines or {}).items()}
    for name in extra:
        sets[name] = []
    if gen is not None:
        sets["generated"] = []
    rows = []
    for s in samples:
        with torch.inference_mode():
            a, b = s1(s.clean, s.name, 0).clamp(0, 1), s2(s.clean, s.name, 0).clamp(0, 1)
        sets["real"].append((s.noisy, s.clean))
        sets["setting 1 (AWGN)"].append((a, s.clean))
        sets["setting 2 (RAW)"].append((b, s.clean))
        cols = {"clean": s.clean, "setting 1 (AWGN)": a, "setting 2 (RAW)": b}
        for name, fn in extra.items():
            with torch.inference_mode():
                c = fn(s.clean, s.name, 0).clamp(0, 1)
            sets[name].append((c, s.clean))
            cols[name] = c
        if gen is not None:
            g = match_generated(s.name, gen)
            sets["generated"].append((g[0], s.clean))
            cols["generated"] = g[0]
        cols["real"] = s.noisy
        h, w = s.clean.shape[1:]
        y0, x0 = max(0, (h - crop) // 2), max(0, (w - crop) // 2)

        def cut(v):
            return v[:, y0:y0 + crop, x0:x0 + crop].permute(1, 2, 0).numpy()

        rows.append((s.name, {k: cut(v) for k, v in cols.items()}))
        # below each image row: the same crops' noise (image - clean) x4 + 0.5, where blur shows as edges
        rows.append((f"{s.name}: noise x4", {k: cut((v - s.clean) * 4 + 0.5) for k, v in cols.items()}))
    figs = [plot_crops(out / "crops.png", rows)]
    figs.append(plot_histograms(out / "noise_histograms.png", {k: ns.noise_histograms(v) for k, v in sets.items()}))
    figs.append(plot_nlf(out / "noise_level_function.png", {k: ns.noise_level_function(v) for k, v in sets.items()}))
    figs.append(plot_spectra(out / "noise_spectra.png", {k: ns.radial_power_spectrum(v) for k, v in sets.items()}))
    return (f"<h2>noise: {html.escape(real_spec)}" + (f" vs {html.escape(generated)}" if generated else "") + "</h2>"
            + "\n".join(f'<img src="{f.name}" alt="{f.stem}">' for f in figs))


def _checked_inputs(real: str, generated: str | None, max_images: int) -> tuple[list, dict | None]:
    """The first ``max_images`` real pairs and the generated images (or None), read once and checked
    before the report folder is made: real noisy/clean pairs large enough for the figures, and a
    generated image made from each pair's clean image, of its size."""
    from pngan.data.specs import open_dataset

    rs = open_dataset(real)
    samples = [rs.load(i) for i in range(min(len(rs), max_images))]
    for s in samples:
        _check_side(real, s)
    if not generated:
        return samples, None
    from pngan.eval.denoise_eval import check_generated_clean, collect_generated, match_generated

    gen = collect_generated(generated)
    for s in samples:
        g = match_generated(s.name, gen)
        if not g:
            raise PnganError(f"no generated image for real image '{s.name}'")
        check_generated_clean(s.name, s.clean, gen)
        if g[0].shape != s.clean.shape:
            raise PnganError(f"--generated: the image for real pair '{s.name}' is {g[0].shape[-2]}x{g[0].shape[-1]}, "
                             f"the pair {s.clean.shape[-2]}x{s.clean.shape[-1]}: give images generated from "
                             f"{real}'s clean images")
    return samples, gen


def write_report(inputs: list[str | Path], out: str | Path, *, real: str | None = None,
                 generated: str | None = None, max_images: int = 4, crop: int = 96, seed: int = 0,
                 baselines: dict | None = None) -> Path:
    """Write ``out/index.html`` and its PNG figures; returns the index path. ``baselines`` (label ->
    synthetic setting, e.g. ``{"calibrated": CalibratedNoise}``) adds columns and curves beside
    settings 1 and 2 in the noise figures."""
    from pngan.io.atomic import atomic_write_text

    if not inputs and real is None:
        raise PnganError("nothing to report: give run folders, metric JSON files or --real")
    if real is not None:  # before anything is drawn
        samples, gen = _checked_inputs(real, generated, max_images)
    metric = {}  # every metric JSON is read and rendered before anything is written
    for i, p in enumerate(map(Path, inputs)):
        if p.is_dir():
            if not (p / "stats.jsonl").is_file():
                raise PnganError("run folder has no stats.jsonl", p)
            continue
        if not p.is_file():
            raise PnganError("no such run folder or JSON file", p)
        try:
            res = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise PnganError(f"not a JSON file: {e}", p) from None
        metric[i] = _metric_section_checked(p, res)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sections = [metric[i] if i in metric else _run_section(p, out, i) for i, p in enumerate(map(Path, inputs))]
    if real is not None:
        sections.append(_noise_section(real, samples, gen, generated, out, crop, seed, baselines))
    style = ("body{font-family:sans-serif;max-width:1400px;margin:auto}table{border-collapse:collapse;margin:8px 0}"
             "td,th{border:1px solid #aaa;padding:3px 8px;font-size:13px}img{max-width:100%;display:block;margin:8px 0}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>pngan report</title><style>{style}</style>"
            f"</head><body><h1>pngan report</h1>\n" + "\n".join(sections) + "\n</body></html>\n")
    index = out / "index.html"
    atomic_write_text(index, page)
    return index


__all__ = ["write_report"]
_ = np  # numpy used by callers' arrays
