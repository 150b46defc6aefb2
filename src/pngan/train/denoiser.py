"""``pngan train-denoiser``: train or fine-tune a denoiser on real, generated or mixed pairs.

Same run-folder conventions as ``pngan train`` (``pngan.train.checkpoint`` / ``runlog`` /
``distributed``): ``RUN/config.yaml``, ``RUN/stats.jsonl``, ``RUN/checkpoints/NNNNNNNN/
{denoiser.safetensors,state.pt}`` (last two kept), ``RUN/denoiser.safetensors`` = the latest good
network (loadable with ``pngan evaluate denoiser --model RUN/denoiser.safetensors``), ``--resume``
continues exactly (batches are a pure function of (seed, step)), SIGINT checkpoints and stops,
a NaN/Inf loss or gradient stops with the last good checkpoint named.

Loss: L1(denoiser(noisy), clean) for every architecture. RIDNet and MIRNet are trained with L1 in
their papers; MPRNet's paper uses Charbonnier + 0.05 * edge loss -- we use L1 for it too, so that
the real / generated / mixed comparisons of Tables 1-4 differ only in the data (documented in
docs/paper-mapping.md).

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
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pngan.errors import PnganError
from pngan.train.config import AdamConfig, DataConfig, RunSettings
from pngan.validate import ranged
from pngan.train.engine import Engine, Schedule, TrainResult
from pngan.train.schedule import cosine_lr

log = logging.getLogger("pngan")


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
        from pngan.noise import canonical_setting

        arg = canonical_setting(arg)
    return kind, arg, inner


def _split_path_arg(rest: str, json_file: bool) -> tuple[str, str]:
    """``ARG:SPEC`` -> (ARG, SPEC), where ARG may hold ':': a FILE.json ends at '.json:'; otherwise
    ARG is the first prefix (ending before a ':') that exists on disk, else the text before the first ':'."""
    from pngan.data.specs import FORMATS

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
        from pngan.seeding import make_generator

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
    from fractions import Fraction

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
            from pngan.noise.level import parse_level

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
    from pngan.config import load_config

    cfg = load_config(DenoiserTrainConfig, preset_or_path, overrides, PRESETS)
    if check_net:
        from pngan.nets.registry import available, check_kwargs

        if cfg.net.arch not in available("denoiser"):
            raise PnganError(f"unknown denoiser '{cfg.net.arch}' (known: {', '.join(available('denoiser'))})")
        check_kwargs(cfg.net.arch, _net_kwargs(cfg), "net.kwargs")
        if cfg.net.kwargs:  # arguments the user chose: the network must also run (a 1-channel input, a width
            _probe_network(cfg)  # its attention cannot divide, ...) before a run folder is made
    return cfg


def _probe_network(cfg: DenoiserTrainConfig) -> None:
    from pngan.nets.registry import build

    try:
        with torch.no_grad():
            torch.manual_seed(0)
            net = build(cfg.net.arch, **_net_kwargs(cfg)).eval()
            p = min(cfg.data.patch_size, 64)
            y = net.denoise(torch.full((1, 3, p, p), 0.5))
    except PnganError:
        raise
    except (RuntimeError, ValueError, TypeError, ZeroDivisionError) as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise PnganError(f"net.kwargs {_net_kwargs(cfg)}: '{cfg.net.arch}' cannot run with these arguments ({first})") from None
    if not bool(torch.isfinite(y).all()):
        raise PnganError(f"net.kwargs {_net_kwargs(cfg)}: '{cfg.net.arch}' gives non-finite output with these arguments")


DenoiserResult = TrainResult  # the name train_denoiser has always returned


class _DenoiseForward(torch.nn.Module):
    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.denoise(x)


def _unused_parameters(net: torch.nn.Module, patch: int, device) -> list[str]:
    """Names of trainable parameters that get no gradient from ``denoise`` (probe in eval mode, so
    that batch-norm running statistics are left untouched; gradients are cleared afterwards)."""
    was_training = net.training
    net.eval()
    try:
        net.denoise(torch.zeros(1, 3, patch, patch, device=device)).float().sum().backward()
        unused = [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None]
    finally:
        for p in net.parameters():
            p.grad = None
        net.train(was_training)
    return unused


def _net_kwargs(cfg: DenoiserTrainConfig) -> dict:
    if not isinstance(cfg.net.kwargs, dict) or not isinstance(cfg.net.arch_kwargs, dict):
        raise PnganError("net.kwargs must be a mapping, e.g. net.kwargs={depth: 8}")
    return {**(cfg.net.arch_kwargs.get(cfg.net.arch) or {}), **cfg.net.kwargs}


def _open_sources(cfg: DenoiserTrainConfig, data: list[str]) -> list[PairSource]:
    """[all data] without a ratio; [generated (first spec), real (the rest)] with one."""
    from pngan.data.patches import PatchSampler
    from pngan.data.specs import open_datasets
    from pngan.noise import build_synthetic
    from pngan.seeding import derive_seed

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
                from pngan.noise.calibrated import load_calibration

                noise = load_calibration(arg)
            else:
                noise = build_synthetic(arg)
            label = f"synth:{json.dumps(noise.describe(), sort_keys=True)}"
        elif kind == "gen":
            from pngan.infer.api import NoiseGenerator

            noise = NoiseGenerator.load(arg)  # on the CPU: batches are prepared off the training device
            label = f"gen:{arg}"
        if kind:
            from pngan.noise.level import resolve_level

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


def init_network(cfg: DenoiserTrainConfig, init: str) -> tuple[torch.nn.Module, dict]:
    """The network of ``--init`` and its shape (constructor arguments) in full: from the checkpoint's
    pngan metadata, else an explicit net.kwargs, else the network's defaults (a published checkpoint),
    never a preset's. An explicit net.kwargs other than the checkpoint's is refused."""
    from pngan.nets.loading import load_network, parse_net_spec, read_metadata
    from pngan.nets.registry import network_class

    name, path = parse_net_spec(init)
    if not Path(path).is_file():
        raise PnganError("--init checkpoint not found", path)
    # the network's shape comes from the checkpoint's pngan metadata, else from an explicit
    # net.kwargs, else the network's defaults (a published checkpoint's shape), never a preset's
    meta_init = read_metadata(path)
    if "pngan.kwargs" in meta_init:
        kwargs = json.loads(meta_init["pngan.kwargs"])
        if cfg.net.kwargs and any(kwargs.get(k) != v for k, v in cfg.net.kwargs.items()):
            raise PnganError(f"--init holds a network with net.kwargs {json.dumps(kwargs)}, but net.kwargs "
                             f"{json.dumps(cfg.net.kwargs)} was given: leave net.kwargs out (the checkpoint "
                             "defines the shape)", path)
    else:
        kwargs = dict(cfg.net.kwargs)
    try:
        src = load_network(name or meta_init.get("pngan.network", cfg.net.arch), path, **kwargs)
    except PnganError as e:
        if "pngan.kwargs" in meta_init:
            raise
        raise PnganError(f"{e} (the file carries no pngan metadata, so its shape is the network's default "
                         "or net.kwargs: give the shape it was trained with, e.g. net.kwargs={depth: 20, "
                         "channels: 64} for a KAIR DnCNN)") from None
    import inspect

    params = inspect.signature(type(src).__init__).parameters  # the shape in full, for --resume
    kwargs = {**{k: params[k].default for k in (cfg.net.arch_kwargs.get(cfg.net.arch) or {}) if k in params},
              **kwargs}
    if type(src) is not network_class(cfg.net.arch):
        raise PnganError(f"--init holds a different network than --arch {cfg.net.arch}", path)
    return src, kwargs


class DenoiserTask:
    """A denoiser, its optimiser and one step, L1(denoiser(noisy), clean), for the training engine."""

    name = "pngan train-denoiser"

    def __init__(self, cfg: DenoiserTrainConfig, engine: Engine, sources: list[PairSource], init: str | None):
        from pngan import __version__
        from pngan.train.config import experiment_hash
        from pngan.nets.registry import build
        from pngan.seeding import derive_seed

        self.cfg, self.engine, self.sources = cfg, engine, sources
        self.p_gen = mix_fraction(cfg.data.ratio)
        kwargs = _net_kwargs(cfg)
        torch.manual_seed(derive_seed(cfg.run.seed, "denoiser-init") % (2**63))  # same init on every rank / rerun
        net = build(cfg.net.arch, **kwargs).to(engine.device)
        if init is not None:
            net, kwargs = init_network(cfg, init)
            net = net.to(engine.device)
            cfg.net.kwargs = dict(kwargs)  # config.yaml then rebuilds this shape on --resume
        self.finetune = init is not None  # fine-tuning: constant lr (paper: 1e-6); from scratch: cosine
        net.to(memory_format=engine.mem_format)
        self.net = net
        lr0 = cfg.optim.finetune_lr if self.finetune else cfg.optim.lr
        self.optimizers = {"opt": torch.optim.Adam(net.parameters(), lr=lr0, betas=(cfg.optim.beta1, cfg.optim.beta2))}
        self.nets = {"denoiser": net}
        self.meta = {"pngan.config_hash": experiment_hash(cfg), "pngan.version": __version__,
                     "pngan.data": " + ".join(s.describe() for s in sources), "pngan.kwargs": json.dumps(kwargs)}
        unused = []
        if engine.dist.enabled:
            # Some published layouts build modules their forward never uses (e.g. MIRNet with width=1);
            # DDP then waits forever for their gradients unless told to look for unused parameters,
            # which costs a graph traversal per step, so it is switched on only when a probe finds any.
            unused = _unused_parameters(net, cfg.data.patch_size, engine.device)
            if unused and engine.dist.is_main:
                log.info("%s: %d parameter tensors take no part in the forward (e.g. %s); DDP skips them",
                         cfg.net.arch, len(unused), unused[0])
        # DDP calls forward(): wrapped so that forward() is the registry's denoise() (clean estimate)
        self.denoise = engine.wrap(_DenoiseForward(net), find_unused_parameters=bool(unused))
        net.train()

    def learning_rates(self, step: int, scale: float) -> dict[str, float]:
        o = self.cfg.optim
        return {"opt": o.finetune_lr if self.finetune else cosine_lr(step, self.cfg.run.steps, o.lr, o.lr_min)}

    def batches(self, first: int, n: int):
        d = self.engine.dist
        return MixedBatches(self.sources, self.p_gen, self.cfg.data.batch_size, first, n, d.rank, d.world_size)

    def state(self) -> dict:
        return {"finetune": self.finetune}

    def load_state(self, st: dict) -> None:
        self.finetune = self.finetune or bool(st.get("finetune"))

    def step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        e = self.engine
        clean, noisy = e.to_device(batch["clean"]), e.to_device(batch["noisy"])
        with e.autocast():
            loss = torch.nn.functional.l1_loss(self.denoise(noisy).float(), clean)
        l1 = float(loss.detach())
        e.update(self.optimizers["opt"], loss, self.net, math.isfinite(l1), step)
        return {"loss_l1": l1}


def train_denoiser(cfg: DenoiserTrainConfig, data: list[str], out: str | Path, *, init: str | None = None,
                   resume: bool = False, progress: bool = True) -> DenoiserResult:
    """Train ``cfg.net.arch`` on ``data`` (see the module docstring for ``cfg.data.ratio``)."""
    from pngan.nets.registry import available
    from pngan.train.session import start_run

    if cfg.net.arch not in available("denoiser"):
        raise PnganError(f"unknown denoiser '{cfg.net.arch}' (known: {', '.join(available('denoiser'))})")
    if not data:
        raise PnganError("give at least one --data SPEC")
    ratio = cfg.data.ratio
    if ratio is not None:
        if not (ratio >= 0 and math.isfinite(ratio)):
            raise PnganError(f"--ratio must be 0 or more (got {ratio})")
        if len(data) < 2:
            raise PnganError("--ratio needs two or more --data: the first is the generated set, the rest real")
    session = start_run(out, resume, device=cfg.run.device, threads=cfg.run.threads)
    sources = _open_sources(cfg, data)
    r = cfg.run
    engine = Engine(session, Schedule(r.steps, r.log_every, r.ckpt_every, r.keep_checkpoints,
                                      num_workers=cfg.data.num_workers),
                    precision=r.precision, channels_last=r.channels_last, compile=r.compile)
    task = DenoiserTask(cfg, engine, sources, init)
    return engine.run(task, cfg, resume=resume, progress=progress)
