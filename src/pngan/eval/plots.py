"""Report figures (matplotlib, Agg backend, written as PNG files).

Each function takes plain arrays/dicts and a path and writes one readable figure (title, axis
labels, legend).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CHANNELS = ("R", "G", "B")
COLOURS = {"real": "black", "generated": "tab:red", "setting 1 (AWGN)": "tab:blue",
           "setting 2 (RAW)": "tab:green"}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path, maker: str = "report") -> Path:
    """Write ``fig`` as a PNG with pngan's text marker naming the command that drew it (``maker``): a
    rerun of that command may replace it; nothing else is replaced (:func:`pngan.io.json_out.check_plot_target`)."""
    from pngan.io.atomic import atomic_path
    from pngan.io.json_out import PNG_KEYWORD

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png", metadata={PNG_KEYWORD: maker})
    _plt().close(fig)
    return path


def _per_channel(path, title, xlabel, ylabel, curves: dict[str, tuple[np.ndarray, np.ndarray]],
                 logy=False) -> Path:
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    for ch, ax in enumerate(axes):
        for label, (x, ys) in curves.items():
            ax.plot(x, ys[ch], label=label, color=COLOURS.get(label), lw=1.4)
        ax.set_title(f"{title} - channel {CHANNELS[ch]}")
        ax.set_xlabel(xlabel)
        if logy:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(ylabel)
    axes[-1].legend(loc="best", fontsize=8)
    return _save(fig, path)


def plot_histograms(path, curves) -> Path:
    """curves: label -> (bin centres, (3, bins) densities)."""
    return _per_channel(path, "Noise histogram", "noise value (noisy - clean)", "density", curves, logy=True)


def plot_nlf(path, curves) -> Path:
    """curves: label -> (intensity centres, (3, bins) noise std)."""
    return _per_channel(path, "Noise level function", "clean intensity", "noise std", curves)


def plot_spectra(path, curves) -> Path:
    """curves: label -> (radial frequency, (3, bins) normalised power)."""
    return _per_channel(path, "Noise power spectrum", "radial frequency (1 = Nyquist diagonal)",
                        "power / mean power (white = 1)", curves, logy=True)


def plot_crops(path, rows: list[tuple[str, dict[str, np.ndarray]]]) -> Path:
    """rows: (image name, {column label: (H, W, 3) array in [0, 1]}) -> a grid of crops."""
    plt = _plt()
    cols = list(rows[0][1])
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(2.6 * len(cols), 2.8 * len(rows)), squeeze=False)
    for r, (name, crops) in enumerate(rows):
        for c, label in enumerate(cols):
            ax = axes[r][c]
            ax.imshow(np.clip(crops[label], 0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(label, fontsize=10)
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
    return _save(fig, path)


def plot_training_curves(path, stats: list[dict], title: str = "training") -> Path | None:
    """One panel per numeric key of ``stats.jsonl`` records starting with ``loss`` (plus ``lr``),
    against ``step``. Returns None when there is nothing to plot."""
    keys = sorted({k for r in stats for k, v in r.items()
                   if (k.startswith("loss") or k in ("lr", "psnr")) and isinstance(v, (int, float))})
    if not keys or not stats:
        return None
    plt = _plt()
    n = len(keys)
    ncol = min(3, n)
    nrow = (n + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.4 * ncol, 3.2 * nrow), squeeze=False)
    for i, k in enumerate(keys):
        ax = axes[i // ncol][i % ncol]
        pts = [(r["step"], r[k]) for r in stats if k in r and "step" in r]
        if pts:
            x, y = zip(*pts)
            ax.plot(x, y, lw=1.2, label=k)
        ax.set_title(f"{title}: {k}", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel(k)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for j in range(n, nrow * ncol):
        axes[j // ncol][j % ncol].axis("off")
    return _save(fig, path)


TRAJECTORY_MAKER = "evaluate noise --plot"  # the PNG marker of the one figure a --plot FILE replaces
TRAJECTORY_KEYS = ("kld_noiseflow", "akld", "mmd", "std_ratio", "spectrum_shape", "leakage_gen", "mean_offset")


def plot_trajectory(path, rows: list[dict], baselines: dict[str, dict] | None = None,
                    title: str = "held-out realism") -> Path:
    """Realism metrics of a run's checkpoints against the training step (``rows``: records with
    ``step`` and ``mean``), each baseline's value (``{label: mean}``) as a dashed line."""
    plt = _plt()
    ncol = 4
    nrow = -(-len(TRAJECTORY_KEYS) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(17, 3.2 * nrow), squeeze=False)
    steps = [r["step"] for r in rows]
    for j in range(len(TRAJECTORY_KEYS), nrow * ncol):
        axes[j // ncol][j % ncol].axis("off")
    for i, k in enumerate(TRAJECTORY_KEYS):
        ax = axes[i // ncol][i % ncol]
        ax.plot(steps, [r["mean"][k] for r in rows], "o-", lw=1.2, ms=3, color="tab:red", label="generator")
        for j, (label, mean) in enumerate((baselines or {}).items()):
            ax.axhline(mean[k], ls="--", lw=1, color=f"C{j}", label=label)
        if k == "std_ratio":
            ax.axhline(1.0, ls=":", lw=1, color="black", label="real")
        if k == "leakage_gen" and "leakage_real" in rows[0]["mean"]:
            ax.axhline(rows[0]["mean"]["leakage_real"], ls=":", lw=1, color="black", label="real")
        ax.set_title(f"{title}: {k}", fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path, TRAJECTORY_MAKER)


def plot_benchmark(path, summary: dict, title: str = "downstream benchmark") -> Path:
    """``pngan benchmark``: held-out PSNR per row, one panel per test set; each seed a dot, the mean
    with its standard error as a bar."""
    plt = _plt()
    n = len(summary)
    fig, axes = plt.subplots(1, n, figsize=(max(5.0, 1.2 * max(len(s["rows"]) for s in summary.values()) + 2) * n, 4),
                             squeeze=False)
    for ax, (test, s) in zip(axes[0], summary.items()):
        for i, e in enumerate(s["rows"]):
            ys = [v["psnr"] for v in e["per_seed"].values()]
            ax.plot([i] * len(ys), ys, "o", ms=4, alpha=0.5, color=f"C{i % 10}")
            p = e["psnr"]
            ax.errorbar([i], [p["mean"]], yerr=[p["se"] or 0.0], fmt="_", ms=18, capsize=6, color="black")
        ax.axhline(s["psnr_input"], ls=":", lw=1, color="grey", label="noisy input")
        ax.set_xticks(range(len(s["rows"])), [e["row"] for e in s["rows"]], rotation=20, fontsize=8)
        ax.set_ylabel("PSNR (dB) on held-out real pairs")
        ax.set_title(f"{title}\n{test}", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=7)
    return _save(fig, path, "benchmark")
