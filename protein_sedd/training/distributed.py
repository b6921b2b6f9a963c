"""Data-parallel training with PyTorch's own engine (torchrun + DistributedDataParallel).

Under `torchrun` (WORLD_SIZE > 1) every rank runs the same trainer: batches are sharded by rank,
gradients are averaged by DDP, validation sums are reduced across ranks, and only rank 0 writes
the run directory. NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    nccl: bool = False  # NCCL reduces CUDA tensors only

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, requested: torch.device) -> torch.device:
        if requested.type == "cuda" and self.enabled:
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return requested

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over ranks (identity on one process)."""
        if not self.enabled:
            return values
        work = values.to(f"cuda:{self.local_rank}") if self.nccl else values.clone()
        dist.all_reduce(work, op=dist.ReduceOp.SUM)
        return work.to(values.device)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def init_distributed(device: torch.device) -> Distributed:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    return Distributed(dist.get_rank(), dist.get_world_size(), local_rank, dist.get_backend() == "nccl")


def shutdown(context: Distributed) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()
