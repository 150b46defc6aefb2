"""The PNGAN training loop (paper Sec. 2, Fig. 2; Sec. 4.1), one plain function.

Each iteration, as the paper describes it:

1. sample aligned patches (clean, real noisy) from the real pairs;
2. make the generator's input from the clean patch with the synthetic setting (setting 1: AWGN
   sigma 50; setting 2: RAW Poisson-Gaussian), fake = G(synthetic);
3. fix G, train D with the relativistic average loss on per-pixel logits (Eq. 5);
4. fix D, train G with  L1(Dn(fake), Dn(real)) + lambda_p * L_p + lambda_ra * L_ra  (Eq. 13), where
   Dn is the frozen pretrained real denoiser (Eq. 2), L_p the VGG16 perceptual loss (Eq. 12) and
   L_ra the generator's relativistic loss (Eq. 6). Dn and VGG are frozen (eval mode, no gradients
   to their weights; gradients flow through them to G).

Batches are a pure function of (seed, step) and the synthetic noise of step s on rank r is drawn
from a generator seeded by derive_seed(seed, "synth", s, r), so a resumed run continues exactly.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from pngan.errors import DivergenceError, PnganError
from pngan.train import checkpoint as ck
from pngan.train.config import TrainConfig
from pngan.train.distributed import Dist, init as dist_init, resolve_device

log = logging.getLogger("pngan")


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    interrupted: bool = False


def cosine_lr(step: int, total: int, lr: float, lr_min: float) -> float:
    """Cosine annealing from ``lr`` at step 0 to ``lr_min`` at ``total`` (paper: 2e-4 -> 1e-6)."""
    t = min(max(step, 0), total) / max(total, 1)
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * t))


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


def build_models(cfg: TrainConfig, denoiser: str | None, vgg_weights: str | None, device: torch.device):
    from pngan.losses.perceptual import build_perceptual
    from pngan.nets.loading import load_network, parse_net_spec
    from pngan.nets.registry import build
    from pngan.noise import build_synthetic

    G = build(cfg.generator.name, **cfg.generator.kwargs()).to(device)
    D = None
    if cfg.loss.discriminator != "none":
        D = build(f"{cfg.loss.discriminator}_discriminator", channels=cfg.loss.d_channels).to(device)
    Dn = None
    if cfg.loss.alignment == "denoiser":
        if not denoiser:
            raise PnganError("the image-domain alignment needs a frozen real denoiser: --denoiser NAME:CHECKPOINT "
                             "(e.g. dncnn:../shared/weights/dncnn_sidd_naflow.pth), or set loss.alignment=naive")
        name, path = parse_net_spec(denoiser)
        Dn = _frozen(load_network(name, path)).to(device)
    perceptual = None
    if cfg.loss.lambda_p > 0:
        perceptual = build_perceptual(vgg_weights, cfg.loss.perceptual if vgg_weights or cfg.loss.perceptual != "imagenet" else "imagenet")
        if perceptual is not None:
            perceptual = perceptual.to(device)
    synth = build_synthetic(cfg.synthetic.setting, **cfg.synthetic.kwargs())
    return G, D, Dn, perceptual, synth


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
    from pngan.config import config_hash, save_yaml, to_dict
    from pngan.data.patches import PatchBatches, PatchSampler
    from pngan.data.specs import open_datasets
    from pngan.losses import alignment_l1, naive_l1, perceptual_loss, ra_d_loss, ra_g_loss
    from pngan.seeding import derive_seed, make_generator
    from pngan.train.runlog import StatsLog, save_strip

    dist: Dist = dist_init(cfg.run.device)
    device = resolve_device(cfg.run.device, dist)
    if cfg.run.threads > 0:
        torch.set_num_threads(cfg.run.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    run_dir = Path(out)
    if dist.is_main:
        ck.prepare_run_dir(run_dir, resume)
    dist.barrier()
    if resume:
        ck.clean_partial(run_dir) if dist.is_main else None

    imageset = open_datasets(list(data))
    if not (imageset.has_clean and imageset.has_noisy):
        raise PnganError(f"training needs noisy/clean pairs; {imageset.spec} has no "
                         f"{'clean' if not imageset.has_clean else 'noisy'} images")
    sampler = PatchSampler(imageset, cfg.data.patch_size, cfg.data.batch_size, cfg.data.flips,
                           cfg.run.seed, cache_bytes=int(cfg.data.cache_gb * 2**30))
    torch.manual_seed(derive_seed(cfg.run.seed, "init"))  # same initial weights on every rank and run
    G, D, Dn, perceptual, synth = build_models(cfg, denoiser, vgg_weights, device)
    mem_format = torch.channels_last if cfg.run.channels_last else torch.contiguous_format
    for net in (G, D, Dn, perceptual):
        if net is not None:
            net.to(memory_format=mem_format)
    optG = torch.optim.Adam(G.parameters(), lr=cfg.optim.lr, betas=(cfg.optim.beta1, cfg.optim.beta2))
    optD = None
    if D is not None:
        optD = torch.optim.Adam(D.parameters(), lr=cfg.optim.d_lr or cfg.optim.lr, betas=(cfg.optim.beta1, cfg.optim.beta2))
    total = cfg.run.steps
    base_lr = {"G": cfg.optim.lr, "D": cfg.optim.d_lr or cfg.optim.lr}

    def state_dict(step: int) -> dict[str, Any]:
        # The learning-rate schedule is a pure function of the step (cosine_lr), so the step and the
        # rollback scale are the whole scheduler state.
        st = {"step": step, "optG": optG.state_dict(), "rng": ck.rng_state(),
              "lr_scale": lr_scale, "rollbacks": rollbacks}
        if optD is not None:
            st["optD"] = optD.state_dict()
        return st

    meta_common = {
        "pngan.config_hash": config_hash(cfg),
        "pngan.data": imageset.describe(),
        "pngan.synthetic": synth.describe(),
        "pngan.version": __version__,
    }

    def save(step: int) -> Path | None:
        path = None
        if dist.is_main:
            meta = {k: v for k, v in meta_common.items()}
            meta["pngan.step"] = str(step)
            nets = {"generator": G}
            if D is not None:
                nets["discriminator"] = D
            path = ck.save_checkpoint(run_dir, step, nets, state_dict(step), {"generator": meta, "discriminator": meta},
                                      keep=cfg.run.keep_checkpoints, latest="generator")
        dist.barrier()
        return path

    def restore(ckpt_dir: Path) -> int:
        ck.load_weights_into(G, ckpt_dir / "generator.safetensors")
        if D is not None:
            ck.load_weights_into(D, ckpt_dir / "discriminator.safetensors")
        st = ck.load_state(ckpt_dir)
        optG.load_state_dict(st["optG"])
        if optD is not None and "optD" in st:
            optD.load_state_dict(st["optD"])
        ck.set_rng_state(st.get("rng", {}))
        return int(st["step"])

    lr_scale, rollbacks = 1.0, 0
    start = 0
    last_good: Path | None = None
    if resume:
        latest = ck.latest_checkpoint(run_dir)
        if latest is not None:
            start = restore(latest[1])
            st = ck.load_state(latest[1])
            lr_scale, rollbacks = float(st.get("lr_scale", 1.0)), int(st.get("rollbacks", 0))
            last_good = latest[1]
            if dist.is_main:
                log.info("resuming %s from step %d", run_dir, start)
    if dist.is_main and not resume:
        save_yaml(cfg, run_dir / "config.yaml")
    stats = StatsLog(run_dir / "stats.jsonl", enabled=dist.is_main, truncate_after=start if resume else None)

    Gm, Dm = G, D
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        Gm = DDP(G, device_ids=ids)
        Dm = DDP(D, device_ids=ids) if D is not None else None
    if cfg.run.compile:
        Gm = torch.compile(Gm)
        Dm = torch.compile(Dm) if Dm is not None else None
    use_bf16 = cfg.run.precision == "bf16" and device.type == "cuda"

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()

    def batches(first: int):
        ds = PatchBatches(sampler, first, total - first, dist.rank, dist.world_size)
        loader = torch.utils.data.DataLoader(
            ds, batch_size=None, shuffle=False, num_workers=cfg.data.num_workers,
            pin_memory=device.type == "cuda", persistent_workers=False,
            prefetch_factor=4 if cfg.data.num_workers > 0 else None)
        return iter(loader)

    bar = None
    if progress and dist.is_main:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=start, desc="pngan train", unit="step", dynamic_ncols=True)
    it = batches(start)
    step = start
    t_log, n_log = time.perf_counter(), 0
    interrupted = False
    with _SigintFlag() as sigint:
        while step < total:
            batch = next(it)
            clean = batch["clean"].to(device, non_blocking=True).contiguous(memory_format=mem_format)
            real = batch["noisy"].to(device, non_blocking=True).contiguous(memory_format=mem_format)
            g = make_generator(cfg.run.seed, "synth", step, dist.rank)
            with torch.no_grad():
                syn = synth(clean, generator=g).contiguous(memory_format=mem_format)
            lr_now = cosine_lr(step, total, base_lr["G"], cfg.optim.lr_min) * lr_scale
            for opt, key in ((optG, "G"), (optD, "D")):
                if opt is not None:
                    for grp in opt.param_groups:
                        grp["lr"] = cosine_lr(step, total, base_lr[key], cfg.optim.lr_min) * lr_scale
            terms: dict[str, float] = {}
            # (i) fix G, train D
            with autocast():
                fake = Gm(syn)
            d_in = (lambda x: x - clean) if cfg.loss.d_input == "noise" else (lambda x: x)
            if Dm is not None:
                _set_grad(D, True)
                with autocast():
                    lossD = ra_d_loss(Dm(d_in(real)).float(), Dm(d_in(fake.detach())).float())
                optD.zero_grad(set_to_none=True)
                terms["loss_d"] = float(lossD.detach())
                if math.isfinite(terms["loss_d"]):
                    lossD.backward()
                    if _finite_grads(D):
                        optD.step()  # D is updated before G's step (the paper's order)
                    else:
                        terms["loss_d"] = float("nan")
                _set_grad(D, False)
            # (ii) fix D, train G
            with autocast():
                if cfg.loss.alignment == "denoiser":
                    l_align = alignment_l1(Dn, fake.float(), real)
                else:
                    l_align = naive_l1(fake.float(), real)
                lossG = l_align
                terms["loss_align"] = float(l_align.detach())
                if perceptual is not None:
                    l_p = perceptual_loss(perceptual, fake.float(), real)
                    lossG = lossG + cfg.loss.lambda_p * l_p
                    terms["loss_perceptual"] = float(l_p.detach())
                if D is not None:
                    # the plain module (not the DDP wrapper): D takes no gradient in G's step
                    with torch.no_grad():
                        real_logits = D(d_in(real)).float()
                    l_ra = ra_g_loss(real_logits, D(d_in(fake)).float())
                    lossG = lossG + cfg.loss.lambda_ra * l_ra
                    terms["loss_adv"] = float(l_ra.detach())
            if step == cfg.run.debug_nan_at_step:
                lossG = lossG * float("nan")
            terms["loss_g"] = float(lossG.detach())
            optG.zero_grad(set_to_none=True)
            bad = not all(math.isfinite(v) for v in terms.values())
            if not bad:
                lossG.backward()
                bad = not _finite_grads(G)
            if dist.any_flag(bad, device):
                where = f"step {step}: non-finite loss or gradient ({', '.join(f'{k}={v:.4g}' for k, v in terms.items())})"
                good = last_good or (ck.latest_checkpoint(run_dir) or (None, None))[1]
                if cfg.run.on_nan == "rollback" and good is not None and rollbacks < cfg.run.max_rollbacks:
                    rollbacks += 1
                    lr_scale *= 0.5
                    step = restore(good)
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
            optG.step()
            step += 1
            n_log += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k.replace("loss_", ""): f"{v:.3g}" for k, v in terms.items()}, refresh=False)
            if step % cfg.run.log_every == 0 or step == total:
                dt = time.perf_counter() - t_log
                stats.write({"step": step, **terms, "lr": lr_now, "sec_per_step": dt / max(n_log, 1),
                             "images_per_sec": n_log * cfg.data.batch_size / max(dt, 1e-9)})
                t_log, n_log = time.perf_counter(), 0
            if dist.is_main and (step % cfg.run.sample_every == 0 or step == total):
                save_strip(run_dir / "samples" / f"step_{step:08d}.png", [clean[0], syn[0], fake[0].detach(), real[0]])
            stop = dist.any_flag(sigint.hit, device) or (stop_after is not None and step >= stop_after)
            if step % cfg.run.ckpt_every == 0 or step == total or stop:
                last_good = save(step)
            if stop:
                interrupted = True
                break
    if bar is not None:
        bar.close()
    return TrainResult(run_dir, step, interrupted)
