"""Denoiser evaluation (PSNR/SSIM, DND bundle) and noise-realism evaluation over data sets.

Plain functions taking networks / image sets and returning dicts, for ``pngan evaluate`` and for
Python callers (``pngan demo``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from pngan.errors import PnganError


def _net_of(fn) -> torch.nn.Module | None:
    """The network behind ``fn`` (a module, or a bound method such as ``net.denoise``), else None."""
    if isinstance(fn, torch.nn.Module):
        return fn
    owner = getattr(fn, "__self__", None)
    return owner if isinstance(owner, torch.nn.Module) else None


def exact_halo(fn) -> int | None:
    """The halo that makes tiles of ``fn`` equal to the whole image: the network's receptive field
    (:func:`pngan.infer.tiling.receptive_radius`, global pools included), for a network that pads to no
    multiple; None when no halo is enough (channel attention or other whole-image statistics, a field
    wider than the probe, a network that pads its input) or ``fn`` is no network."""
    net = _net_of(fn)
    if net is None or int(getattr(net, "multiple", 1) or 1) != 1:
        return None
    from pngan.infer.tiling import receptive_radius

    return receptive_radius(net, fn, detach_pools=False)


def tiled_denoise(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int = 512,
                  overlap: int | None = None) -> torch.Tensor:
    """Apply ``fn`` ((1,C,h,w) -> (1,C,h,w)) to ``x`` (1,C,H,W) in tiles. Images no larger than ``tile``
    go through in one piece. For a network with a finite receptive field (e.g. DnCNN) each tile is run
    with a halo of that field and only its core is kept, so the result equals the untiled one (up to
    float rounding). Otherwise (``fn`` no network, or one with whole-image statistics such as RIDNet's,
    MIRNet's and MPRNet's channel attention, see :func:`exact_halo`) tiles overlap by ``overlap``
    (default min(32, tile // 4)) and overlaps are averaged: approximate (:func:`tiling_is_exact`)."""
    _, c, h, w = x.shape
    if tile <= 0 or (h <= tile and w <= tile):
        return fn(x)
    halo = exact_halo(fn) if overlap is None else None
    if halo is not None:
        out = None
        for y0 in range(0, h, tile):
            for x0 in range(0, w, tile):
                y1, x1 = min(h, y0 + tile), min(w, x0 + tile)
                ey0, ey1, ex0, ex1 = max(0, y0 - halo), min(h, y1 + halo), max(0, x0 - halo), min(w, x1 + halo)
                o = fn(x[..., ey0:ey1, ex0:ex1])
                if out is None:
                    out = torch.zeros(1, o.shape[1], h, w, dtype=o.dtype, device=o.device)
                out[..., y0:y1, x0:x1] = o[..., y0 - ey0:y1 - ey0, x0 - ex0:x1 - ex0]
        return out
    if overlap is None:
        overlap = min(32, tile // 4)
    if overlap >= tile:
        raise PnganError(f"tile overlap {overlap} must be smaller than the tile size {tile}")
    step = tile - overlap

    def starts(n):
        if n <= tile:
            return [0]
        s = list(range(0, n - tile, step))
        return s + [n - tile]

    out = torch.zeros_like(x)
    weight = torch.zeros(1, 1, h, w, dtype=x.dtype, device=x.device)
    for y0 in starts(h):
        for x0 in starts(w):
            th, tw = min(tile, h), min(tile, w)
            out[..., y0:y0 + th, x0:x0 + tw] += fn(x[..., y0:y0 + th, x0:x0 + tw])
            weight[..., y0:y0 + th, x0:x0 + tw] += 1
    return out / weight


def tiling_is_exact(fn, sizes, tile: int) -> bool:
    """Whether :func:`tiled_denoise` gives the untiled result for images of ``sizes`` ((h, w) pairs)."""
    if tile <= 0 or all(h <= tile and w <= tile for h, w in sizes):
        return True
    return exact_halo(fn) is not None


def _approximate_warning(net, tile: int, spec: str) -> None:
    import warnings

    name = type(net).__name__
    warnings.warn(f"{spec}: --tile {tile} splits the larger images into tiles, and {name} uses whole-image "
                  "statistics (channel attention) or a field wider than a halo can cover: the tiled results are "
                  "approximate (recorded as tiling.exact false in --json); use --tile 0 (or a tile larger than "
                  "the images) for exact results", stacklevel=3)


def _denoise_fn(net: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    return net.denoise if hasattr(net, "denoise") else net


def evaluate_denoiser(net: torch.nn.Module, imageset, *, tile: int = 512,
                      save_images: str | Path | None = None, progress=None) -> dict:
    """PSNR/SSIM (pngan.eval.metrics, scikit-image conventions, data range 1) of ``net`` on every
    pair of ``imageset``; returns ``{"images": {name: {"psnr", "ssim_y", "ssim_rgb", "psnr_input"}},
    "mean": ...}``. PSNR on R, G, B (as PNGAN's test code); ``ssim_y`` on the BT.601 luma (PNGAN's
    test code, the paper's tables), ``ssim_rgb`` averaged over R, G, B (scikit-image)."""
    from pngan.eval.metrics import psnr, ssim, ssim_y

    if not imageset.has_clean or not imageset.has_noisy:
        raise PnganError(f"{imageset.spec}: evaluating a denoiser needs noisy/clean pairs")
    net.eval().to(memory_format=torch.channels_last)  # oneDNN / tensor cores prefer NHWC
    fn = _denoise_fn(net)
    exact = None  # None: no image was tiled so far; False: one was, approximately (warned once)
    rows = {}
    it = range(len(imageset))
    if progress is not None:
        it = progress(it)
    with torch.inference_mode():
        for i in it:
            s = imageset.load(i)
            if exact is None and not tiling_is_exact(fn, [tuple(s.noisy.shape[-2:])], tile):
                exact = False
                _approximate_warning(net, tile, imageset.spec)
            out = tiled_denoise(fn, s.noisy[None].float().contiguous(memory_format=torch.channels_last), tile)[0].clamp(0, 1)
            rows[s.name] = {
                "psnr": float(psnr(out[None], s.clean[None])[0]),
                "ssim_y": float(ssim_y(out[None].double(), s.clean[None].double())[0]),
                "ssim_rgb": float(ssim(out[None], s.clean[None])[0]),
                "psnr_input": float(psnr(s.noisy[None], s.clean[None])[0]),
            }
            if save_images is not None:
                from pngan.io.images import write_image

                write_image(Path(save_images) / (Path(s.name).stem + ".png"), out)
    if not rows:
        raise PnganError(f"{imageset.spec}: the data set is empty")
    keys = ("psnr", "ssim_y", "ssim_rgb", "psnr_input")
    mean = {k: float(np.mean([r[k] for r in rows.values()])) for k in keys}
    halo = exact_halo(fn) if tile > 0 else None
    return {"data": imageset.spec, "count": len(rows), "images": rows, "mean": mean,
            "tiling": {"tile": tile, "exact": exact is not False, "halo": halo}}


# --------------------------------------------------------------------------------------------
# noise realism over data sets

_SAMPLE_RE = re.compile(r"^(.*)_(\d+)$")


def _stem(name: str) -> str:
    return Path(name).stem


def collect_generated(source: str) -> dict[str, list[torch.Tensor]]:
    """Generated noisy images by stem: ``source`` is a folder of noisy images or a data-set spec
    (e.g. ``pairs:DIR``, whose noisy side is used). ``X_k`` files are samples of ``X``; the real
    image name decides which reading applies (see :func:`match_generated`)."""
    out = GeneratedSet()
    p = Path(source)
    if p.is_dir():
        from pngan.io.images import list_images, read_image

        files = list_images(p)
        if not files:
            from pngan.data.specs import pair_folder_hint

            hint = pair_folder_hint(p)
            raise PnganError("no images in the generated folder" + (f" ({hint})" if hint else ""), p)
        for f in files:
            out.setdefault(f.stem, []).append(read_image(f))
        _clean_beside(p, out)
        return out
    from pngan.data.specs import open_dataset, parse_spec

    ds = open_dataset(source)
    if not ds.has_noisy:
        raise PnganError(f"{source}: the generated set has no noisy images")
    for i in range(len(ds)):
        s = ds.load(i)
        out.setdefault(_stem(s.name), []).append(s.noisy)
        if s.clean is not None:
            out.clean[_stem(s.name)] = s.clean
    if not ds.has_clean and parse_spec(source)[0] == "noisy":
        _clean_beside(Path(parse_spec(source)[1]).expanduser(), out)
    return out


def _clean_beside(noisy_dir: Path, out: "GeneratedSet") -> None:
    """A generate/synth output's noisy/ folder given alone: the clean images its manifest names
    (``OUT/clean/SOURCE.png``), to check them against the real pairs' (:func:`check_generated_clean`)."""
    import json

    from pngan.io.images import read_image

    manifest = noisy_dir.parent / "manifest.jsonl"
    if noisy_dir.name != "noisy" or not manifest.is_file():
        return
    for line in manifest.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
            stem, clean = Path(rec["noisy"]).stem, noisy_dir.parent / rec["clean"]
        except (ValueError, KeyError, TypeError):
            continue
        if stem in out and stem not in out.clean and clean.is_file():
            try:
                out.clean[stem] = read_image(clean)
            except PnganError:
                continue


class GeneratedSet(dict):
    """Generated noisy images by stem (as :func:`collect_generated` returns), with the clean image of
    each where the set has one (``clean``), to check that it was made from the real pair's."""

    def __init__(self):
        super().__init__()
        self.clean: dict[str, torch.Tensor] = {}


def check_generated_clean(real_name: str, real_clean: torch.Tensor, generated: dict) -> None:
    """A generated pair (``pairs:`` with clean images) made from another clean image than the real
    pair of the same name: refused (its "noise" would be the difference of two images)."""
    cleans = getattr(generated, "clean", None) or {}
    stem = _stem(real_name)
    keys = [stem] + [k for k in cleans if (m := _SAMPLE_RE.match(k)) and m.group(1) == stem]
    for k in keys:
        c = cleans.get(k)
        if c is None or tuple(c.shape) != tuple(real_clean.shape):
            continue
        diff = float((c - real_clean).abs().max()) * 255
        if diff > 1.5:
            raise PnganError(f"the generated pair '{k}' was made from another clean image than the real pair "
                             f"'{real_name}' (they differ by up to {diff:.0f} levels): generate it from the real "
                             "pairs' clean images")


def match_generated(real_name: str, generated: dict[str, list[torch.Tensor]]) -> list[torch.Tensor]:
    stem = _stem(real_name)
    found = list(generated.get(stem, []))
    keyed = [(int(m.group(2)), k) for k in generated if (m := _SAMPLE_RE.match(k)) and m.group(1) == stem]
    for _, k in sorted(keyed):  # samples in index order: X_2 before X_10
        found.extend(generated[k])
    return found


def evaluate_noise(real_set, *, generated: dict[str, list[torch.Tensor]] | None = None,
                   sample_fn: Callable[[torch.Tensor, str, int], torch.Tensor] | None = None,
                   samples: int | None = None, progress=None) -> dict:
    """Realism metrics per real pair and their mean. Generated noisy images come either from
    ``generated`` (by name, see :func:`match_generated`; with ``samples`` = L the first L samples
    of each image are used and fewer is an error, without it all found samples) or from
    ``sample_fn(clean, name, k)`` (a generator or a synthetic setting), L = ``samples`` (default 1)
    per image. AKLD averages over the L samples (DANet's protocol, L = 50 in DANet); the result
    records L as ``samples``."""
    from pngan.eval.noise_metrics import KLD_KEYS, noise_metrics
    from pngan.eval.noise_structure import STRUCTURE_KEYS, structure_metrics

    if samples is not None and samples < 1:
        raise PnganError(f"samples must be at least 1, got {samples}")
    if generated is None and samples is None:
        samples = 1

    if not real_set.has_clean or not real_set.has_noisy:
        raise PnganError(f"{real_set.spec}: realism metrics need real noisy/clean pairs")
    rows = {}
    it = range(len(real_set))
    if progress is not None:
        it = progress(it)
    for i in it:
        s = real_set.load(i)
        if torch.equal(s.noisy, s.clean):  # as the fit refuses it: a metric of "no noise" means nothing
            raise PnganError(f"{real_set.spec}: real pair '{s.name}': the noisy and clean images are identical: no "
                             "noise to score")
        if generated is not None:
            gens = match_generated(s.name, generated)
            if not gens:
                raise PnganError(f"no generated image for real image '{s.name}' (expected {_stem(s.name)}.* "
                                 f"or {_stem(s.name)}_K.*)")
            if samples is not None:
                if len(gens) < samples:
                    raise PnganError(f"--samples {samples}: only {len(gens)} generated sample(s) for real image "
                                     f"'{s.name}'")
                gens = gens[:samples]
            for g in gens:
                if tuple(g.shape) != tuple(s.clean.shape):
                    raise PnganError(f"generated image for '{s.name}' has shape {tuple(g.shape)}, "
                                     f"the real pair {tuple(s.clean.shape)}")
            check_generated_clean(s.name, s.clean, generated)
        else:
            with torch.inference_mode():
                if getattr(sample_fn, "level_matched", False):  # given this pair's noise level (--level match)
                    gens = [sample_fn(s.clean, s.name, k, s.noisy).clamp(0, 1) for k in range(samples)]
                else:
                    gens = [sample_fn(s.clean, s.name, k).clamp(0, 1) for k in range(samples)]
        try:
            rows[s.name] = {**noise_metrics(s.noisy, s.clean, gens), **structure_metrics(s.noisy, s.clean, gens)}
        except PnganError as e:  # e.g. an image too small for the metrics: name the pair
            raise PnganError(f"{real_set.spec}: real pair '{s.name}': {e}") from None
    if not rows:
        raise PnganError(f"{real_set.spec}: the data set is empty")
    keys = (*KLD_KEYS, "akld", "mmd") + STRUCTURE_KEYS
    mean = {k: float(np.mean([r[k] for r in rows.values()])) for k in keys}
    # the summary's ratio is that of the summary's levels (so that std_gen / std_real = std_ratio as
    # printed), not the mean of per-image ratios, which weighs a faint image's error like a strong one's
    mean["std_ratio"] = mean["std_gen"] / mean["std_real"] if mean["std_real"] > 0 else float("nan")
    counts = sorted({r["samples"] for r in rows.values()})
    used = counts[0] if len(counts) == 1 else {"min": counts[0], "max": counts[-1]}
    return {"real": real_set.spec, "count": len(rows), "samples": used, "images": rows, "mean": mean}


LEVELS = ("fixed", "match", "reference")


def _level_matched(fn: Callable, calibrated, level: str, what: str, scale: float = 1.0) -> Callable:
    """``fn(clean, name, k, gain)`` as a ``sample_fn`` that is given each real pair's noise level
    (``level="match"``: :func:`pngan.noise.calibrated.level_gain` of the pair under ``calibrated``,
    one number per image, like the ISO that SIDD's noise models are given; ``level="reference"``:
    the level estimated from the pair's noisy image alone, :func:`pngan.noise.estimate.estimate_gain`
    times ``scale``, so realism is scored without handing the model the test pair's own noise), or
    ``fn`` at gain 1."""
    from pngan.noise.calibrated import level_gain

    if level not in LEVELS:
        raise PnganError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    if level == "fixed":
        return lambda clean, name, k: fn(clean, name, k, None)
    if getattr(calibrated, "setting", None) != "calibrated":
        name = getattr(calibrated, "setting", type(calibrated).__name__)
        src = "real pair's" if level == "match" else "real noisy image's"
        raise PnganError(f"--level {level} gives each image its {src} noise level, which only the calibrated "
                         f"setting can take; {what} is '{name}' (use --level fixed)")

    def matched(clean: torch.Tensor, name: str, k: int, noisy: torch.Tensor) -> torch.Tensor:
        if level == "reference":  # from the noisy image alone (no clean image, no pair)
            from pngan.noise.estimate import estimate_gain

            try:
                g = float(estimate_gain(calibrated, noisy.float(), scale=scale)[0])
            except PnganError as e:
                raise PnganError(f"--level reference: real pair '{name}': {str(e).removeprefix('estimate_gain: ')}"
                                 ) from None
            return fn(clean, name, k, g)
        return fn(clean, name, k, float(level_gain(calibrated, clean, noisy)[0]))

    matched.level_matched = True
    return matched


def synthetic_sampler(setting, seed: int = 0, fit: str | None = None, level: str = "fixed", **kw
                      ) -> Callable[[torch.Tensor, str, int], torch.Tensor]:
    """``sample_fn`` for :func:`evaluate_noise` from a synthetic setting (baselines), seeded per
    (image name, sample index). ``setting``: a setting module, or a spec for
    :func:`pngan.noise.resolve_setting` (``calibrated`` is fitted on the pairs ``fit``).
    ``level="match"`` (calibrated only): each image at its real pair's noise level, and a
    ``calibrated`` fitted on ``fit`` is fitted with one level per pair (``fit_calibrated(levels=True)``)."""
    from pngan.noise import resolve_setting, synthesize
    from pngan.seeding import derive_seed

    # level-matched scoring fits the calibrated model with one level per pair (as level=match trains)
    model = setting if isinstance(setting, torch.nn.Module) else resolve_setting(setting, fit, level != "fixed", **kw)

    def fn(clean: torch.Tensor, name: str, k: int, gain: float | None) -> torch.Tensor:
        g = torch.Generator().manual_seed(derive_seed(seed, name, k))
        return synthesize(model, clean[None].float(), g, gain=gain)[0]

    scale = 1.0
    if level == "reference" and fit and not isinstance(setting, torch.nn.Module):
        # the estimator's reading calibrated on the pairs the model was fitted on (they are at hand
        # here; on the shared SIDD crops real noise reads ~12% low without it: pngan.noise.estimate)
        from pngan.data.specs import open_dataset
        from pngan.noise.estimate import reference_scale

        scale = reference_scale(model, open_dataset(fit))
    return _level_matched(fn, model, level, "the setting", scale)


def pgap(real_train: list[str], generated_train: list[str], test: str, out: str | Path, *, arch: str = "dncnn",
         config: str | None = "cpu-small", overrides: list[str] | None = None, resume: bool = False,
         progress: bool = False) -> dict:
    """PSNR gap: PSNR on the held-out real pairs ``test`` of ``arch`` trained on ``real_train``
    minus that of the same denoiser, same config/budget/seed, trained on ``generated_train``.
    The two runs go to ``out/real`` and ``out/generated``. Lower is more realistic."""
    from pngan.data.specs import open_dataset
    from pngan.nets.loading import load_saved_network
    from pngan.train.denoiser import train_denoiser
    from pngan.train.denoiser_config import load_denoiser_config

    out = Path(out)
    test_set = open_dataset(test)
    res: dict = {"kind": "pgap", "test": test, "arch": arch, "config": config}
    for tag, data in (("real", real_train), ("generated", generated_train)):
        run = out / tag
        ov = list(overrides or []) + [f"net.arch={arch}"]
        if resume and (run / "config.yaml").is_file():
            cfg = load_denoiser_config(str(run / "config.yaml"), ov)
            train_denoiser(cfg, data, run, resume=True, progress=progress)
        else:
            train_denoiser(load_denoiser_config(config, ov), data, run, progress=progress)
        net, _ = load_saved_network(run / "denoiser.safetensors")
        res[tag] = evaluate_denoiser(net, test_set)
    res["images"] = {n: {"psnr_real": r["psnr"], "psnr_generated": res["generated"]["images"][n]["psnr"],
                         "pgap": r["psnr"] - res["generated"]["images"][n]["psnr"]}
                     for n, r in res["real"]["images"].items()}
    res["mean"] = {"psnr_real": res["real"]["mean"]["psnr"], "psnr_generated": res["generated"]["mean"]["psnr"],
                   "pgap": res["real"]["mean"]["psnr"] - res["generated"]["mean"]["psnr"]}
    return res


def generator_sampler(run_or_weights: str | Path, seed: int = 0, device: str = "cpu", level: str = "fixed"
                      ) -> Callable[[torch.Tensor, str, int], torch.Tensor]:
    """``sample_fn`` for :func:`evaluate_noise` from a trained generator (run folder or
    safetensors), seeded per (image name, sample index) like ``pngan generate``. ``level="match"``
    (a generator fed by the calibrated setting): its input at each real pair's noise level."""
    from pngan.infer.api import NoiseGenerator
    from pngan.seeding import make_generator

    gen = NoiseGenerator.load(run_or_weights, device=device)
    # level "fixed" is the fitted level (gain 1), not the API's default policy (which draws the
    # recorded pair levels for a multi-level generator): x * 1.0 is exact, so gain 1 is no change
    fixed = 1.0 if getattr(gen.synthetic, "takes_gain", False) else None

    def fn(clean: torch.Tensor, name: str, k: int, gain: float | None) -> torch.Tensor:
        g = make_generator(seed, name, k)
        return gen(clean.float(), generator=g, gain=fixed if gain is None else gain).cpu()

    return _level_matched(fn, gen.synthetic, level, "the generator's input setting")


def checkpoint_trajectory(run: str | Path, real_set, *, seed: int = 0, samples: int = 1,
                          device: str = "cpu", level: str = "fixed", progress=None) -> dict:
    """Realism of every kept checkpoint of a ``pngan train`` run against ``real_set`` (held-out
    pairs): the metrics against training steps (time to quality). Every checkpoint generates with
    the same per-image seeds, so differences between steps come from the weights alone. Keep more
    checkpoints while training (``run.keep_checkpoints``, ``run.ckpt_every``) for a finer curve."""
    from pngan.train.checkpoint import list_checkpoints

    run = Path(run)
    cks = [(step, d / "generator.safetensors") for step, d in list_checkpoints(run)]
    cks = [(step, f) for step, f in cks if f.is_file()]
    if not cks:
        raise PnganError("no generator checkpoints in this run folder (give a 'pngan train' run folder)", run)
    rows = []
    for step, f in cks:
        r = evaluate_noise(real_set, sample_fn=generator_sampler(f, seed, device, level), samples=samples)
        rows.append({"step": step, "weights": str(f), "mean": r["mean"]})
        if progress is not None:
            progress(rows[-1])
    best = {k: min(rows, key=lambda r: r["mean"][k])["step"] for k in ("kld_noiseflow", "akld", "mmd")}
    return {"kind": "noise-trajectory", "run": str(run), "real": real_set.spec, "samples": samples,
            "seed": seed, "level": level, "checkpoints": rows, "best_step": best}
