"""The noise level of a noisy image without its clean image.

:func:`estimate_gain` answers, for a calibrated model (:class:`CalibratedNoise`) and noisy images
only, the question :func:`pngan.noise.calibrated.level_gain` answers from noisy/clean pairs: the
gain ``g`` (one per image) on the fitted noise std at which the model's noise matches the image's.

Method (chosen by measurement: ``benchmarks/level_estimate.py``, docs/experiments.md "Reference-level
estimator"): a fixed high-pass residual read in the image's flattest blocks, every
bias taken from the model itself.

1. ``r = h * noisy`` per channel with a small high-pass ``h`` (Immerkaer 1996 by default: zero on
   constant and linear intensity, so smooth image content leaves almost nothing). For the model's
   noise ``g * sqrt(v(x)) * M (k * w)`` where the intensity is near constant,
   ``E[r^2] = g^2 v(x) ||h * k||^2``: the share of the noise variance ``h`` keeps, ``||h * k||^2``
   (``k`` the fitted colouring kernel), is computed exactly from the kernel (:func:`kept_share`).
   Demosaicked / JPEG noise is low-pass, so a 3x3 high-pass keeps far less of it than of white noise
   (Immerkaer's keeps 0.25 of the shared SIDD fit's noise, against 1 of white noise): an estimator
   that assumes white noise reads such noise about 2x too low.
2. ``v(x)`` is the model's variance at the noisy image's local mean (a ``MEAN_SIZE`` box: the clean
   intensity to a small fraction of the noise std), so ``t = r^2 / (||h * k||^2 v)`` is ``g^2``
   times a unit-mean variable where the image is flat. Pixels clipping may have touched (local mean
   within ``CLIP_STDS`` noise std of black or white, per channel) or where the model predicts almost
   no noise are left out.
3. Texture only adds to ``t``. ``t`` is averaged in ``BLOCK`` x ``BLOCK`` blocks, and the mean of
   each channel's ``QUANTILE`` flattest blocks gives its ``g_c^2``. Keeping the lowest blocks reads
   pure noise low by a factor that depends only on the model's correlation, the block size and the
   quantile: it is measured once on a simulated pure-noise field of the model (fixed seed, cached)
   and divided out (:func:`selection_bias`).
4. ``g^2 = sum_c g_c^2 V_c / sum_c V_c`` with ``V_c`` the predicted variance summed over the
   channel's usable pixels: ``level_gain``'s pooling over channels. Steps 2-4 run ``ITERS`` times,
   since the clipping margin depends on the level.

What it cannot do: tell the image's own fine texture (film grain, foliage) from noise. At low levels
(a noise std of a few levels of 255, of which a 3x3 residual keeps a quarter) a crop without flat
regions reads high; the measured floor per image is in docs/experiments.md.
"""

from __future__ import annotations

import math
import statistics

import torch
import torch.nn.functional as F

from pngan.errors import PnganError
from pngan.noise.calibrated import CalibratedNoise

# The high-pass filters the benchmark compares (unit energy: white unit-variance noise keeps variance
# 1 through each; a pair of filters is averaged). Immerkaer's is the difference of two Laplacians.
HIGHPASS: dict[str, tuple[tuple[tuple[float, ...], ...], ...]] = {
    "immerkaer": (((1 / 6, -2 / 6, 1 / 6), (-2 / 6, 4 / 6, -2 / 6), (1 / 6, -2 / 6, 1 / 6)),),
    # first differences along x and y
    "diff": (((0.0, 0.0, 0.0), (0.0, 2 ** -0.5, -(2 ** -0.5)), (0.0, 0.0, 0.0)),
             ((0.0, 0.0, 0.0), (0.0, 2 ** -0.5, 0.0), (0.0, -(2 ** -0.5), 0.0))),
    # first differences along the two diagonals
    "diag": (((2 ** -0.5, 0.0, 0.0), (0.0, -(2 ** -0.5), 0.0), (0.0, 0.0, 0.0)),
             ((0.0, 0.0, 2 ** -0.5), (0.0, -(2 ** -0.5), 0.0), (0.0, 0.0, 0.0))),
}
DEFAULT_HIGHPASS = "immerkaer"
MEAN_SIZE = 5         # the box whose noisy mean stands for the clean intensity in v(x)
BLOCK = 8             # block side for the flatness ranking
QUANTILE = 0.2        # the share of usable blocks (the flattest) each channel's level is read from
BLOCK_FILL = 0.75     # a block counts when at least this share of its pixels is usable
CLIP_STDS = 1.5       # pixels whose local mean is within this many noise std of 0 or 1 are left out
MIN_VAR_SHARE = 0.05  # ... and pixels whose predicted variance is below 5% of the image's median
ITERS = 3             # the clipping margin depends on the gain: estimate, then re-select twice
SIM_SIDE = 512        # side of the simulated pure-noise field the selection bias is measured on
SIM_SEED = 0
MIN_BLOCKS = 8        # a channel with fewer usable blocks gives no reading

_BIAS_CACHE: dict[tuple, torch.Tensor] = {}


def _filters(highpass: str) -> list[torch.Tensor]:
    if highpass not in HIGHPASS:
        raise PnganError(f"estimate_gain: unknown high-pass '{highpass}' (known: {', '.join(HIGHPASS)})")
    return [torch.tensor(h, dtype=torch.float64) for h in HIGHPASS[highpass]]


def kept_share(model: CalibratedNoise, h: torch.Tensor) -> float:
    """``||h * k||^2``: the variance the filter ``h`` keeps of the model's unit-variance noise (``k``
    its colouring kernel, a delta when it has none). Exact: ``z = k * w`` with white ``w``, so
    ``h * z = (h * k) * w``. The channel mix does not change it (unit-energy rows, same pixel)."""
    h = h.to(torch.float64)
    if model.kernel is None:
        return float((h * h).sum())
    k = model.kernel.to(torch.float64)
    r = h.shape[-1] - 1
    hk = F.conv2d(F.pad(k[None, None], (r, r, r, r)), h.flip(-1, -2)[None, None])  # the full convolution
    return float((hk * hk).sum())


def _ratio(model: CalibratedNoise, x: torch.Tensor, highpass: str) -> torch.Tensor:
    """``r^2 / ||h * k||^2`` at the 'valid' positions of the 3x3 high-pass (B, 3, H-2, W-2), averaged
    over the filters of ``highpass``: g^2 v(x) in expectation where the image is flat."""
    fs = _filters(highpass)
    out = torch.zeros(x.shape[0], 3, x.shape[2] - 2, x.shape[3] - 2, dtype=x.dtype)
    for h in fs:
        r = F.conv2d(x, h.to(x.dtype).expand(3, 1, 3, 3), groups=3)
        out += r * r / (kept_share(model, h) * len(fs))
    return out


def _block_stats(t: torch.Tensor, ok: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean of ``t`` (B, 3, H, W) over the usable pixels (``ok``) of each ``block`` x ``block``
    block, per channel, and which blocks count (at least ``BLOCK_FILL`` usable): both (B, 3, n)."""
    okf = ok.to(t.dtype)
    fill = F.avg_pool2d(okf, block)
    e = F.avg_pool2d(t * okf, block) / fill.clamp_min(1e-12)
    return e.flatten(2), (fill >= BLOCK_FILL).flatten(2)


def _lowest(e: torch.Tensor, full: torch.Tensor, quantile: float) -> torch.Tensor:
    """Per image and channel, the mean of the lowest ``quantile`` of the counted blocks' values:
    (B, 3); NaN where a channel has fewer than ``MIN_BLOCKS`` blocks."""
    out = torch.full(e.shape[:2], float("nan"), dtype=e.dtype)
    for i in range(e.shape[0]):
        for c in range(e.shape[1]):
            ec = e[i, c][full[i, c]]
            if ec.numel() < MIN_BLOCKS:
                continue
            m = max(MIN_BLOCKS // 2, int(round(quantile * ec.numel())))
            out[i, c] = torch.sort(ec).values[:m].mean()
    return out


def selection_bias(model: CalibratedNoise, highpass: str = DEFAULT_HIGHPASS, block: int = BLOCK,
                   quantile: float = QUANTILE) -> torch.Tensor:
    """The factor (one per channel) by which the mean of the flattest ``quantile`` of blocks reads the
    level of the model's pure noise low: measured on a ``SIM_SIDE`` square field of the model
    (``SIM_SEED``: the same every call; cached per correlation structure)."""
    d = model.describe()
    key = (repr(d["kernel"]), repr(d["mix"]), highpass, block, quantile)
    if key not in _BIAS_CACHE:
        g = torch.Generator().manual_seed(SIM_SEED)
        z = model.field((1, 3, SIM_SIDE, SIM_SIDE), g, "cpu", torch.float64)
        t = _ratio(model, z, highpass)
        e, full = _block_stats(t, torch.ones_like(t, dtype=torch.bool), block)
        _BIAS_CACHE[key] = _lowest(e, full, quantile)[0]
    return _BIAS_CACHE[key]


def _usable(model: CalibratedNoise, x: torch.Tensor, gain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The predicted variance at each pixel's local mean (B, 3, H, W), and where each channel's
    residual may be read (B, 3, H-2, W-2): not near clipping at ``gain``, not where the model
    predicts almost no noise, over the filter's whole 3x3 footprint."""
    r = MEAN_SIZE // 2
    mean = F.avg_pool2d(F.pad(x, (r, r, r, r), mode="replicate"), MEAN_SIZE, stride=1)
    var = model.variance(mean)
    sd = gain[:, None, None, None] * var.sqrt()
    med = var.flatten(2).median(2).values[..., None, None]
    good = (mean > CLIP_STDS * sd) & (mean < 1 - CLIP_STDS * sd) & (var > MIN_VAR_SHARE * med)
    ok = -F.max_pool2d(-good.to(x.dtype), 3, stride=1) > 0.5  # all nine pixels of the footprint
    return var, ok


def _as_batch(noisy: torch.Tensor) -> torch.Tensor:
    if not isinstance(noisy, torch.Tensor) or noisy.dim() not in (3, 4) or noisy.shape[-3] != 3:
        shape = tuple(noisy.shape) if isinstance(noisy, torch.Tensor) else type(noisy).__name__
        raise PnganError(f"estimate_gain: expected a noisy image (3,H,W) or a batch (B,3,H,W), got {shape}")
    x = noisy[None] if noisy.dim() == 3 else noisy
    side = 4 * BLOCK + 2
    if min(x.shape[-2:]) < side:
        raise PnganError(f"estimate_gain: the image is {x.shape[-2]}x{x.shape[-1]}; at least {side}x{side} pixels "
                         "are needed to read its noise level")
    x = x.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(x).all()):
        raise PnganError("estimate_gain: the noisy image holds NaN or Inf values")
    return x


def estimate_gain(model: CalibratedNoise, noisy: torch.Tensor, *, scale: float = 1.0,
                  highpass: str = DEFAULT_HIGHPASS, white: bool = False, block: int = BLOCK,
                  quantile: float = QUANTILE) -> torch.Tensor:
    """The noise level of each noisy image ((3,H,W) or (B,3,H,W) in [0, 1]) relative to ``model``:
    the gain on the model's fitted noise std, as :func:`pngan.noise.calibrated.level_gain` gives it
    from a pair, read without a clean image (see the module docstring). Returns B float64 gains.

    ``scale`` multiplies the reading: :func:`reference_scale` measures it on the pairs the model was
    fitted on, where they are at hand (on the shared SIDD crops real noise reads ~12% low without it:
    more of its power is at low frequencies than the 5x5 kernel holds).

    ``white=True`` ignores the model's correlation (the same estimator for white noise): a baseline
    the benchmark documents (it reads correlated noise about 2x low), not for use. ``highpass``,
    ``block`` and ``quantile`` are the benchmark's knobs. An image with fewer than ``MIN_BLOCKS``
    usable blocks in every channel (tiny, or all near black or white) is a PnganError naming it."""
    x = _as_batch(noisy)
    ref = CalibratedNoise(model.a, model.b, clip=model.clip) if white else model
    bias = selection_bias(ref, highpass, block, quantile)
    t = _ratio(ref, x, highpass)
    gain = torch.ones(x.shape[0], dtype=torch.float64)
    for it in range(ITERS):
        var, ok = _usable(model, x, gain)
        v = var[..., 1:-1, 1:-1]
        e, full = _block_stats(t / v.clamp_min(1e-30), ok, block)
        g2c = _lowest(e, full, quantile) / bias  # (B, 3): each channel's g^2 (NaN: too few blocks)
        w = torch.where(torch.isnan(g2c), 0.0, (v * ok).sum(dim=(2, 3)))  # level_gain's pooling
        bad = w.sum(1) <= 0
        if it == 0 and bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            which = "the image" if x.shape[0] == 1 else f"image {i} of the batch"
            have = int(full[i].sum(-1).max())
            raise PnganError(f"estimate_gain: {which} ({x.shape[-2]}x{x.shape[-1]}) has {have} usable {block}x{block} "
                             f"blocks in its best channel, fewer than the {MIN_BLOCKS} needed (a block counts when "
                             f"{BLOCK_FILL:.0%} of it is mid-tone, {CLIP_STDS:g} noise std away from black and white): "
                             "its noise level cannot be read; give a larger image, or one less dark or saturated")
        new = ((torch.nan_to_num(g2c) * w).sum(1) / w.sum(1).clamp_min(1e-30)).clamp_min(0).sqrt()
        gain = torch.where(bad, gain, new)  # an image left with too few blocks keeps its last reading
    return gain * float(scale)


def reference_scale(model: CalibratedNoise, pairs) -> float:
    """The factor that makes :func:`estimate_gain` agree with ``level_gain`` on noisy/clean ``pairs``
    (an ImageSet; meant: the pairs ``model`` was fitted on): the geometric median of
    ``level_gain / estimate`` over the pairs that can be read. 1.0 when none can."""
    from pngan.noise.calibrated import level_gain

    logs = []
    for i in range(len(pairs)):
        s = pairs.load(i)
        try:
            est = float(estimate_gain(model, s.noisy)[0])
        except PnganError:
            continue
        ref = float(level_gain(model, s.clean, s.noisy)[0])
        if est > 0 and ref > 0:
            logs.append(math.log(ref / est))
    return math.exp(statistics.median(logs)) if logs else 1.0


__all__ = ["estimate_gain", "kept_share", "reference_scale", "selection_bias", "HIGHPASS"]
