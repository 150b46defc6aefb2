"""PNGAN training (paper Sec. 2, Fig. 2; Sec. 3.1): ``PnganTask`` (the networks and one iteration:
D step, then G step) and ``train_pngan``, which runs it on ``pngan.train.engine.Engine`` (resume,
checkpoints, NaN handling, logging, samples, signals, DDP).

Each iteration, as the paper describes it:

1. sample aligned patches (clean, real noisy) from the real pairs;
2. make the generator's input from the clean patch with the synthetic setting (setting 1: AWGN
   sigma 50; setting 2: RAW Poisson-Gaussian), fake = G(synthetic);
3. fix G, train D with the relativistic average loss on per-pixel logits (Eq. 5);
4. fix D, train G with  L1(Dn(fake), Dn(real)) + lambda_p * L_p + lambda_ra * L_ra  (Eq. 13), where
   Dn is the frozen pretrained real denoiser (Eq. 2), L_p the VGG16 perceptual loss (Eq. 12) and
   L_ra the generator's relativistic loss (Eq. 6); the terms and their weights are
   ``pngan.losses.objective``. Dn and VGG are frozen (eval mode, no gradients to their weights;
   gradients flow through them to G).

Batches are a pure function of (seed, step), and the synthetic noise of sample j of the GLOBAL
batch of step s is drawn from its own generator seeded by derive_seed(seed, "synth", s, j), so a
resumed run continues exactly, also with a different number of processes.

Multi-process (torchrun, DDP): rank r trains on its slice of the global batch
(``PatchSampler.batch(step, r, world)``); DDP averages the gradients. The relativistic losses'
batch average E_b[C(b)] is taken over the GLOBAL batch (a differentiable all-reduce,
``Dist.batch_mean``), so an N-process run optimises the same loss as one process with the same
global batch (the paper's batch of 8 stays one batch however it is split); only the float
summation order differs. Rank 0 alone writes logs, progress, samples and checkpoints; NaN/Inf
decisions are agreed by all ranks before any backward (a rank skipping a DDP backward would hang).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
import torch.nn as nn

from pngan import __version__
from pngan.data.patches import PatchBatches, PatchSampler
from pngan.data.specs import open_datasets
from pngan.errors import PnganError
from pngan.losses.gan import ra_d_loss
from pngan.losses.objective import GanBatch, build_objective
from pngan.losses.perceptual import build_perceptual
from pngan.nets.loading import load_network, parse_net_spec
from pngan.nets.registry import build
from pngan.noise import build_synthetic, canonical_setting, synthesize
from pngan.noise.calibrated import fit_calibrated, level_gain, load_calibration
from pngan.noise.clipping import finish
from pngan.seeding import derive_seed, make_generator
from pngan.train.config import TrainConfig, experiment_hash
from pngan.train.engine import Engine, Schedule, TrainResult, frozen, set_grad
from pngan.train.schedule import cosine_lr
from pngan.train.session import start_run

log = logging.getLogger("pngan")


def synth_batch(synth, clean: torch.Tensor, seed: int, step: int, first: int,
                gains: torch.Tensor | None = None) -> torch.Tensor:
    """Synthetic noisy input of samples first..first+B-1 of step ``step``'s global batch, each drawn
    from its own generator: independent of how the global batch is split over processes.
    ``gains`` (one per sample, ``synthetic.level=match``) scales the calibrated setting's level."""
    return torch.cat([synthesize(synth, clean[i : i + 1], make_generator(seed, "synth", step, first + i),
                                 gain=None if gains is None else gains[i : i + 1])
                      for i in range(clean.shape[0])])


def build_synthetic_input(cfg: TrainConfig, imageset=None) -> nn.Module:
    """The generator's input setting. ``calibrated`` is read from ``synthetic.calibration`` or fitted
    on the training pairs ``imageset`` (deterministic, seconds)."""
    if canonical_setting(cfg.synthetic.setting) != "calibrated":
        return build_synthetic(cfg.synthetic.setting, **cfg.synthetic.kwargs())
    if cfg.synthetic.calibration:
        return load_calibration(cfg.synthetic.calibration)
    if imageset is None:
        raise PnganError("synthetic.setting=calibrated needs the training pairs to fit on (or synthetic.calibration=FILE)")
    model = fit_calibrated(imageset, correlated=cfg.synthetic.correlated, levels=cfg.synthetic.level == "match")
    gains = model.pair_gains or []
    if cfg.synthetic.level == "fixed" and gains and max(gains) > LEVEL_SPREAD * max(min(gains), 1e-6):
        log.warning("the training pairs' noise levels differ %.1fx (std %.2f-%.2f of the fit: several ISOs?): with "
                    "synthetic.level=fixed the generator learns one average level; synthetic.level=match gives "
                    "each input its real pair's level", max(gains) / max(min(gains), 1e-6), min(gains), max(gains))
    return model


LEVEL_SPREAD = 3.0  # pairs whose noise std differs more than this are taken at several levels (ISOs)


def check_perceptual(cfg: TrainConfig, vgg_weights: str | None) -> None:
    """The paper config (``loss.perceptual_missing: error``) refuses to train without VGG16 weights."""
    if (cfg.loss.lambda_p > 0 and cfg.loss.perceptual == "imagenet" and not vgg_weights
            and cfg.loss.perceptual_missing == "error"):
        raise PnganError("the perceptual loss (Eq. 12) needs ImageNet VGG16 weights: pass --vgg PATH, or set "
                         "loss.perceptual=off to train without it")


def build_models(cfg: TrainConfig, denoiser: str | None, vgg_weights: str | None, device: torch.device,
                 imageset=None):
    G = build(cfg.generator.name, **cfg.generator.kwargs()).to(device)
    if cfg.generator.init == "identity":
        if not hasattr(G, "identity_init"):
            raise PnganError(f"generator.init=identity: generator {cfg.generator.name} cannot start as the identity")
        G.identity_init()
    D = None
    if cfg.loss.discriminator != "none":
        D = build(f"{cfg.loss.discriminator}_discriminator", channels=cfg.loss.d_channels).to(device)
    Dn = None
    if cfg.loss.alignment == "denoiser" and (denoiser or cfg.loss.lambda_align > 0):
        if not denoiser:
            raise PnganError("the image-domain alignment needs a frozen real denoiser: --denoiser NAME:CHECKPOINT "
                             "(e.g. dncnn:../shared/weights/dncnn_sidd_naflow.pth), or set loss.alignment=naive")
        name, path = parse_net_spec(denoiser)
        Dn = frozen(load_network(name, path)).to(device)
    check_perceptual(cfg, vgg_weights)
    perceptual = None
    if cfg.loss.lambda_p > 0:
        perceptual = build_perceptual(vgg_weights, cfg.loss.perceptual if vgg_weights or cfg.loss.perceptual != "imagenet" else "imagenet")
        if perceptual is not None:
            perceptual = perceptual.to(device)
    synth = build_synthetic_input(cfg, imageset)
    return G, D, Dn, perceptual, synth


class PnganTask:
    """The networks, optimisers and objective of a PNGAN run, and one iteration (``step``)."""

    name = "pngan train"

    def __init__(self, cfg: TrainConfig, engine: Engine, imageset, sampler, denoiser: str | None,
                 vgg_weights: str | None):
        self.cfg, self.engine, self.sampler = cfg, engine, sampler
        dist, device = engine.dist, engine.device
        torch.manual_seed(derive_seed(cfg.run.seed, "init"))  # same initial weights on every rank and run
        self.G, self.D, Dn, perceptual, self.synth = build_models(cfg, denoiser, vgg_weights, device, imageset)
        for net in (self.G, self.D, Dn, perceptual):
            if net is not None:
                net.to(memory_format=engine.mem_format)
        betas = (cfg.optim.beta1, cfg.optim.beta2)
        self.base_lr = {"optG": cfg.optim.lr, "optD": cfg.optim.d_lr or cfg.optim.lr}
        self.optimizers = {"optG": torch.optim.Adam(self.G.parameters(), lr=cfg.optim.lr, betas=betas)}
        if self.D is not None:
            self.optimizers["optD"] = torch.optim.Adam(self.D.parameters(), lr=self.base_lr["optD"], betas=betas)
        self.nets = {"generator": self.G}
        if self.D is not None:
            self.nets["discriminator"] = self.D
        self.meta = {"pngan.config_hash": experiment_hash(cfg), "pngan.data": imageset.describe(),
                     "pngan.synthetic": self.synth.describe(), "pngan.version": __version__,
                     **({"pngan.level": "match"} if cfg.synthetic.level == "match" else {}),
                     **({"pngan.keep_white": "true"} if cfg.generator.keep_white else {})}
        batch_mean = dist.batch_mean if dist.enabled else None  # the relativistic averages: global batch
        self.ra = lambda real, fake: ra_d_loss(real, fake, cfg.loss.ra_mean, batch_mean)
        self.objective = build_objective(cfg.loss, denoiser=Dn, perceptual=perceptual, discriminator=self.D,
                                         batch_mean=batch_mean)
        self.Gm = engine.wrap(self.G)
        # the released dense D has BatchNorm: on CUDA it becomes SyncBatchNorm (global-batch
        # statistics); gloo has none, so on CPU each process normalises its own part of the batch
        self.Dm = engine.wrap(self.D, sync_batchnorm=True) if self.D is not None else None
        self._last: list[torch.Tensor] = []

    def learning_rates(self, step: int, scale: float) -> dict[str, float]:
        """Cosine annealing times the rollback scale."""
        cfg = self.cfg
        return {k: cosine_lr(step, cfg.run.steps, lr, cfg.optim.lr_min) * scale for k, lr in self.base_lr.items()}

    def batches(self, first: int, n: int):
        return PatchBatches(self.sampler, first, n, self.engine.dist.rank, self.engine.dist.world_size)

    def state(self) -> dict:
        return {}

    def load_state(self, st: dict) -> None:
        pass

    def samples(self) -> list[torch.Tensor]:
        return self._last

    def synthetic_input(self, clean: torch.Tensor, real: torch.Tensor, step: int) -> torch.Tensor:
        """The generator's input for this rank's slice of step ``step``'s global batch."""
        gains = None
        if self.cfg.synthetic.level == "match":  # each input at its real patch's noise level
            gains = level_gain(self.synth, clean, real)
        first = self.engine.dist.rank * clean.shape[0]
        return synth_batch(self.synth, clean, self.cfg.run.seed, step, first, gains).contiguous(
            memory_format=self.engine.mem_format)

    def step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        """(i) G fixed: D on L_D (Eq. 5), D first; (ii) D fixed: G on Eq. 13."""
        e, t, cfg, terms = self.engine, self.engine.timer, self.cfg, {}
        clean, real = e.to_device(batch["clean"]), e.to_device(batch["noisy"])
        with torch.no_grad():
            syn = self.synthetic_input(clean, real, step)
        t.tick("data")
        with e.autocast():
            # not clamped (the losses' gradients reach every value); keep_white: not in the paper
            fake = finish(self.Gm(syn), clean, cfg.generator.keep_white, clamp=False)
        t.tick("g_forward")
        if self.D is not None:
            set_grad(self.D, True)
            with e.autocast():
                loss_d = self.ra(self.Dm(real).float(), self.Dm(fake.detach()).float())
            terms["loss_d"] = float(loss_d.detach())
            if not e.update(self.optimizers["optD"], loss_d, self.D, math.isfinite(terms["loss_d"]), step):
                terms["loss_d"] = float("nan")
            set_grad(self.D, False)
        t.tick("d_step")
        with e.autocast():
            loss_g, g_terms = self.objective(GanBatch(clean, real, fake))
        terms.update(g_terms, loss_g=float(loss_g.detach()))
        finite = all(math.isfinite(v) for v in terms.values())
        e.update(self.optimizers["optG"], loss_g, self.G, finite, step)
        t.tick("g_step")
        self._last = [clean[0], syn[0], fake[0].detach(), real[0]]
        return terms


def train_pngan(
    cfg: TrainConfig,
    data: list[str],
    out: str | Path,
    denoiser: str | None = None,
    vgg_weights: str | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainResult:
    """Train PNGAN's generator; see the module docstring. Returns where it stopped.

    ``stop_after`` stops (with a checkpoint, as an interruption would) once that step is reached,
    keeping the schedule of ``cfg.run.steps``: training in pieces equals training in one go."""
    check_perceptual(cfg, vgg_weights)  # before the run folder is made
    session = start_run(out, resume, device=cfg.run.device, threads=cfg.run.threads,
                        global_batch=cfg.data.batch_size)
    imageset = open_datasets(list(data))
    if not (imageset.has_clean and imageset.has_noisy):
        raise PnganError(f"training needs noisy/clean pairs; {imageset.spec} has no "
                         f"{'clean' if not imageset.has_clean else 'noisy'} images")
    sampler = PatchSampler(imageset, cfg.data.patch_size, cfg.data.batch_size, cfg.data.flips,
                           cfg.run.seed, cache_bytes=int(cfg.data.cache_gb * 2**30))
    r = cfg.run
    engine = Engine(session, Schedule(r.steps, r.log_every, r.ckpt_every, r.keep_checkpoints, r.sample_every,
                                      r.on_nan, r.max_rollbacks, cfg.data.batch_size, cfg.data.num_workers),
                    precision=r.precision, channels_last=r.channels_last, compile=r.compile,
                    time_phases=r.time_phases)
    task = PnganTask(cfg, engine, imageset, sampler, denoiser, vgg_weights)
    return engine.run(task, cfg, resume=resume, progress=progress, stop_after=stop_after)
