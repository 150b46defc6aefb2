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

    def any_flag(self, flag: bool, device) -> bool:
        """True on every rank if ``flag`` is true on any rank."""
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        td.all_reduce(t, op=td.ReduceOp.MAX)
        return bool(t.item() > 0)


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
    return Dist(rank, world, local)


def resolve_device(device: str, dist: Dist) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and dist.enabled:
        return torch.device("cuda", dist.local_rank)
    return torch.device(device)


def shutdown() -> None:
    if td.is_initialized():
        td.destroy_process_group()
