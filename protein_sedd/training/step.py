"""One optimiser step of a run: its micro-batches' forward and backward (score entropy, or the
autoregressive baseline's exact NLL), the validation bound of the EMA model, and the one host sync a step
takes (loss, gradient norm, stop flag), which skips a non-finite step on every rank alike.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch.nn.parallel import DistributedDataParallel

from protein_sedd.baselines.autoregressive import sequence_nll
from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.data.batches import encode_all
from protein_sedd.diffusion.likelihood import LN2
from protein_sedd.diffusion.loss import score_entropy_loss
from protein_sedd.errors import UserError
from protein_sedd.model.folder import CHECKPOINT_DIR
from protein_sedd.model.trained import TrainedModel
from protein_sedd.runtime.distributed import Distributed
from protein_sedd.training.state import TrainingState
from protein_sedd.training.stop import StopRequest


@dataclass
class Run:
    """What every step of a run uses besides its state: the loss, the validation set, the ranks."""

    cfg: DictConfig
    state: TrainingState
    forward_model: torch.nn.Module  # state.model as DDP and torch.compile wrap it
    model: TrainedModel  # the EMA network with the run's graph, noise schedule and config
    valid_tokens: list[torch.Tensor]  # this rank's share of the validation sequences
    dev: torch.device
    ranks: Distributed

    @classmethod
    def build(
        cls, cfg: DictConfig, state: TrainingState, valid_records, dev: torch.device, ranks: Distributed
    ) -> Run:
        # wrapped after a resume has loaded the weights: DDP starts every rank from rank 0's
        forward_model = state.model
        if ranks.enabled:
            device_ids = [dev.index] if dev.type == "cuda" else None
            forward_model = DistributedDataParallel(forward_model, device_ids=device_ids)
        if cfg.trainer.compile:
            forward_model = torch.compile(forward_model)
        valid_tokens = encode_all([r.sequence for r in valid_records])[ranks.rank :: ranks.world_size]
        model = TrainedModel(state.ema.model, cfg)
        return cls(cfg, state, forward_model, model, valid_tokens, dev, ranks)

    def autocast(self) -> contextlib.AbstractContextManager:
        precision = self.cfg.trainer.precision
        if precision == "bf16" or (precision == "auto" and self.dev.type == "cuda"):
            return torch.autocast(self.dev.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # one optimiser step's micro-batches

    def accumulate(self, stop: StopRequest, stop_group=None) -> tuple[torch.Tensor, int] | None:
        """Forward and backward over one step's micro-batches: the step's loss (on the device) and its
        residue count, or None when a stop arrives between micro-batches (the partial step is dropped)."""
        accumulate = self.cfg.trainer.accumulate
        step_loss, step_residues = torch.zeros((), device=self.dev), 0
        for micro in range(accumulate):
            if micro > 0 and stop.agreed(self.ranks, stop_group):
                return None
            x0, lengths = next(self.state.batches)
            residues = int(lengths.sum())  # counted on the host, before the copy
            x0, lengths = x0.to(self.dev, non_blocking=True), lengths.to(self.dev, non_blocking=True)
            # under DDP, average gradients once per optimiser step, not once per micro-batch
            last = micro == accumulate - 1
            sync = (
                self.forward_model.no_sync() if self.ranks.enabled and not last else contextlib.nullcontext()
            )
            with sync:
                with self.autocast():
                    per_sequence = self.per_sequence_loss(x0, lengths)
                loss = per_sequence.sum() / residues
                (loss / accumulate).backward()
            step_loss += loss.detach() / accumulate
            step_residues += residues
        return step_loss, step_residues

    def per_sequence_loss(self, x0: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.cfg.model.causal:  # the autoregressive baseline
            return sequence_nll(self.forward_model, x0, lengths, ALPHABET.mask_index, ALPHABET.pad_index)
        return score_entropy_loss(
            self.forward_model,
            self.model.graph,
            self.model.noise,
            x0,
            lengths,
            self.state.generator,
            self.cfg.trainer.sampling_eps,
            time_conditioning=self.cfg.model.time_conditioning,
        )

    # validation

    def validate(self, progress=None) -> tuple[float, float] | None:
        """The EMA model's -ELBO over every rank's validation sequences: nats/sequence, bits/residue.
        `progress(count)` is told of each batch of this rank's sequences scored."""
        t = self.cfg.trainer
        with self.autocast():
            nats, _ = self.model.bound(
                self.valid_tokens, t_samples=t.val_t_samples, batch_size=t.batch_size, seed=self.cfg.seed,
                progress=progress,
            )  # fmt: skip
        residues = sum(len(x) for x in self.valid_tokens)
        sums = torch.tensor([float(nats.sum()), len(self.valid_tokens), residues])
        total, count, residues = self.ranks.sum(sums)
        if count == 0:
            return None
        return float(total / count), float(total / residues / LN2)


def sync_step(
    step_loss: torch.Tensor, grad_norm: torch.Tensor, stop: StopRequest, ranks: Distributed
) -> tuple[float, float, bool]:
    """One host sync per step: the loss averaged over ranks, the gradient norms summed (one rank's
    non-finite norm makes the step skipped on every rank, never applied) and the stop flag."""
    synced = ranks.sum(
        torch.cat(
            [
                torch.stack([step_loss.float(), grad_norm.float()]).cpu(),
                torch.tensor([float(stop.signal is not None)]),
            ]
        )
    )
    return float(synced[0]) / ranks.world_size, float(synced[1]), bool(synced[2] > 0)


def skip_non_finite(loss: float, bad_steps: int, step: int, max_bad_steps: int, run_dir: Path, console):
    """Warn of a skipped step; too many in a row stop the run, its last checkpoint the last good one."""
    what = "loss" if not math.isfinite(loss) else "gradient norm"
    console.print(
        f"[yellow]warning[/]: non-finite {what} at step {step}; step skipped ({bad_steps} in a row)"
    )
    if bad_steps >= max_bad_steps:
        plural = "losses" if what == "loss" else "gradient norms"
        raise UserError(
            f"{bad_steps} non-finite {plural} in a row at step {step}; stopped with the last "
            f"good checkpoint in {run_dir / CHECKPOINT_DIR} (try a lower trainer.lr)"
        )
