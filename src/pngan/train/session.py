"""What both trainers (``pngan train`` and ``pngan train-denoiser``) do before their first step.

``start_run`` starts the process group (torchrun) or a single process, picks the device, sets
the CPU thread count, checks that the global batch splits evenly over the processes, and lets
rank 0 alone create (or, with ``resume``, check) the run folder. A run-folder error on rank 0
stops every rank with rank 0's message, instead of leaving the others waiting at a barrier.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from pngan.errors import PnganError
from pngan.train.distributed import Dist


@dataclass
class RunSession:
    dist: Dist
    device: torch.device
    run_dir: Path


def start_run(out: str | Path, resume: bool, *, device: str = "auto", threads: int = 0,
              global_batch: int | None = None) -> RunSession:
    from pngan.train import checkpoint as ck
    from pngan.train.distributed import init as dist_init
    from pngan.train.distributed import resolve_device

    dist = dist_init(device)
    dev = resolve_device(device, dist)
    if threads > 0:
        torch.set_num_threads(threads)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    run_dir = Path(out)
    if global_batch is not None and global_batch % dist.world_size:
        raise PnganError(f"data.batch_size={global_batch} (the global batch) is not divisible by the "
                         f"{dist.world_size} processes")
    prep_error = None
    if dist.is_main:
        try:
            ck.prepare_run_dir(run_dir, resume)
        except PnganError as e:
            prep_error = e
    # every rank stops on rank 0's run-folder error (instead of waiting forever at a barrier)
    if dist.any_flag(prep_error is not None, dev):
        raise prep_error or PnganError("the run folder was refused by rank 0 (see its message)", run_dir)
    if resume and dist.is_main:
        ck.clean_partial(run_dir)
    return RunSession(dist, dev, run_dir)
