"""The PNGAN training loop (paper Sec. 2, Fig. 2; Sec. 3.1): ``PnganStep`` (one iteration: D step,
then G step) and the driver ``train_pngan`` (setup, resume, logging, samples, checkpoints).

Each iteration, as the paper describes it:

1. sample aligned patches (clean, real noisy) from the real pairs;
2. make the generator's input from the clean patch with the synthetic setting (setting 1: AWGN
   sigma 50; setting 2: RAW Poisson-Gaussian), fake = G(synthetic);
3. fix G, train D with the relativistic average loss on per-pixel logits (Eq. 5);
4. fix D, train G with  L1(Dn(fake), Dn(real)) + lambda_p * L_p + lambda_ra * L_ra  (Eq. 13), where
   Dn is the frozen pretrained real denoiser (Eq. 2), L_p the VGG16 perceptual loss (Eq. 12) and
   L_ra the generator's relativistic loss (Eq. 6). Dn and VGG are frozen (eval mode, no gradients
   to their weights; gradients flow through them to G).

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

import contextlib
import logging
import math
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from pngan.errors import DivergenceError, PnganError
from pngan.train import checkpoint as ck
from pngan.train.config import TrainConfig
from pngan.train.schedule import cosine_lr
from pngan.train.distributed import Dist, batch_loader

log = logging.getLogger("pngan")


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    interrupted: bool = False


def _frozen(net: nn.Module) -> nn.Module:
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def _set_grad(net: nn.Module | None, flag: bool) -> None:
    if net is not None:
        for p in net.parameters():
            p.requires_grad_(flag)


def _finite_grads(net: nn.Module) -> bool:
    for p in net.parameters():
        if p.grad is not None and not torch.isfinite(p.grad).all():
            return False
    return True


class _SigintFlag:
    """SIGINT sets a flag; the loop checkpoints at the end of the step and exits cleanly."""

    def __init__(self):
        self.hit = False
        self._old = None

    def __enter__(self):
        def handler(signum, frame):
            if self.hit:  # second Ctrl-C: give up immediately
                raise KeyboardInterrupt
            self.hit = True
            log.warning("interrupt: finishing this step, writing a checkpoint, then stopping (Ctrl-C again to abort)")

        with contextlib.suppress(ValueError):  # not in the main thread
            self._old = signal.signal(signal.SIGINT, handler)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def _ra_losses_global(dist: Dist, real_logits: torch.Tensor, fake_logits: torch.Tensor, which: str,
                      mean: str = "batch") -> torch.Tensor:
    """``pngan.losses.gan.ra_d_loss`` / ``ra_g_loss`` with E_b[.] over the global batch (multi-process).

    ``mean="batch_hw"``: every rank's slice has the same H and W, so the global mean over (batch,
    H, W) is the global batch mean of the per-image spatial means."""
    import torch.nn.functional as F

    from pngan.losses.gan import ra_mean_dims

    def avg(t: torch.Tensor) -> torch.Tensor:
        hw = ra_mean_dims(t, mean)[1:]
        return dist.batch_mean(t.mean(dim=hw, keepdim=True) if hw else t)

    r = real_logits - avg(fake_logits)
    f = fake_logits - avg(real_logits)
    if which == "d":
        return (F.binary_cross_entropy_with_logits(r, torch.ones_like(r))
                + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f)))
    return (F.binary_cross_entropy_with_logits(f, torch.ones_like(f))
            + F.binary_cross_entropy_with_logits(r, torch.zeros_like(r)))


def synth_batch(synth, clean: torch.Tensor, seed: int, step: int, first: int,
                gains: torch.Tensor | None = None) -> torch.Tensor:
    """Synthetic noisy input of samples first..first+B-1 of step ``step``'s global batch, each drawn
    from its own generator: independent of how the global batch is split over processes.
    ``gains`` (one per sample, ``synthetic.level=match``) scales the calibrated setting's level."""
    from pngan.noise import synthesize
    from pngan.seeding import make_generator

    return torch.cat([synthesize(synth, clean[i : i + 1], make_generator(seed, "synth", step, first + i),
                                 gain=None if gains is None else gains[i : i + 1])
                      for i in range(clean.shape[0])])


def build_synthetic_input(cfg: TrainConfig, imageset=None) -> nn.Module:
    """The generator's input setting. ``calibrated`` is read from ``synthetic.calibration`` or fitted
    on the training pairs ``imageset`` (deterministic, seconds)."""
    from pngan.noise import build_synthetic, canonical_setting

    if canonical_setting(cfg.synthetic.setting) != "calibrated":
        return build_synthetic(cfg.synthetic.setting, **cfg.synthetic.kwargs())
    from pngan.noise.calibrated import fit_calibrated, load_calibration

    if cfg.synthetic.calibration:
        return load_calibration(cfg.synthetic.calibration)
    if imageset is None:
        raise PnganError("synthetic.setting=calibrated needs the training pairs to fit on (or synthetic.calibration=FILE)")
    model = fit_calibrated(imageset, correlated=cfg.synthetic.correlated, levels=cfg.synthetic.level == "match")
    gains = getattr(model, "pair_gains", [])
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
    from pngan.losses.perceptual import build_perceptual
    from pngan.nets.loading import load_network, parse_net_spec
    from pngan.nets.registry import build

    G = build(cfg.generator.name, **cfg.generator.kwargs()).to(device)
    if cfg.generator.init == "identity":
        if not hasattr(G, "identity_init"):
            raise PnganError(f"generator.init=identity: generator {cfg.generator.name} cannot start as the identity")
        G.identity_init()
    D = None
    if cfg.loss.discriminator != "none":
        d_kw = {"in_channels": 6} if cfg.loss.d_input == "noise_clean" else {}
        D = build(f"{cfg.loss.discriminator}_discriminator", channels=cfg.loss.d_channels, **d_kw).to(device)
    Dn = None
    if cfg.loss.alignment == "denoiser" and (denoiser or cfg.loss.lambda_align > 0):
        if not denoiser:
            raise PnganError("the image-domain alignment needs a frozen real denoiser: --denoiser NAME:CHECKPOINT "
                             "(e.g. dncnn:../shared/weights/dncnn_sidd_naflow.pth), or set loss.alignment=naive")
        name, path = parse_net_spec(denoiser)
        Dn = _frozen(load_network(name, path)).to(device)
    check_perceptual(cfg, vgg_weights)
    perceptual = None
    if cfg.loss.lambda_p > 0:
        perceptual = build_perceptual(vgg_weights, cfg.loss.perceptual if vgg_weights or cfg.loss.perceptual != "imagenet" else "imagenet")
        if perceptual is not None:
            perceptual = perceptual.to(device)
    synth = build_synthetic_input(cfg, imageset)
    return G, D, Dn, perceptual, synth


# ---------------------------------------------------------------------------------------------
# One iteration: D step, then G step (no logging, no checkpoints)
# ---------------------------------------------------------------------------------------------


class PhaseTimer:
    """Per-phase wall time (data + synthetic input, G forward, D step, G step), logged as sec_* in
    stats.jsonl. Exact on CPU; on CUDA only when enabled (it synchronises the device)."""

    NAMES = ("data", "g_forward", "d_step", "g_step")

    def __init__(self, device: torch.device, enabled: bool):
        self.device, self.enabled = device, enabled
        self.sec = dict.fromkeys(self.NAMES, 0.0)
        self._t = 0.0

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def start(self) -> None:
        if self.enabled:
            self._t = self._now()

    def tick(self, name: str) -> None:
        if self.enabled:
            t1 = self._now()
            self.sec[name] += t1 - self._t
            self._t = t1

    def averages(self, n: int) -> dict[str, float]:
        return {f"sec_{k}": v / max(n, 1) for k, v in self.sec.items()}

    def reset(self) -> None:
        self.sec = dict.fromkeys(self.NAMES, 0.0)


@dataclass
class Nets:
    """The networks and optimisers of a PNGAN run. ``Gm``/``Dm`` are what the step calls for
    training forwards (the DDP and/or torch.compile wrappers of ``G``/``D``, or ``G``/``D``)."""

    G: nn.Module
    D: nn.Module | None
    Dn: nn.Module | None
    perceptual: nn.Module | None
    synth: nn.Module
    Gm: nn.Module
    Dm: nn.Module | None
    optG: torch.optim.Optimizer
    optD: torch.optim.Optimizer | None
    G_ema: nn.Module | None = None  # optim.ema > 0: the weight average of G (what is exported)


@dataclass
class StepOutput:
    ok: bool  # False: a non-finite loss or gradient on some rank; G's optimiser did not step
    terms: dict[str, float]
    lr: float
    clean: torch.Tensor
    syn: torch.Tensor
    fake: torch.Tensor
    real: torch.Tensor


class PnganStep:
    """One iteration of the paper's alternating optimisation (Sec. 2, Fig. 2): make the synthetic
    input, fake = G(synthetic), (i) fix G and update D with L_D (Eq. 5; D first, the paper's
    order), (ii) fix D and update G with Eq. 13. NaN/Inf decisions are agreed by every rank before
    any backward (a rank skipping a DDP backward would hang the others)."""

    def __init__(self, cfg: TrainConfig, dist: Dist, device: torch.device, nets: Nets,
                 mem_format: torch.memory_format, timer: PhaseTimer):
        self.cfg, self.dist, self.device, self.nets = cfg, dist, device, nets
        self.mem_format, self.timer = mem_format, timer
        self.use_bf16 = cfg.run.precision == "bf16" and device.type == "cuda"
        self.base_lr = {"G": cfg.optim.lr, "D": cfg.optim.d_lr or cfg.optim.lr}

    def autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.use_bf16 else contextlib.nullcontext()

    def lr_at(self, step: int, key: str, lr_scale: float = 1.0) -> float:
        """The closed-form learning rate of ``step`` for G or D: cosine annealing (times the rollback
        scale), and for G the linear warm-up of ``optim.g_warmup`` (a pure function of the step)."""
        cfg = self.cfg
        lr = cosine_lr(step, cfg.run.steps, self.base_lr[key], cfg.optim.lr_min) * lr_scale
        if key == "G" and cfg.optim.g_warmup > 0:
            lr *= min(1.0, (step + 1) / cfg.optim.g_warmup)
        return lr

    def set_lr(self, step: int, lr_scale: float) -> float:
        """The learning rates of ``step`` into both optimisers; returns G's."""
        for opt, key in ((self.nets.optG, "G"), (self.nets.optD, "D")):
            if opt is not None:
                for grp in opt.param_groups:
                    grp["lr"] = self.lr_at(step, key, lr_scale)
        return self.lr_at(step, "G", lr_scale)

    def inputs(self, batch: dict[str, torch.Tensor], step: int):
        """(clean, real noisy, synthetic input) of this rank's slice of step ``step``'s global batch."""
        mf = self.mem_format
        clean = batch["clean"].to(self.device, non_blocking=True).contiguous(memory_format=mf)
        real = batch["noisy"].to(self.device, non_blocking=True).contiguous(memory_format=mf)
        with torch.no_grad():
            gains = None
            if self.cfg.synthetic.level == "match":  # each input at its real patch's noise level
                from pngan.noise.calibrated import level_gain

                gains = level_gain(self.nets.synth, clean, real)
            syn = synth_batch(self.nets.synth, clean, self.cfg.run.seed, step, self.dist.rank * clean.shape[0],
                              gains)
            syn = syn.contiguous(memory_format=mf)
        return clean, real, syn

    def d_input(self, x: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        mode = self.cfg.loss.d_input
        if mode == "noise_clean":
            return torch.cat([x - clean, clean], 1)
        return x - clean if mode == "noise" else x

    def ra_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor, which: str) -> torch.Tensor:
        from pngan.losses import ra_d_loss, ra_g_loss

        mean = self.cfg.loss.ra_mean
        if self.dist.enabled:
            return _ra_losses_global(self.dist, real_logits, fake_logits, which, mean)
        loss = ra_d_loss if which == "d" else ra_g_loss
        return loss(real_logits, fake_logits, mean)

    def d_step(self, clean: torch.Tensor, real: torch.Tensor, fake: torch.Tensor, terms: dict[str, float]) -> None:
        """(i) G fixed (``fake`` detached): one optimiser step of D on L_D."""
        n, dist, device = self.nets, self.dist, self.device
        if n.Dm is None:
            return
        _set_grad(n.D, True)
        with self.autocast():
            rl = n.Dm(self.d_input(real, clean)).float()
            fl = n.Dm(self.d_input(fake.detach(), clean)).float()
            lossD = self.ra_loss(rl, fl, "d")
        n.optD.zero_grad(set_to_none=True)
        terms["loss_d"] = float(lossD.detach())
        if not dist.any_flag(not math.isfinite(terms["loss_d"]), device):
            lossD.backward()
            if not dist.any_flag(not _finite_grads(n.D), device):
                n.optD.step()  # D is updated before G's step (our choice of order; the paper does not settle it)
            else:
                terms["loss_d"] = float("nan")
        _set_grad(n.D, False)

    def g_loss(self, clean: torch.Tensor, real: torch.Tensor, fake: torch.Tensor, terms: dict[str, float]):
        """Eq. 13: L_align + lambda_p * L_perceptual + lambda_ra * L_ra (D fixed)."""
        from pngan.losses import alignment_l1, lowpass_l1, marginal_loss, naive_l1, perceptual_loss, spectrum_loss

        n, cfg = self.nets, self.cfg
        with self.autocast():
            lossG = fake.new_zeros((), dtype=torch.float32)
            # with loss.lambda_align=0 the term is still logged (when there is a denoiser), but
            # without a graph: no backward through the frozen denoiser for a zero-weight term
            if cfg.loss.alignment == "naive" or n.Dn is not None:
                with torch.set_grad_enabled(cfg.loss.lambda_align > 0 and torch.is_grad_enabled()):
                    if cfg.loss.alignment == "denoiser":
                        l_align = alignment_l1(n.Dn, fake.float(), real, lowpass=cfg.loss.align_lowpass)
                    else:
                        l_align = naive_l1(fake.float(), real)
                lossG = lossG + cfg.loss.lambda_align * l_align
                terms["loss_align"] = float(l_align.detach())
            if n.perceptual is not None:
                l_p = perceptual_loss(n.perceptual, fake.float(), real)
                lossG = lossG + cfg.loss.lambda_p * l_p
                terms["loss_perceptual"] = float(l_p.detach())
            if cfg.loss.lambda_lowpass > 0:  # not in the paper: the noise's local mean, denoiser-free
                l_lp = lowpass_l1(fake.float(), real, cfg.loss.align_lowpass)
                lossG = lossG + cfg.loss.lambda_lowpass * l_lp
                terms["loss_lowpass"] = float(l_lp.detach())
            if cfg.loss.lambda_marginal > 0:  # not in the paper (pngan.losses.marginal)
                l_m = marginal_loss(fake.float(), real, clean, cfg.loss.marginal_groups)
                lossG = lossG + cfg.loss.lambda_marginal * l_m
                terms["loss_marginal"] = float(l_m.detach())
            if cfg.loss.lambda_spectrum > 0:  # not in the paper (pngan.losses.spectrum)
                # spectra averaged over the global batch: N processes optimise the 1-process loss
                l_s = spectrum_loss(fake, real, clean, batch_mean=self.dist.batch_mean)
                lossG = lossG + cfg.loss.lambda_spectrum * l_s
                terms["loss_spectrum"] = float(l_s.detach())
            if n.D is not None:
                # the plain module (not the DDP wrapper): D takes no gradient in G's step
                with torch.no_grad():
                    real_logits = n.D(self.d_input(real, clean)).float()
                fake_logits = n.D(self.d_input(fake, clean)).float()
                l_ra = self.ra_loss(real_logits, fake_logits, "g")
                lossG = lossG + cfg.loss.lambda_ra * l_ra
                terms["loss_adv"] = float(l_ra.detach())
        return lossG

    def g_step(self, clean: torch.Tensor, real: torch.Tensor, fake: torch.Tensor, step: int,
               terms: dict[str, float]) -> bool:
        """(ii) D fixed: one optimiser step of G; False (no step) on a non-finite loss or gradient."""
        n, dist, device = self.nets, self.dist, self.device
        lossG = self.g_loss(clean, real, fake, terms)
        if step == self.cfg.run.debug_nan_at_step:
            lossG = lossG * float("nan")
        terms["loss_g"] = float(lossG.detach())
        n.optG.zero_grad(set_to_none=True)
        bad = dist.any_flag(not all(math.isfinite(v) for v in terms.values()), device)
        if not bad:
            if lossG.requires_grad:  # no term with a weight > 0 depends on G: nothing to back-propagate
                lossG.backward()
            bad = not _finite_grads(n.G)
        if dist.any_flag(bad, device):
            return False
        n.optG.step()
        if n.G_ema is not None:
            ema_update(n.G_ema, n.G, self.cfg.optim.ema)
        return True

    def __call__(self, batch: dict[str, torch.Tensor], step: int, lr_scale: float) -> StepOutput:
        t = self.timer
        t.start()
        clean, real, syn = self.inputs(batch, step)
        t.tick("data")
        lr_now = self.set_lr(step, lr_scale)
        terms: dict[str, float] = {}
        with self.autocast():
            fake = self.nets.Gm(syn)
            if self.cfg.generator.keep_white:  # not in the paper (pngan.noise.clipping)
                from pngan.noise.clipping import keep_white

                fake = keep_white(fake, clean)
        t.tick("g_forward")
        self.d_step(clean, real, fake, terms)
        t.tick("d_step")
        ok = self.g_step(clean, real, fake, step, terms)
        if ok:
            t.tick("g_step")
        return StepOutput(ok, terms, lr_now, clean, syn, fake, real)


@torch.no_grad()
def ema_update(avg: nn.Module, net: nn.Module, decay: float) -> None:
    """avg <- decay * avg + (1 - decay) * net, parameter by parameter (buffers are copied)."""
    for a, p in zip(avg.parameters(), net.parameters()):
        a.lerp_(p.detach(), 1.0 - decay)
    for a, b in zip(avg.buffers(), net.buffers()):
        a.copy_(b)


# ---------------------------------------------------------------------------------------------
# The driver: setup, resume, logging, samples, checkpoints, divergence handling
# ---------------------------------------------------------------------------------------------


def _sync_batchnorm(net: nn.Module) -> None:
    """Replace every BatchNorm child of ``net`` by a SyncBatchNorm holding the same tensors."""
    for name, child in list(net.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(net, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
        else:
            _sync_batchnorm(child)


def _wrap_for_training(cfg: TrainConfig, dist: Dist, device: torch.device, G: nn.Module, D: nn.Module | None):
    Gm, Dm = G, D
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        # broadcast_buffers=False: G holds no running statistics, only constant buffers (SMNet's
        # blur-pool kernel, identical on every rank); DDP's per-forward buffer broadcast also fails
        # on that kernel once it is channels_last (a (C,1,3,3) tensor whose strides look overlapping).
        # The released dense D has BatchNorm: on CUDA it becomes SyncBatchNorm (global-batch
        # statistics, running statistics equal on every rank); gloo has none, so on CPU each process
        # normalises its own part of the batch (rank 0's running statistics are saved; training
        # never reads them). Converted in place, so D's state-dict keys stay the same.
        if D is not None and device.type == "cuda":
            _sync_batchnorm(D)
        with warnings.catch_warnings():  # newer torch calls broadcast_buffers deprecated; still correct
            warnings.simplefilter("ignore", FutureWarning)
            Gm = DDP(G, device_ids=ids, broadcast_buffers=False)
            Dm = DDP(D, device_ids=ids, broadcast_buffers=False) if D is not None else None
    if cfg.run.compile:
        Gm = torch.compile(Gm)
        Dm = torch.compile(Dm) if Dm is not None else None
    return Gm, Dm


class _Checkpoints:
    """Checkpoint writing (rank 0) and reading (every rank) of a PNGAN run."""

    def __init__(self, run_dir: Path, cfg: TrainConfig, dist: Dist, nets: Nets, meta_common: dict[str, str]):
        self.run_dir, self.cfg, self.dist, self.nets, self.meta_common = run_dir, cfg, dist, nets, meta_common

    def save(self, step: int, lr_scale: float, rollbacks: int) -> Path | None:
        n, path = self.nets, None
        if self.dist.is_main:
            # The learning-rate schedule is a pure function of the step (cosine_lr), so the step and
            # the rollback scale are the whole scheduler state.
            st = {"step": step, "optG": n.optG.state_dict(), "rng": ck.rng_state(),
                  "lr_scale": lr_scale, "rollbacks": rollbacks}
            if n.optD is not None:
                st["optD"] = n.optD.state_dict()
            meta = dict(self.meta_common, **{"pngan.step": str(step)})
            # with a weight average, "generator" (what generate/evaluate read) is the average and
            # "generator_online" the weights being trained
            nets = {"generator": n.G} if n.G_ema is None else {"generator": n.G_ema, "generator_online": n.G}
            if n.D is not None:
                nets["discriminator"] = n.D
            path = ck.save_checkpoint(self.run_dir, step, nets, st, dict.fromkeys(nets, meta),
                                      keep=self.cfg.run.keep_checkpoints, latest="generator")
        self.dist.barrier()
        return path

    def restore(self, ckpt_dir: Path) -> dict[str, Any]:
        n = self.nets
        if n.G_ema is not None:
            online = ckpt_dir / "generator_online.safetensors"
            if not online.is_file():
                raise PnganError("optim.ema is on but this checkpoint has no generator_online.safetensors "
                                 "(written without optim.ema?)", ckpt_dir)
            ck.load_weights_into(n.G, online)
            ck.load_weights_into(n.G_ema, ckpt_dir / "generator.safetensors")
        else:
            ck.load_weights_into(n.G, ckpt_dir / "generator.safetensors")
        if n.D is not None:
            ck.load_weights_into(n.D, ckpt_dir / "discriminator.safetensors")
        st = ck.load_state(ckpt_dir)
        n.optG.load_state_dict(st["optG"])
        if n.optD is not None and "optD" in st:
            n.optD.load_state_dict(st["optD"])
        ck.set_rng_state(st.get("rng", {}))
        return st


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
    from pngan import __version__
    from pngan.config import config_hash, save_yaml
    from pngan.data.patches import PatchBatches, PatchSampler
    from pngan.data.specs import open_datasets
    from pngan.seeding import derive_seed
    from pngan.train.runlog import StatsLog, save_strip
    from pngan.train.session import start_run

    # --- setup ---
    check_perceptual(cfg, vgg_weights)  # before the run folder is made
    session = start_run(out, resume, device=cfg.run.device, threads=cfg.run.threads,
                        global_batch=cfg.data.batch_size)
    dist, device, run_dir = session.dist, session.device, session.run_dir
    imageset = open_datasets(list(data))
    if not (imageset.has_clean and imageset.has_noisy):
        raise PnganError(f"training needs noisy/clean pairs; {imageset.spec} has no "
                         f"{'clean' if not imageset.has_clean else 'noisy'} images")
    sampler = PatchSampler(imageset, cfg.data.patch_size, cfg.data.batch_size, cfg.data.flips,
                           cfg.run.seed, cache_bytes=int(cfg.data.cache_gb * 2**30))
    torch.manual_seed(derive_seed(cfg.run.seed, "init"))  # same initial weights on every rank and run
    G, D, Dn, perceptual, synth = build_models(cfg, denoiser, vgg_weights, device, imageset)
    mem_format = torch.channels_last if cfg.run.channels_last else torch.contiguous_format
    for net in (G, D, Dn, perceptual):
        if net is not None:
            net.to(memory_format=mem_format)
    betas = (cfg.optim.beta1, cfg.optim.beta2)
    optG = torch.optim.Adam(G.parameters(), lr=cfg.optim.lr, betas=betas)
    optD = torch.optim.Adam(D.parameters(), lr=cfg.optim.d_lr or cfg.optim.lr, betas=betas) if D is not None else None
    G_ema = None
    if cfg.optim.ema > 0:
        import copy

        G_ema = _frozen(copy.deepcopy(G))
    nets = Nets(G, D, Dn, perceptual, synth, G, D, optG, optD, G_ema)
    total = cfg.run.steps
    ckpts = _Checkpoints(run_dir, cfg, dist, nets, {
        "pngan.config_hash": config_hash(cfg),
        "pngan.data": imageset.describe(),
        "pngan.synthetic": synth.describe(),
        "pngan.version": __version__,
        **({"pngan.level": "match"} if cfg.synthetic.level == "match" else {}),
        **({"pngan.keep_white": "true"} if cfg.generator.keep_white else {}),
    })

    # --- resume ---
    lr_scale, rollbacks = 1.0, 0
    start = 0
    last_good: Path | None = None
    if resume:
        latest = ck.latest_checkpoint(run_dir)
        if latest is not None:
            st = ckpts.restore(latest[1])
            start = int(st["step"])
            lr_scale, rollbacks = float(st.get("lr_scale", 1.0)), int(st.get("rollbacks", 0))
            last_good = latest[1]
            if dist.is_main:
                log.info("resuming %s from step %d", run_dir, start)
    if dist.is_main and not resume:
        save_yaml(cfg, run_dir / "config.yaml")
    stats = StatsLog(run_dir / "stats.jsonl", enabled=dist.is_main, truncate_after=start if resume else None)
    nets.Gm, nets.Dm = _wrap_for_training(cfg, dist, device, G, D)
    timer = PhaseTimer(device, device.type != "cuda" or cfg.run.time_phases)
    train_step = PnganStep(cfg, dist, device, nets, mem_format, timer)

    def batches(first: int):
        ds = PatchBatches(sampler, first, total - first, dist.rank, dist.world_size)
        return batch_loader(ds, cfg.data.num_workers, device, dist.world_size)

    bar = None
    if progress and dist.is_main:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=start, desc="pngan train", unit="step", dynamic_ncols=True)

    # --- loop ---
    it = batches(start)
    step = start
    t_log, n_log = time.perf_counter(), 0
    interrupted = False
    with _SigintFlag() as sigint:
        while step < total:
            res = train_step(next(it), step, lr_scale)
            terms = res.terms
            if not res.ok:
                where = f"step {step}: non-finite loss or gradient ({', '.join(f'{k}={v:.4g}' for k, v in terms.items())})"
                good = last_good or (ck.latest_checkpoint(run_dir) or (None, None))[1]
                if cfg.run.on_nan == "rollback" and good is not None and rollbacks < cfg.run.max_rollbacks:
                    rollbacks += 1
                    lr_scale *= 0.5
                    step = int(ckpts.restore(good)["step"])
                    log.warning("%s; rolled back to %s with the learning rate scaled by %g", where, good, lr_scale)
                    if cfg.run.debug_nan_at_step >= 0:
                        cfg.run.debug_nan_at_step = -1
                    it = batches(step)
                    if bar is not None:
                        bar.n = step
                        bar.refresh()
                    continue
                raise DivergenceError(f"{where}; training stopped, weights not written; last good checkpoint: "
                                      f"{good if good is not None else 'none'}")
            step += 1
            n_log += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k.replace("loss_", ""): f"{v:.3g}" for k, v in terms.items()}, refresh=False)
            if step % cfg.run.log_every == 0 or step == total:
                if dist.enabled:  # log the global batch's losses (the mean of the ranks' slices)
                    vals = dist.all_reduce_mean(torch.tensor(list(terms.values()), dtype=torch.float64, device=device))
                    terms = dict(zip(terms, vals.tolist()))
                dt = time.perf_counter() - t_log
                row = {"step": step, **terms, "lr": res.lr, "sec_per_step": dt / max(n_log, 1),
                       "images_per_sec": n_log * cfg.data.batch_size / max(dt, 1e-9)}
                if timer.enabled:
                    row.update(timer.averages(n_log))
                stats.write(row)
                timer.reset()
                t_log, n_log = time.perf_counter(), 0
            if dist.is_main and (step % cfg.run.sample_every == 0 or step == total):
                save_strip(run_dir / "samples" / f"step_{step:08d}.png",
                           [res.clean[0], res.syn[0], res.fake[0].detach(), res.real[0]])
            stop = dist.any_flag(sigint.hit, device) or (stop_after is not None and step >= stop_after)
            if step % cfg.run.ckpt_every == 0 or step == total or stop:
                last_good = ckpts.save(step, lr_scale, rollbacks)
            if stop:
                interrupted = True
                break
    if bar is not None:
        bar.close()
    return TrainResult(run_dir, step, interrupted)
