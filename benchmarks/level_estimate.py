"""The reference-level estimator (issue 25, item 4): which method reads a noisy image's level best.

    python benchmarks/level_estimate.py --shared ../shared --out benchmarks/results/level-estimate.json

Fits the calibrated model (``fit_calibrated(levels=True)``) on the shared SIDD crops other than
sample_02/05/09 and val_* (scene-disjoint), then, for each candidate estimator:

* synthetic: 6 crops (256 px) of each of kodak24 / cbsd68 / mcmaster, made noisy by the model at
  gains 0.3, 0.5, 1, 2, 3 (8-bit, seeded): relative error of the estimate against the true gain;
* real: all 18 SIDD crops, the estimate from the noisy image against ``level_gain`` from the pair
  (the 6 held-out ones reported apart, also times the ``reference_scale`` factor measured on the 12
  fit crops only);
* ``--scan``: the chosen method on 4 corner crops (192 px) of every shared clean image at gains
  0.3 and 3: the share read within 10% (the floor an image's own texture sets).

Prints a table and writes everything as JSON. Candidates: the block residual of
``pngan.noise.estimate`` with Immerkaer's filter (quantile 0.2, the chosen default; and 0.05), first
differences, diagonal differences, the same assuming white noise, and the PCA estimator of Chen et
al. 2015 adapted (patches divided by the model std, whitened by the model's patch covariance).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pngan.data.base import ImageSet
from pngan.data.specs import SubsetImageSet, open_dataset
from pngan.errors import PnganError
from pngan.noise import estimate as E
from pngan.noise.calibrated import CalibratedNoise, fit_calibrated, level_gain

HELD_OUT = ("sample_02", "sample_05", "sample_09", "val_0011-0013", "val_0018-0017", "val_0032-0023")
GAINS = (0.3, 0.5, 1.0, 2.0, 3.0)


def patch_covariance(model: CalibratedNoise, p: int) -> torch.Tensor:
    """The (p*p, p*p) covariance of one channel's unit model noise over a p x p patch."""
    if model.kernel is None:
        return torch.eye(p * p, dtype=torch.float64)
    k = model.kernel.to(torch.float64)
    n = k.shape[0]
    ac = F.conv2d(F.pad(k[None, None], (n - 1,) * 4), k[None, None])[0, 0]  # the kernel's autocorrelation
    ii, jj = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    di = ii.reshape(-1, 1) - ii.reshape(1, -1)
    dj = jj.reshape(-1, 1) - jj.reshape(1, -1)
    inside = (di.abs() < n) & (dj.abs() < n)
    cov = torch.zeros(p * p, p * p, dtype=torch.float64)
    cov[inside] = ac[(di + n - 1)[inside], (dj + n - 1)[inside]]
    return cov


def chen_level(lam: torch.Tensor) -> float:
    """Chen et al. 2015: drop the largest eigenvalues until the rest's mean is their median."""
    lam = torch.sort(lam, descending=True).values
    for i in range(lam.numel() - 1):
        tail = lam[i:]
        tau = tail.mean()
        if int((tail > tau).sum()) <= int((tail < tau).sum()):
            return float(tau)
    return float(lam[-1])


def estimate_pca(model: CalibratedNoise, noisy: torch.Tensor, p: int = 7, stride: int = 2) -> torch.Tensor:
    """Candidate (a): Chen et al.'s PCA on all p x p patches, each divided by the model std at its
    mean, whitened by the model's patch covariance (noise alone: every eigenvalue g^2), the 8-bit
    rounding's variance taken off; channels pooled by predicted variance as level_gain does."""
    x = noisy[None] if noisy.dim() == 3 else noisy
    Linv = torch.linalg.inv(torch.linalg.cholesky(patch_covariance(model, p)))
    out = []
    for xi in x.to(torch.float64):
        P = F.unfold(xi[None], p, stride=stride).reshape(3, p * p, -1)
        mu = P.mean(1)  # (3, N)
        var = model.variance(mu.T[..., None, None].permute(1, 0, 2, 3).reshape(1, 3, -1, 1))[0, :, :, 0]
        good = ((mu > 0.05) & (mu < 0.95)).all(0)
        y = (P / var.sqrt()[:, None, :])[:, :, good]
        y = y - y.mean(2, keepdim=True)
        num = den = 0.0
        for c in range(3):
            cov = y[c] @ y[c].T / y.shape[2]
            cov -= (1 / 255) ** 2 / 12 * float((1 / var[c, good]).mean()) * torch.eye(p * p, dtype=torch.float64)
            g2 = chen_level(torch.linalg.eigvalsh(Linv @ cov @ Linv.T))
            num += g2 * float(var[c, good].sum())
            den += float(var[c, good].sum())
        out.append(max(num / den, 0.0) ** 0.5)
    return torch.tensor(out, dtype=torch.float64)


METHODS = {
    "residual-immerkaer-q0.2 (chosen)": lambda m, x: E.estimate_gain(m, x),
    "residual-immerkaer-q0.05": lambda m, x: E.estimate_gain(m, x, quantile=0.05),
    "residual-diff-q0.2": lambda m, x: E.estimate_gain(m, x, highpass="diff"),
    "residual-diag-q0.2": lambda m, x: E.estimate_gain(m, x, highpass="diag"),
    "residual-immerkaer-white (no correlation)": lambda m, x: E.estimate_gain(m, x, white=True),
    "pca-chen2015-whitened": estimate_pca,
}


def safe(fn, m, x) -> torch.Tensor:
    """One estimate per image; NaN for an image a method cannot read."""
    out = []
    for xi in x:
        try:
            out.append(float(fn(m, xi)[0]))
        except PnganError:
            out.append(float("nan"))
    return torch.tensor(out, dtype=torch.float64)


def crops(shared: Path, setname: str, side: int, n: int) -> torch.Tensor:
    imgs = open_dataset(f"clean:{shared / 'data' / 'clean' / setname}")
    out = []
    for i in np.linspace(0, len(imgs) - 1, n).round().astype(int):
        c = imgs.load(int(i)).clean
        h, w = c.shape[-2:]
        t, left = (h - side) // 2, (w - side) // 2
        out.append(c[:, t:t + side, left:left + side])
    return torch.stack(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--out", default="benchmarks/results/level-estimate.json")
    ap.add_argument("--scan", action="store_true", help="also the floor scan (about 3 min on 2 cores)")
    ap.add_argument("--methods", nargs="*", default=list(METHODS))
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    shared = Path(args.shared)
    sidd: ImageSet = open_dataset(f"pairs:{shared / 'data' / 'real' / 'sidd'}")
    fit_idx = [i for i, n in enumerate(sidd.names) if n not in HELD_OUT]
    t0 = time.time()
    model = fit_calibrated(SubsetImageSet(sidd, fit_idx, "sidd without sample_02/05/09 and val_*"), levels=True)
    print(f"fit on {len(fit_idx)} crops in {time.time() - t0:.0f} s; kept share of Immerkaer's filter "
          f"{E.kept_share(model, torch.tensor(E.HIGHPASS['immerkaer'][0])):.3f}", flush=True)
    result: dict = {"model": model.describe(), "gains": list(GAINS), "methods": {}}
    synth = {}
    for k, setname in enumerate(("kodak24", "cbsd68", "mcmaster")):
        clean = crops(shared, setname, 256, 6)
        g = torch.Generator().manual_seed(k)
        synth[setname] = [(model(clean, generator=g, gain=gain) * 255).round() / 255 for gain in GAINS]
    pairs = [sidd.load(i) for i in range(len(sidd))]
    paired = torch.tensor([float(level_gain(model, s.clean, s.noisy)[0]) for s in pairs])
    for name in args.methods:
        fn = METHODS[name]
        t0 = time.time()
        row: dict = {"synthetic": {}, "real": {}}
        worst = 0.0
        for setname, noisy in synth.items():
            errs = [(safe(fn, model, n) / gain - 1).tolist() for gain, n in zip(GAINS, noisy)]
            row["synthetic"][setname] = errs
            worst = max([worst] + [abs(e) for es in errs for e in es if e == e])
        est = torch.cat([safe(fn, model, s.noisy[None]) for s in pairs])
        rel = est / paired - 1
        row["real"] = {s.name: {"paired": float(p), "estimate": float(e), "rel": float(r)}
                       for s, p, e, r in zip(pairs, paired, est, rel)}
        held = torch.tensor([row["real"][n]["rel"] for n in HELD_OUT])
        # reference_scale's correction, measured on the fit crops only, applied to the held-out ones
        fit_logs = [np.log1p(row["real"][s.name]["rel"]) for s in pairs if s.name not in HELD_OUT]
        scale = float(np.exp(-np.nanmedian(fit_logs)))  # the midpoint median, as reference_scale's
        held_scaled = (1 + held) * scale - 1
        row["summary"] = {
            "synthetic_worst": worst,
            "synthetic_median_by_gain": [float(np.nanmedian([e for es in row["synthetic"].values() for e in es[j]]))
                                         for j in range(len(GAINS))],
            "real_mean_abs": float(rel.abs().nanmean()), "real_max_abs": float(rel.abs().nan_to_num(9).max()),
            "real_median": float(rel.nanmedian()), "held_out_rel": held.tolist(),
            "held_out_mean_abs": float(held.abs().mean()), "fit_set_scale": scale,
            "held_out_rel_scaled": held_scaled.tolist(), "held_out_mean_abs_scaled": float(held_scaled.abs().mean()),
            "seconds": time.time() - t0}
        result["methods"][name] = row
        s = row["summary"]
        print(f"{name:44s} synthetic worst {s['synthetic_worst']:.3f} median by gain "
              f"{' '.join(f'{v:+.3f}' for v in s['synthetic_median_by_gain'])} | real mean|rel| "
              f"{s['real_mean_abs']:.3f} max {s['real_max_abs']:.3f} median {s['real_median']:+.3f} | held-out "
              f"{' '.join(f'{v:+.2f}' for v in s['held_out_rel'])} (mean {s['held_out_mean_abs']:.3f}; "
              f"x{s['fit_set_scale']:.3f}: "
              f"{' '.join(f'{v:+.2f}' for v in s['held_out_rel_scaled'])}, mean {s['held_out_mean_abs_scaled']:.3f}) "
              f"({s['seconds']:.0f} s)", flush=True)
    if args.scan:
        within = {0.3: [], 3.0: []}
        rels = {0.3: [], 3.0: []}
        for setname in ("kodak24", "cbsd68", "mcmaster"):
            imgs = open_dataset(f"clean:{shared / 'data' / 'clean' / setname}")
            for i in range(len(imgs)):
                c = imgs.load(i).clean
                h, w = c.shape[-2:]
                for t, left in ((0, 0), (0, w - 192), (h - 192, 0), (h - 192, w - 192)):
                    x = c[None, :, t:t + 192, left:left + 192]
                    g = torch.Generator().manual_seed(i)
                    for gain in (0.3, 3.0):
                        r = float(safe(METHODS["residual-immerkaer-q0.2 (chosen)"], model,
                                       (model(x, generator=g, gain=gain) * 255).round() / 255)[0]) / gain - 1
                        rels[gain].append(r)
                        within[gain].append(abs(r) < 0.1)
        result["scan"] = {str(k): {"crops": len(v), "within_10pct": float(np.mean(within[k])),
                                   "median_rel": float(np.nanmedian(v))} for k, v in rels.items()}
        print("scan:", json.dumps(result["scan"]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
