"""The training engine of ``pngan train`` and ``pngan train-denoiser``.

A task (``pngan.train.loop.PnganTask``, ``pngan.train.denoiser.DenoiserTask``) says what one
iteration does and which networks and optimisers it has; the :class:`Engine` does the rest, the
same way for both:

- resume: the latest checkpoint's weights, optimiser states and random state; the steps after it
  are dropped from ``stats.jsonl``;
- checkpoints (rank 0, atomic, the last ``keep`` kept) and ``RUN/<first network>.safetensors``;
- the learning rates of every step (a pure function of the step and the rollback scale, so the
  step is the whole scheduler state);
- NaN/Inf: every optimiser update is agreed by all ranks before the backward and after it (a rank
  skipping a DDP backward would hang the others); a refused update fails the step, which either
  stops the run (the last good checkpoint named, weights not written) or rolls back to the last
  checkpoint with the learning rates halved (``on_nan="rollback"``);
- SIGINT (and SIGTERM, routed to it by ``pngan.signals``): finish the step, checkpoint, stop;
- DDP wrapping, torch.compile, bf16 autocast, channels-last inputs;
- ``stats.jsonl`` rows (the global batch's terms, the learning rate, timings), sample strips and
  the progress bar.

A task provides: ``name`` (the progress bar's label); ``nets`` (what a checkpoint holds, by file
name; the first is copied to the run folder); ``optimizers`` (by their key in ``state.pt``);
``meta`` (metadata of every network file); ``learning_rates(step, scale)`` (by optimiser key; the
first is logged); ``batches(first, n)`` (a dataset of this rank's slices of steps first..first+n-1);
``step(batch, step)`` (one iteration, using :meth:`Engine.update` for each optimiser; returns the
terms to log); ``state()`` / ``load_state(st)`` (anything else ``state.pt`` holds); and
optionally ``samples()`` (images of the last step for a strip).
"""

from __future__ import annotations

import contextlib
import logging
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
from pngan.train.distributed import batch_loader
from pngan.train.runlog import StatsLog, save_strip
from pngan.train.session import RunSession

log = logging.getLogger("pngan")


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    interrupted: bool = False


@dataclass
class Schedule:
    """When the engine logs, samples and checkpoints, and what it does on a non-finite step."""

    steps: int
    log_every: int
    ckpt_every: int
    keep_checkpoints: int
    sample_every: int = 0  # 0: no sample strips
    on_nan: str | None = None  # "stop" | "rollback"; None: stop, and state.pt holds no rollback state
    max_rollbacks: int = 0
    images_per_step: int | None = None  # the global batch: logs images_per_sec
    num_workers: int = -1  # batch-preparing worker processes (pngan.train.distributed.data_workers)


def frozen(net: nn.Module) -> nn.Module:
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def set_grad(net: nn.Module | None, flag: bool) -> None:
    if net is not None:
        for p in net.parameters():
            p.requires_grad_(flag)


def finite_grads(net: nn.Module) -> bool:
    return all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in net.parameters())


class SigintFlag:
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


class PhaseTimer:
    """Per-phase wall time, logged as sec_<phase> in stats.jsonl (the phases a task ticks). Exact on
    CPU; on CUDA only when enabled (it synchronises the device)."""

    def __init__(self, device: torch.device, enabled: bool):
        self.device, self.enabled = device, enabled
        self.sec: dict[str, float] = {}
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
            self.sec[name] = self.sec.get(name, 0.0) + t1 - self._t
            self._t = t1

    def averages(self, n: int) -> dict[str, float]:
        return {f"sec_{k}": v / max(n, 1) for k, v in self.sec.items()}

    def reset(self) -> None:
        self.sec = {}


def _sync_batchnorm(net: nn.Module) -> None:
    """Replace every BatchNorm child of ``net`` by a SyncBatchNorm holding the same tensors."""
    for name, child in list(net.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(net, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
        else:
            _sync_batchnorm(child)


class Engine:
    # A test hook (tests monkeypatch it): the first update of this step sees a NaN loss, once.
    nan_at_step = -1

    def __init__(self, session: RunSession, schedule: Schedule, *, precision: str = "fp32",
                 channels_last: bool = True, compile: bool = False, time_phases: bool = False):
        self.dist, self.device, self.run_dir = session.dist, session.device, session.run_dir
        self.schedule = schedule
        self.mem_format = torch.channels_last if channels_last else torch.contiguous_format
        self.use_bf16 = precision == "bf16" and self.device.type == "cuda"
        self.compile = compile
        self.timer = PhaseTimer(self.device, self.device.type != "cuda" or time_phases)
        self.lr_scale, self.rollbacks = 1.0, 0
        self._refused = False

    # --- what a task's step uses ---

    def to_device(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(self.device, non_blocking=True).contiguous(memory_format=self.mem_format)

    def autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.use_bf16 else contextlib.nullcontext()

    def wrap(self, net: nn.Module, *, find_unused_parameters: bool = False, sync_batchnorm: bool = False) -> nn.Module:
        """What a training forward calls: ``net`` in DDP (multi-process) and/or torch.compile."""
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            if sync_batchnorm and self.device.type == "cuda":
                _sync_batchnorm(net)  # in place: the state-dict keys stay the same
            # broadcast_buffers=False: the networks' buffers are constants (blur kernels) or running
            # statistics training never reads; DDP's per-forward broadcast also fails on a
            # channels_last (C, 1, 3, 3) kernel, whose strides look overlapping
            with warnings.catch_warnings():  # newer torch calls broadcast_buffers deprecated; still correct
                warnings.simplefilter("ignore", FutureWarning)
                net = DDP(net, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                          broadcast_buffers=False, find_unused_parameters=find_unused_parameters)
        return torch.compile(net) if self.compile else net

    def update(self, opt: torch.optim.Optimizer, loss: torch.Tensor, net: nn.Module, finite: bool, step: int) -> bool:
        """One optimiser step of ``net`` on ``loss``, unless ``finite`` (the loss and whatever else
        the caller checks) or the gradients are false on some rank: then False, nothing updated,
        and this step fails."""
        if step == self.nan_at_step and not self._refused:
            loss, finite = loss * float("nan"), False
        opt.zero_grad(set_to_none=True)
        ok = not self.dist.any_flag(not finite, self.device)
        if ok:
            if loss.requires_grad:  # no term with a weight depends on the network: nothing to back-propagate
                loss.backward()
            ok = not self.dist.any_flag(not finite_grads(net), self.device)
        if ok:
            opt.step()
        self._refused |= not ok
        return ok

    # --- checkpoints ---

    def save(self, task, step: int) -> Path | None:
        path = None
        if self.dist.is_main:
            st = {"step": step, **{k: o.state_dict() for k, o in task.optimizers.items()}, "rng": ck.rng_state(),
                  **task.state()}
            if self.schedule.on_nan is not None:
                st.update(lr_scale=self.lr_scale, rollbacks=self.rollbacks)
            meta = dict(task.meta, **{"pngan.step": str(step)})
            path = ck.save_checkpoint(self.run_dir, step, task.nets, st, dict.fromkeys(task.nets, meta),
                                      keep=self.schedule.keep_checkpoints, latest=next(iter(task.nets)))
        self.dist.barrier()
        return path

    def restore(self, task, ckpt_dir: Path) -> dict[str, Any]:
        for name, net in task.nets.items():
            if not (ckpt_dir / f"{name}.safetensors").is_file():
                raise PnganError(f"this checkpoint has no {name}.safetensors (written with another configuration?)",
                                 ckpt_dir)
            ck.load_weights_into(net, ckpt_dir / f"{name}.safetensors")
        st = ck.load_state(ckpt_dir)
        for key, opt in task.optimizers.items():
            if key in st:
                opt.load_state_dict(st[key])
        ck.set_rng_state(st.get("rng", {}))
        task.load_state(st)
        return st

    # --- the loop ---

    def _set_lr(self, task, step: int) -> float:
        lrs = task.learning_rates(step, self.lr_scale)
        for key, opt in task.optimizers.items():
            for grp in opt.param_groups:
                grp["lr"] = lrs[key]
        return next(iter(lrs.values()))

    def _batches(self, task, first: int):
        return batch_loader(task.batches(first, self.schedule.steps - first), self.schedule.num_workers, self.device,
                            self.dist.world_size)

    def _log(self, stats: StatsLog, step: int, terms: dict[str, float], lr: float, n: int, dt: float) -> None:
        if self.dist.enabled:  # the global batch's terms (the mean of the ranks' equal slices)
            vals = self.dist.all_reduce_mean(torch.tensor(list(terms.values()), dtype=torch.float64, device=self.device))
            terms = dict(zip(terms, vals.tolist()))
        row = {"step": step, **terms, "lr": lr, "sec_per_step": dt / max(n, 1)}
        if self.schedule.images_per_step:
            row["images_per_sec"] = n * self.schedule.images_per_step / max(dt, 1e-9)
        if self.timer.enabled:
            row.update(self.timer.averages(n))
        stats.write(row)
        self.timer.reset()

    def _recover(self, task, step: int, terms: dict[str, float], last_good: Path | None) -> int:
        """A failed step: roll back (returns the step to continue from) or raise DivergenceError."""
        s = self.schedule
        where = f"step {step}: non-finite loss or gradient ({', '.join(f'{k}={v:.4g}' for k, v in terms.items())})"
        good = last_good or (ck.latest_checkpoint(self.run_dir) or (None, None))[1]
        if s.on_nan == "rollback" and good is not None and self.rollbacks < s.max_rollbacks:
            self.rollbacks += 1
            self.lr_scale *= 0.5
            step = int(self.restore(task, good)["step"])
            log.warning("%s; rolled back to %s with the learning rate scaled by %g", where, good, self.lr_scale)
            return step
        raise DivergenceError(f"{where}; training stopped, weights not written; last good checkpoint: "
                              f"{good if good is not None else 'none'}")

    def run(self, task, config, resume: bool = False, progress: bool = True,
            stop_after: int | None = None) -> TrainResult:
        """Train ``task`` to ``schedule.steps`` (or, with ``stop_after``, stop there with a checkpoint,
        as an interruption would: training in pieces equals training in one go). ``config`` is
        written to RUN/config.yaml by a new run."""
        from pngan.config import save_yaml

        dist, s = self.dist, self.schedule
        start, last_good = 0, None
        latest = ck.latest_checkpoint(self.run_dir) if resume else None
        if latest is not None:
            st = self.restore(task, latest[1])
            start, last_good = int(st["step"]), latest[1]
            self.lr_scale, self.rollbacks = float(st.get("lr_scale", 1.0)), int(st.get("rollbacks", 0))
            if dist.is_main:
                log.info("resuming %s from step %d", self.run_dir, start)
        if dist.is_main and not resume:
            save_yaml(config, self.run_dir / "config.yaml")
        stats = StatsLog(self.run_dir / "stats.jsonl", enabled=dist.is_main, truncate_after=start if resume else None)
        bar = None
        if progress and dist.is_main:
            from tqdm import tqdm

            bar = tqdm(total=s.steps, initial=start, desc=task.name, unit="step", dynamic_ncols=True)
        it, step = self._batches(task, start), start
        t_log, n_log, interrupted = time.perf_counter(), 0, False
        try:
            with SigintFlag() as sigint:
                while step < s.steps:
                    self.timer.start()
                    lr = self._set_lr(task, step)
                    self._refused = False
                    terms = task.step(next(it), step)
                    if self._refused:
                        step = self._recover(task, step, terms, last_good)
                        self.nan_at_step = -1
                        it = self._batches(task, step)
                        if bar is not None:
                            bar.n = step
                            bar.refresh()
                        continue
                    step, n_log = step + 1, n_log + 1
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix({k.replace("loss_", ""): f"{v:.3g}" for k, v in terms.items()}, refresh=False)
                    if step % s.log_every == 0 or step == s.steps:
                        self._log(stats, step, terms, lr, n_log, time.perf_counter() - t_log)
                        t_log, n_log = time.perf_counter(), 0
                    if s.sample_every and dist.is_main and (step % s.sample_every == 0 or step == s.steps):
                        save_strip(self.run_dir / "samples" / f"step_{step:08d}.png", task.samples())
                    stop = dist.any_flag(sigint.hit, self.device) or (stop_after is not None and step >= stop_after)
                    if step % s.ckpt_every == 0 or step == s.steps or stop:
                        last_good = self.save(task, step)  # None on ranks > 0: they read the folder
                    if stop:
                        interrupted = True
                        break
        finally:
            if bar is not None:
                bar.close()
        return TrainResult(self.run_dir, step, interrupted)
