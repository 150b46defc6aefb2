"""The calibrated setting: a non-learned noise model fitted on the user's own noisy/clean pairs.

It is the bar every learned generator must clear (a two-parameter fit per channel that a GAN
cannot beat is not worth training), and it can also be the generator's input instead of setting 1
or 2 (``synthetic.setting=calibrated``).

Model, per channel c of an sRGB image x in [0, 1]::

    noisy = clip(x + sqrt(a_c * x_c + b_c) * z_c, 0, 1),     z = M (k * w),  w ~ N(0, I)

* ``a``, ``b``: the heteroscedastic variance (noise level function) of each channel, fitted by
  weighted least squares of the mean squared noise in ``FIT_BINS`` intensity bins against the
  clean intensity (bins whose clean value is within 2/255 of black or white are left out: clipping
  lowers their variance); negative values are clipped to 0 and the fit redone for the other one;
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
  crops gives kappa = -0.64 / -0.61 / -0.57 (docs/experiments.md, session 7).

``correlated=False`` keeps only ``a`` and ``b`` (white, channel-independent noise: the plain
heteroscedastic Gaussian). Fitting reads at most ``max_images`` pairs and takes seconds.
``describe()`` holds every fitted number, so checkpoints and ``--setting calibrated:FILE.json``
rebuild exactly the same setting.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pngan.errors import PnganError

FIT_BINS = 32
# the tone-curve mean kappa * var / max(x, MEAN_FLOOR): a gamma curve's 1/x is cut off near black,
# where sRGB curves are linear (0.1: chosen on a validation split of the SIDD crops, session 7)
MEAN_FLOOR = 0.1


class CalibratedNoise(nn.Module):
    setting = "calibrated"

    def __init__(self, a, b, kernel=None, mix=None, clip: bool = True, fitted_on: str = "", kappa=None):
        super().__init__()
        self.a = [float(v) for v in a]
        self.b = [float(v) for v in b]
        if len(self.a) != 3 or len(self.b) != 3:
            raise PnganError("calibrated: a and b need one value per channel (3)")
        # the variance a*x + b must be >= 0 on [0, 1]: b >= 0 and a + b >= 0 (a < 0: a falling noise
        # level function, as sRGB noise of one ISO often has; see fit_calibrated(levels=True))
        if not all(math.isfinite(v) for v in self.a + self.b) or \
                not all(bc >= 0 and ac + bc >= 0 for ac, bc in zip(self.a, self.b)):
            raise PnganError(f"calibrated: a and b must be finite with b >= 0 and a + b >= 0 (a variance a*x + b "
                             f">= 0 on [0, 1]), got a={self.a} b={self.b}")
        self.kernel = None if kernel is None else [[float(v) for v in row] for row in kernel]
        self.mix = None if mix is None else [[float(v) for v in row] for row in mix]
        if self.kernel is not None:
            k = np.asarray(self.kernel)
            if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 == 0:
                raise PnganError(f"calibrated: kernel must be square with an odd size, got {k.shape}")
        if self.mix is not None and np.asarray(self.mix).shape != (3, 3):
            raise PnganError("calibrated: mix must be 3x3")
        self.clip = bool(clip)
        self.fitted_on = str(fitted_on)
        self.kappa = None if kappa is None else [float(v) for v in kappa]
        if self.kappa is not None and (len(self.kappa) != 3 or not all(math.isfinite(v) for v in self.kappa)):
            raise PnganError(f"calibrated: kappa (the noise mean) needs three finite values, got {kappa!r}")

    def describe(self) -> dict:
        d = {"setting": "calibrated", "a": self.a, "b": self.b, "kernel": self.kernel, "mix": self.mix,
             "clip": self.clip, "fitted_on": self.fitted_on}
        if self.kappa is not None:  # only when fitted: earlier settings describe (and hash) as before
            d["kappa"] = self.kappa
        return d

    def variance(self, x: torch.Tensor) -> torch.Tensor:
        """The fitted noise variance max(a x + b, 0) at clean intensity ``x`` (B, 3, H, W), gain 1."""
        a = torch.tensor(self.a, dtype=x.dtype, device=x.device)[None, :, None, None]
        b = torch.tensor(self.b, dtype=x.dtype, device=x.device)[None, :, None, None]
        return (a * x.clamp(0, 1) + b).clamp_min(0)

    def mean_shift(self, x: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """The noise mean at clean intensity ``x`` for noise variance ``var`` (zero without kappa)."""
        if self.kappa is None:
            return torch.zeros_like(var)
        k = torch.tensor(self.kappa, dtype=var.dtype, device=var.device)[None, :, None, None]
        return k * var / x.clamp(MEAN_FLOOR, 1)

    def field(self, shape, generator: torch.Generator | None, device, dtype) -> torch.Tensor:
        """Unit-variance correlated noise z = M (k * w) of ``shape`` (B, 3, H, W)."""
        gdev = generator.device if generator is not None else device
        w = torch.randn(shape, generator=generator, device=gdev, dtype=dtype).to(device)
        if self.kernel is not None:
            k = torch.tensor(self.kernel, dtype=dtype, device=device)
            r = k.shape[0] // 2
            mode = "reflect" if min(shape[-2:]) > r else "replicate"
            w = F.conv2d(F.pad(w, (r, r, r, r), mode=mode), k.expand(3, 1, *k.shape), groups=3)
        if self.mix is not None:
            m = torch.tensor(self.mix, dtype=dtype, device=device)
            w = torch.einsum("ij,bjhw->bihw", m, w)
        return w

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None, return_params: bool = False,
                gain: float | torch.Tensor | None = None):
        """Noisy versions of ``x``. ``gain`` (a number, or one per image) scales the fitted noise std:
        the noise level of one image (see :func:`level_gain`); None is 1, the training set's fit."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (B,3,H,W), got {tuple(x.shape)}")
        wdt = torch.float64 if x.dtype == torch.float64 else torch.float32
        xx = x.to(wdt)
        std = torch.sqrt(self.variance(xx))
        if gain is not None:
            g = torch.as_tensor(gain, dtype=wdt, device=x.device).reshape(-1)
            if g.numel() not in (1, x.shape[0]) or not bool(torch.isfinite(g).all()) or bool((g < 0).any()):
                raise PnganError(f"calibrated: gain must be one finite number >= 0, or one per image; got {gain!r}")
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
    so the line may fall but stays >= 0 on [0, 1])."""
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
    noise falls (docs/experiments.md, session 6). The levels fit also fits the noise's mean (``kappa``,
    see the module docstring; session 7). This is the fit ``synthetic.level=match`` trains from."""
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
    for i in it:
        s = imageset.load(int(i))
        c = s.clean.to(torch.float64).numpy()
        nz = s.noisy.to(torch.float64).numpy() - c
        bins = [np.clip(np.digitize(c[ch].ravel(), edges) - 1, 0, FIT_BINS - 1) for ch in range(3)]
        pairs.append((c, nz, bins))
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
    if sum(a) + sum(b) <= 0:
        raise PnganError(f"{imageset.spec}: the noisy and clean images are identical: no noise to fit")

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
            z = nz / np.maximum(std, 0.25 * float(np.median(std)) if levels else 1e-6)
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
    model = CalibratedNoise(a, b, kernel, mix, fitted_on=imageset.describe(), kappa=kappa)
    # each fitted pair's noise level relative to the fit (not saved with the model): a wide spread
    # means the pairs were taken at several ISOs (see synthetic.level=match)
    model.pair_gains = (raw_gains if raw_gains is not None else pair_gains(a, b)).tolist()
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


def load_calibration(path: str | Path) -> CalibratedNoise:
    """A calibrated setting from a JSON file written by ``save_calibration`` (or a checkpoint's
    ``pngan.synthetic`` metadata)."""
    p = Path(path)
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PnganError(f"cannot read the calibration file: {e}", p) from None
    if not isinstance(d, dict) or d.get("setting") != "calibrated":
        raise PnganError("not a calibration file (expected a JSON object with \"setting\": \"calibrated\")", p)
    d = {k: v for k, v in d.items() if k != "setting"}
    try:
        return CalibratedNoise(**d)
    except TypeError as e:
        raise PnganError(f"bad calibration file: {e}", p) from None


def save_calibration(model: CalibratedNoise, path: str | Path) -> None:
    from pngan.io.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(model.describe(), indent=2) + "\n")
