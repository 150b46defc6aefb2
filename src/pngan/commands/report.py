"""``pngan report RUN_OR_JSON... --out DIR``: HTML page with figures and metric tables."""

from __future__ import annotations

import argparse

from pngan.validate import COUNT, SEED


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", metavar="RUN_OR_JSON",
                        help="run folders (stats.jsonl, samples/) and metric JSON files from 'pngan evaluate'")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (index.html + PNG figures)")
    parser.add_argument("--real", metavar="SPEC", help="real pairs for crops, histograms, noise level function, spectra")
    parser.add_argument("--generated", metavar="DIR_OR_SPEC", help="generated noisy images for --real's clean images")
    parser.add_argument("--calibration", metavar="FILE.json", help="a fitted calibrated baseline (from 'pngan synth "
                        "--setting calibrated' or the demo's calibration.json): added beside settings 1 and 2")
    parser.add_argument("--max-images", type=COUNT, default=4, help="images used for the noise figures (default 4)")
    parser.add_argument("--seed", type=SEED, default=0, help="seed of the synthetic-setting columns")


def run(args: argparse.Namespace) -> int:
    from pngan.errors import PnganError
    from pngan.eval.report import write_report

    from pngan.validate import writable_dir

    writable_dir(args.out, "report folder")  # before any figure is drawn
    if args.generated and not args.real:
        raise PnganError("--generated needs --real (the pairs whose clean images were used)")
    baselines = None
    if args.calibration:
        from pngan.noise.calibrated import load_calibration

        if not args.real:
            raise PnganError("--calibration needs --real (the pairs whose clean images it is applied to)")
        baselines = {"calibrated (fitted)": load_calibration(args.calibration)}
    index = write_report(args.inputs, args.out, real=args.real, generated=args.generated,
                         max_images=args.max_images, seed=args.seed, baselines=baselines)
    print(f"report written to {index}")
    return 0
