"""Checkpoints as every command reads them: find one, check it, load the network and its config.

A checkpoint is a folder holding `model.safetensors` (the EMA weights) and `config.yaml` (the resolved run
config: model, graph, noise, alphabet, training lengths, dataset record). It is found as given, inside a
run directory (`RUN/checkpoint/`, or `checkpoint.old/` when a crash struck mid-swap), by the name of a
model bundled in the package (`acyp-tiny`, in `protein_sedd/pretrained/`), or by a Hugging Face Hub id.
Loading never unpickles anything: weights come from safetensors, and the config is bounded and validated
before a model is built.
Writing checkpoints is training's business (`protein_sedd.training.checkpoint`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from safetensors import SafetensorError
from safetensors.torch import load_file

from protein_sedd.config_checks import validate_checkpoint_config
from protein_sedd.config_files import load_config_file
from protein_sedd.errors import UserError
from protein_sedd.model import DDiT, DDiTConfig
from protein_sedd.model_folder import CHECKPOINT_DIR, CONFIG, WEIGHTS

BUNDLED_DIR = Path(__file__).resolve().parent / "pretrained"
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
    A path that exists here always wins; then bundled names; then Hub ids (`protein_sedd.hub`)."""
    from protein_sedd.hub import fetch, is_hub_id

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


def load_config(checkpoint_dir: Path) -> DictConfig:
    """The checkpoint's config, bounded (see config_files) and validated before any model is built."""
    config = load_config_file(checkpoint_dir / CONFIG)
    validate_checkpoint_config(config, checkpoint_dir / CONFIG)
    return config


def first_non_finite(tensors: dict) -> str | None:
    """The name of the first floating-point tensor holding a NaN or an infinity, or None."""
    for name, tensor in tensors.items():
        floating = isinstance(tensor, torch.Tensor) and tensor.is_floating_point()
        if floating and not torch.isfinite(tensor).all():
            return name
    return None


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


def load_checkpoint(
    source: str | Path | None = None, device: str | torch.device = "cpu", revision: str | None = None
) -> Checkpoint:
    """The network (EMA weights, eval mode) and config of a checkpoint; None: the default bundled model."""
    checkpoint_dir = resolve_checkpoint_dir(DEFAULT_MODEL if source is None else source, revision)
    config = load_config(checkpoint_dir)
    model = DDiT(DDiTConfig.from_dict(OmegaConf.to_container(config.model)))
    try:
        weights = load_file(str(checkpoint_dir / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as err:
        raise UserError(f"{checkpoint_dir / WEIGHTS}: unreadable safetensors file ({err})") from None
    check_weights(model, weights, checkpoint_dir / WEIGHTS)
    bad = first_non_finite(weights)
    if bad is not None:  # a diverged run: its designs would be all X
        raise UserError(f"{checkpoint_dir / WEIGHTS}: weight {bad!r} holds NaN or infinite values; unusable")
    model.load_state_dict(weights)
    return Checkpoint(model.to(device).eval(), config, checkpoint_dir)
