"""torchrun-native process groups: ``torchrun --nproc_per_node=N pngan train ...`` just works.

``init()`` reads RANK / WORLD_SIZE / LOCAL_RANK (set by torchrun), starts NCCL on CUDA or gloo on
CPU, and returns a :class:`Dist`. Without torchrun it is a single process (rank 0 of 1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as td


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    # a second process group for collectives issued inside the autograd graph (the global batch
    # mean of the relativistic losses), so that they never interleave with DDP's gradient buckets
    loss_group: object = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            td.barrier()

    def all_reduce_mean(self, t: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            t = t.clone()
            td.all_reduce(t)
            t /= self.world_size
        return t

    def batch_mean(self, t: torch.Tensor) -> torch.Tensor:
        """Mean over dim 0 of the GLOBAL batch (all ranks' slices), differentiable.

        Every rank holds an equal slice, so the global mean is the all-reduced sum of the local
        sums over ``world_size * B_local``. The backward all-reduces the incoming gradient (the
        mean's gradient depends on every rank's loss); with DDP's averaging of the parameter
        gradients this gives exactly the 1-process gradient of the global-batch loss."""
        if not self.enabled:
            return t.mean(dim=0, keepdim=True)
        n = t.shape[0] * self.world_size
        local = t.sum(dim=0, keepdim=True)
        return _AllReduceSum.apply(local, self.loss_group) / n

    def any_flag(self, flag: bool, device) -> bool:
        """True on every rank if ``flag`` is true on any rank."""
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        td.all_reduce(t, op=td.ReduceOp.MAX)
        return bool(t.item() > 0)


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the gradient of each rank's input is the sum over ranks of the output's
    gradients (every rank's loss depends on every rank's input)."""

    @staticmethod
    def forward(ctx, t, group):
        ctx.group = group
        out = t.detach().clone()
        td.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        g = grad.detach().clone()
        td.all_reduce(g, group=ctx.group)
        return g, None


def init(device: str = "auto") -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda") or str(device).startswith("cuda")
    if not td.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local)
        td.init_process_group("nccl" if use_cuda else "gloo")
        # destroy it before interpreter teardown (commands that do not call shutdown() themselves):
        # an undestroyed group can make a finished torchrun worker exit non-zero
        import atexit

        atexit.register(shutdown)
    return Dist(rank, world, local, loss_group=td.new_group(list(range(world))))


def resolve_device(device: str, dist: Dist) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and dist.enabled:
        return torch.device("cuda", dist.local_rank)
    return torch.device(device)


def batch_loader(batches: torch.utils.data.Dataset, requested_workers: int, device: torch.device, world_size: int):
    """An iterator over ``batches`` (a Dataset whose items are whole batches), prepared by
    ``data_workers(...)`` worker processes into pinned memory on CUDA: what both trainers use."""
    from pngan.signals import worker_ignores_stop_signals

    workers = data_workers(requested_workers, device, world_size)
    return iter(torch.utils.data.DataLoader(
        batches, batch_size=None, shuffle=False, num_workers=workers, pin_memory=device.type == "cuda",
        persistent_workers=False, prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=worker_ignores_stop_signals if workers > 0 else None))


def data_workers(requested: int, device: torch.device, world_size: int) -> int:
    """DataLoader worker processes per training process: ``requested`` if >= 0, else auto: on CUDA
    up to 4 (sharing the cores between the processes of this machine) so that batches are prepared
    off the main process and the GPU never waits; on CPU none, since the step already uses every
    core and workers would only compete with it."""
    if requested >= 0:
        return requested
    if device.type != "cuda":
        return 0
    return min(4, max(1, (os.cpu_count() or 1) // max(1, world_size) - 1))


def shutdown() -> None:
    if td.is_initialized():
        td.destroy_process_group()
