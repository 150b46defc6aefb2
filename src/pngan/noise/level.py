"""The noise level of generated images: one policy for every generation path.

The calibrated setting (and a generator fed by it) takes a gain ``g`` on its fitted noise std
(:func:`pngan.noise.calibrated.level_gain` reads the same number off a real pair). A *level
policy* says which gain each generated image gets:

* ``1.7`` (fixed): every image at gain 1.7; ``1`` is the level the model was fitted at;
* ``0.5,1,2`` (list): each image draws one of the listed gains (equally likely);
* ``0.3-2.3`` (range): each image draws a gain log-uniformly in [0.3, 2.3];
* ``fitted``: each image draws one of the per-pair levels the model was fitted on (the
  ``pair_gains`` a calibration records; equally likely), so generated pairs span the levels
  (ISOs) of the camera's real pairs.
* reference (``generate --reference NOISY_SPEC``, :func:`reference_policy`): each image draws one
  of the levels estimated from the reference noisy images, one per image and without their clean
  images (:func:`pngan.noise.estimate.estimate_gain`; equally likely, like ``fitted``).

The default (no ``--gain``) is ``fitted`` for a model whose recorded pair levels spread more than
:data:`LEVEL_SPREAD` (pairs of several ISOs; for a generator, one trained with
``synthetic.level=match``, whose output follows its input's level), and otherwise none at all: the
setting draws at its fitted level exactly as before (bit-identical output).

Every draw is a pure function of a seed and the image's identity (``policy.draw(seed, "level",
name, k)``: ``derive_seed`` of those parts mapped to [0, 1)), independent of the random stream
that draws the noise, so runs are reproducible, resumable and the same in any order. Which parts
each path uses: ``generate`` (seed, "level", image, sample), ``synth`` (seed, "level", image),
on-the-fly sources of ``train-denoiser`` (source seed, "level", step, sample), ``GeneratedPairs``
(seed, "level", image, sample).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from pngan.errors import PnganError

MAX_GAIN = 100.0     # as --gain G always allowed: a std 100x the fit's saturates every pixel anyway
# the recorded pair levels of a model spread by more than this (max / min): pairs of several ISOs,
# and `fitted` is its default. Measured (levels fit, shared data): the SIDD crops spread 7.0x, CC15
# (ISO 1600-6400, three cameras) 2.3x; CC15's one-camera one-ISO groups 1.12x, 1.18x and 1.42x
# (scene content alone)
LEVEL_SPREAD = 2.0
FORMS = "a gain G (e.g. 1.7), a list G1,G2,... (e.g. 0.5,1,2), a range LO-HI (e.g. 0.3-2.3) or 'fitted'"

_NUM = r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"  # a non-negative decimal (no sign: levels are >= 0)
_RANGE = re.compile(rf"^\s*({_NUM})\s*-\s*({_NUM})\s*$")
_NUMBER = re.compile(rf"^\s*[+-]?{_NUM}\s*$")  # a gain or list item: a sign is read, and -0 is 0


@dataclass(frozen=True)
class LevelPolicy:
    """``kind``: fixed | list | range | fitted; ``values``: the gain, the list, (lo, hi), or the
    recorded pair levels (empty until :meth:`bind` gives a ``fitted`` policy its model's levels)."""

    kind: str
    values: tuple[float, ...] = ()

    def text(self) -> str:
        """The canonical spelling (what ``parse_level`` reads back; recorded in job.json)."""
        if self.kind in ("fitted", "reference"):
            return self.kind
        if self.kind == "range":
            return f"{self.values[0]:g}-{self.values[1]:g}"
        return ",".join(f"{v:g}" for v in self.values)

    def job_levels(self) -> list[float] | None:
        """The levels a ``fitted`` or reference policy draws from (job.json records them: they define
        the output as much as the policy does); None for the others (their text says it all)."""
        return list(self.values) if self.kind in ("fitted", "reference") else None

    def job_value(self):
        """What job.json records as ``gain``: a fixed gain as the number (as ``--gain G`` always was
        recorded), any other policy as its text."""
        return self.values[0] if self.kind == "fixed" else self.text()

    def bind(self, levels) -> "LevelPolicy":
        """A ``fitted`` policy with the model's recorded pair levels (other kinds unchanged)."""
        if self.kind != "fitted":
            return self
        return LevelPolicy("fitted", tuple(float(v) for v in levels))

    def at(self, u: float) -> float:
        """The gain for a uniform draw ``u`` in [0, 1)."""
        if self.kind == "fixed":
            return self.values[0]
        if self.kind == "range":
            lo, hi = self.values
            return math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
        if not self.values:
            raise PnganError("the 'fitted' level policy has no levels: bind it to a model first")
        return self.values[min(int(u * len(self.values)), len(self.values) - 1)]

    def draw(self, *parts: int | str) -> float:
        """The gain of the image identified by ``parts`` (a seed and names/indices), reproducibly."""
        from pngan.seeding import derive_seed

        return self.at((derive_seed(*parts) >> 10) / float(1 << 53))


def parse_level(text, what: str = "--gain") -> LevelPolicy:
    """A level policy from its text (see the module docstring); a bad form is one PnganError
    naming ``what``. A number (int/float) is a fixed gain."""
    if isinstance(text, LevelPolicy):
        return text
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise PnganError(f"{what}: expected {FORMS}, got {text!r}")
    s = str(text).strip()
    low = s.lower()
    if low == "fitted":
        return LevelPolicy("fitted")

    def gain(v: str) -> float:
        g = float(v) + 0.0  # -0.0 -> 0.0
        if not (math.isfinite(g) and 0 <= g <= MAX_GAIN):
            raise PnganError(f"{what}: each gain must be a finite number in [0, {MAX_GAIN:g}] (1: the fitted level), "
                             f"got {text!r}")
        return g

    if isinstance(text, (int, float)) or _NUMBER.match(s):
        try:
            return LevelPolicy("fixed", (gain(s),))
        except ValueError:
            pass
    m = _RANGE.match(s)
    if m:
        lo, hi = gain(m.group(1)), gain(m.group(2))
        if not 0 < lo < hi:
            raise PnganError(f"{what} LO-HI: needs 0 < LO < HI (a log-uniform range), got {text!r}")
        return LevelPolicy("range", (lo, hi))
    if "," in s:
        parts = [p.strip() for p in s.split(",")]
        if all(_NUMBER.match(p) for p in parts):
            return LevelPolicy("list", tuple(gain(p) for p in parts))
    raise PnganError(f"{what}: expected {FORMS}, got {text!r}")


# a reference read at under 1% of the fitted noise std (10^-4 of its variance) is a clean, flat or
# denoised image, not a camera's noisy one: generating "at its level" would write clean copies
MIN_REFERENCE_LEVEL = 0.01


def reference_policy(setting, spec: str, what: str = "--reference") -> LevelPolicy:
    """The reference policy: the level of each noisy image of ``spec`` (any data set with noisy
    images: ``noisy:DIR``, a pair set), estimated without its clean image relative to ``setting``
    (the calibrated setting, or a generator's calibrated input) and rounded to 6 significant digits,
    so that the levels (and the output drawn at them) do not depend on the last bits of a float."""
    from pngan.data.specs import open_dataset
    from pngan.noise import check_gain
    from pngan.noise.estimate import estimate_gain

    check_gain(setting, what)
    refs = open_dataset(spec)
    if not refs.has_noisy:
        raise PnganError(f"{what} {spec}: has no noisy images to read noise levels from (give noisy:DIR or pairs)")
    if len(refs) == 0:
        raise PnganError(f"{what} {spec}: no images found")
    levels = []
    for i in range(len(refs)):
        s = refs.load(i)
        try:
            g = float(estimate_gain(setting, s.noisy.float())[0])
        except PnganError as e:
            raise PnganError(f"{what}: reference image '{s.name}': {str(e).removeprefix('estimate_gain: ')}") from None
        if not g >= MIN_REFERENCE_LEVEL:
            raise PnganError(f"{what}: reference image '{s.name}' shows no measurable noise (level {g:.3g} of the "
                             "fitted one): give noisy images of the camera, not clean or smoothed ones")
        levels.append(float(f"{g:.6g}"))
    return LevelPolicy("reference", tuple(levels))


def recorded_levels(setting) -> list[float]:
    """The per-pair levels a calibrated setting records (``pair_gains``; [] when it has none:
    another setting, or a calibration saved by an older pngan)."""
    return list(getattr(setting, "pair_gains", None) or [])  # None: not fitted on pairs, or an older file


def spread(levels) -> float:
    levels = [float(v) for v in levels]
    if not levels:
        return 1.0
    return max(levels) / max(min(levels), 1e-6)


def default_policy(setting, metadata: dict | None = None) -> LevelPolicy | None:
    """``fitted`` (bound) for a calibrated setting whose recorded pair levels spread more than
    :data:`LEVEL_SPREAD`; None (the setting's own level, as before) otherwise. ``metadata``: a
    generator's pngan metadata; then only a generator trained with ``synthetic.level=match``
    (whose output follows its input's level) gets ``fitted`` by default."""
    levels = recorded_levels(setting)
    if not levels or spread(levels) <= LEVEL_SPREAD:
        return None
    if metadata is not None and metadata.get("pngan.level") != "match":
        return None
    return LevelPolicy("fitted", tuple(levels))


def resolve_level(policy, setting, metadata: dict | None = None, what: str = "--gain") -> LevelPolicy | None:
    """The policy a generation path uses: ``policy`` (text, a number or a LevelPolicy) checked
    against ``setting`` (a level applies to the calibrated setting only, and ``fitted`` needs
    recorded pair levels), or the default when ``policy`` is None."""
    if policy is None:
        return default_policy(setting, metadata)
    p = parse_level(policy, what)
    from pngan.noise import check_gain

    check_gain(setting, what)
    if p.kind == "fitted":
        levels = recorded_levels(setting)
        if not levels:
            raise PnganError(f"{what} fitted: this calibration records no per-pair levels (it was fitted, or its "
                             "generator trained, by an older pngan): refit or retrain it, or give the levels (e.g. "
                             "0.5,1,2 or 0.3-2.3)")
        p = p.bind(levels)
    return p


__all__ = ["LevelPolicy", "parse_level", "resolve_level", "reference_policy", "default_policy", "recorded_levels", "spread",
           "LEVEL_SPREAD", "FORMS"]
