"""The training state: everything `--resume` needs to continue a run exactly where it stopped.

Raw weights, EMA, optimiser, batch position, noise generator, step, the early-stopping count and the
dropout generator (both optional: checkpoints from before `trainer.patience` lack the count and start a fresh
one; those from before `dropout_rng` continue with a reseeded dropout generator, exact only at dropout 0).
Dropout draws from the model device's default generator, not from the noise generator, so it is saved and
rewound beside it. `state_dict()` is what
trainer_state.pt holds, and `load_state_dict()` checks a loaded one against this run before taking any
of it: the keys of trainer_state.pt and their checks live here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig

from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.data.batches import BatchStream
from protein_sedd.errors import UserError
from protein_sedd.model.folder import check_weights, first_non_finite
from protein_sedd.model.networks import build_network, start_network
from protein_sedd.runtime.distributed import Distributed
from protein_sedd.training.checkpoint import TRAINER_STATE
from protein_sedd.training.early_stopping import EarlyStopping, check_early_stopping_state
from protein_sedd.training.ema import EMA
from protein_sedd.training.init_from import load_parent_weights

STATE_TYPES = {
    "step": int, "model": dict, "ema": dict, "optimizer": dict, "batches": dict, "generator": torch.Tensor,
}  # fmt: skip


def noise_seed(seed: int, rank: int, step: int = 0) -> int:
    """The seed of a rank's noise generator at `step`: ranks draw different noise (see `load_state_dict`)."""
    return seed + 1 + 7919 * rank + step


@dataclass
class TrainingState:
    model: torch.nn.Module  # the raw weights, trained by the optimiser
    ema: EMA
    optimizer: torch.optim.Optimizer
    batches: BatchStream
    generator: torch.Generator  # the noise of the diffusion loss
    seed: int
    rank: int = 0
    step: int = 0  # optimiser steps taken
    early_stopping: EarlyStopping = field(default_factory=EarlyStopping)

    def state_dict(self) -> dict:
        return {
            "dropout_rng": _dropout_rng(self.model),
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "batches": self.batches.state_dict(),
            "generator": self.generator.get_state(),
            "early_stopping": self.early_stopping.state_dict(),
        }

    def load_state_dict(self, state, checkpoint_dir: Path) -> None:
        """Take a state read from `checkpoint_dir`; anything that does not fit is a UserError naming it.

        Only rank 0's generator is checkpointed: the other ranks reseed theirs from the step, so they
        still draw noise different from rank 0's and from each other's.
        """
        path = checkpoint_dir / TRAINER_STATE
        check_state(state, path)
        for key, module in (("model", self.model), ("ema", self.ema.model)):
            check_weights(module, state[key], checkpoint_dir)
        try:
            self.model.load_state_dict(state["model"])
            self.ema.load_state_dict(state["ema"])
            self.optimizer.load_state_dict(state["optimizer"])
            check_optimizer_shapes(self.model, self.optimizer)
            self.batches.load_state_dict(state["batches"])
            if self.rank == 0:
                self.generator.set_state(state["generator"])
                if "dropout_rng" in state:
                    _set_dropout_rng(self.model, state["dropout_rng"])
        except (ValueError, RuntimeError, KeyError, TypeError) as err:
            first = " ".join(str(err).split())[:160]
            raise UserError(f"{path}: does not fit this run ({first})") from None
        self.step = state["step"]
        if "early_stopping" in state:
            self.early_stopping.load_state_dict(state["early_stopping"])
        if self.rank != 0:
            self.generator.manual_seed(noise_seed(self.seed, self.rank, self.step))

    def position(self) -> tuple[dict, torch.Tensor, torch.Tensor]:
        """Where the batches, the noise and dropout stand now; `rewind` goes back there."""
        return self.batches.state_dict(), self.generator.get_state(), _dropout_rng(self.model)

    def rewind(self, position: tuple[dict, torch.Tensor, torch.Tensor]) -> None:
        """Back to an earlier `position`: the batches, noise and dropout masks drawn since are drawn again."""
        batches, generator, dropout = position
        self.batches.load_state_dict(batches)
        self.generator.set_state(generator)
        _set_dropout_rng(self.model, dropout)


def _dropout_rng(model: torch.nn.Module) -> torch.Tensor:
    """The state of the generator dropout draws from: the default one of the model's device."""
    device = next(model.parameters()).device
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


def _set_dropout_rng(model: torch.nn.Module, state: torch.Tensor) -> None:
    """Take a saved dropout generator state; one from another kind of device (a GPU run resumed on a CPU)
    does not fit this one's generator and is left: that run continues with a reseeded dropout generator."""
    device = next(model.parameters()).device
    if state.numel() != _dropout_rng(model).numel():
        return
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    else:
        torch.set_rng_state(state)


def check_optimizer_shapes(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """AdamW itself would only fail at its first step on moments that do not match their parameter."""
    for param in model.parameters():
        for key, value in optimizer.state.get(param, {}).items():
            if key != "step" and (not torch.is_tensor(value) or value.shape != param.shape):
                raise ValueError(f"optimizer state {key!r} does not match a parameter's shape")


def check_state(state, path: Path) -> None:
    """The structure `--resume` relies on: keys, types, whole numbers and finite weights."""

    def fail(problem: str):
        raise UserError(f"{path}: malformed trainer state ({problem}); resume from another copy of the run")

    if not isinstance(state, dict):
        fail(f"a {type(state).__name__}, expected a mapping")
    for key, kind in STATE_TYPES.items():
        if key not in state:
            fail(f"{key!r} missing")
        if isinstance(state[key], bool) or not isinstance(state[key], kind):
            fail(f"{key!r} is a {type(state[key]).__name__}, expected {kind.__name__}")
    if state["step"] < 0:
        fail(f"step {state['step']} is negative")
    for key in ("model", "ema"):
        if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state[key].items()):
            fail(f"{key!r} is not a mapping of names to tensors")
        bad = first_non_finite(state[key])
        if bad is not None:
            fail(f"{key!r} weight {bad!r} holds NaN or infinite values")
    batches = state["batches"]
    if not all(type(batches.get(k)) is int and batches[k] >= 0 for k in ("epoch", "offset")):
        fail("'batches' needs whole numbers 'epoch' and 'offset' >= 0")
    optimizer = state["optimizer"]
    if not isinstance(optimizer.get("state"), dict) or not isinstance(optimizer.get("param_groups"), list):
        fail("'optimizer' needs 'state' and 'param_groups'")
    for key in ("generator", "dropout_rng"):
        if key in state and (not isinstance(state[key], torch.Tensor) or state[key].dtype != torch.uint8):
            fail(f"{key!r} is not a generator state (uint8 tensor)")
    if "early_stopping" in state:
        problem = check_early_stopping_state(state["early_stopping"])
        if problem is not None:
            fail(f"'early_stopping': {problem}")


def fresh_state(
    cfg: DictConfig,
    train_records,
    dev: torch.device,
    ranks: Distributed,
    from_parent: bool = True,
    weights=None,
) -> TrainingState:
    """A fresh state at step 0: the model initialised from `cfg.seed` (or, in a fine-tuning run and when
    `from_parent`, from the parent's weights, the EMA too), the batches at their start."""
    t = cfg.trainer
    torch.manual_seed(cfg.seed)
    # a new run starts where its network kind starts (ESM-2: its pretrained weights); a resumed run or a
    # fine-tune builds the architecture alone, its weights read next (no pretrained weights needed)
    new = from_parent and cfg.get("init_from") is None
    model = (start_network if new else build_network)(cfg.model).to(dev)
    if from_parent and cfg.get("init_from") is not None:
        load_parent_weights(model, cfg.init_from)
    ema = EMA(model, t.ema)  # a copy of the model: a fine-tuning run's EMA starts at the parent
    fused = dev.type == "cuda"
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay, fused=fused
    )
    batches = BatchStream(
        train_records.tokens(),
        t.batch_size,
        cfg.seed,
        ALPHABET.pad_index,
        ranks.rank,
        ranks.world_size,
        weights,  # redundancy weights: batches drawn by weight (None: shuffled as before)
    )
    generator = torch.Generator(device=dev).manual_seed(noise_seed(cfg.seed, ranks.rank))
    return TrainingState(model, ema, optimizer, batches, generator, cfg.seed, ranks.rank)
