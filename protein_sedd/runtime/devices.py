"""What a command computes on: the device (`--device`) and the number of CPU threads (`--threads`).

Left alone, torch runs as many intra-op threads as the machine has cores, whatever this process may use
and however many ranks share them; on a busy or shared machine that oversubscribes the cores and can cost
more than half the speed. So every heavy command chooses: `--threads N`, or by default $OMP_NUM_THREADS
when set (the usual way to pin it), else the cores this process may run on, shared among the local ranks.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from protein_sedd.errors import UserError

if TYPE_CHECKING:  # torch loads when a device or thread count is first set: after the entry point's settings
    import torch

DEVICES = ("auto", "cpu", "cuda")
THREADS_HELP = (
    "CPU threads for torch. 0: $OMP_NUM_THREADS if set, else the cores this process may use "
    "(shared among local ranks). On a busy machine fewer can be faster."
)


def select_device(name: str) -> torch.device:
    """`--device`: auto (CUDA when present), cpu or cuda."""
    import torch

    if name not in DEVICES:
        raise UserError(f"{{device}} {name!r}: choose auto, cpu or cuda", field="device")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError(
            "{device} cuda: no CUDA device is available here; use {device} cpu or auto", field="device"
        )
    return torch.device(name)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity: taskset, cgroups), not the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # no affinity call on macOS or Windows


def local_ranks() -> int:
    """Processes of this command on this machine: torchrun's LOCAL_WORLD_SIZE (else WORLD_SIZE), or 1."""
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE") or os.environ.get("WORLD_SIZE") or 1))


def default_threads(ranks: int | None = None) -> int:
    """$OMP_NUM_THREADS when set, else the available cores divided among `ranks` (default: local ranks)."""
    pinned = os.environ.get("OMP_NUM_THREADS", "").strip()
    if pinned.isdigit() and int(pinned) > 0:
        return int(pinned)
    return max(1, available_cores() // (ranks or local_ranks()))


# GNU OpenMP (torch's CPU threads) lets an idle thread spin this many times before it sleeps; see
# `calm_openmp`. The library's own default is 300,000, which starves a second process on the same cores.
# Measured with `design --n 64 --steps 256` on 2 cores (workflows/benchmarks/threads.py): alone / two at
# once, 300,000: 7.9 s / 93.7 s; 10,000: 7.9 / 25.5; 3,000: 8.5 / 15.4; 1,000: 11.2 / 13.1 (a fast
# network's short regions pay a wake-up each; 1,000 was chosen before the design pass ran in bf16).
SPIN_COUNT = "3000"


def calm_openmp(environ=os.environ) -> str | None:
    """Before torch first loads (the entry point): idle OpenMP threads spin briefly, then sleep.

    With GNU OpenMP's default spin, two commands on two cores each keep spinning threads on the cores the
    other needs, and both run many times slower; sleeping at once (OMP_WAIT_POLICY=PASSIVE) slows one
    command alone, since every parallel region then wakes its threads. GOMP_SPINCOUNT=SPIN_COUNT keeps
    the short waits between regions in a lone run and yields the cores soon after
    (workflows/benchmarks/threads.py). A user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT wins, and
    PROTEIN_SEDD_OPENMP=off leaves OpenMP as it is. Returns the value set, or None. The child processes
    of `--devices N` inherit it.
    """
    if environ.get("PROTEIN_SEDD_OPENMP", "").strip().lower() == "off":
        return None
    if "OMP_WAIT_POLICY" in environ or "GOMP_SPINCOUNT" in environ:
        return None
    environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    return SPIN_COUNT


def check_threads(threads: int) -> None:
    """`--threads`: 0 (the default choice) or 1 .. the available cores; more only oversubscribes them."""
    cores = available_cores()
    if threads < 0 or threads > cores:
        raise UserError(
            f"{{threads}} {threads}: give 1 to {cores} (the cores this process may use), "
            "or 0 for the default",
            field="threads",
        )


@contextlib.contextmanager
def cpu_threads(threads: int) -> Iterator[int]:
    """Run the block with `threads` torch threads (0: `default_threads()`), then restore the count."""
    check_threads(threads)
    chosen = threads or default_threads()
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(chosen)
    try:
        yield chosen
    finally:
        torch.set_num_threads(before)


def inference_autocast(device: torch.device):
    """Mixed precision for evaluation passes: bf16 autocast on CUDA, full precision on the CPU (scores are
    numbers users compare across machines; designs choose with `--precision`, runtime/precision.py)."""
    from protein_sedd.runtime.precision import network_autocast

    return network_autocast(device, "bf16" if device.type == "cuda" else "fp32")
