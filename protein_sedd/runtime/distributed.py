"""Data parallelism with PyTorch's own engine (torchrun + torch.distributed), for every command.

Under `torchrun` (WORLD_SIZE > 1) every rank runs the same command. `train` shards batches and averages
gradients with DDP; `design` and `fold-eval` split their work into pieces fixed by the inputs alone, run
piece k on rank k mod N and gather the results on rank 0. Only rank 0 writes files or prints.
NCCL on CUDA, gloo on CPU. `--devices N` launches N local ranks through torch's elastic launcher.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from protein_sedd.errors import UserError
from protein_sedd.runtime.devices import default_threads

T = TypeVar("T")


def world_size_from_env() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0, or no torchrun at all: the one process that prints and writes."""
    return int(os.environ.get("RANK", "0")) == 0


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

    def owns(self, piece: int) -> bool:
        """Work pieces are dealt round-robin: piece k runs on rank k mod world_size."""
        return piece % self.world_size == self.rank

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over ranks (identity on one process)."""
        if not self.enabled:
            return values
        work = values.to(f"cuda:{self.local_rank}") if self.nccl else values.clone()
        dist.all_reduce(work, op=dist.ReduceOp.SUM)
        return work.to(values.device)

    def gather(self, value: T) -> list[T] | None:
        """Every rank's `value` (picklable), in rank order, on rank 0; None on the other ranks."""
        if not self.enabled:
            return [value]
        gathered = [None] * self.world_size if self.is_main else None
        dist.gather_object(value, gathered, dst=0)
        return gathered

    def from_main(self, compute: Callable[[], T]) -> T:
        """Run `compute` on rank 0 only and give its result to every rank; a UserError there ends them all."""
        if not self.enabled:
            return compute()
        payload: list[Any] = [None]
        if self.is_main:
            try:
                payload[0] = ("ok", compute())
            except UserError as err:
                payload[0] = ("error", (err.template, err.fields))
        dist.broadcast_object_list(payload, src=0)
        kind, value = payload[0]
        if kind == "error":
            raise UserError(value[0], field=value[1])  # printed by rank 0 only (see cli.main)
        return value

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def init_distributed(device: torch.device) -> Distributed:
    world_size = world_size_from_env()
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


@contextlib.contextmanager
def distributed(device: torch.device) -> Iterator[Distributed]:
    """The process group for one command (a single-process no-op outside torchrun).

    On success every rank meets at a barrier before the group is torn down, so that no rank exits
    while a peer's last message is still in flight (gloo aborts the process then). A UserError is met
    by every rank alike, so the group is still torn down; after any other error it is left alone,
    because tearing it down while a live peer waits in a collective can hang.
    """
    context = init_distributed(device)
    try:
        yield context
    except UserError:
        shutdown(context)
        raise
    else:
        context.barrier()
        shutdown(context)


def check_devices(devices: int, device: str) -> None:
    """`--devices N`: at least 1, and no more than the visible GPUs when running on CUDA."""
    if devices < 1:
        raise UserError(f"--devices {devices}: must be >= 1")
    if devices > 1 and world_size_from_env() > 1:
        raise UserError("--devices launches its own ranks; under torchrun leave it out")
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if devices > 1 and cuda and devices > torch.cuda.device_count():
        raise UserError(
            f"--devices {devices}: only {torch.cuda.device_count()} CUDA device(s) visible; "
            "give at most that many (or --device cpu for gloo processes)"
        )


def launch_ranks(devices: int, argv: list[str]) -> int:
    """Run `python -m protein_sedd ARGV` as `devices` local ranks; returns their exit code.

    The same engine as `torchrun --standalone --nproc-per-node N`, called as a library so that a rank
    that stops on a user mistake leaves its one `error:` line, not the launcher's traceback.
    """
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    if "OMP_NUM_THREADS" not in os.environ:  # N ranks share the cores instead of each taking all of them
        os.environ["OMP_NUM_THREADS"] = str(default_threads(ranks=devices))
    with tempfile.TemporaryDirectory(prefix="protein-sedd-ranks-") as launcher_files:  # removed after
        config = LaunchConfig(
            min_nodes=1,
            max_nodes=1,
            nproc_per_node=devices,
            run_id=str(uuid.uuid4()),
            rdzv_backend="c10d",
            rdzv_endpoint="localhost:0",
            max_restarts=0,
            logs_specs=DefaultLogsSpecs(log_dir=launcher_files),
        )
        try:
            elastic_launch(config, sys.executable)("-m", "protein_sedd", *argv)
        except ChildFailedError as err:
            _, first = err.get_first_failure()  # the root cause; the launcher stops the other ranks
            return first.exitcode if first.exitcode > 0 else 1
        except SignalException:
            return 130  # the ranks got the signal too and checkpointed (train) or stopped
    return 0
