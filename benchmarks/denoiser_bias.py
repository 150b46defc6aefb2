"""Does the frozen denoiser treat synthetic and real noise alike? (docs/experiments.md, session 7)

    python benchmarks/denoiser_bias.py --pairs pairs:sidd-tr12 \\
        --denoiser dncnn:../shared/weights/dncnn_sidd_naflow.pth --level match --json out.json

For every pair: the per-channel means (0-255) of the real noise (noisy - clean), of the calibrated
noise fitted on the same pairs (``--level match``: at each pair's level, the levels fit), and of
Dn(x) - clean for x = the real and the calibrated noisy image. If Dn maps both alike, the last two
agree wherever the first two do; where they differ, the paper's alignment L1(Dn(fake), Dn(real))
pays a generator for shifting its noise mean (a colour cast) instead of for realistic noise.
"""

from __future__ import annotations

import argparse
import json

import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", required=True, help="real noisy/clean pairs (the calibrated model is fitted on them)")
    ap.add_argument("--denoiser", required=True, metavar="NAME:CHECKPOINT")
    ap.add_argument("--level", choices=("fixed", "match"), default="match")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    a = ap.parse_args(argv)

    from pngan.data.specs import open_dataset
    from pngan.eval.denoise_eval import synthetic_sampler
    from pngan.nets.loading import load_network, parse_net_spec

    data = open_dataset(a.pairs)
    dn = load_network(*parse_net_spec(a.denoiser)).eval()
    denoise = getattr(dn, "denoise", dn)
    cal = synthetic_sampler("calibrated", a.seed, fit=a.pairs, level=a.level)
    names = ("noise_real", "noise_calibrated", "dn_real_minus_clean", "dn_calibrated_minus_clean")
    rows, total = {}, torch.zeros(4, 3, dtype=torch.float64)
    with torch.inference_mode():
        for i in range(len(data)):
            s = data.load(i)
            c, n = s.clean.float(), s.noisy.float()
            f = (cal(c, s.name, 0, n) if a.level == "match" else cal(c, s.name, 0)).clamp(0, 1)
            m = torch.stack([((x - c) * 255).double().mean(dim=(1, 2))
                             for x in (n, f, denoise(n[None])[0], denoise(f[None])[0])])
            total += m
            rows[s.name] = {k: [round(float(v), 3) for v in m[j]] for j, k in enumerate(names)}
            print(f"{s.name:24s} " + "  ".join(f"{k} {rows[s.name][k]}" for k in names))
    mean = {k: [round(float(v), 3) for v in total[j] / len(data)] for j, k in enumerate(names)}
    print("mean (R, G, B; 0-255): " + "  ".join(f"{k} {mean[k]}" for k in names))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"pairs": a.pairs, "denoiser": a.denoiser, "level": a.level, "images": rows, "mean": mean}, fh,
                      indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
