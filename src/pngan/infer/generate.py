"""Generate realistic noisy/clean pairs from clean images (``pngan generate``).

Output ``OUT/noisy/X_k.png`` (k = 0..samples-1) and ``OUT/clean/X.png`` — itself a ``pairs:`` data
set — and ``OUT/manifest.jsonl`` (one line per noisy file: source, sample, seed, the synthetic
setting's per-image parameters, and ``gain``: the noise level the file was drawn at, for a
generator fed by the calibrated setting; see :mod:`pngan.noise.level`: sample k of image X draws
its level from ``(seed, "level", X, k)``). Sample k of image X uses its own generator seeded with
``derive_seed(seed, X, k)``, so files do not depend on batch size, tiling or process count.
Files are written atomically; each manifest line records the SHA-256 of its noisy file (``sha256``)
and of the clean file (``clean_sha256``), of the input file (``source_sha256``, file-backed inputs)
and the generator's hash (``generator``). A re-run (of
the same job: ``pngan generate`` checks ``OUT/job.json``, see :mod:`pngan.io.outdir`) keeps only
files whose hash matches their line and writes the rest; under torchrun each rank takes the images
``i % world_size == rank`` and rank 0 merges the per-rank manifest parts. Manifest lines that are
not pngan records are dropped with one warning.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pngan.errors import PnganError
from pngan.io.outdir import removable
from pngan.io.records import file_sha256


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


def check_sample_names(names: list[str]) -> None:
    """Generated files are named ``NAME_K`` (sample K of NAME); an input named like a sample of another
    input (``a`` and ``a_0``) would have its pair read as the other's: refused, naming both."""
    import re

    stems = {Path(n).with_suffix("").as_posix() if Path(n).suffix else n for n in names}
    for n in sorted(stems):
        m = re.match(r"^(.*)_(\d+)$", n)
        if m and m.group(1) in stems:
            raise PnganError(f"input images '{m.group(1)}' and '{n}' would collide: generated samples are named "
                             f"NAME_K, so '{n}' reads as sample {m.group(2)} of '{m.group(1)}'; rename one of them")


def check_output(out: Path, input_root: Path | None) -> None:
    if input_root is not None and (_inside(out, input_root) or _inside(input_root, out)):
        raise PnganError(f"output folder must not be the input folder or inside it (input: {input_root})", out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"  # one per process: torchrun ranks probe at once
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise PnganError(f"cannot write to the output folder ({e.strerror})", out) from None


def _sha256(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None


def _records(src: Path, bad: list) -> list[dict]:
    """Valid pngan records of a manifest file; other lines (foreign, truncated by a kill) are counted in ``bad``."""
    out = []
    for n, line in enumerate(src.read_text(errors="replace").splitlines(), 1):
        try:
            rec = json.loads(line)
            if not (isinstance(rec, dict) and isinstance(rec.get("source"), str) and isinstance(rec.get("noisy"), str)
                    and isinstance(rec.get("sample"), int)
                    and rec["noisy"] == f"noisy/{rec['source']}_{rec['sample']}.png"):
                raise ValueError
        except ValueError:
            if line.strip():
                bad.append(f"{src.name}:{n}")
            continue
        out.append(rec)
    return out


def _json_safe(v):
    return json.loads(json.dumps(v, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def generate(
    gen,
    clean_spec: str,
    out: str | Path,
    samples: int = 1,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    progress: bool = True,
    barrier=None,
    generator_id: str | None = None,
    gain=None,
) -> dict:
    """Write the pairs; returns counts ``{"written", "skipped", "images"}``, ``removed`` (the noisy
    files of an earlier run of this job that it no longer defines: an input gone, fewer samples) and
    ``left`` (such files that changed since pngan wrote them: not removed). ``gain``: the noise
    level of a generator fed by the calibrated setting, a level policy (:mod:`pngan.noise.level`:
    a number, 1 being the level fitted on its training pairs; ``"0.5,1,2"``, ``"0.3-2.3"``,
    ``"fitted"`` or a LevelPolicy); None: the generator's default (``fitted`` for one trained with
    ``synthetic.level=match`` on pairs of several levels, else its fitted level)."""
    from pngan.data.specs import open_dataset, parse_spec
    from pngan.io.atomic import atomic_write_text
    from pngan.noise import synthesize
    from pngan.noise.level import resolve_level
    from pngan.io.images import write_image
    from pngan.seeding import derive_seed, make_generator

    fmt, path_s, _ = parse_spec(clean_spec)
    out = Path(out)
    check_output(out, None if fmt == "camera" else Path(path_s))
    # before anything is read or written: a level for a setting without one is refused here
    policy = resolve_level(gain, gen.synthetic, getattr(gen, "metadata", {}))
    has_level = getattr(gen.synthetic, "takes_gain", False)
    images = open_dataset(clean_spec)
    if not images.has_clean:
        raise PnganError(f"{images.spec} has no clean images to generate from")
    check_sample_names(list(images.names))
    (out / "noisy").mkdir(exist_ok=True)
    (out / "clean").mkdir(exist_ok=True)
    part = out / f".manifest.rank{rank}.jsonl"
    mine = [i for i in range(len(images)) if i % world_size == rank]
    names = images.names
    written = skipped = 0
    # Manifest lines already on disk (a previous, possibly killed, run of the same job): a file counts as
    # done only if its line's SHA-256 matches it; anything else (line lost to a kill, file changed) is redone.
    recorded: dict[tuple[str, int], dict] = {}
    bad: list[str] = []
    for src in [out / "manifest.jsonl", *sorted(out.glob(".manifest.rank*.jsonl"))]:
        if src.is_file():
            for rec in _records(src, bad):
                recorded[(rec["source"], rec["sample"])] = rec
    if bad and rank == 0:
        import warnings

        warnings.warn(f"{out}: {len(bad)} manifest line(s) are not pngan records and are dropped "
                      f"(first: {bad[0]})", stacklevel=2)

    def verified(name: str, k: int) -> bool:
        rec = recorded.get((name, k))
        f = out / "noisy" / f"{name}_{k}.png"
        return bool(rec) and f.is_file() and rec.get("sha256") is not None and rec.get("sha256") == _sha256(f)

    clean_hash: dict[str, str | None] = {}
    source_hash: dict[str, str | None] = {}
    entries = getattr(images, "entries", None)  # file-backed sets: the input file of each clean image

    def input_hash(i: int) -> str | None:
        p = getattr(entries[i], "clean", None) if entries is not None else None
        return _sha256(Path(p)) if p is not None else None

    def record(name: str, k: int, params: dict, level: float | None) -> None:
        line = json.dumps({"noisy": f"noisy/{name}_{k}.png", "clean": f"clean/{name}.png", "source": name,
                           "sample": k, "seed": derive_seed(seed, name, k), "run_seed": seed,
                           "params": _json_safe(params), "generator": generator_id,
                           "sha256": _sha256(out / "noisy" / f"{name}_{k}.png"),
                           "clean_sha256": clean_hash.get(name), "source_sha256": source_hash.get(name),
                           # the level it was drawn at (1: the fit's); none for a setting without levels
                           **({"gain": 1.0 if level is None else level} if has_level else {})},
                          sort_keys=True)
        with open(part, "a") as f:  # one line per finished file, at once: a kill loses at most one
            f.write(line + "\n")
            f.flush()

    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=len(mine) * samples, desc="pngan generate", unit="img", dynamic_ncols=True)
    for i in mine:
        name = names[i]
        todo = [k for k in range(samples) if not verified(name, k)]
        clean_path = out / "clean" / f"{name}.png"
        prev_clean = [r.get("clean_sha256") for (n, _), r in recorded.items() if n == name and r.get("clean_sha256")]
        have = _sha256(clean_path) if clean_path.is_file() else None
        clean_ok = have is not None and (not prev_clean or have in prev_clean)
        source_hash[name] = input_hash(i)
        prev_src = {r.get("source_sha256") for (n, _), r in recorded.items() if n == name and r.get("source_sha256")}
        if source_hash[name] is not None and prev_src and source_hash[name] not in prev_src:
            # the input image changed since these files were made: its clean copy and every sample are redone
            todo, clean_ok, prev_clean = list(range(samples)), False, []
        if not todo and clean_ok:
            skipped += samples
            if bar is not None:
                bar.update(samples)
            continue
        clean = images[i].clean
        if not clean_ok:
            write_image(clean_path, clean)
            have = _sha256(clean_path)
            if have not in prev_clean:  # noisy files made from another clean image: redo them all
                todo = list(range(samples))
        clean_hash[name] = have
        for k in range(samples):
            target = out / "noisy" / f"{name}_{k}.png"
            g = make_generator(seed, name, k)
            if k not in todo:
                skipped += 1
            else:
                # the level is drawn from its own seed: the noise stream g is the same at any level
                level = None if policy is None else policy.draw(seed, "level", name, k)
                syn, params = synthesize(gen.synthetic, clean[None].to(gen.device), g, gain=level,
                                         return_params=True)
                if k == samples - 1 and not gen.keep_white:
                    del clean  # not needed any more: one full-size image less while the generator runs
                fake = gen.finish(gen.realistic(syn), clean[None] if gen.keep_white else None)
                del syn
                write_image(target, fake[0])
                del fake
                written += 1
                record(name, k, params[0], level)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    if barrier is not None:
        barrier()
    removed: list[str] = []
    left: list[str] = []
    foreign: list[str] = []
    if rank == 0:
        merged: dict[tuple[str, int], str] = {}
        old = out / "manifest.jsonl"
        sources = [old] + sorted(out.glob(".manifest.rank*.jsonl"))
        for src in sources:
            if src.is_file():
                for rec in _records(src, []):
                    if (out / rec["noisy"]).is_file():
                        merged[(rec["source"], rec["sample"])] = json.dumps(rec, sort_keys=True)
        # The folder holds this job's pairs and nothing else: files an earlier run of the same job made
        # for an input image that is gone, or for a sample beyond --samples, are removed (the same seed
        # makes them again), so that a pairs: reader of OUT never sees a pair the job does not define.
        # A file is removed only if it is still what pngan wrote (its recorded SHA-256): one the user
        # changed is left, and named.
        current = set(names)
        kept = {f"noisy/{n}_{k}.png".lower(): out / "noisy" / f"{n}_{k}.png" for n in current for k in range(samples)}
        kept.update({f"clean/{n}.png".lower(): out / "clean" / f"{n}.png" for n in current})
        for key in sorted(k for k in merged if k[0] not in current or not 0 <= k[1] < samples):
            rec = json.loads(merged.pop(key))
            noisy = removable(out, f"noisy/{key[0]}_{key[1]}.png", kept)
            if noisy is not None and rec.get("sha256") == _sha256(noisy):
                noisy.unlink()
                removed.append(f"noisy/{key[0]}_{key[1]}.png")
            elif noisy is not None:
                left.append(f"noisy/{key[0]}_{key[1]}.png")
        for source in sorted({k[0] for k in recorded} - current):  # the clean copies of inputs that are gone
            clean = removable(out, f"clean/{source}.png", kept)
            wrote = {r.get("clean_sha256") for (n, _), r in recorded.items() if n == source}
            if clean is not None and _sha256(clean) in wrote:
                clean.unlink()
            elif clean is not None:
                left.append(f"clean/{source}.png")
        known = {f"{k[0]}_{k[1]}.png" for k in merged}  # files in noisy/ that no record of this job names
        foreign = sorted(p.name for p in (out / "noisy").iterdir() if not p.name.startswith(".") and p.name not in known)
        atomic_write_text(old, "".join(merged[k] + "\n" for k in sorted(merged)))
        for src in sources[1:]:
            src.unlink(missing_ok=True)
    return {"written": written, "skipped": skipped, "images": len(mine), "removed": removed, "left": left,
            "foreign": foreign}
