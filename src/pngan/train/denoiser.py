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

The data (real pairs, on-the-fly synth:/gen: sources, the generated:real mix) comes from
:mod:`pngan.data.pairsources`; the config and presets from :mod:`pngan.train.denoiser_config`.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
from pathlib import Path

import torch

from pngan import __version__
from pngan.data.pairsources import MixedBatches, PairSource, mix_fraction, open_sources
from pngan.errors import PnganError
from pngan.nets.loading import load_network, parse_net_spec, read_metadata
from pngan.nets.registry import available, build, network_class
from pngan.seeding import derive_seed
from pngan.train.config import experiment_hash
from pngan.train.denoiser_config import DenoiserTrainConfig, net_kwargs
from pngan.train.engine import Engine, Schedule, TrainResult
from pngan.train.schedule import cosine_lr
from pngan.train.session import start_run

log = logging.getLogger("pngan")


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


def init_network(cfg: DenoiserTrainConfig, init: str) -> tuple[torch.nn.Module, dict]:
    """The network of ``--init`` and its shape (constructor arguments) in full: from the checkpoint's
    pngan metadata, else an explicit net.kwargs, else the network's defaults (a published checkpoint),
    never a preset's. An explicit net.kwargs other than the checkpoint's is refused."""
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
        self.cfg, self.engine, self.sources = cfg, engine, sources
        self.p_gen = mix_fraction(cfg.data.ratio)
        kwargs = net_kwargs(cfg)
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
    sources = open_sources(cfg, data)
    r = cfg.run
    engine = Engine(session, Schedule(r.steps, r.log_every, r.ckpt_every, r.keep_checkpoints,
                                      num_workers=cfg.data.num_workers),
                    precision=r.precision, channels_last=r.channels_last, compile=r.compile)
    task = DenoiserTask(cfg, engine, sources, init)
    return engine.run(task, cfg, resume=resume, progress=progress)
