"""``pngan report RUN_OR_JSON... --out DIR``: HTML page with figures and metric tables."""

from __future__ import annotations

import argparse

from pngan.validate import COUNT, SEED


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", metavar="RUN_OR_JSON",
                        help="run folders (stats.jsonl, samples/) and metric JSON files from 'pngan evaluate'")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (index.html + PNG figures + "
                        "report.json): a new or empty folder, or one an earlier report wrote (it is updated)")
    parser.add_argument("--real", metavar="SPEC", help="real pairs for crops, histograms, noise level function, spectra")
    parser.add_argument("--generated", metavar="DIR_OR_SPEC", help="generated noisy images for --real's clean images")
    parser.add_argument("--calibration", metavar="FILE.json", help="a fitted calibrated baseline (from 'pngan synth "
                        "--setting calibrated' or the demo's calibration.json): added beside settings 1 and 2")
    parser.add_argument("--max-images", type=COUNT, default=4, help="images used for the noise figures (default 4)")
    parser.add_argument("--seed", type=SEED, default=0, help="seed of the synthetic-setting columns")


RECORD = "report.json"


def _check_folder(out) -> None:
    """The report folder is new, empty, or an earlier report's (its marked report.json): a report never
    writes its index.html and figures over a user's files, a run folder or a data folder."""
    from pathlib import Path

    from pngan.errors import PnganError
    from pngan.io.json_out import MARKER
    from pngan.io.records import read_json_record
    from pngan.validate import writable_dir

    out = Path(out)
    writable_dir(out, "report folder")
    if not out.is_dir():
        return
    entries = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    if not entries:
        return
    try:
        rec = read_json_record(out / RECORD, "report record")
    except PnganError:
        rec = None
    mark = rec.get(MARKER) if isinstance(rec, dict) else None
    if isinstance(mark, dict) and mark.get("command") == "report":
        return
    try:  # a report written by a pngan before report.json: its page says so
        if "<title>pngan report</title>" in (out / "index.html").read_text(encoding="utf-8")[:2000]:
            return
    except (OSError, UnicodeDecodeError):
        pass
    from pngan.io.json_out import PNG_KEYWORD, png_text

    # a report that stopped half-way (a bad input, Ctrl-C) left only figures pngan drew: its rerun goes on
    if all((png_text(out / e) or {}).get(PNG_KEYWORD) in ("report", "figure") for e in entries):
        return
    raise PnganError(f"report folder is not empty and holds no earlier pngan report (it has {', '.join(entries[:4])}"
                     f"{'...' if len(entries) > 4 else ''}); its files are not replaced: choose an empty or new "
                     "folder", out)


def _same_inputs(inputs) -> None:
    """One input given twice (by the same or another path) would draw its section twice."""
    from pathlib import Path

    from pngan.errors import PnganError

    seen: dict = {}
    for x in inputs:
        key = Path(x).resolve()
        if key in seen:
            raise PnganError(f"'{x}' is given twice (as '{seen[key]}' too): give each run or JSON file once")
        seen[key] = x


def _earlier_files(out) -> dict[str, str | None]:
    """The files an earlier report in ``out`` wrote, each with the SHA-256 it recorded (None: a report
    made before report.json recorded them; then the figures marked as a report's)."""
    from pathlib import Path

    from pngan.errors import PnganError
    from pngan.io.json_out import MARKER, PNG_KEYWORD, png_text
    from pngan.io.records import read_json_record

    out = Path(out)
    if not out.is_dir():
        return {}
    try:
        rec = read_json_record(out / RECORD, "report record")
    except PnganError:
        rec = None
    mark = rec.get(MARKER) if isinstance(rec, dict) else None
    files = rec.get("files") if isinstance(rec, dict) else None
    if isinstance(mark, dict) and mark.get("command") == "report" and isinstance(files, dict):
        names = {f: (h if isinstance(h, str) else None) for f, h in files.items() if isinstance(f, str)}
    else:  # the figures a report drew ("figure": a pngan from before markers named the command), and the
        # copies of a run's latest sample strip it put beside them (runN_step_NNNNNNNN.png, unmarked)
        import re

        names = {p.name: None for p in out.glob("*.png")
                 if (png_text(p) or {}).get(PNG_KEYWORD) in ("report", "figure")
                 or re.fullmatch(r"run\d+_step_\d+\.png", p.name)}
    # a plain file name in this folder, never the page or its record, never through a link
    return {n: h for n, h in names.items() if n == Path(n).name and n not in ("", ".", "..", RECORD, "index.html")
            and "\\" not in n and (out / n).is_file() and not (out / n).is_symlink()}


def _check_ours(out, earlier: dict[str, str | None]) -> None:
    """Before a report is updated in place: every file in the folder is the earlier report's own, as it
    wrote it; a user's file (or one changed since) would be replaced or removed: refused."""
    from pathlib import Path

    from pngan.errors import PnganError
    from pngan.io.records import file_sha256

    out = Path(out)
    if not out.is_dir():
        return
    for p in sorted(out.iterdir()):
        if p.name.startswith(".") or p.name in ("index.html", RECORD):
            continue
        ours = p.name in earlier and (earlier[p.name] is None or file_sha256(p) == earlier[p.name])
        if not ours:
            raise PnganError(f"report folder holds {p.name}, which the earlier report did not write (or which "
                             "changed since): an update would replace or remove it; move it out or choose another "
                             "folder", out)


def _page_files(index) -> list[str]:
    import re

    return sorted(set(re.findall(r'<img src="([^"/]+)"', index.read_text(encoding="utf-8"))))


def run(args: argparse.Namespace) -> int:
    from pngan.errors import PnganError
    from pngan.eval.report import write_report

    _same_inputs(args.inputs)
    _check_folder(args.out)  # before any figure is drawn
    earlier = _earlier_files(args.out)
    _check_ours(args.out, earlier)
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
    from pngan.io.json_out import write_json

    from pngan.io.records import file_sha256

    files = _page_files(index)
    for name in sorted(set(earlier) - set(files) - {index.name}):  # an earlier report's figures this page no longer shows
        (index.parent / name).unlink(missing_ok=True)
    write_json(index.parent / RECORD, {"inputs": [str(x) for x in args.inputs], "real": args.real,
                                       "generated": args.generated, "calibration": args.calibration,
                                       "files": {f: file_sha256(index.parent / f) for f in files
                                                 if (index.parent / f).is_file()}}, "report")
    print(f"report written to {index}")
    return 0
