"""The calibrated setting: a non-learned noise model fitted on the user's own noisy/clean pairs.

It is the bar every learned generator must clear (a two-parameter fit per channel that a GAN
cannot beat is not worth training), and it can also be the generator's input instead of setting 1
or 2 (``synthetic.setting=calibrated``).

Model, per channel c of an sRGB image x in [0, 1]::

    noisy = clip(x + sqrt(a_c * x_c + b_c) * z_c, 0, 1),     z = M (k * w),  w ~ N(0, I)

* ``a``, ``b``: the heteroscedastic variance (noise level function) of each channel, fitted by
  weighted least squares of the mean squared noise in ``FIT_BINS`` intensity bins against the
  clean intensity (bins whose clean value is within 2/255 of black or white are left out: clipping
  lowers their variance), under the constraints that keep the variance >= 0 on [0, 1] (``_fit_line``);
* ``k``: a ``kernel_size`` x ``kernel_size`` spatial colouring kernel with unit energy, the
  zero-phase spectral square root of the normalised noise's autocorrelation (lags up to
  ``kernel_size // 2``, averaged over channels and images): it reproduces the spatial correlation
  that demosaicing, denoising in the camera and JPEG give real sRGB noise;
* ``M``: the Cholesky factor of the normalised noise's 3x3 cross-channel correlation matrix.

* ``kappa`` (levels fit only, else none): the mean of sRGB noise. A concave tone curve y = f(L)
  turns zero-mean noise of linear intensity into sRGB noise whose mean is ``f''/2`` times the linear
  variance, ``kappa * var(y) / y`` with ``kappa = (1 - gamma) / 2 = -0.6`` for a gamma-2.2 curve;
  fitted per channel (``noisy = clip(x + kappa_c * var_c(x) / max(x_c, MEAN_FLOOR) + ...)``) on
  the pixels at least 2.5 std from black and white (clipping biases the mean there). Real SIDD
  noise is 1-10 levels (of 255) darker than the clean image at high ISO; the fit on the shared
  crops gives kappa = -0.64 / -0.61 / -0.57 (docs/experiments.md, "The noise mean").

``correlated=False`` keeps only ``a`` and ``b`` (white, channel-independent noise: the plain
heteroscedastic Gaussian). Fitting reads at most ``max_images`` pairs and takes seconds.
``describe()`` holds every fitted number, so checkpoints and ``--setting calibrated:FILE.json``
rebuild exactly the same setting.
"""

from __future__ import annotations

import json
import math
import numbers
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pngan.errors import PnganError
from pngan.noise.base import NoiseSetting

FIT_BINS = 32
# the tone-curve mean kappa * var / max(x, MEAN_FLOOR): a gamma curve's 1/x is cut off near black,
# where sRGB curves are linear (0.1: chosen on a validation split of the SIDD crops, not on val_*)
MEAN_FLOOR = 0.1


# the bounds a calibration must keep (CalibratedNoise checks them on every construction)
MAX_VARIANCE = 1.0   # a noise std of 1: the whole [0, 1] range
MIN_VARIANCE = 1e-12  # a std of 1e-6, far below 8-bit quantisation (0.0011): no noise at all
MAX_KERNEL = 63
MAX_KAPPA = 10.0
UNIT_TOL = 1e-2  # kernel and mix rows: relative tolerance on their unit energy (hand-rounded values pass)
KEYS = ("a", "b", "kernel", "mix", "clip", "fitted_on", "kappa", "pair_gains")
MAX_PAIR_GAIN = 100.0  # a recorded pair level (the noise std of a fitted pair over the fit's) is at most this


def _short(v) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _numbers(key: str, value, n: int, what: str | None = None) -> list[float]:
    """``value`` as ``n`` finite floats, or a PnganError naming the key."""
    what = what or key
    seq = value.tolist() if isinstance(value, (np.ndarray, torch.Tensor)) else value
    if not isinstance(seq, (list, tuple)) or len(seq) != n or not all(_is_number(v) for v in seq):
        raise PnganError(f"calibration key '{key}': expected {what} as a list of {n} numbers (one per channel), "
                         f"got {_short(value)}")
    out = [float(v) for v in seq]
    if not all(math.isfinite(v) for v in out):
        raise PnganError(f"calibration key '{key}': expected {n} finite numbers, got {out}")
    return out


def _matrix(key: str, value) -> list[list[float]]:
    """``value`` as a non-empty rectangular list of lists of finite floats, or a PnganError naming the key."""
    seq = value.tolist() if isinstance(value, (np.ndarray, torch.Tensor)) else value
    if not isinstance(seq, (list, tuple)) or not seq or \
            not all(isinstance(r, (list, tuple)) and len(r) == len(seq[0]) and r and all(_is_number(v) for v in r)
                    for r in seq):
        raise PnganError(f"calibration key '{key}': expected a matrix (a list of equal-length lists of numbers), "
                         f"got {_short(value)}")
    out = [[float(v) for v in r] for r in seq]
    if not all(math.isfinite(v) for r in out for v in r):
        raise PnganError(f"calibration key '{key}': holds NaN or Inf values")
    return out


class CalibratedNoise(NoiseSetting):
    """The fitted noise model (see the module docstring). Its numbers are float64 buffers (``a``,
    ``b``, ``kernel``, ``mix``, ``kappa``; absent ones are None): they follow ``.to()`` and appear in
    ``state_dict()``; ``describe()`` gives them back as the lists a calibration file holds."""

    setting = "calibrated"
    takes_gain = True

    def __init__(self, a, b, kernel=None, mix=None, clip: bool = True, fitted_on: str = "", kappa=None,
                 pair_gains=None):
        super().__init__()
        # every way a calibration comes in (a fit, a JSON file, a generator's metadata, the Python
        # API) builds it here, so a value that cannot be right is refused whatever its path
        a, b = _numbers("a", a, 3), _numbers("b", b, 3)
        # the variance a*x + b must be >= 0 on [0, 1]: b >= 0 and a + b >= 0 (a < 0: a falling noise
        # level function, as sRGB noise of one ISO often has; see fit_calibrated(levels=True))
        if not all(bc >= 0 and ac + bc >= 0 for ac, bc in zip(a, b)):
            raise PnganError(f"calibration keys 'a', 'b': need b >= 0 and a + b >= 0 (a variance a*x + b >= 0 "
                             f"on [0, 1]), got a={a} b={b}")
        # the fit's variance is a mean of (noisy - clean)^2 of images in [0, 1]: never above 1
        top = max(max(bc, ac + bc) for ac, bc in zip(a, b))
        if top > MAX_VARIANCE:
            raise PnganError(f"calibration keys 'a', 'b': the noise variance a*x + b reaches {top:.3g}, above "
                             f"{MAX_VARIANCE:g} (a noise std of the whole [0, 1] range: every pixel would "
                             f"saturate), got a={a} b={b}")
        if top <= MIN_VARIANCE:
            raise PnganError(f"calibration keys 'a', 'b': the noise variance a*x + b is zero everywhere (it "
                             f"would add no noise), got a={a} b={b}")
        kernel = None if kernel is None else _matrix("kernel", kernel)
        if kernel is not None:
            k = np.asarray(kernel)
            if k.shape[0] != k.shape[1] or k.shape[0] % 2 == 0 or k.shape[0] > MAX_KERNEL:
                raise PnganError(f"calibration key 'kernel': must be square with an odd size up to {MAX_KERNEL}, "
                                 f"got {k.shape[0]}x{k.shape[1]}")
            energy = float((k * k).sum())
            if energy == 0:
                raise PnganError("calibration key 'kernel': is all zero (the noise would vanish)")
            if abs(energy - 1) > UNIT_TOL:  # the fit normalises it: any other energy rescales the noise std
                raise PnganError(f"calibration key 'kernel': needs unit energy (sum of squares 1, as the fit "
                                 f"writes it; it scales the noise std), got {energy:.6g}")
        mix = None if mix is None else _matrix("mix", mix)
        if mix is not None:
            m = np.asarray(mix)
            if m.shape != (3, 3):
                raise PnganError(f"calibration key 'mix': must be 3x3, got {m.shape[0]}x{m.shape[1]}")
            rows = (m * m).sum(axis=1)
            if np.any(np.abs(rows - 1) > UNIT_TOL):  # a correlation matrix's Cholesky factor: unit rows
                raise PnganError(f"calibration key 'mix': each row needs unit energy (sum of squares 1: each "
                                 f"channel's noise keeps its fitted variance), got {[round(float(v), 6) for v in rows]}")
        if not isinstance(clip, (bool, np.bool_)):
            raise PnganError(f"calibration key 'clip': expected true or false, got {_short(clip)}")
        self.clip = bool(clip)
        if not isinstance(fitted_on, str):
            raise PnganError(f"calibration key 'fitted_on': expected a string, got {_short(fitted_on)}")
        self.fitted_on = fitted_on
        kappa = None if kappa is None else _numbers("kappa", kappa, 3, what="kappa (the noise mean)")
        if kappa is not None and max(abs(v) for v in kappa) > MAX_KAPPA:
            raise PnganError(f"calibration key 'kappa' (the noise mean): needs |kappa| <= {MAX_KAPPA:g} (a gamma "
                             f"curve gives (1 - gamma) / 2, about -0.6; fits on real pairs give -0.6 to 2), "
                             f"got {kappa}")
        # the noise level of each pair the model was fitted on, relative to the fit (level_gain):
        # what the 'fitted' level policy draws from (pngan.noise.level). Absent in files saved by
        # an older pngan, which load as before (no recorded levels)
        self.pair_gains = None
        if pair_gains is not None:
            seq = pair_gains.tolist() if isinstance(pair_gains, (np.ndarray, torch.Tensor)) else pair_gains
            if not isinstance(seq, (list, tuple)) or not seq or not all(_is_number(v) for v in seq) or \
                    not all(math.isfinite(float(v)) and 0 <= float(v) <= MAX_PAIR_GAIN for v in seq):
                raise PnganError(f"calibration key 'pair_gains' (the level of each fitted pair): expected a non-empty "
                                 f"list of finite numbers in [0, {MAX_PAIR_GAIN:g}], got {_short(pair_gains)}")
            self.pair_gains = [float(v) for v in seq]
        for name, value in (("a", a), ("b", b), ("kernel", kernel), ("mix", mix), ("kappa", kappa)):
            self.register_buffer(name, None if value is None else torch.tensor(value, dtype=torch.float64))

    NUMBERS = ("a", "b", "kernel", "mix", "kappa")

    def _apply(self, fn, recurse=True):
        """``.to(device)`` moves the numbers; a cast (``.half()``, ``.to(torch.float32)``) leaves them
        float64, exact as fitted (the noise is computed in the input's precision anyway), and a device
        without float64 (MPS) leaves them on the CPU (each use moves them to the input's device)."""
        saved = {n: self._buffers.pop(n) for n in self.NUMBERS if n in self._buffers}
        try:
            return super()._apply(fn, recurse)
        finally:
            for n, t in saved.items():
                if t is not None:
                    try:
                        dev = fn(t).device
                    except (TypeError, RuntimeError):
                        dev = t.device
                    t = t.to(dev)
                self._buffers[n] = t

    @classmethod
    def from_description(cls, d: dict) -> "CalibratedNoise":
        return calibration_from_dict(d)  # every key checked by name, type and range

    @staticmethod
    def _listed(t: torch.Tensor | None):
        return None if t is None else t.tolist()

    def describe(self) -> dict:
        d = {"setting": "calibrated", "a": self.a.tolist(), "b": self.b.tolist(), "kernel": self._listed(self.kernel),
             "mix": self._listed(self.mix), "clip": self.clip, "fitted_on": self.fitted_on}
        if self.kappa is not None:  # only when fitted: earlier settings describe (and hash) as before
            d["kappa"] = self.kappa.tolist()
        if self.pair_gains is not None:  # likewise: only a fit made by this pngan records them
            d["pair_gains"] = self.pair_gains
        return d

    def variance(self, x: torch.Tensor) -> torch.Tensor:
        """The fitted noise variance max(a x + b, 0) at clean intensity ``x`` (B, 3, H, W), gain 1."""
        a = self.a.to(x.device, x.dtype)[None, :, None, None]
        b = self.b.to(x.device, x.dtype)[None, :, None, None]
        return (a * x.clamp(0, 1) + b).clamp_min(0)

    def mean_shift(self, x: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """The noise mean at clean intensity ``x`` for noise variance ``var`` (zero without kappa)."""
        if self.kappa is None:
            return torch.zeros_like(var)
        k = self.kappa.to(var.device, var.dtype)[None, :, None, None]
        return k * var / x.clamp(MEAN_FLOOR, 1)

    def field(self, shape, generator: torch.Generator | None, device, dtype) -> torch.Tensor:
        """Unit-variance correlated noise z = M (k * w) of ``shape`` (B, 3, H, W)."""
        gdev = generator.device if generator is not None else device
        w = torch.randn(shape, generator=generator, device=gdev, dtype=dtype).to(device)
        if self.kernel is not None:
            k = self.kernel.to(device, dtype)
            r = k.shape[0] // 2
            mode = "reflect" if min(shape[-2:]) > r else "replicate"
            w = F.conv2d(F.pad(w, (r, r, r, r), mode=mode), k.expand(3, 1, *k.shape), groups=3)
        if self.mix is not None:
            m = self.mix.to(device, dtype)
            w = torch.einsum("ij,bjhw->bihw", m, w)
        return w

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None,
                gain: float | torch.Tensor | None = None, return_params: bool = False):
        """Noisy versions of ``x``. ``gain`` (a number, or one per image) scales the fitted noise std:
        the noise level of one image (see :func:`level_gain`); None is 1, the training set's fit."""
        self.check_input(x)
        wdt = torch.float64 if x.dtype == torch.float64 else torch.float32
        xx = x.to(wdt)
        std = torch.sqrt(self.variance(xx))
        if gain is not None:
            g = gain_value(gain).to(x.device, wdt)
            if g.numel() not in (1, x.shape[0]):
                raise PnganError(f"calibrated: gain must be one finite number >= 0, or one per image ({x.shape[0]}); "
                                 f"got {g.numel()} values")
            std = std * g[:, None, None, None]
        noisy = xx + std * self.field(x.shape, generator, x.device, wdt)
        if self.kappa is not None:
            noisy = noisy + self.mean_shift(xx, std * std)
        if self.clip:
            noisy = noisy.clamp(0.0, 1.0)
        noisy = noisy.to(x.dtype)
        if return_params:
            return noisy, [{"setting": "calibrated"} for _ in range(x.shape[0])]
        return noisy


def gain_value(gain) -> torch.Tensor:
    """A noise-level gain (a number, or one per image as a list, array or tensor) as a 1-D float64
    CPU tensor of finite values >= 0; anything else (a string, a bool, NaN, a meta tensor) is one
    PnganError, not a TypeError from inside torch."""
    bad = PnganError(f"gain must be a finite number >= 0, or one per image (a list, array or tensor of them), got "
                     f"{_short(gain)} ({type(gain).__name__})")
    if isinstance(gain, torch.Tensor):
        if gain.is_meta or gain.dtype == torch.bool or gain.is_complex():
            raise bad
        g = gain.detach().to("cpu", torch.float64).reshape(-1)
    elif isinstance(gain, np.ndarray):
        if gain.dtype.kind not in "fiu":
            raise bad
        g = torch.from_numpy(gain.astype(np.float64)).reshape(-1)
    elif _is_number(gain):
        g = torch.tensor([float(gain)], dtype=torch.float64)
    elif isinstance(gain, (list, tuple)) and all(_is_number(v) for v in gain):
        g = torch.tensor([float(v) for v in gain], dtype=torch.float64)
    else:
        raise bad
    if g.numel() == 0 or not bool(torch.isfinite(g).all()) or bool((g < 0).any()):
        raise bad
    return g


def level_gain(model: CalibratedNoise, clean: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
    """The noise level of each pair relative to the fit: the gain g (one per image of a (B,3,H,W)
    or (3,H,W) pair) with E[(noisy - clean)^2] = g^2 E[a x + b] over the pixels not within 2/255 of
    black or white (clipping lowers their variance). It plays the part of the ISO that SIDD's
    noise models are conditioned on: one number per image, the same for every model. With a fitted
    noise mean (``kappa``, which grows as g^2) the mean square is g^2 E[v] + g^4 E[m^2], solved for g."""
    c = clean[None] if clean.dim() == 3 else clean
    n = noisy[None] if noisy.dim() == 3 else noisy
    c, n = c.to(torch.float64), n.to(torch.float64)
    keep = ((c > 2 / 255) & (c < 1 - 2 / 255)).to(torch.float64)
    num = (((n - c) ** 2) * keep).sum(dim=(1, 2, 3))
    var = model.variance(c)
    den = (var * keep).sum(dim=(1, 2, 3)).clamp_min(1e-30)
    if model.kappa is None:
        return torch.sqrt(num / den)
    quad = ((model.mean_shift(c, var) ** 2) * keep).sum(dim=(1, 2, 3))  # g^4 quad + g^2 den = num
    g2 = 2 * num / (den + torch.sqrt(den * den + 4 * quad * num))  # the positive root, stable form
    return torch.sqrt(g2)


def _fit_line(x: np.ndarray, y: np.ndarray, w: np.ndarray, falling: bool = False) -> tuple[float, float]:
    """Weighted least squares y = a x + b with b >= 0 and a >= 0 (``falling``: a + b >= 0 instead,
    so the line may fall but stays >= 0 on [0, 1]). Exact: y >= 0, so the free line can break only
    one of the two constraints, and the best line on that constraint's boundary keeps the other.
    ``a = -b`` (a variance b (1 - x), zero at white) is a valid fit, not an absence of noise."""
    if w.sum() <= 0:
        return 0.0, 0.0
    A = np.stack([x, np.ones_like(x)], 1) * np.sqrt(w)[:, None]
    a, b = np.linalg.lstsq(A, y * np.sqrt(w), rcond=None)[0]
    if a < 0 and not falling:
        a, b = 0.0, float(np.sum(w * y) / np.sum(w))
    elif b < 0:
        a, b = float(np.sum(w * x * y) / max(np.sum(w * x * x), 1e-30)), 0.0
    elif a + b < 0:  # falling: y = b (1 - x)
        b = float(np.sum(w * (1 - x) * y) / max(np.sum(w * (1 - x) ** 2), 1e-30))
        a = -b
    return float(a), float(b)


# fit_calibrated refuses pairs smaller than this (and than 2 * kernel_size + 1) on either side
MIN_FIT_SIDE = 16
# a pair of at least SCENE_MIN_SIDE pixels a side whose noise regresses on its clean image with a
# slope below SCENE_SLOPE is warned about: its noisy image shows another scene (the residual holds
# minus the clean image: slope ~ -1). Measured on the shared real pairs (SIDD, PolyU, CC15, Nam):
# whole images -0.10 to 0.08, every 64x64 crop >= -0.49 (32x32 crops reach -0.76: too little image
# to tell, so smaller pairs are not judged); each pair's noisy image swapped for the next pair's in
# the same set: median -1.0, 126 of 135 below -0.6 (the rest: neighbouring crops of one scene)
SCENE_SLOPE = -0.6
SCENE_MIN_SIDE = 64


def scene_slope(clean: np.ndarray, noise: np.ndarray) -> float:
    """The least-squares slope of ``noise`` (noisy - clean) on ``clean`` ((3, H, W) numpy arrays,
    each channel about its mean): ~0 for real noise, ~-1 when the noisy image is another scene.
    0 for a flat clean image (no structure to follow)."""
    cc = clean - clean.mean(axis=(1, 2), keepdims=True)
    nn_ = noise - noise.mean(axis=(1, 2), keepdims=True)
    den = float((cc * cc).sum())
    if den <= (2 / 255) ** 2 * cc.size:  # clean std below 2 levels: a flat image
        return 0.0
    return float((cc * nn_).sum()) / den


# fit_calibrated(levels=True): at most this many alternations of (a, b) and the pairs' gains, until
# (a, b) change by less than LEVEL_TOL relative (level and slope are coupled: ~10-30 are needed)
LEVEL_ITERS = 100
LEVEL_TOL = 1e-5


def fit_calibrated(imageset, *, correlated: bool = True, kernel_size: int = 5, max_images: int = 64,
                   levels: bool = False, progress=None) -> CalibratedNoise:
    """Fit the calibrated model on the noisy/clean pairs of ``imageset`` (see the module docstring).

    ``levels=True``: the pairs may come from several noise levels (ISOs), ``var_i(x) = g_i^2 (a x + b)``
    with one gain ``g_i`` per pair; (a, b) and the gains are fitted in turn until they settle
    (``LEVEL_ITERS``, ``LEVEL_TOL``; the gains' geometric mean is 1), and a falling line is allowed
    (``a < 0``, ``a + b >= 0``). Pooling pairs of different ISOs without the gains confounds level
    with brightness: on the shared SIDD crops the pooled fit rises with intensity while each image's
    noise falls (docs/experiments.md, "SIDD's noise level is the scene's ISO"). The levels fit also fits
    the noise's mean (``kappa``, see the module docstring). This is the fit ``synthetic.level=match`` trains from.

    A pair smaller than ``MIN_FIT_SIDE`` (or ``2 * kernel_size + 1``) on a side is refused, naming it
    (not skipped: the user meant it to count); a pair whose noisy image looks like another scene
    (:func:`scene_slope`) is warned about once, naming it."""
    if not (imageset.has_clean and imageset.has_noisy):
        raise PnganError(f"fitting the calibrated setting needs noisy/clean pairs; {imageset.spec} has only one side")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise PnganError(f"calibrated: kernel_size must be odd and >= 1, got {kernel_size}")
    n = len(imageset)
    if n == 0:
        raise PnganError(f"{imageset.spec}: no pairs to fit the calibrated setting on")
    idx = np.unique(np.linspace(0, n - 1, min(n, max_images)).round().astype(int))
    pairs = []
    edges = np.linspace(0.0, 1.0, FIT_BINS + 1)
    it = progress(idx) if progress is not None else idx
    min_side = max(MIN_FIT_SIDE, 2 * kernel_size + 1) if correlated else MIN_FIT_SIDE
    other_scene = []
    for i in it:
        s = imageset.load(int(i))
        h, w = s.clean.shape[-2:]
        if min(h, w) < min_side:  # refused, not skipped: a pair this small in a fit set is a mistake
            raise PnganError(f"{imageset.spec}: pair '{s.name}' is {h}x{w}: too small to fit noise on (at least "
                             f"{min_side}x{min_side} pixels: the noise's spatial correlation needs room)")
        c = s.clean.to(torch.float64).numpy()
        nz = s.noisy.to(torch.float64).numpy() - c
        slope = scene_slope(c, nz) if min(h, w) >= SCENE_MIN_SIDE else 0.0
        if slope < SCENE_SLOPE:
            other_scene.append(f"'{s.name}' ({slope:.2f})")
        bins = [np.clip(np.digitize(c[ch].ravel(), edges) - 1, 0, FIT_BINS - 1) for ch in range(3)]
        pairs.append((c, nz, bins))
    if other_scene:
        import warnings

        more = f" and {len(other_scene) - 5} more" if len(other_scene) > 5 else ""
        warnings.warn(f"{imageset.spec}: the noise (noisy - clean) of pair(s) {', '.join(other_scene[:5])}{more} "
                      f"follows the clean image (its slope on the clean image is below {SCENE_SLOPE}; real pairs "
                      "stay above -0.5): is the noisy image of another scene? The fit takes the whole difference "
                      "as noise", stacklevel=2)
    if not any(np.any(nz != 0) for _, nz, _ in pairs):
        raise PnganError(f"{imageset.spec}: the noisy and clean images are identical: no noise to fit")
    centers = 0.5 * (edges[:-1] + edges[1:])
    usable = (centers > 2 / 255) & (centers < 1 - 2 / 255)

    def fit_ab(gains):
        sums = np.zeros((3, FIT_BINS))
        counts = np.zeros((3, FIT_BINS))
        for (c, nz, bins), g in zip(pairs, gains):
            for ch in range(3):
                sums[ch] += np.bincount(bins[ch], weights=(nz[ch].ravel() / g) ** 2, minlength=FIT_BINS)
                counts[ch] += np.bincount(bins[ch], minlength=FIT_BINS)
        ab = [_fit_line(centers, sums[ch] / np.maximum(counts[ch], 1),
                        np.where(usable & (counts[ch] > 0), counts[ch], 0.0), falling=levels) for ch in range(3)]
        return [v[0] for v in ab], [v[1] for v in ab]

    gains = np.ones(len(pairs))
    a, b = fit_ab(gains)
    if max(max(bc, ac + bc) for ac, bc in zip(a, b)) <= MIN_VARIANCE:
        raise PnganError(f"{imageset.spec}: the noisy and clean images differ only near black or white (where "
                         "clipping hides the noise): no noise to fit")

    def pair_gains(a, b, kappa=None):
        m = CalibratedNoise(a, b, kappa=kappa)
        return np.array([float(level_gain(m, torch.from_numpy(c), torch.from_numpy(c + nz))[0])
                         for c, nz, _ in pairs])

    def normalised(raw):
        g = np.maximum(raw, 1e-3)
        return g / np.exp(np.mean(np.log(g)))  # the fit's level is the pairs' geometric mean

    kappa = raw_gains = None
    if levels:
        for _ in range(LEVEL_ITERS):
            gains = normalised(pair_gains(a, b))
            prev = np.array(a + b)
            a, b = fit_ab(gains)
            if np.max(np.abs(np.array(a + b) - prev)) <= LEVEL_TOL * np.max(np.abs(prev)):
                break
        # the tone curve's noise mean, then the gains again (level_gain accounts for the mean)
        kappa = _fit_kappa(pairs, a, b, gains)
        raw_gains = pair_gains(a, b, kappa)
        gains = normalised(raw_gains)
    kernel = mix = None
    if correlated:
        r = kernel_size // 2
        L = 4 * r + 8  # FFT size of the lag window
        acc = np.zeros((2 * r + 1, 2 * r + 1))
        cc = np.zeros((3, 3))
        tot = 0.0
        for (c, nz, _), g in zip(pairs, gains):
            std = g * np.sqrt(_pair_variance(c, a, b, 1.0))
            # a falling fit may reach ~0 at white: there the ratio would be noise over nothing,
            # so the levels fit floors the std at a quarter of the image's median (the default fit's
            # std never comes near 0 and keeps its published numbers)
            if kappa is not None:  # the noise about its fitted mean
                nz = nz - _tone_mean(c, std**2, kappa)
            z = nz / np.maximum(std, max(0.25 * float(np.median(std)), 1e-6) if levels else 1e-6)
            z = z - z.mean(axis=(1, 2), keepdims=True)
            h, wd = z.shape[1:]
            f = np.fft.fft2(z)
            ac = np.real(np.fft.ifft2(np.abs(f) ** 2)).mean(0)  # circular autocorrelation, summed
            ac = np.fft.fftshift(ac)
            cy, cx = h // 2, wd // 2
            acc += ac[cy - r: cy + r + 1, cx - r: cx + r + 1]
            v = z.reshape(3, -1)
            cc += v @ v.T
            tot += h * wd
        acc /= tot
        acc /= acc[r, r]
        cc /= tot
        d = np.sqrt(np.diag(cc))
        corr = cc / d[:, None] / d[None, :]
        # spectral square root of the (windowed) autocorrelation -> zero-phase unit-energy kernel
        win = np.zeros((L, L))
        win[:2 * r + 1, :2 * r + 1] = acc
        win = np.roll(win, (-r, -r), axis=(0, 1))
        psd = np.clip(np.real(np.fft.fft2(win)), 1e-6, None)
        k = np.real(np.fft.ifft2(np.sqrt(psd)))
        k = np.fft.fftshift(k)
        ck = L // 2
        k = k[ck - r: ck + r + 1, ck - r: ck + r + 1]
        k /= np.sqrt((k**2).sum())
        kernel = k.tolist()
        mix = np.linalg.cholesky(corr + 1e-6 * np.eye(3)).tolist()
    try:
        # each fitted pair's noise level relative to the fit, saved with the model (6 significant
        # digits): a wide spread means the pairs were taken at several ISOs (synthetic.level=match),
        # and the 'fitted' level policy draws generated images at these levels
        levels = [float(f"{max(float(g), 0.0):.6g}") for g in (raw_gains if raw_gains is not None else pair_gains(a, b))]
        model = CalibratedNoise(a, b, kernel, mix, fitted_on=str(imageset.describe()), kappa=kappa,
                                pair_gains=levels)
    except PnganError as e:  # the pairs give a noise model no camera makes
        raise PnganError(f"{imageset.spec}: the fit gives an implausible noise model ({e}): are the noisy "
                         "images of the clean images' scenes?") from None
    return model


def _pair_variance(c: np.ndarray, a, b, g: float) -> np.ndarray:
    """The fitted noise variance g^2 max(a x + b, 0) of a (3, H, W) clean image (numpy, as fitted)."""
    return g * g * np.maximum(np.asarray(a)[:, None, None] * np.clip(c, 0, 1) + np.asarray(b)[:, None, None], 0)


def _tone_mean(c: np.ndarray, var: np.ndarray, kappa=1.0) -> np.ndarray:
    """kappa * var / max(x, MEAN_FLOOR) per channel: the fitted noise mean (numpy, as fitted; the
    torch twin is CalibratedNoise.mean_shift). kappa = 1 gives the regressor kappa is fitted on."""
    return np.asarray(kappa)[..., None, None] * var / np.clip(c, MEAN_FLOOR, 1)


def _fit_kappa(pairs, a, b, gains) -> list[float]:
    """Least squares of the noise against ``var / max(x, MEAN_FLOOR)`` per channel (the tone curve's
    mean, see the module docstring), on the pixels at least 2.5 std from black and white."""
    num, den = np.zeros(3), np.zeros(3)
    for (c, nz, _), g in zip(pairs, gains):
        var = _pair_variance(c, a, b, g)
        sd = np.sqrt(var)
        keep = (c > 2.5 * sd) & (c < 1 - 2.5 * sd)
        u = _tone_mean(c, var) * keep
        num += (nz * u).sum(axis=(1, 2))
        den += (u * u).sum(axis=(1, 2))
    return [float(v) for v in num / np.maximum(den, 1e-30)]


def calibration_from_dict(d, source: str | Path | None = None) -> CalibratedNoise:
    """A calibrated setting from its ``describe()`` dict (``"setting"`` optional), every key checked
    by name and type; errors name ``source`` (a file) and the key."""
    try:
        if not isinstance(d, dict):
            raise PnganError(f"expected a JSON object with the keys {', '.join(KEYS)}, got {type(d).__name__}")
        d = dict(d)
        if d.pop("setting", "calibrated") != "calibrated":
            raise PnganError("not a calibration (expected \"setting\": \"calibrated\")")
        unknown = [k for k in d if k not in KEYS]
        if unknown:
            import difflib

            k = str(unknown[0])
            near = difflib.get_close_matches(k, KEYS, n=1)
            raise PnganError(f"unknown calibration key '{k}'" + (f" (did you mean '{near[0]}'?)" if near else "")
                             + f"; known: {', '.join(KEYS)}")
        missing = [k for k in ("a", "b") if k not in d]
        if missing:
            raise PnganError(f"missing calibration key '{missing[0]}' (the noise variance a*x + b, one value per "
                             "channel)")
        # a file (or a generator's metadata) always holds 'kernel' and 'mix' (null: an uncorrelated fit,
        # fit_calibrated(correlated=False)); one of them missing would silently make the noise white
        gone = [k for k in ("kernel", "mix") if k not in d]
        if source is not None and len(gone) == 1:
            raise PnganError(f"missing calibration key '{gone[0]}' (the noise's "
                             f"{'spatial' if gone[0] == 'kernel' else 'cross-channel'} correlation; null for an "
                             "uncorrelated fit, as 'pngan synth --save-fit' writes it)")
        if source is not None and gone:
            import logging

            logging.getLogger("pngan").warning("%s: no calibration keys 'kernel' and 'mix': loaded as uncorrelated "
                                               "(white) noise, as if both were null", source)
        return CalibratedNoise(**d)
    except PnganError as e:
        if source is None:
            raise
        raise PnganError(str(e), source) from None


def load_calibration(path: str | Path) -> CalibratedNoise:
    """A calibrated setting from a JSON file written by ``save_calibration``, or from the
    ``pngan.synthetic`` metadata of a generator trained on it (its ``generator.safetensors``, or the
    run folder holding that file). Every value is checked (:class:`CalibratedNoise`)."""
    if not str(path).strip():
        raise PnganError("calibrated: needs a file: calibrated:FILE.json (a saved calibration) or "
                         "calibrated:RUN (a generator trained on the calibrated setting: its run folder or "
                         "generator.safetensors)")
    p = Path(path)
    if p.is_dir():
        if not (p / "generator.safetensors").is_file():
            raise PnganError("is a folder without generator.safetensors: give a calibration file (FILE.json) or "
                             "the run folder of a generator trained on the calibrated setting", p)
        p = p / "generator.safetensors"
    if not p.is_file():
        raise PnganError("no such calibration file", p)
    try:
        with open(p, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise PnganError(f"cannot read the calibration file: {e.strerror or e}", p) from None
    if p.suffix == ".safetensors" or (len(head) >= 9 and head[8:9] == b"{"):  # a safetensors header
        from pngan.nets.loading import read_metadata

        meta = read_metadata(p)
        if "pngan.synthetic" not in meta:
            raise PnganError("has no pngan.synthetic metadata: not a generator written by 'pngan train' (give "
                             "a calibration FILE.json or a generator trained on the calibrated setting)", p)
        try:
            d = json.loads(meta["pngan.synthetic"])
        except json.JSONDecodeError as e:
            raise PnganError(f"its pngan.synthetic metadata is not JSON ({e})", p) from None
        if isinstance(d, dict) and d.get("setting") != "calibrated":
            raise PnganError(f"its generator was trained on the '{d.get('setting')}' setting, not on a "
                             "calibrated one: there is no calibration to take from it", p)
        return calibration_from_dict(d, f"{p} (pngan.synthetic)")
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise PnganError(f"cannot read the calibration file: {e.strerror or e}", p) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PnganError(f"not a calibration file (not JSON: {e})", p) from None
    if not isinstance(d, dict) or d.get("setting") != "calibrated":
        raise PnganError("not a calibration file (expected a JSON object with \"setting\": \"calibrated\")", p)
    return calibration_from_dict(d, p)


def save_calibration(model: CalibratedNoise, path: str | Path) -> None:
    from pngan.io.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(model.describe(), indent=2) + "\n")
