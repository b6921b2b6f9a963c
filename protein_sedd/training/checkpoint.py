"""Checkpoints: a directory with model.safetensors (EMA weights), config.yaml and trainer_state.pt.

Written into a temporary directory and swapped in with renames, so a crash at any moment leaves the
previous complete checkpoint (at `checkpoint/` or, mid-swap, `checkpoint.old/`). Loading never
unpickles arbitrary objects: weights come from safetensors, trainer state through weights_only.
"""

from __future__ import annotations

import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from protein_sedd.errors import UserError
from protein_sedd.model import DDiT, DDiTConfig

WEIGHTS = "model.safetensors"
CONFIG = "config.yaml"
TRAINER_STATE = "trainer_state.pt"
CHECKPOINT_DIR = "checkpoint"


def save_checkpoint(
    run_dir: Path, model: torch.nn.Module, config: DictConfig, trainer_state: dict | None
) -> Path:
    final = run_dir / CHECKPOINT_DIR
    tmp, old = run_dir / f"{CHECKPOINT_DIR}.tmp", run_dir / f"{CHECKPOINT_DIR}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(weights, str(tmp / WEIGHTS), metadata={"format": "pt"})
    OmegaConf.save(config, tmp / CONFIG)
    if trainer_state is not None:
        torch.save(trainer_state, tmp / TRAINER_STATE)
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def resolve_checkpoint_dir(path: str | Path) -> Path:
    """Accept a checkpoint directory or a run directory holding `checkpoint/` (or a crash-time `.old`)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such checkpoint or run directory")
    if not path.is_dir():
        raise UserError(
            f"{path}: not a directory; pass a run directory (from `protein-sedd train`) or its checkpoint/"
        )
    for candidate in (path, path / CHECKPOINT_DIR, path / f"{CHECKPOINT_DIR}.old"):
        if (candidate / WEIGHTS).is_file() and (candidate / CONFIG).is_file():
            return candidate
    raise UserError(
        f"{path}: not a protein-sedd checkpoint "
        f"(expected {WEIGHTS} and {CONFIG} in it or in {CHECKPOINT_DIR}/)"
    )


@dataclass
class Checkpoint:
    model: DDiT
    config: DictConfig
    path: Path


def load_config(checkpoint_dir: Path) -> DictConfig:
    try:
        return OmegaConf.load(checkpoint_dir / CONFIG)
    except Exception as err:  # yaml errors come in many types
        raise UserError(f"{checkpoint_dir / CONFIG}: unreadable config ({type(err).__name__})") from None


def check_weights(model: torch.nn.Module, weights: dict, where: Path) -> None:
    """Refuse weights that do not match the config's architecture, naming the first mismatch."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        what = f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}"
        raise UserError(
            f"{where}: weights do not match config.yaml "
            f"({what}; {len(missing)} missing, {len(unexpected)} unexpected)"
        )
    for name, tensor in expected.items():
        if tuple(weights[name].shape) != tuple(tensor.shape):
            raise UserError(
                f"{where}: weights do not match config.yaml: "
                f"{name!r} has shape {tuple(weights[name].shape)}, "
                f"the config implies {tuple(tensor.shape)}"
            )


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    checkpoint_dir = resolve_checkpoint_dir(path)
    config = load_config(checkpoint_dir)
    if "model" not in config:
        raise UserError(
            f"{checkpoint_dir / CONFIG}: no 'model' section; not a protein-sedd checkpoint config"
        )
    model = DDiT(DDiTConfig.from_dict(OmegaConf.to_container(config.model)))
    try:
        weights = load_file(str(checkpoint_dir / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as err:
        raise UserError(f"{checkpoint_dir / WEIGHTS}: unreadable safetensors file ({err})") from None
    check_weights(model, weights, checkpoint_dir / WEIGHTS)
    model.load_state_dict(weights)
    return Checkpoint(model.to(device).eval(), config, checkpoint_dir)


def load_trainer_state(checkpoint_dir: Path) -> dict:
    path = checkpoint_dir / TRAINER_STATE
    if not path.is_file():
        raise UserError(f"{path}: missing; this checkpoint cannot be resumed (it holds weights only)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0][:160]
        raise UserError(f"{path}: refused, it holds pickled objects other than tensors ({first})") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise UserError(f"{path}: unreadable trainer state ({type(err).__name__})") from None
