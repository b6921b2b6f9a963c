"""Checkpoints as every command reads them: find one, check it, load the network and its config.

A checkpoint is a folder holding `model.safetensors` (the EMA weights) and `config.yaml` (the resolved run
config: model, graph, noise, alphabet, training lengths, dataset record). It is found as given, inside a
run directory (`RUN/checkpoint/`, or `checkpoint.old/` when a crash struck mid-swap), by the name of a
model bundled in the package (`acyp-tiny`, in `protein_sedd/pretrained/`), or by a Hugging Face Hub id.
Loading is the model folder's (`protein_sedd.model.folder`): weights from safetensors, never unpickled, and
the config bounded and validated before a model is built. Writing checkpoints is training's business
(`protein_sedd.training.checkpoint`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from protein_sedd.errors import UserError
from protein_sedd.model import DDiT
from protein_sedd.model.folder import CHECKPOINT_DIR, CONFIG, WEIGHTS, load_model_folder

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "pretrained"
DEFAULT_MODEL = "acyp-tiny"


def bundled_names() -> list[str]:
    """The models that ship inside this installation."""
    if not BUNDLED_DIR.is_dir():
        return []
    return sorted(p.name for p in BUNDLED_DIR.iterdir() if (p / WEIGHTS).is_file())


def bundled_checkpoint(name: str = DEFAULT_MODEL) -> Path:
    path = BUNDLED_DIR / name
    if not (path / WEIGHTS).is_file():
        raise UserError(
            f"no bundled model {name!r} in this installation; "
            "pass {source} RUN_DIR (a run directory from `protein-sedd train`)",
            field="source",
        )
    return path


def resolve_checkpoint_dir(source: str | Path, revision: str | None = None) -> Path:
    """A checkpoint directory, a run directory holding `checkpoint/` (or a crash-time `.old`), a saved
    model folder, the name of a bundled model, or a Hugging Face Hub id (`user/repo`, at `revision`).
    A path that exists here always wins; then bundled names; then Hub ids (`protein_sedd.model.hub`)."""
    from protein_sedd.model.hub import fetch, is_hub_id

    path = Path(source).expanduser()
    if not path.exists() and str(source) in bundled_names():
        return bundled_checkpoint(str(source))
    if not path.exists() and is_hub_id(str(source)):
        path = fetch(str(source), revision)
    if not path.exists():
        raise UserError(
            f"{path}: no such checkpoint or run directory (bundled models: {', '.join(bundled_names())})"
        )
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


def load_checkpoint(
    source: str | Path | None = None, device: str | torch.device = "cpu", revision: str | None = None
) -> Checkpoint:
    """The network (EMA weights, eval mode) and config of a checkpoint; None: the default bundled model;
    `esm2:ID`: ESM-2 as it was pretrained (model/esm2.py)."""
    if source is not None and str(source).startswith("esm2:") and not Path(source).exists():
        from protein_sedd.model.esm2 import zero_shot

        network, config, folder = zero_shot(str(source), revision, device)
        return Checkpoint(network, config, folder)
    checkpoint_dir = resolve_checkpoint_dir(DEFAULT_MODEL if source is None else source, revision)
    network, config = load_model_folder(checkpoint_dir, device)
    return Checkpoint(network, config, checkpoint_dir)
