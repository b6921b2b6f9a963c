"""Writing checkpoints during training, and reading back what `--resume` needs (`trainer_state.pt`).

A training checkpoint is a model folder (`protein_sedd.model.folder`: model.safetensors, config.yaml)
plus trainer_state.pt (optimiser, raw weights, batch position, noise generator). It is written into a
temporary folder and swapped in with renames, so a crash at any moment leaves the previous complete
checkpoint (at `checkpoint/` or, mid-swap, `checkpoint.old/`). The trainer state is read through
`weights_only`, so it never unpickles arbitrary objects.

`best/` (`trainer.keep_best`) is a model folder of the same kind without the trainer state: the EMA weights
of the scheduled validation with the lowest bound so far, swapped in the same way. Every command loads it
(`--checkpoint RUN/best`); it cannot be resumed (`--resume` continues from `checkpoint/`).
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import torch
from omegaconf import DictConfig

from protein_sedd.errors import UserError
from protein_sedd.io.atomic import new_file_mode, raise_no_space
from protein_sedd.model.folder import CHECKPOINT_DIR, first_non_finite, save_model_folder

TRAINER_STATE = "trainer_state.pt"
BEST_DIR = "best"  # the lowest-bound weights (trainer.keep_best)


def swap_folders(name: str) -> list[str]:
    """A folder the run swaps in whole and its two swap-time siblings (being written; the previous one)."""
    return [name, f"{name}.tmp", f"{name}.old"]


CHECKPOINT_FOLDERS = swap_folders(CHECKPOINT_DIR)


def save_checkpoint(
    run_dir: Path, model: torch.nn.Module, config: DictConfig, trainer_state: dict | None,
    name: str = CHECKPOINT_DIR,
) -> Path:  # fmt: skip
    """Write a checkpoint beside the current one (`RUN/name`), then swap it in; a failure keeps the
    current one.

    A full disk (or any error) while writing removes the half-written `name.tmp/` and leaves the last
    good checkpoint in place; the disk-full case is a `UserError` naming the folder.
    """
    final = run_dir / name
    refuse_non_finite(final, model, trainer_state)
    tmp, old = (run_dir / folder for folder in swap_folders(name)[1:])
    shutil.rmtree(tmp, ignore_errors=True)  # a crashed earlier save of this run
    try:
        with raise_no_space(final):
            tmp.mkdir(parents=True)
            save_model_folder(tmp, model, config)  # plain writes: the folder is swapped in whole below
            if trainer_state is not None:
                torch.save(trainer_state, tmp / TRAINER_STATE)
                (tmp / TRAINER_STATE).chmod(new_file_mode())
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def refuse_non_finite(where: Path, model: torch.nn.Module, trainer_state: dict | None) -> None:
    """Never save diverged weights: the previous checkpoint stays the last good one."""
    raw = (trainer_state or {}).get("model", {})
    for label, tensors in (("weights", model.state_dict()), ("raw weights", raw)):
        bad = first_non_finite(tensors)
        if bad is not None:
            raise UserError(
                f"{where}: not saved, the {label} hold NaN or infinite values ({bad!r}); the previous "
                "checkpoint is kept (try a lower trainer.lr)"
            )


def load_trainer_state(checkpoint_dir: Path):
    """trainer_state.pt as stored, unchecked: `TrainingState.load_state_dict` checks what it holds."""
    path = checkpoint_dir / TRAINER_STATE
    if not path.is_file():
        raise UserError(f"{path}: missing; this checkpoint cannot be resumed (it holds weights only)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0][:160]
        raise UserError(f"{path}: refused, it holds pickled objects other than tensors ({first})") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise UserError(f"{path}: unreadable trainer state ({type(err).__name__})") from None
    return state
