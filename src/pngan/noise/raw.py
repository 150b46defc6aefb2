"""Setting 2 of the paper: Poisson-Gaussian noise added in RAW through an invertible camera
pipeline (Brooks et al. 2019 unprocess/process, as CycleISP and PNGAN use).

sRGB -> ``isp.unprocess`` (random camera per image) -> RGGB mosaic -> shot/read noise with
Brooks' random camera-like levels (variance = shot * signal + read) -> bilinear demosaic ->
``isp.process`` -> sRGB.

Choices where the papers leave room (also in docs/paper-mapping.md, "Synthetic settings"):

* Only the noise goes through the bilinear demosaic; the clean signal keeps its full colour (an
  ideal demosaic, which CycleISP's learned RAW2RGB network approximates). Demosaicing the noise
  correlates it across neighbouring pixels and channels as in a real camera, while the noisy image
  does not carry bilinear zipper artefacts that are not noise. ``demosaic_signal=True`` gives the
  literal Brooks path (demosaic of the noisy mosaic, signal included).
* Odd heights/widths are reflect-padded by one pixel for the 2x2 Bayer pattern and cropped back.
* The output lies in [0, 1] without any extra clip: Brooks' process clamps linear RGB before gamma
  compression (the camera saturates). ``clip`` is accepted for symmetry with setting 1.
* The signal used for the shot-noise variance is clamped at 0 (camera-space values of saturated
  colours can be slightly negative).

The paper's exact setting 2 runs CycleISP's released RGB2RAW / RAW2RGB (+ colour-correction)
networks: ``build_synthetic("raw", isp="networks", cycleisp=[RGB2RAW, RAW2RGB, CCM])`` loads the three
checkpoints strictly (:mod:`pngan.nets.cycleisp`) and follows CycleISP's ``generate_rgb_data.py``:
raw = clamp(RGB2RAW(x)), CycleISP's ``random_noise_levels_dnd`` (log10 shot ~ U[log10 1e-4,
log10 1.2e-2], log10 read = 2.18 log10 shot + 1.20 + N(0, 0.26)), noisy raw clamped to [0, 1],
sRGB = clamp(RAW2RGB(noisy raw, CCM(x))). The analytic pipeline stays the default.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from pngan.errors import PnganError
from pngan.noise.base import NoiseSetting
from pngan.noise import isp


def cycleisp_noise_levels(batch: int, generator: torch.Generator | None = None, device="cpu"):
    """CycleISP's ``random_noise_levels_dnd`` (utils/noise_sampling.py): the shot/read line in
    log10 (``isp.random_noise_levels``, used by the analytic pipeline, draws it in natural logs).
    Draw order: uniform, then normal. Returns (shot, read) variances, (B,) float64."""
    lo, hi = math.log10(1e-4), math.log10(1.2e-2)
    gdev = generator.device if generator is not None else torch.device(device)
    u = torch.rand((batch,), generator=generator, device=gdev, dtype=torch.float64).to(device)
    z = torch.randn((batch,), generator=generator, device=gdev, dtype=torch.float64).to(device)
    log_shot = lo + (hi - lo) * u
    log_read = 2.18 * log_shot + 1.20 + 0.26 * z
    return 10.0 ** log_shot, 10.0 ** log_read


class RawNoise(NoiseSetting):
    setting = "raw"

    def __init__(
        self,
        isp_kind: str = "analytic",
        shot: float | None = None,
        read: float | None = None,
        clip: bool = False,
        demosaic_signal: bool = False,
        rgb2raw: Callable | None = None,
        raw2rgb: Callable | None = None,
        isp: str | None = None,  # alias of isp_kind, as in build_synthetic("raw", isp="networks")
        cycleisp: Sequence[str] | None = None,  # [RGB2RAW, RAW2RGB, CCM] checkpoint paths (CycleISP)
    ):
        super().__init__()
        kind = isp if isp is not None else isp_kind
        self.cycleisp = None
        if cycleisp is not None:
            paths = [str(p) for p in cycleisp]
            if len(paths) != 3:
                raise PnganError("raw setting: cycleisp needs three checkpoints RGB2RAW,RAW2RGB,CCM "
                                 f"(CycleISP's rgb2raw, raw2rgb and ccm weights), got {len(paths)}")
            if rgb2raw is not None or raw2rgb is not None:
                raise PnganError("raw setting: give either cycleisp checkpoints or rgb2raw/raw2rgb networks, not both")
            from pngan.nets.cycleisp import load_cycleisp

            pipe = load_cycleisp(*paths)
            object.__setattr__(self, "_cycleisp_pipe", pipe)  # not a submodule: no ISP weights in state_dict
            rgb2raw, raw2rgb, kind = pipe.rgb2raw, pipe.raw2rgb, "networks"
            self.cycleisp = paths
        if kind not in ("analytic", "networks"):
            raise PnganError(f"raw setting: isp must be 'analytic' or 'networks', got {kind!r}")
        if kind == "networks":
            # A CycleISP-style pair (rgb2raw, raw2rgb) is used only when the user supplies both,
            # with their weights loaded; pngan bundles no such weights.
            if rgb2raw is None or raw2rgb is None or not callable(rgb2raw) or not callable(raw2rgb):
                raise PnganError(
                    "raw setting: isp='networks' needs both rgb2raw and raw2rgb networks with loaded "
                    "weights (no CycleISP weights are bundled); use isp='analytic' otherwise"
                )
        elif rgb2raw is not None or raw2rgb is not None:
            raise PnganError("raw setting: rgb2raw/raw2rgb networks are only used with isp='networks'")
        for name, v in (("shot", shot), ("read", read)):
            if v is not None and not float(v) >= 0:
                raise PnganError(f"raw setting: {name} noise variance must be >= 0, got {v!r}")
        self.isp_kind = kind
        self.shot = None if shot is None else float(shot)
        self.read = None if read is None else float(read)
        self.clip = bool(clip)
        self.demosaic_signal = bool(demosaic_signal)
        self.rgb2raw = rgb2raw
        self.raw2rgb = raw2rgb

    def describe(self) -> dict:
        d = {"setting": "raw", "isp": self.isp_kind, "shot": self.shot, "read": self.read, "clip": self.clip,
             "demosaic_signal": self.demosaic_signal}
        if self.cycleisp is not None:
            d["cycleisp"] = list(self.cycleisp)
        return d

    def _levels(self, b, generator, gdev, device):
        draw = cycleisp_noise_levels if self.cycleisp is not None else isp.random_noise_levels
        shot, read = draw(b, generator, gdev)
        if self.shot is not None:
            shot = torch.full_like(shot, self.shot)
        if self.read is not None:
            read = torch.full_like(read, self.read)
        return shot.to(device), read.to(device)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None, gain=None,
                return_params: bool = False):
        self.check_input(x)
        self.refuse_gain(gain)
        b, _, h, w = x.shape
        # All randomness comes from `generator` on its own device (a CPU generator with CUDA data
        # draws on CPU and moves the draws), in a fixed order: camera (ccm weights, gains), noise
        # levels (shot, read), then the noise field. With no generator, x's device RNG is used.
        gdev = generator.device if generator is not None else x.device
        wdt = torch.float64 if x.dtype == torch.float64 else torch.float32
        xp, (ph, pw) = isp.pad_even(x.to(wdt))
        if self.isp_kind == "analytic":
            params = isp.random_params(b, generator, gdev).to(x.device)
            cam = isp.unprocess(xp, params)
        else:
            params = None
            pipe = getattr(self, "_cycleisp_pipe", None)
            if pipe is not None:  # CycleISP's nets run in float32 on the data's device
                pipe.to(x.device)
                xp = xp.float()
            cam = self.rgb2raw(xp).to(wdt)
        # a CycleISP-style RGB2RAW already returns the packed RGGB mosaic (B, 4, H/2, W/2)
        packed = cam if cam.shape[1] == 4 else isp.mosaic(cam)
        shot, read = self._levels(b, generator, gdev, x.device)
        var = packed.clamp_min(0) * shot.to(wdt)[:, None, None, None] + read.to(wdt)[:, None, None, None]
        z = torch.randn(packed.shape, generator=generator, device=gdev, dtype=wdt).to(x.device)
        noise = z * var.sqrt()
        if self.isp_kind == "networks":
            out = self.raw2rgb((packed + noise).to(xp.dtype), xp).to(wdt)
        else:
            if self.demosaic_signal:
                noisy_cam = isp.demosaic(packed + noise)
            else:
                noisy_cam = cam + isp.demosaic(noise)
            out = isp.process(noisy_cam, params)
        out = out[..., : out.shape[-2] - ph, : out.shape[-1] - pw]
        if self.clip:
            out = out.clamp(0.0, 1.0)
        out = out.to(x.dtype)
        if not return_params:
            return out
        plist = params.as_dicts() if params is not None else [{} for _ in range(b)]
        for i, d in enumerate(plist):
            d.update({"setting": "raw", "isp": self.isp_kind, "shot": float(shot[i]), "read": float(read[i])})
        return out, plist
