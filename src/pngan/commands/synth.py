"""``pngan synth``: add synthetic noise (setting 1 AWGN / setting 2 RAW Poisson-Gaussian) to clean
images and write a ``pairs:`` folder: ``OUT/noisy/X.png``, ``OUT/clean/X.png`` and
``OUT/manifest.jsonl`` (one JSON object per image: source, seed, setting and its drawn parameters).

Each image gets its own seed ``derive_seed(seed, name)``, so the output does not depend on the
order or on which other images are processed. Image files hold values in [0, 1] only, so the
written noisy images are clipped and quantised (8 bits for ``--format png``, 16 bits for
``png16``/``tif``); training draws the unclipped synthetic input on the fly instead.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from pngan.commands.generate import level_arg
from pngan.io.records import file_sha256
from pngan.validate import SEED

FORMATS = {"png": (".png", 8), "png16": (".png", 16), "tif": (".tif", 16)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--setting", required=True, help="awgn (setting 1, alias 1), raw (setting 2, alias 2), "
                        "calibrated (a noise model fitted on --fit pairs) or calibrated:FILE.json (a saved fit)")
    parser.add_argument("--fit", metavar="SPEC", help="calibrated only: the real noisy/clean pairs to fit it on, "
                        "e.g. polyu:DIR@train (fitting takes seconds)")
    parser.add_argument("--input", required=True, metavar="SPEC_OR_DIR",
                        help="clean:DIR, any pair spec (its clean images are used), camera:builtin, or a plain DIR")
    parser.add_argument("--output", required=True, metavar="DIR", help="output folder (a pairs: set)")
    parser.add_argument("--sigma", default=None, type=_sigma_arg,
                        help="awgn only: noise level on the 0-255 scale (default 50), or LO,HI for a per-image "
                        "uniform draw")
    parser.add_argument("--cycleisp", default=None, metavar="RGB2RAW.pth,RAW2RGB.pth,CCM.pth",
                        help="raw only: run the paper's exact setting 2 with CycleISP's released ISP networks "
                        "(rgb2raw_joint.pth, raw2rgb_joint.pth, ccm_joint.pth) instead of the analytic pipeline")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete --output's noisy/ and clean/ folders, manifest.jsonl and job.json, with "
                        "everything in them, then write this job; without it a folder holding another job or foreign "
                        "files is refused")
    parser.add_argument("--gain", type=level_arg, default=None, metavar="G|G1,G2,..|LO-HI|fitted",
                        help="calibrated only: the noise std times G (1: the level of the pairs it was fitted on); "
                        "0.5,1,2: each image draws one of these; 0.3-2.3: each draws log-uniformly in the range; "
                        "fitted: each draws one of the levels of the pairs it was fitted on (the default for a fit "
                        "on pairs of several levels, else 1). Each image's level comes from (seed, image) and is "
                        "recorded in manifest.jsonl")
    parser.add_argument("--save-fit", metavar="FILE.json",
                        help="calibrated only: also save the fitted noise model to FILE.json, to reuse as --setting "
                        "calibrated:FILE.json, in train-denoiser as --data synth:FILE.json:SPEC, or in evaluate; a "
                        "FILE holding another calibration is replaced only with --overwrite")
    parser.add_argument("--seed", type=SEED, default=0, help="run seed; image X uses derive_seed(seed, X) (default 0)")
    parser.add_argument("--format", choices=sorted(FORMATS), default="png",
                        help="png (8-bit, default), png16 or tif (16-bit)")


def _parse_sigma(text: str):
    from pngan.errors import PnganError

    try:
        parts = [float(p) for p in str(text).split(",")]
    except ValueError:
        raise PnganError(f"--sigma: expected a number or LO,HI, got {text!r}") from None
    if len(parts) not in (1, 2):
        raise PnganError(f"--sigma: expected a number or LO,HI, got {text!r}")
    for v in parts:  # on the 0-255 scale; inf/NaN would saturate every pixel
        if not (0.0 <= v <= 1000.0):
            raise PnganError(f"--sigma: each value must be a finite number in [0, 1000] (0-255 scale), got {text!r}")
    if len(parts) == 2 and parts[0] > parts[1]:
        raise PnganError(f"--sigma LO,HI: LO must not exceed HI, got {text!r}")
    return parts[0] if len(parts) == 1 else (parts[0], parts[1])


def _sigma_arg(text: str):
    """argparse type: --sigma checked at parse time (finite, in [0, 1000], LO <= HI)."""
    from pngan.errors import PnganError

    try:
        return _parse_sigma(text)
    except PnganError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--sigma: ")) from None


def check_setting_options(setting: str, *, fit: str | None = None, sigma=None, gain=None, cycleisp=None,
                          level: str | None = None) -> str:
    """The canonical name of ``--setting`` (awgn, raw or calibrated). An option that the setting would
    ignore is refused with one line saying which setting it belongs to."""
    from pngan.errors import PnganError
    from pngan.noise import canonical_setting

    text = str(setting).strip()
    saved = text.lower().startswith("calibrated:")
    if saved:
        path = text.split(":", 1)[1]
        if not path.strip():
            raise PnganError("--setting calibrated:FILE.json needs the calibration file after 'calibrated:' "
                             "(or use --setting calibrated --fit SPEC to fit one)")
        name = "calibrated"
    else:
        name = canonical_setting(text)
    if fit and name != "calibrated":
        raise PnganError(f"--fit applies to --setting calibrated only (this is {name})")
    if fit and saved:
        raise PnganError("--fit fits a new calibration, but --setting calibrated:FILE.json already gives one: drop "
                         "--fit, or fit with --setting calibrated --fit SPEC")
    if gain is not None and name != "calibrated":
        raise PnganError("--gain applies to --setting calibrated only (setting 1: --sigma)")
    if sigma is not None and name != "awgn":
        why = "its level is the fitted one: scale it with --gain" if name == "calibrated" else \
            "setting 2 draws its own noise levels"
        raise PnganError(f"--sigma applies to --setting awgn only ({name}: {why})")
    if cycleisp is not None and name != "raw":
        raise PnganError("--cycleisp applies to --setting raw only")
    if level in ("match", "reference") and name != "calibrated":
        src = "real pair's" if level == "match" else "real noisy image's"
        raise PnganError(f"--level {level} gives each image its {src} noise level, which only the calibrated "
                         f"setting can take ({name} draws its own); use --level fixed, or --setting calibrated")
    return name


def calibration_id(module) -> str:
    """What makes a calibrated output what it is: a hash of every fitted number (``describe()``)
    but the recorded pair levels, which define the output only under the ``fitted`` level policy
    (the job then records them itself), so a calibration saved by an older pngan (without them)
    keeps its identity."""
    from pngan.io.records import json_sha256

    d = {k: v for k, v in module.describe().items() if k != "pair_gains"}
    return "sha256:" + json_sha256(d)


def _upgrade_job(old: dict, out: Path) -> dict:
    """A calibrated job recorded by an older pngan has no ``calibration``: take it from the
    manifest's per-image records (each holds the setting's describe()), else mark it unknown. An awgn
    job recorded without --sigma (sigma null) was made at the default, 50."""
    if old.get("setting") == "awgn" and old.get("sigma") is None:
        from pngan.noise.awgn import AWGN

        return {**old, "sigma": AWGN().describe()["sigma"]}
    if old.get("setting") != "calibrated" or "calibration" in old:
        return old
    ident = "unknown (recorded by an older pngan)"
    try:
        with open(out / "manifest.jsonl", encoding="utf-8") as f:
            first = json.loads(f.readline())
        from pngan.io.records import json_sha256

        ident = "sha256:" + json_sha256({k: v for k, v in first["synthetic"].items() if k != "pair_gains"})
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return {**old, "calibration": ident}


def _check_save_fit(path: str, setting: str, fit: str | None) -> None:
    """Before any work: --save-fit needs a fit to save and a file it may (over)write."""
    from pngan.errors import PnganError
    from pngan.validate import writable_file

    if setting != "calibrated" or not fit:
        raise PnganError("--save-fit saves a new fit: use it with --setting calibrated --fit SPEC")
    writable_file(path, "--save-fit file")
    from pngan.io.json_out import file_kind, is_calibration, json_or_none

    if Path(path).exists() and not is_calibration(json_or_none(path)):
        kind = file_kind(path)
        # --overwrite is the output folder's flag: it never replaces a file that is not a calibration
        raise PnganError(f"--save-fit file exists and holds {kind}, not a pngan calibration; it is not replaced "
                         "(not even with --overwrite): choose another file name, or remove it first", path)


def _refuse_owned_fit(path: str) -> None:
    """A calibration another command's folder owns (a benchmark's, a run's) is never replaced."""
    from pngan.errors import PnganError
    from pngan.io.json_out import json_or_none

    owner = json_or_none(Path(path).parent / "job.json")
    cmd = owner.get("command") if isinstance(owner, dict) else None
    if (cmd and cmd != "synth") or (Path(path).parent / "run.json").is_file():
        what = f"'pngan {cmd}'" if cmd else "a training run"
        raise PnganError(f"--save-fit file is the calibration of {what} (its folder's record); it is not "
                         "replaced (not even with --overwrite): choose another file name", path)


def _fit_file_differs(module, path: str, overwrite: bool) -> bool:
    """Whether ``path`` must be (re)written; an existing file holding another calibration is refused
    without --overwrite (the same calibration, as a re-run of the same job writes, is left as it is)."""
    from pngan.errors import PnganError
    from pngan.io.records import json_sha256

    p = Path(path)
    if not p.exists():
        return True
    new = module.describe()
    old = None
    try:
        old = json.loads(p.read_text(encoding="utf-8"))
        same = json_sha256(old) == json_sha256(new)
        # a file saved by an older pngan: this calibration without its pair levels; it is rewritten
        # with them (not another calibration, so no --overwrite is needed)
        older = isinstance(old, dict) and "pair_gains" not in old and \
            json_sha256(old) == json_sha256({k: v for k, v in new.items() if k != "pair_gains"})
    except (OSError, ValueError):
        same = older = False
    if not same:
        _refuse_owned_fit(path)
    if older:
        return True
    if not same and not overwrite:
        raise PnganError("--save-fit file exists and holds another calibration (fitted on "
                         f"{old.get('fitted_on', '?') if isinstance(old, dict) else '?'}); choose another name, or "
                         "pass --overwrite to replace it", p)
    return not same


def _save_fit(module, path: str) -> None:
    from pngan.noise.calibrated import save_calibration

    save_calibration(module, path)
    print(f"saved the calibration to {path} (use it as --setting calibrated:{path} or synth:{path}:SPEC)")


def _resolve_input(text: str) -> tuple[str, Path | None]:
    """(spec, folder the spec reads from or None). A plain existing folder means clean:DIR."""
    from pngan.errors import PnganError

    if os.path.isdir(text):
        return f"clean:{text}", Path(text)
    if ":" not in text:
        raise PnganError(f"--input {text!r}: not a folder and not a FORMAT:PATH data set spec")
    fmt, _, rest = text.partition(":")
    if fmt == "camera":
        return text, None
    path = rest.rsplit("@", 1)[0] if rest.endswith(("@train", "@test", "@all")) else rest
    return text, Path(path)


def _inside(child: Path, parent: Path) -> bool:
    child, parent = child.resolve(), parent.resolve()
    return child == parent or parent in child.parents


def _out_name(name: str) -> str:
    from pngan.io.images import IMAGE_EXTS

    p = Path(name)
    if p.suffix.lower() in {e.lower() for e in IMAGE_EXTS}:
        p = p.with_suffix("")
    return p.as_posix()


def run(args: argparse.Namespace) -> int:
    from pngan.errors import PnganError
    from pngan.noise import build_synthetic

    if isinstance(args.gain, str):  # called from Python with the text of --gain
        from pngan.noise.level import parse_level

        args.gain = parse_level(args.gain)
    setting = check_setting_options(args.setting, fit=args.fit, sigma=args.sigma, gain=args.gain,
                                    cycleisp=args.cycleisp)
    if args.save_fit:
        from pngan.data.specs import refuse_file_in_data

        _check_save_fit(args.save_fit, setting, args.fit)
        refuse_file_in_data(args.save_fit, [args.fit, args.input], "--save-fit")
    kwargs = {}
    if args.sigma is not None:
        kwargs["sigma"] = args.sigma if not isinstance(args.sigma, str) else _parse_sigma(args.sigma)
    if args.cycleisp is not None:
        paths = [p.strip() for p in args.cycleisp.split(",")]
        if len(paths) != 3 or not all(paths):
            raise PnganError(f"--cycleisp: expected RGB2RAW.pth,RAW2RGB.pth,CCM.pth, got {args.cycleisp!r}")
        kwargs.update(isp="networks", cycleisp=paths)
    if setting == "calibrated":
        from pngan.noise import resolve_setting

        module = resolve_setting(args.setting, args.fit)
    else:
        module = build_synthetic(setting, **kwargs)

    spec, in_dir = _resolve_input(args.input)
    out = Path(args.output)
    if in_dir is not None:
        if _inside(out, in_dir):
            raise PnganError(f"--output {out} is the input folder or inside it; choose a folder outside {in_dir}",)
        for sub in ("noisy", "clean"):
            if _inside(in_dir, out / sub):
                raise PnganError(f"--input {in_dir} lies inside the output's {sub}/ folder, which would be overwritten")
    from pngan.io import outdir
    from pngan.train.runid import normalize_spec

    from pngan.noise.level import resolve_level

    policy = resolve_level(args.gain, module)  # None: the setting's own level (no recorded spread)
    args.level_policy = policy
    # the effective sigma (awgn's default 50 when --sigma is left out): both spellings are one job
    sigma = module.describe().get("sigma") if setting == "awgn" else kwargs.get("sigma")
    job = {"command": "synth", "setting": setting, "sigma": sigma, "input": normalize_spec(spec),
           "seed": args.seed, "format": args.format,
           # a fixed G is recorded as the number (as before); other policies as their text
           **({"gain": policy.job_value()} if policy is not None else {})}
    if setting == "calibrated":  # the fitted numbers define the output, not the word "calibrated"
        job["calibration"] = calibration_id(module)
    if policy is not None and policy.kind == "fitted":  # ... and so do the levels drawn from
        job["levels"] = list(policy.values)
    if args.cycleisp is not None:  # so do the ISP networks' weights (absent: the analytic pipeline, as before)
        from pngan.io.records import file_sha256

        job["cycleisp"] = ["sha256:" + file_sha256(p) for p in kwargs["cycleisp"]]
    write_fit = bool(args.save_fit) and _fit_file_differs(module, args.save_fit, args.overwrite)
    _open_input(args, spec)  # a bad input is refused before the folder is claimed
    outdir.claim(out, job, overwrite=args.overwrite, upgrade=_upgrade_job,
                 inputs={"--input": in_dir, "--fit": args.fit, "--save-fit": args.save_fit,
                         "--setting": args.setting.partition(":")[2] or None})  # lock; refuse another job's files
    try:
        if write_fit:
            _save_fit(module, args.save_fit)
        return _synth(args, spec, out, module, setting)
    finally:
        outdir.release(out)


def _open_input(args, spec):
    """The input set and its output names, checked before the output folder is claimed (a refusal
    leaves no job record behind)."""
    from pngan.data.specs import open_dataset
    from pngan.errors import PnganError

    data = open_dataset(spec)
    if not data.has_clean:
        raise PnganError(f"--input {args.input}: this data set has no clean images to add noise to")
    if len(data) == 0:
        raise PnganError(f"--input {args.input}: no images found")
    names = [_out_name(n) for n in data.names]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise PnganError(f"--input {args.input}: several images map to the same output name {sorted(dup)[0]!r}")
    return data, names


def _synth(args, spec, out, module, setting) -> int:
    import torch
    from tqdm import tqdm

    from pngan.errors import PnganError
    from pngan.io.atomic import atomic_write_text
    from pngan.io.images import write_image
    from pngan.noise import synthesize
    from pngan.seeding import derive_seed

    data, names = _open_input(args, spec)
    ext, bits = FORMATS[args.format]

    records = []
    for i in tqdm(range(len(data)), desc=f"synth {setting}", unit="img", disable=args.quiet):
        sample = data.load(i)
        if sample.clean is None:
            raise PnganError(f"{args.input}: image {sample.name} has no clean version")
        seed = derive_seed(args.seed, sample.name)
        g = torch.Generator().manual_seed(seed)
        policy = getattr(args, "level_policy", None)
        # the level has its own seed (seed, "level", image): the noise stream g is the same at any level
        level = None if policy is None else policy.draw(args.seed, "level", sample.name)
        with torch.no_grad():
            noisy, params = synthesize(module, sample.clean[None].float(), g, gain=level, return_params=True)
        rel = names[i] + ext
        write_image(out / "noisy" / rel, noisy[0].clamp(0, 1), bits=bits)
        write_image(out / "clean" / rel, sample.clean, bits=bits)
        records.append({
            "name": sample.name, "source": data.spec, "noisy": f"noisy/{rel}", "clean": f"clean/{rel}",
            # what was written: a later run removes a file of a gone input only if it is still this
            "sha256": file_sha256(out / "noisy" / rel), "clean_sha256": file_sha256(out / "clean" / rel),
            "seed": seed, "run_seed": args.seed, "synthetic": module.describe(), "params": params[0],
            # the level the image was drawn at (1: the fit's); none for settings 1 and 2
            **({"gain": 1.0 if level is None else level} if setting == "calibrated" else {}),
        })
    earlier = _manifest_files(out / "manifest.jsonl")
    atomic_write_text(out / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    print(f"wrote {len(records)} noisy/clean pairs to {out} (pairs:{out})")
    # an earlier run of this job made pairs for input images that are gone: the folder holds this job's
    # pairs only (a pairs: reader of OUT would take them as part of the set)
    from pngan.io.outdir import removable

    kept = {rel.lower(): out / rel for r in records for rel in (r["noisy"], r["clean"])}
    stale = [rel for rel in sorted(set(earlier) - {r[k] for r in records for k in ("noisy", "clean")})
             if removable(out, rel, kept) is not None]
    gone = [rel for rel in stale if earlier[rel] is not None and file_sha256(out / rel) == earlier[rel]]
    for rel in gone:
        (out / rel).unlink()
    if gone:
        print(f"removed {len(gone)} file(s) of an earlier run whose input image is gone: {', '.join(gone[:3])}"
              f"{' ...' if len(gone) > 3 else ''}")
    mine = {r["noisy"] for r in records} | set(stale)
    foreign = sorted(f"noisy/{p.name}" for p in (out / "noisy").iterdir()
                     if not p.name.startswith(".") and f"noisy/{p.name}" not in mine)
    if foreign:
        print(f"{out}/noisy also holds {len(foreign)} file(s) this job did not write: {', '.join(foreign[:3])}"
              f"{' ...' if len(foreign) > 3 else ''}; they are read as part of pairs:{out}: move them out")
    kept = [rel for rel in stale if rel not in gone]
    if kept:
        print(f"left {len(kept)} file(s) of an earlier run whose input image is gone, because they changed since "
              f"pngan wrote them (or an older pngan recorded no hash): {', '.join(kept[:3])}"
              f"{' ...' if len(kept) > 3 else ''}; they are read as part of pairs:{out}: remove them yourself")
    return 0


def _manifest_files(path) -> dict[str, str | None]:
    """The noisy/ and clean/ files an earlier synth manifest lists (nothing outside those folders), each
    with the SHA-256 it recorded (None: not recorded)."""
    files: dict[str, str | None] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return files
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        for key, digest in (("noisy", "sha256"), ("clean", "clean_sha256")):
            rel = rec.get(key) if isinstance(rec, dict) else None
            if isinstance(rel, str) and rel.count("/") == 1 and rel.split("/")[0] == key and ".." not in rel:
                files[rel] = rec.get(digest) if isinstance(rec.get(digest), str) else None
    return files
