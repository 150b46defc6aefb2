"""What do KLD and AKLD reward on real sRGB noise? (docs/experiments.md, session 8)

    python benchmarks/metric_tradeoff.py --fit pairs:sidd-train --real pairs:sidd-val --json out.json

Every row is scored on the held-out pairs ``--real`` at each pair's level (``--level match``'s
protocol: one gain per image, the levels fit of ``--fit``), one sample per image, seeded per
image as ``pngan evaluate noise`` seeds (so the x1 row is its calibrated baseline exactly):

* ``calibrated xF``: the fitted baseline with its noise std scaled by F (F = 1 is the baseline).
* ``pool quantiles``: a pointwise model of the real noise's *shape* learned from ``--fit``: the
  quantiles of (noisy - clean) / (gain * fitted std), pooled per channel, clean-intensity bin (8)
  and gain bin (< 0.8, < 1.5, more), applied to the baseline's correlated unit field through the
  Gaussian CDF (a Gaussian copula: the baseline's spatial correlation, the learned marginals).
* ``pool quantiles tT xF`` (``--blends``): a model between the two: the unit field
  (1 - T) * w + T * q(w), w the baseline's correlated Gaussian field and q its pooled-quantile map
  above, times the fitted std scaled by F. Part of the real shape, lighter tails, a lower level.
* ``oracle marginal``: not a model. Each held-out image's own real noise values, per channel and
  clean-intensity band (8 equal-count bands), put where the baseline's field has the same rank:
  exactly the real histogram, with the baseline's spatial correlation.
* ``calibrated vs its own sample``: the baseline scored against a second baseline sample in place
  of the real image: the AKLD a perfect model gets from the 7x7 estimation noise alone.

KLD (a histogram distance) rewards the real marginal (the oracle scores 0 by construction), while
AKLD (DANet's local-variance KL, each side's 7x7 variance estimated from one noisy sample) rewards
light tails and a level below the real one: heavier tails make each local estimate noisier. The
table shows how far apart the two optima are on the given data.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

IBINS = np.linspace(0.0, 1.0, 9)
GBINS = (0.0, 0.8, 1.5, np.inf)
QUANT = np.linspace(0.0005, 0.9995, 401)
BANDS = 8
KEYS = ("kld_noiseflow", "kld_flowsrgb", "akld", "mmd")


def _bins(c: np.ndarray, g: float) -> tuple[np.ndarray, int]:
    return np.clip(np.digitize(c, IBINS) - 1, 0, len(IBINS) - 2), int(np.digitize([g], GBINS)[0] - 1)


def _std(model, c: torch.Tensor, g: float) -> torch.Tensor:
    """The fitted noise std of a (3, H, W) clean image at gain g (floored: it divides)."""
    return model.variance(c[None])[0].clamp_min(1e-10).sqrt() * g


def pool_quantiles(model, data) -> dict:
    """Quantiles of the gain- and level-normalised real noise per (channel, intensity bin, gain bin)."""
    from pngan.noise.calibrated import level_gain

    pool: dict = {}
    for i in range(len(data)):
        s = data.load(i)
        c, n = s.clean.double(), s.noisy.double()
        g = float(level_gain(model, c, n))
        z, cc = ((n - c) / _std(model, c, g)).numpy(), c.numpy()
        keep = (cc > 2 / 255) & (cc < 1 - 2 / 255)
        for ch in range(3):
            ib, gb = _bins(cc[ch], g)
            for k in range(len(IBINS) - 1):
                pool.setdefault((ch, k, gb), []).append(z[ch][keep[ch] & (ib == k)])
    return {k: np.quantile(np.concatenate(v), QUANT) for k, v in pool.items() if sum(map(len, v)) >= 2000}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fit", required=True, help="real pairs the baseline (levels fit) and the pooled quantiles come from")
    ap.add_argument("--real", required=True, help="held-out real pairs to score on")
    ap.add_argument("--factors", default="0.9,0.95,1.0,1.05", help="noise std scales of the baseline rows")
    ap.add_argument("--blends", default="0.25,0.5",
                    help="t of the 'pool quantiles tT xF' rows: (1 - t) * the baseline's unit field + t * the "
                         "pooled-quantile map of it, at the noise std scales --blend-factors ('' for none)")
    ap.add_argument("--blend-factors", default="0.95,1.0")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    a = ap.parse_args(argv)

    from pngan.data.specs import open_dataset
    from pngan.eval.noise_metrics import noise_metrics, quantise8
    from pngan.noise import resolve_setting
    from pngan.noise.calibrated import level_gain
    from pngan.seeding import derive_seed

    model = resolve_setting("calibrated", a.fit, True)
    qt = pool_quantiles(model, open_dataset(a.fit))
    gauss_q = torch.distributions.Normal(0.0, 1.0)
    real = open_dataset(a.real)
    factors = [float(f) for f in a.factors.split(",")]
    blends = [float(t) for t in a.blends.split(",") if t.strip()]
    blend_factors = [float(f) for f in a.blend_factors.split(",") if f.strip()]
    if any(not 0.0 <= t <= 1.0 for t in blends):
        ap.error("--blends: each t must be in [0, 1]")
    rows: dict[str, list[dict]] = {}
    missing = 0

    def add(label, rn, c, gen):
        rows.setdefault(label, []).append({k: noise_metrics(rn, c, [gen.clamp(0, 1).float()])[k] for k in KEYS})

    for i in range(len(real)):
        s = real.load(i)
        c32, n = s.clean.float(), s.noisy.float()  # float32, as pngan evaluate noise generates
        c = c32.double()
        g = float(level_gain(model, c32, n))
        seed0, seed1 = derive_seed(a.seed, s.name, 0), derive_seed(a.seed, s.name, 1)  # evaluate noise's seeds
        for f in factors:
            gen = model(c32[None], torch.Generator().manual_seed(seed0), gain=g * f)[0]
            add(f"calibrated x{f:g}", n, c32, gen)
        base = model(c32[None], torch.Generator().manual_seed(seed0), gain=g)[0].double()
        # the second sample stands in for a real image: 8-bit, as real images are
        second = quantise8(model(c32[None], torch.Generator().manual_seed(seed1), gain=g)[0])
        add("calibrated vs its own sample", second, c32, base)
        # the baseline's correlated unit field, the same draw as the x1 row's
        w = model.field((1, *c.shape), torch.Generator().manual_seed(seed0), c.device, torch.float32)[0].double()
        u = gauss_q.cdf(w).clamp(QUANT[0], QUANT[-1]).numpy()
        cc, out = c.numpy(), np.zeros(c.shape)
        for ch in range(3):
            ib, gb = _bins(cc[ch], g)
            for k in range(len(IBINS) - 1):
                sel = ib == k
                q = qt.get((ch, k, gb))
                if q is None:
                    missing += int(sel.sum())
                    q = gauss_q.icdf(torch.from_numpy(QUANT)).numpy()
                out[ch][sel] = np.interp(u[ch][sel], QUANT, q)
        add("pool quantiles", n, c32, c + torch.from_numpy(out) * _std(model, c, g))
        for t in blends:  # between the two optima: part of the learned shape, at a scaled level
            mix = torch.from_numpy((1 - t) * w.numpy() + t * out)
            for f in blend_factors:
                add(f"pool quantiles t{t:g} x{f:g}", n, c32, c + mix * _std(model, c, g) * f)
        oracle = base.clone()
        n = n.double()
        for ch in range(3):
            order = torch.argsort(c[ch].reshape(-1))
            rnz, gnz, o = (n[ch] - c[ch]).reshape(-1), (base[ch] - c[ch]).reshape(-1), oracle[ch].view(-1)
            for idx in torch.tensor_split(order, BANDS):
                o[idx] = c[ch].reshape(-1)[idx] + torch.sort(rnz[idx]).values[torch.argsort(torch.argsort(gnz[idx]))]
        add("oracle marginal", n.float(), c32, oracle)
        print(f"{s.name}: gain {g:.2f}", flush=True)

    mean = {label: {k: float(np.mean([r[k] for r in v])) for k in KEYS} for label, v in rows.items()}
    print(f"{'row':32s} " + " ".join(f"{k:>14s}" for k in KEYS))
    for label, m in mean.items():
        print(f"{label:32s} " + " ".join(f"{m[k]:14.4f}" for k in KEYS))
    if missing:
        print(f"pool quantiles: {missing} pixels fell in bins with too few training pixels (standard normal used)")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"fit": a.fit, "real": a.real, "seed": a.seed, "mean": mean, "images": rows,
                       "pool_missing_pixels": missing}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
