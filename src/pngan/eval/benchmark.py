"""The downstream benchmark (``pngan benchmark``): which training pairs make the better denoiser on
held-out real noise.

Every row is one source of training pairs (``denoise``: the real pairs, setting 1, setting 2, the
calibrated fit, a trained generator, each on the SAME clean images; ``augment``: the real pairs
plus generated pairs from other clean images at a ratio rho, the paper's Table 4). For each row
and each seed the same denoiser is trained with the same config and budget
(:func:`pngan.train.runid.train_or_reuse`: a finished run is reused, an unfinished one resumed,
one trained with another config or data refused), then scored on each held-out real test set:
PSNR and SSIM (Y) per image, as ``pngan evaluate denoiser`` does.

The summary is built for small differences: the seed is the unit of replication, so each row's
mean comes with the standard deviation over seeds and its standard error (sd / sqrt(n)), and each
difference between rows is *paired by seed* (the same seed gives both denoisers the same
initialisation and the same patch order, so the seed's own effect cancels): its mean and standard
error over seeds. ``PGap`` is the paper's PSNR gap, real-pairs row minus this row. A difference is
called resolved only when it is larger than its 95% confidence half-width, t(0.975, n-1) standard
errors (4.30 with 3 seeds, 2.78 with 5; never below 2), and the summary says so.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from pngan.errors import PnganError


@dataclass(frozen=True)
class Row:
    """One table row: its label, the training data specs and the config overrides it adds."""

    label: str
    data: tuple[str, ...]
    overrides: tuple[str, ...] = field(default_factory=tuple)

    @property
    def slug(self) -> str:
        s = re.sub(r"[^A-Za-z0-9._-]+", "_", self.label).strip("_")
        return s or "row"


def mean_se(values: list[float]) -> dict:
    """Mean, standard deviation (n-1) and standard error of ``values`` (sd and se None for n < 2)."""
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "sd": None, "se": None}
    m = sum(values) / n
    if n < 2:
        return {"n": n, "mean": m, "sd": None, "se": None}
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))
    return {"n": n, "mean": m, "sd": sd, "se": sd / math.sqrt(n)}


def t_factor(n: int) -> float:
    """The two-sided 95% Student t quantile for ``n`` paired values (n - 1 degrees of freedom)."""
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1))


def paired(a: dict[int, float], b: dict[int, float]) -> dict:
    """``a - b`` paired by seed (the seeds both have): mean, sd, se, the 95% half-width ``ci`` and
    whether it is resolved (|mean| > ci)."""
    seeds = sorted(set(a) & set(b))
    d = mean_se([a[s] - b[s] for s in seeds])
    d["seeds"] = seeds
    d["ci"] = None if d["se"] is None else t_factor(d["n"]) * d["se"]
    d["resolved"] = d["ci"] is not None and abs(d["mean"]) > d["ci"]
    return d


def _eval_cached(run: Path, test_spec: str, test_set, test_hash: str | None) -> dict:
    """The denoiser of ``run`` scored on ``test_set``; cached in ``run/benchmark_eval.json`` by the
    weights' and the test files' hashes (a retrained run or changed test files are scored again)."""
    from pngan.eval.denoise_eval import evaluate_denoiser
    from pngan.io.atomic import atomic_write_text
    from pngan.io.records import file_sha256
    from pngan.nets.loading import load_saved_network

    from pngan import __version__

    weights = run / "denoiser.safetensors"
    key = f"{file_sha256(weights)}:{test_hash}:{__version__}"  # another pngan may score otherwise
    cache_file = run / "benchmark_eval.json"
    try:
        cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    except (OSError, ValueError):
        cache = {}
    if not isinstance(cache, dict):
        cache = {}
    hit = cache.get(test_spec)
    if isinstance(hit, dict) and hit.get("key") == key and test_hash is not None and isinstance(hit.get("result"), dict):
        return hit["result"]
    net, _ = load_saved_network(weights)
    r = evaluate_denoiser(net, test_set)
    result = {"mean": {k: r["mean"][k] for k in ("psnr", "ssim_y", "psnr_input")},
              "images": {n: {k: v[k] for k in ("psnr", "ssim_y")} for n, v in r["images"].items()}}
    cache[test_spec] = {"key": key, "result": result}
    atomic_write_text(cache_file, json.dumps(cache, indent=1) + "\n")
    return result


def _check_test_sizes(spec: str, iset) -> None:
    """Every test pair can be scored (SSIM's window), checked before any denoiser is trained."""
    from pngan.eval.metrics import SSIM_WIN

    for i in range(len(iset)):
        s = iset.load(i)
        h, w = s.clean.shape[-2:]
        if min(h, w) < SSIM_WIN:
            raise PnganError(f"--test {spec}: pair '{s.name}' is {h}x{w}; scoring (SSIM) needs images of at least "
                             f"{SSIM_WIN}x{SSIM_WIN}")


def run_rows(rows: list[Row], tests: list[str], out: str | Path, *, seeds: list[int], arch: str,
             config: str, overrides: list[str], init: str | None = None, progress: bool = True,
             log=print) -> dict:
    """Train ``arch`` for every (row, seed) into ``out/runs/<row>/seed<k>`` and score it on every
    test set; returns ``{"results": {label: {test: {seed: result}}}, "steps": {label: {seed: step}}}``."""
    from pngan.data.specs import data_fingerprint, open_dataset
    from pngan.train import runid
    from pngan.train.denoiser import train_denoiser
    from pngan.train.denoiser_config import load_denoiser_config

    out = Path(out)
    test_sets = {t: open_dataset(t) for t in tests}  # every test set is read before any training
    for t, s in test_sets.items():
        if not (s.has_clean and s.has_noisy):
            raise PnganError(f"--test {t}: a test set needs noisy/clean pairs")
        _check_test_sizes(t, s)
    slugs = [r.slug for r in rows]
    if len(set(slugs)) != len(slugs):
        dup = next(s for s in slugs if slugs.count(s) > 1)
        raise PnganError(f"two rows would share the run folder runs/{dup}: give them labels that differ in letters "
                         "or digits")
    test_hash = {t: data_fingerprint(t) for t in tests}
    from pngan.data.specs import refuse_overlap

    refuse_overlap(sorted({d for r in rows for d in r.data}), tests)
    for row in rows:  # every existing run is checked before any is trained (a refusal costs no training)
        for seed in seeds:
            runid.check_reusable(load_denoiser_config, [*overrides, *row.overrides, f"net.arch={arch}", f"run.seed={seed}"],
                                 config, out / "runs" / row.slug / f"seed{seed}", kind="train-denoiser",
                                 data=list(row.data), networks={"init": init}, row=f"{row.label} seed {seed}",
                                 what="the benchmark row", same_schedule=True)
    results: dict = {r.label: {t: {} for t in tests} for r in rows}
    steps: dict = {r.label: {} for r in rows}
    total, done = len(rows) * len(seeds), 0
    for row in rows:
        for seed in seeds:
            run = out / "runs" / row.slug / f"seed{seed}"
            ov = [*overrides, *row.overrides, f"net.arch={arch}", f"run.seed={seed}"]

            def train(cfg, run_resume, _run=run, _row=row):
                return train_denoiser(cfg, list(_row.data), _run, init=None if run_resume else init,
                                      resume=run_resume, progress=progress)

            done += 1
            log(f"[{done}/{total}] {row.label}, seed {seed}: {run}")
            steps[row.label][seed] = runid.train_or_reuse(
                load_denoiser_config, train, ov, config, run, kind="train-denoiser", data=list(row.data),
                networks={"init": init}, row=f"{row.label} seed {seed}", what="the benchmark row",
                same_schedule=True)
            want = load_denoiser_config(config, ov).run.steps
            if steps[row.label][seed] != want:  # a finished run trained longer: its score is another budget's
                raise PnganError(f"the run of '{row.label}' seed {seed} was trained for {steps[row.label][seed]} "
                                 f"steps, not {want}: one table compares one budget; give --steps "
                                 f"{steps[row.label][seed]}, or another --out", run)
            for t in tests:
                results[row.label][t][seed] = _eval_cached(run, t, test_sets[t], test_hash[t])
    return {"results": results, "steps": steps}


def summarize(rows: list[Row], tests: list[str], raw: dict, *, real: str | None, reference: str | None) -> dict:
    """Per test set and row: PSNR / SSIM (Y) mean, sd and se over seeds; PGap (``real`` row minus
    this row) and the difference to ``reference`` (this row minus it), both paired by seed."""
    out = {}
    for t in tests:
        psnr = {r.label: {s: v["mean"]["psnr"] for s, v in raw["results"][r.label][t].items()} for r in rows}
        table = []
        for r in rows:
            res = raw["results"][r.label][t]
            entry = {"row": r.label, "data": list(r.data), "overrides": list(r.overrides),
                     "steps": sorted(set(raw["steps"][r.label].values())),
                     "psnr": mean_se(list(psnr[r.label].values())),
                     "ssim_y": mean_se([v["mean"]["ssim_y"] for v in res.values()]),
                     "per_seed": {str(s): {"psnr": v["mean"]["psnr"], "ssim_y": v["mean"]["ssim_y"]}
                                  for s, v in sorted(res.items())}}
            if real is not None and r.label != real:
                entry["pgap"] = paired(psnr[real], psnr[r.label])
            if reference is not None and r.label != reference:
                entry["vs_reference"] = paired(psnr[r.label], psnr[reference])
                # the spread over test images too: the per-image difference, averaged over seeds
                imgs = _per_image_diff(raw["results"][r.label][t], raw["results"][reference][t])
                entry["vs_reference"]["images_better"] = sum(1 for v in imgs.values() if v > 0)
                entry["vs_reference"]["images"] = len(imgs)
            table.append(entry)
        first = next(iter(raw["results"][rows[0].label][t].values()))
        out[t] = {"rows": table, "psnr_input": first["mean"]["psnr_input"], "images": len(first["images"])}
    return out


def _per_image_diff(a: dict, b: dict) -> dict[str, float]:
    seeds = sorted(set(a) & set(b))
    names = a[seeds[0]]["images"].keys() if seeds else []
    return {n: sum(a[s]["images"][n]["psnr"] - b[s]["images"][n]["psnr"] for s in seeds) / len(seeds) for n in names}


def _pm(d: dict, digits: int = 2, signed: bool = False) -> str:
    if d.get("mean") is None:
        return "-"
    m = f"{d['mean']:+.{digits}f}" if signed else f"{d['mean']:.{digits}f}"
    return m if d.get("se") is None else f"{m} ± {d['se']:.{digits}f}"


def markdown(title: str, summary: dict, notes: list[str], *, real: str | None, reference: str | None) -> str:
    """The benchmark tables: one per test set."""
    lines = [f"# {title}", ""]
    for t, s in summary.items():
        lines += [f"## held-out: {t} ({s['images']} images, noisy input {s['psnr_input']:.2f} dB)", ""]
        head = ["training pairs", "PSNR (mean ± se)", "sd over seeds", "SSIM-Y (mean ± se)", "seeds", "steps"]
        if real is not None:
            head.append(f"PGap ({real} minus row)")
        if reference is not None:
            head.append(f"row minus {reference} (paired)")
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for e in s["rows"]:
            cells = [e["row"], _pm(e["psnr"]), "-" if e["psnr"]["sd"] is None else f"{e['psnr']['sd']:.2f}",
                     _pm(e["ssim_y"], 4), str(e["psnr"]["n"]), ",".join(map(str, e["steps"]))]
            if real is not None:
                cells.append(_pm(e["pgap"], signed=True) if "pgap" in e else "-")
            if reference is not None:
                v = e.get("vs_reference")
                cells.append("-" if v is None else _pm(v, signed=True) + (" (resolved)" if v["resolved"] else "")
                             + f", better on {v['images_better']}/{v['images']} images")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


__all__ = ["Row", "mean_se", "paired", "t_factor", "run_rows", "summarize", "markdown"]
