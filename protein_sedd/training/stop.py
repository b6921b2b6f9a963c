"""Stopping by signal: SIGINT/SIGTERM set a flag that every rank reads at the same point of the loop."""

from __future__ import annotations

import contextlib
import signal

import torch

from protein_sedd.runtime.distributed import Distributed


class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop checkpoints the last completed step and exits cleanly.

    The flag is looked at between micro-batches too, so a large `trainer.accumulate` does not delay a
    pre-emption by a whole step: the partial step is dropped, never applied half-accumulated.
    """

    def __init__(self):
        self.signal: int | None = None
        self._previous: dict = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signal = signum

    def agreed(self, ranks: Distributed, group=None) -> bool:
        """Whether any rank was asked to stop; every rank calls this at the same point of the loop."""
        flag = torch.tensor([float(self.signal is not None)])
        if ranks.enabled:  # a CPU all-reduce (gloo `group` under NCCL): it never waits for the GPU
            torch.distributed.all_reduce(flag, group=group)
        return bool(flag[0] > 0)

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
