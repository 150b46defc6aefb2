"""Where a denoiser's training pairs come from: real pairs, pairs made on the fly, and their mix.

Mixing (paper Table 4, ratio rho = generated : real data): with ``ratio`` set, the FIRST data spec
is the generated set and the others are the real sets. Sample j of step s's global batch (global
index n = s * B + j) is generated iff floor((n + 1) p) > floor(n p) with p = rho / (1 + rho)
computed exactly as a fraction: the first N samples of the run hold exactly floor(N p) generated
ones, so the generated:real count is rho:1 (rho = 0: real data only; rho = 1: half and half),
whatever the batch size, the resume point or the number of processes (a function of (step, j)).

On-the-fly data (paper Table 2, denoisers trained on setting 1 / setting 2 / PNGAN data with the
same schedule): a data spec ``synth:SETTING:SPEC`` (e.g. ``synth:awgn:clean:photos``,
``synth:calib.json:clean:photos`` for a saved calibrated setting,
``synth:raw:sidd:DIR``) or ``gen:RUN:SPEC`` (a trained PNGAN generator, e.g.
``gen:runs/sidd:clean:photos``) takes the clean images of SPEC and draws fresh noise for every
sample of every step from a random generator seeded by (seed, step, global sample index), clipped
to [0, 1] like an image file. The generator runs on the CPU, where batches are prepared.
Their noise level (a calibrated setting, or a generator fed by one) follows the level policy
``data.gain`` (:mod:`pngan.noise.level`: ``data.gain=1.7``, ``=0.5,1,2``, ``=0.3-2.3`` or
``=fitted``; unset: ``fitted`` for a model fitted on pairs of several levels, else the fitted level),
each sample's level drawn from (source seed, "level", step, global sample index).
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import torch

from pngan.data.patches import PatchSampler
from pngan.data.specs import FORMATS, open_datasets
from pngan.errors import PnganError
from pngan.infer.api import NoiseGenerator
from pngan.noise import build_synthetic, canonical_setting
from pngan.noise.calibrated import load_calibration
from pngan.noise.level import resolve_level
from pngan.seeding import derive_seed, make_generator


def split_source_spec(spec: str) -> tuple[str | None, str | None, str]:
    """``synth:SETTING:SPEC`` -> ("synth", canonical setting, SPEC); ``synth:FILE.json:SPEC`` (also
    spelled ``synth:calibrated:FILE.json:SPEC``) -> ("synth", FILE.json, SPEC); ``gen:RUN:SPEC`` ->
    ("gen", RUN, SPEC); any other spec -> (None, None, spec). A FILE.json or RUN path may itself
    hold ':' (the split is where an existing path ends)."""
    kind, sep, rest = spec.partition(":")
    if kind not in ("synth", "gen") or not sep:
        return None, None, spec
    example = "synth:awgn:clean:DIR" if kind == "synth" else "gen:runs/sidd:clean:DIR"
    if kind == "synth" and rest.lower().startswith("calibrated:"):
        if ".json:" not in rest.lower():
            raise PnganError(f"'{spec}': on-the-fly calibrated noise needs a saved calibration, "
                             "synth:FILE.json:SPEC (or synth:calibrated:FILE.json:SPEC); save one with 'pngan synth "
                             "--setting calibrated --fit PAIRS --save-fit FILE.json ...'")
        rest = rest.split(":", 1)[1]
    arg, inner = _split_path_arg(rest, json_file=kind == "synth")
    if not arg or not inner:
        raise PnganError(f"on-the-fly data spec must be {kind}:{'SETTING' if kind == 'synth' else 'RUN'}:SPEC "
                         f"(e.g. {example}), got '{spec}'")
    if kind == "synth" and not arg.lower().endswith(".json"):  # FILE.json: a saved calibrated setting
        arg = canonical_setting(arg)
    return kind, arg, inner


def _split_path_arg(rest: str, json_file: bool) -> tuple[str, str]:
    """``ARG:SPEC`` -> (ARG, SPEC), where ARG may hold ':': a FILE.json ends at '.json:'; otherwise
    ARG is the first prefix (ending before a ':') that exists on disk, else the text before the first ':'."""
    cuts = [i for i, ch in enumerate(rest) if ch == ":"]
    if json_file:
        ends = [i for i in cuts if rest[:i].lower().endswith(".json")]
        if ends:
            i = next((i for i in ends if Path(rest[:i]).expanduser().is_file()), ends[0])
            return rest[:i], rest[i + 1:]
    for i in cuts:
        head, tail = rest[:i], rest[i + 1:]
        if Path(head).expanduser().exists() and tail.split(":", 1)[0].strip().lower() in (*FORMATS, "synth", "gen"):
            return head, tail
    arg, _, inner = rest.partition(":")
    return arg, inner


def split_synth_spec(spec: str) -> tuple[str | None, str]:
    """``synth:SETTING:SPEC`` -> (canonical setting, SPEC); any other spec -> (None, spec)."""
    kind, arg, inner = split_source_spec(spec)
    return (arg, inner) if kind == "synth" else (None, spec)


class PairSource:
    """Noisy/clean patches of one data source: real pairs (``noise is None``), or the clean images
    of a set with fresh noise per (seed, step, global sample index) from ``noise`` (a synthetic
    setting, or a trained PNGAN generator: ``pngan.infer.api.NoiseGenerator``)."""

    def __init__(self, sampler, noise=None, seed: int = 0, label: str | None = None, level=None):
        self.sampler, self.noise, self.seed, self.label = sampler, noise, seed, label
        self.level = level  # a LevelPolicy (pngan.noise.level) for the noise's level, or None

    def describe(self) -> str:
        d = self.sampler.imageset.describe()
        return d if self.label is None else f"{self.label}:{d}"

    def sample(self, step: int, j: int) -> dict[str, torch.Tensor]:
        s = self.sampler.sample(step, j)
        if self.noise is None:
            return s
        g = make_generator(self.seed, "synth-data", step, j)
        with torch.no_grad():
            if self.level is None:
                noisy = self.noise(s["clean"][None], generator=g)[0].clamp(0, 1)
            else:  # the level from its own seed: the noise stream g is the same at any level
                gain = self.level.draw(self.seed, "level", step, j)
                noisy = self.noise(s["clean"][None], generator=g, gain=gain)[0].clamp(0, 1)
        return {"clean": s["clean"], "noisy": noisy.cpu()}


def mix_fraction(ratio: float | None):
    """p = rho / (1 + rho) as an exact fraction (rho read as the shortest decimal it was given as)."""
    if ratio is None:
        return None
    rho = Fraction(repr(float(ratio)))
    return rho / (1 + rho)


def is_generated(p, n: int) -> bool:
    """Whether global sample n (= step * B + j) is drawn from the generated set: the Bresenham
    sequence floor((n+1) p) - floor(n p), so samples 0..N-1 hold exactly floor(N p) generated ones."""
    if p is None or p == 0:
        return False
    return ((n + 1) * p.numerator) // p.denominator > (n * p.numerator) // p.denominator


class MixedBatches(torch.utils.data.Dataset):
    """Item ``i``: this rank's slice of step ``start + i``'s global batch; sample j comes from
    ``sources[0]`` (generated) or ``sources[1]`` (real) as ``is_generated`` says (``p=None``: all
    from ``sources[0]``). A pure function of (step, j), so worker processes can prepare it."""

    def __init__(self, sources: list[PairSource], p, batch_size: int, start: int, n: int, rank: int, world: int):
        if batch_size % world:
            raise PnganError(f"batch size {batch_size} is not divisible by the {world} processes")
        self.sources, self.p, self.B = sources, p, batch_size
        self.start, self.n, self.rank, self.world = start, max(0, n), rank, world

    def __len__(self) -> int:
        return self.n

    def source_of(self, step: int, j: int) -> int:
        if self.p is None:
            return 0
        return 0 if is_generated(self.p, step * self.B + j) else 1

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not 0 <= i < self.n:
            raise IndexError(i)
        step, b = self.start + i, self.B // self.world
        samples = [self.sources[self.source_of(step, j)].sample(step, j)
                   for j in range(self.rank * b, (self.rank + 1) * b)]
        return {k: torch.stack([s[k] for s in samples]) for k in ("clean", "noisy")}


def open_sources(cfg, data: list[str]) -> list[PairSource]:
    """The sources of a denoiser's ``--data`` (``cfg``: a ``DenoiserTrainConfig``): [all data] without
    a ratio; [generated (first spec), real (the rest)] with one."""
    groups = [list(data)] if cfg.data.ratio is None else [[data[0]], list(data[1:])]
    sources = []
    for gi, specs in enumerate(groups):
        split = [split_source_spec(s) for s in specs]
        kinds = {(kind, arg) for kind, arg, _ in split}
        if len(kinds) > 1:
            raise PnganError("one data group mixes on-the-fly (synth:/gen:) and other specs, or two sources: "
                             f"{' '.join(specs)}; give them as separate groups with --ratio")
        kind, arg = kinds.pop()
        iset = open_datasets([inner for _, _, inner in split])
        need = ("clean",) if kind else ("clean", "noisy")
        if not iset.has_clean or ("noisy" in need and not iset.has_noisy):
            raise PnganError(f"training a denoiser needs noisy/clean pairs{' (on the fly: clean images)' if kind else ''}; "
                             f"{iset.spec} has no {'clean' if not iset.has_clean else 'noisy'} images")
        seed = cfg.run.seed if gi == 0 else derive_seed(cfg.run.seed, "mix", gi) % (2**31)
        sampler = PatchSampler(iset, cfg.data.patch_size, cfg.data.batch_size, cfg.data.flips, seed,
                               cache_bytes=int(cfg.data.cache_gb * 2**30), keys=need)
        noise, label, level = None, None, None
        if kind == "synth":
            if arg.lower().endswith(".json"):
                noise = load_calibration(arg)
            else:
                noise = build_synthetic(arg)
            label = f"synth:{json.dumps(noise.describe(), sort_keys=True)}"
        elif kind == "gen":
            noise = NoiseGenerator.load(arg)  # on the CPU: batches are prepared off the training device
            label = f"gen:{arg}"
        if kind:
            gen = getattr(noise, "synthetic", None)  # a generator: its input setting and its metadata
            level = resolve_level(cfg.data.gain, noise if gen is None else gen,
                                  None if gen is None else noise.metadata, what="data.gain")
            if level is not None:  # recorded in the denoiser's pngan.data metadata
                label = f"{label}@gain={level.text()}"
        sources.append(PairSource(sampler, noise, derive_seed(cfg.run.seed, "synth-data", gi), label, level))
    if cfg.data.gain is not None and not any(s.noise is not None for s in sources):
        raise PnganError("data.gain sets the noise level of on-the-fly sources (synth:FILE.json:SPEC, gen:RUN:SPEC); "
                         "this run's --data has none")
    return sources
