"""PNGAN training configuration (typed; YAML; presets ``paper``, ``cpu-small`` and ``cpu-sidd``).

``paper`` is the paper's setting (Sec. 3.1) with the authors' released networks: SIMNet (their
SMNet, C=64, 3 groups x 2 blocks, 802,207 parameters) and their pixel-level discriminator
(``Discriminator_dense``), Adam (0.9, 0.999), learning rate 2e-4 cosine-annealed to 1e-6 over 700k
iterations, 128x128 patches, batch 8, random flips, loss weights lambda_p = 6e-3 (perceptual) and
lambda_ra = 8e-4 (adversarial). Never shrink it: use ``cpu-small`` (or overrides) for small runs.
Where it still differs from the paper: docs/paper-mapping.md ("What the paper preset is").

``cpu-small`` is the method at a scale that trains in minutes on 2 CPU cores: our multi-scale
SMNet at C=32 with 2 groups x 1 block and our 9x9 pixel discriminator, 48x48 patches, batch 8, 400
iterations, learning rate 1e-3 cosine-annealed to 1e-6 (a short run needs a larger step), the same
loss weights. Two choices differ from the paper, because at this budget they decide whether the
output is realistic at all (measured in docs/experiments.md): the generator's input is the
``calibrated`` setting fitted on the training pairs instead of setting 1 (from AWGN sigma 50, 400
steps give a blurred copy of the clean image with blotchy noise, 2.3x too strong), and the
generator starts as the identity of its input (``generator.init=identity``: its last conv starts
at zero). Two terms are added or changed in the loss: the alignment L1 compares low-passed
denoised images (``loss.align_lowpass=4``) and the noise power spectra of fake and real are matched
(``loss.lambda_spectrum=0.01``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pngan.validate import ranged


@dataclass
class GeneratorConfig:
    # "simnet": the generator the authors released (SIMNet, 802,207 parameters at the defaults: the
    # paper's 0.8M; single scale). "smnet": our multi-scale reading of the paper's Fig. 3 (three
    # paths, SID, FCA; 903,481 parameters), the network of Table 3's generator rows.
    name: Literal["simnet", "smnet"] = "simnet"
    channels: int = ranged(64, 1, 4096)
    groups: int = ranged(3, 1, 64)
    blocks: int = ranged(2, 1, 64)
    # smnet only: the three paths (False: full resolution only)
    multiscale: bool = True
    # channel attention (smnet: FCA; simnet: its CA). False: Table 3's rows without attention
    fca: bool = True
    # How the generator's weights start. "default": PyTorch's initialisation (the paper says
    # nothing). "identity": the last conv starts at zero, so fake = x + last(...) starts as
    # the identity of its input (residual zero-init): with a realistic input (the calibrated
    # setting) training starts from the fitted baseline instead of from a random perturbation.
    init: Literal["default", "identity"] = "default"
    # smnet only: how the paths are downsampled: sid | stride | bilinear (Table 3's "+Multi-scale"
    # row); None (default): sid, the paper's anti-aliased downsampling
    downsample: Literal["sid", "stride", "bilinear"] | None = None
    # not in the paper: values whose clean value is 8-bit white pass through unchanged, in training
    # and generation (pngan.noise.clipping; recorded in the generator file)
    keep_white: bool = False

    def kwargs(self) -> dict:
        if self.name == "simnet":
            return dict(channels=self.channels, groups=self.groups, blocks=self.blocks, attention=self.fca)
        kw = dict(channels=self.channels, groups=self.groups, blocks=self.blocks,
                  multiscale=self.multiscale, fca=self.fca)
        if self.downsample is not None:  # only when set: older runs' kwargs stay as they were
            kw["downsample"] = self.downsample
        return kw


@dataclass
class SyntheticConfig:
    setting: str = "awgn"  # awgn (setting 1) | raw (setting 2) | calibrated (fitted on the training pairs)
    sigma: float = ranged(50.0, 0.0, 1000.0)  # setting 1, on the 0-255 scale
    calibration: str | None = None  # calibrated: a saved calibration JSON; default: fit on the training pairs
    correlated: bool = True  # calibrated: fit the spatial and cross-channel correlation too
    # calibrated: the noise level of the generator's input. "fixed": the fit's level for every
    # image (the training set's average). "match": each training patch's input is scaled to the
    # level of its real noisy patch (pngan.noise.calibrated.level_gain, one number per patch, the
    # part ISO plays in SIDD), so the generator learns the noise's shape at every level and its
    # output follows the level of its input; at generation time the level is chosen with
    # --gain (1: the fit's level). Not in the paper (its setting 2 draws random levels that have
    # nothing to do with the real image paired with it): docs/paper-mapping.md.
    level: Literal["fixed", "match"] = "fixed"
    # setting 2 with CycleISP's released ISP networks (the paper's exact setting 2): all three
    # checkpoints (rgb2raw_joint.pth, raw2rgb_joint.pth, ccm_joint.pth), or none for the analytic ISP
    cycleisp_rgb2raw: str | None = None
    cycleisp_raw2rgb: str | None = None
    cycleisp_ccm: str | None = None

    def kwargs(self) -> dict:
        from pngan.errors import PnganError
        from pngan.noise import canonical_setting

        paths = [self.cycleisp_rgb2raw, self.cycleisp_raw2rgb, self.cycleisp_ccm]
        if canonical_setting(self.setting) == "awgn":
            if any(paths):
                raise PnganError("synthetic.cycleisp_* applies to setting 2 (raw) only")
            return {"sigma": self.sigma}
        if any(paths):
            if not all(paths):
                raise PnganError("synthetic: give all three of cycleisp_rgb2raw, cycleisp_raw2rgb, cycleisp_ccm "
                                 "(CycleISP's RAW2RGB needs its colour-correction branch)")
            return {"isp": "networks", "cycleisp": paths}
        return {}


@dataclass
class LossConfig:
    # "dense": the pixel-level discriminator the authors released (Discriminator_dense: four convs,
    # BatchNorm, 7x7 receptive field; its pre-sigmoid logits feed the relativistic loss). "pixel":
    # our earlier reading of Fig. 2 (four 3x3 convs, no normalisation, 9x9). "image": the
    # image-level discriminator of Table 3. "none": no adversarial term.
    discriminator: Literal["dense", "pixel", "image", "none"] = "dense"
    d_channels: int = ranged(64, 1, 4096)
    alignment: Literal["denoiser", "naive"] = "denoiser"  # Eq. 2, or Baseline 1's L1(fake, real)
    lambda_p: float = ranged(6e-3, 0.0)  # multiplies the perceptual loss (Eq. 13)
    lambda_ra: float = ranged(8e-4, 0.0)  # multiplies the generator's relativistic adversarial loss (Eq. 13)
    lambda_align: float = ranged(1.0, 0.0)  # multiplies the image-domain alignment L1 (Eq. 13: weight 1)
    # Gaussian std (pixels) applied to both denoised images before the alignment L1; 0 = the paper
    # (not in the paper: removes the bias a weak frozen denoiser's residual noise gives the L1)
    align_lowpass: float = ranged(0.0, 0.0, 64.0)
    # weight of the noise power-spectrum matching term (not in the paper: 0; pngan.losses.spectrum):
    # the batch-averaged radial spectra of fake - clean and real - clean, compared in log
    lambda_spectrum: float = ranged(0.0, 0.0)
    # weight of a second alignment term (not in the paper: 0): L1 between the Gaussian-low-passed
    # (std align_lowpass) fake and real noisy images themselves, without the denoiser. Low-passing is
    # linear, so this compares the noise's local mean whatever its structure; the frozen denoiser is
    # not: on the shared SIDD DnCNN, calibrated noise comes out 3 levels bluer than real noise of the
    # same mean, and the denoiser-space L1 alone pays the generator for a colour cast
    # (docs/experiments.md, "The frozen denoiser pays the generator for a colour cast")
    lambda_lowpass: float = ranged(0.0, 0.0)
    # weight of a conditional marginal-matching term (not in the paper: 0; pngan.losses.marginal): per
    # image, channel and equal-count band of clean intensity (marginal_groups bands), the 1-D
    # Wasserstein-1 distance between the fake and the real noise values (sorted, compared pointwise).
    # It teaches the per-pixel distribution (mean, skew, tails) that the histogram KLDs measure
    lambda_marginal: float = ranged(0.0, 0.0)
    marginal_groups: int = ranged(4, 1, 1024)
    perceptual: Literal["imagenet", "random", "off"] = "imagenet"
    # imagenet perceptual loss without --vgg weights: error (the paper's setting cannot run without
    # them) or warn and train without the perceptual term (small presets)
    perceptual_missing: Literal["error", "warn"] = "error"
    # where the relativistic average E[C(.)] of Eq. 5-6 is taken for per-pixel logits: per pixel
    # position over the batch (batch, default) or over batch, height and width (batch_hw, BasicSR)
    ra_mean: Literal["batch", "batch_hw"] = "batch"


@dataclass
class AdamConfig:
    """Adam with the learning rate cosine-annealed from lr to lr_min (paper Sec. 3.1, for the
    generator and for the denoisers alike)."""

    lr: float = ranged(2e-4, 0.0, lo_open=True)
    lr_min: float = ranged(1e-6, 0.0)
    beta1: float = ranged(0.9, 0.0, 1.0, hi_open=True, note=" (an Adam beta)")
    beta2: float = ranged(0.999, 0.0, 1.0, hi_open=True, note=" (an Adam beta)")


@dataclass
class OptimConfig(AdamConfig):
    d_lr: float | None = ranged(None, 0.0, lo_open=True)  # default: same as lr


@dataclass
class DataConfig:
    patch_size: int = ranged(128, 8, 8192)
    batch_size: int = ranged(8, 1, 65536)
    flips: bool = True
    # batch-preparing worker processes; -1: auto (CUDA: up to 4 per process; CPU: 0)
    num_workers: int = ranged(-1, 0, 256, allow=(-1,))
    cache_gb: float = ranged(2.0, 0.0, 1e6)


@dataclass
class RunSettings:
    """What both trainers' runs share (pngan.train.engine)."""

    steps: int = ranged(700_000, 1, 10**12)  # paper Sec. 3.1: 700k iterations (fine-tuning a denoiser keeps the other settings)
    seed: int = ranged(0, 0, 2**63 - 1)
    log_every: int = ranged(100, 1)
    ckpt_every: int = ranged(5000, 1)
    keep_checkpoints: int = ranged(2, 1)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = ranged(0, 0, 4096)  # CPU threads (0: torch's default, all cores)
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16 autocast is used on CUDA only
    channels_last: bool = True
    compile: bool = False  # torch.compile the training forwards


@dataclass
class RunConfig(RunSettings):
    sample_every: int = ranged(5000, 1)
    time_phases: bool = False  # CUDA: synchronise to log per-phase times (always logged on CPU)
    on_nan: Literal["stop", "rollback"] = "stop"
    max_rollbacks: int = ranged(3, 0)


@dataclass
class TrainConfig:
    """``pngan train``'s configuration (``--config`` PRESET or YAML, ``KEY=VALUE`` overrides)."""

    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    run: RunConfig = field(default_factory=RunConfig)


PRESETS: dict[str, dict] = {
    "paper": {},  # the dataclass defaults are the paper's values
    "cpu-small": {
        # our multi-scale SMNet and 9x9 pixel discriminator (docs/experiments.md: the CPU comparison
        # with the released networks)
        "generator": {"name": "smnet", "channels": 32, "groups": 2, "blocks": 1, "init": "identity"},
        # the generator's input: the calibrated setting fitted on the training pairs (docs/experiments.md:
        # from setting 1 at this budget the generator returns a blurred copy with blotchy noise)
        "synthetic": {"setting": "calibrated"},
        # align_lowpass 4: a small frozen denoiser leaves residual noise, and the paper's pointwise
        # alignment L1 then pulls the generator to weaker, blurred noise (docs/experiments.md, "the alignment bias isolated")
        # lambda_spectrum 0.01: the 9x9 pixel discriminator cannot see the noise level at low frequencies and
        # lets it sink; matching the batch's radial noise spectra holds it (docs/experiments.md, "lambda_spectrum")
        "loss": {"discriminator": "pixel", "perceptual_missing": "warn", "align_lowpass": 4.0,
                 "lambda_spectrum": 0.01},
        "optim": {"lr": 1e-3},
        "data": {"patch_size": 48, "batch_size": 8},
        "run": {"steps": 400, "log_every": 10, "sample_every": 100, "ckpt_every": 100},
    },
}


def _with(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` merged in, one section deep (a new dict: presets stay independent)."""
    out = {k: dict(v) for k, v in base.items()}
    for k, v in changes.items():
        out.setdefault(k, {}).update(v)
    return out


# cpu-sidd: cpu-small for sRGB pairs of many ISOs (SIDD), chosen on a validation split of the shared
# SIDD crops (docs/experiments.md, sessions 7-9). Each input at its real patch's level; the frozen
# denoiser's alignment is off (on SIDD it pulls a colour cast) and the noise mean is held by the
# low-passed L1 instead; the per-intensity noise distribution is matched directly (lambda_marginal,
# not in the paper); a smaller G step, and 2400 steps: the distribution is learned after step 1000;
# clean-white values stay white (generator.keep_white); cpu-small's spectrum term (0.01) is kept.
PRESETS["cpu-sidd"] = _with(PRESETS["cpu-small"], {
    "generator": {"keep_white": True},
    "synthetic": {"level": "match"},
    "loss": {"lambda_align": 0.0, "lambda_lowpass": 1.0, "lambda_marginal": 5.0},  # + cpu-small's lambda_spectrum
    "optim": {"lr": 2e-4, "d_lr": 1e-3},
    "run": {"steps": 2400},
})


def experiment_hash(cfg) -> str:
    """The hash of what a run trains (either trainer's config): every key but the run settings,
    which say how it executes and may change on --resume (``pngan.train.runid.SAFE_ON_RESUME``;
    run.steps, also safe on resume, sets the schedule and stays in)."""
    from pngan.config import config_hash
    from pngan.train.runid import SAFE_ON_RESUME

    return config_hash(cfg, exclude=SAFE_ON_RESUME - {"run.steps"})


def load_train_config(preset_or_path: str | None, overrides: list[str] | None = None) -> TrainConfig:
    from pngan.config import load_config

    return load_config(TrainConfig, preset_or_path, overrides, PRESETS)
