"""``pngan train-denoiser``'s configuration: typed sections, presets (``paper``, ``cpu-small``,
``frozen-cpu``, ``bench-cpu``) and the loader that checks the network's arguments before a run starts."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from pngan.config import load_config
from pngan.errors import PnganError
from pngan.nets.registry import available, build, check_kwargs
from pngan.noise.level import parse_level
from pngan.train.config import AdamConfig, DataConfig, RunSettings
from pngan.validate import ranged


@dataclass
class DenoiserNetConfig:
    arch: str = "dncnn"
    kwargs: dict = field(default_factory=dict)  # constructor arguments for the registry network
    # per-architecture default constructor arguments (a preset's network size); net.kwargs wins
    arch_kwargs: dict = field(default_factory=dict)


# cpu-small network sizes, one per architecture (each trains a step in about a second on 2 cores)
SMALL_NET_KWARGS: dict[str, dict] = {
    "dncnn": {"depth": 8, "channels": 32},
    "ridnet": {"channels": 16},
    "mirnet": {"n_feat": 16, "n_RRG": 1, "n_MSRB": 1},
    "mprnet": {"n_feat": 16, "scale_unetfeats": 8, "scale_orsnetfeats": 8, "num_cab": 2},
}


@dataclass
class DenoiserOptimConfig(AdamConfig):  # lr: from scratch
    finetune_lr: float = ranged(1e-6, 0.0, lo_open=True)  # with --init (paper Sec. 3.1: fine-tuning at 1e-6)


@dataclass
class DenoiserDataConfig(DataConfig):
    # generated:real pairs (paper Table 4's rho; 0: real data only; exact, see MixedBatches)
    ratio: float | None = ranged(None, 0.0)
    # the level policy of on-the-fly synth:/gen: sources (pngan.noise.level): 1.7, 0.5,1,2, 0.3-2.3
    # or fitted; None: fitted for a model fitted on pairs of several levels, else the fitted level
    gain: float | str | None = None

    def __post_init__(self):
        if self.gain is not None:  # a bad form is refused when the config is read, before a run folder
            parse_level(self.gain, "data.gain")


@dataclass
class DenoiserRunConfig(RunSettings):
    pass


@dataclass
class DenoiserTrainConfig:
    """``pngan train-denoiser``'s configuration (``--config`` PRESET or YAML, ``KEY=VALUE`` overrides)."""

    net: DenoiserNetConfig = field(default_factory=DenoiserNetConfig)
    optim: DenoiserOptimConfig = field(default_factory=DenoiserOptimConfig)
    data: DenoiserDataConfig = field(default_factory=DenoiserDataConfig)
    run: DenoiserRunConfig = field(default_factory=DenoiserRunConfig)


PRESETS: dict[str, dict] = {
    # paper: Adam (0.9, 0.999), 128x128 patches, batch 8, 700k iterations, cosine 2e-4 -> 1e-6 from
    # scratch, constant 1e-6 when fine-tuning (Sec. 3.1: fine-tuning keeps the other settings).
    "paper": {},
    "cpu-small": {
        "net": {"arch_kwargs": SMALL_NET_KWARGS},
        "optim": {"lr": 1e-3},
        "data": {"patch_size": 40, "batch_size": 8},
        "run": {"steps": 300, "log_every": 10, "ckpt_every": 100},
    },
    # The frozen real denoiser that `pngan train` trains first when no --denoiser is given, on a CPU.
    # It must actually denoise: a denoiser that passes noise through (cpu-small's, 300 steps) makes
    # the image-domain alignment L1(Dn(fake), Dn(real)) a plain L1 between two noisy images, whose
    # minimiser is a blurred, denoised fake (docs/experiments.md). On a GPU the `paper` preset is used.
    "frozen-cpu": {
        "net": {"arch_kwargs": SMALL_NET_KWARGS},
        "optim": {"lr": 1e-3},
        "data": {"patch_size": 48, "batch_size": 8},
        "run": {"steps": 800, "log_every": 50, "ckpt_every": 200},
    },
    # `pngan benchmark` on a CPU (ours): frozen-cpu's DnCNN without BatchNorm, 3000 steps. Chosen by
    # held-out SIDD PSNR and its spread over seeds (docs/experiments.md, "A denoiser recipe for the
    # benchmark"): KAIR's BatchNorm (momentum 0.9: the running statistics are almost the last batch's)
    # costs 0.9 dB and doubles the spread at 800 steps; 800 steps are far from converged (+3.3 dB by 3000)
    "bench-cpu": {
        "net": {"arch_kwargs": {**SMALL_NET_KWARGS, "dncnn": {**SMALL_NET_KWARGS["dncnn"], "batch_norm": False}}},
        "optim": {"lr": 1e-3},
        "data": {"patch_size": 48, "batch_size": 8},
        "run": {"steps": 3000, "log_every": 100, "ckpt_every": 500},
    },
}


def load_denoiser_config(preset_or_path: str | None, overrides: list[str] | None = None, *,
                         check_net: bool = True) -> DenoiserTrainConfig:
    """The config of a preset or YAML file with overrides; ``check_net``: the network's arguments are
    checked here, before any run folder is made (a resume leaves it to the comparison with the run's
    own config, which names what changed)."""
    cfg = load_config(DenoiserTrainConfig, preset_or_path, overrides, PRESETS)
    if check_net:
        if cfg.net.arch not in available("denoiser"):
            raise PnganError(f"unknown denoiser '{cfg.net.arch}' (known: {', '.join(available('denoiser'))})")
        check_kwargs(cfg.net.arch, net_kwargs(cfg), "net.kwargs")
        if cfg.net.kwargs:  # arguments the user chose: the network must also run (a 1-channel input, a width
            _probe_network(cfg)  # its attention cannot divide, ...) before a run folder is made
    return cfg


def _probe_network(cfg: DenoiserTrainConfig) -> None:
    try:
        with torch.no_grad():
            torch.manual_seed(0)
            net = build(cfg.net.arch, **net_kwargs(cfg)).eval()
            p = min(cfg.data.patch_size, 64)
            y = net.denoise(torch.full((1, 3, p, p), 0.5))
    except PnganError:
        raise
    except (RuntimeError, ValueError, TypeError, ZeroDivisionError) as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise PnganError(f"net.kwargs {net_kwargs(cfg)}: '{cfg.net.arch}' cannot run with these arguments ({first})") from None
    if not bool(torch.isfinite(y).all()):
        raise PnganError(f"net.kwargs {net_kwargs(cfg)}: '{cfg.net.arch}' gives non-finite output with these arguments")


def net_kwargs(cfg: DenoiserTrainConfig) -> dict:
    """The network's constructor arguments: the preset's size for its architecture, then net.kwargs."""
    if not isinstance(cfg.net.kwargs, dict) or not isinstance(cfg.net.arch_kwargs, dict):
        raise PnganError("net.kwargs must be a mapping, e.g. net.kwargs={depth: 8}")
    return {**(cfg.net.arch_kwargs.get(cfg.net.arch) or {}), **cfg.net.kwargs}
