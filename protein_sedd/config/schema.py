"""The settings schemas, declared once: each section of a run config (`model`, `trainer`, `data`) is a
dataclass whose fields give every key its type and, where bounded, its inclusive range:

    max_length: int = setting(128, 1, 16_384)

`config/checks.py` takes its type and range checks from these classes (`types_of`, `ranges_of`), the
network reads its section through `DDiTConfig` (model/config.py), and tests/test_config_schema.py checks
that the YAML groups in configs/ hold exactly these keys. A new setting is one field here and one YAML line.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass

from protein_sedd.config.limits import MAX_BATCH_SIZE, MAX_T_SAMPLES, MAX_TRAIN_STEPS


def setting(default, low=None, high=None):
    """A field with a default and an optional inclusive range [low, high]."""
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"range": None})
    bounds = None if low is None else (low, high)
    return dataclasses.field(default=default, metadata={"range": bounds})


def types_of(schema) -> dict[str, type]:
    """Each key's type: int, float, bool, str or list."""
    hints = typing.get_type_hints(schema)
    return {f.name: typing.get_origin(hints[f.name]) or hints[f.name] for f in dataclasses.fields(schema)}


def ranges_of(schema) -> dict[str, tuple]:
    """The bounded keys and their inclusive ranges."""
    return {f.name: f.metadata["range"] for f in dataclasses.fields(schema) if f.metadata.get("range")}


@dataclass
class TrainerSettings:
    """The `trainer` section (configs/trainer/*.yaml; see the comments there for what each does)."""

    batch_size: int = setting(64, 1, MAX_BATCH_SIZE)
    accumulate: int = setting(1, 1, 100_000)
    max_steps: int = setting(20_000, 1, MAX_TRAIN_STEPS)
    lr: float = setting(1.0e-3)
    schedule: str = setting("constant")
    min_lr_ratio: float = setting(0.1)
    warmup_steps: int = setting(200, 0, MAX_TRAIN_STEPS)
    weight_decay: float = setting(0.0)
    betas: list = setting([0.9, 0.98])
    grad_clip: float = setting(1.0)
    ema: float = setting(0.999)
    sampling_eps: float = setting(1.0e-3)
    log_every: int = setting(10, 1, MAX_TRAIN_STEPS)
    val_every: int = setting(500, 1, MAX_TRAIN_STEPS)
    val_sequences: int = setting(256, 0, 10_000_000)
    val_t_samples: int = setting(8, 1, MAX_T_SAMPLES)
    patience: int = setting(0, 0, MAX_TRAIN_STEPS)
    keep_best: bool = setting(True)
    checkpoint_every: int = setting(500, 1, MAX_TRAIN_STEPS)
    max_bad_steps: int = setting(20, 1, MAX_TRAIN_STEPS)
    compile: bool = setting(False)
    precision: str = setting("auto")


@dataclass
class DataSettings:
    """The keys every `data` section has (configs/data/*.yaml); the optional ones are checked by name."""

    name: str = setting("acyp")
    dedupe: bool = setting(True)
    valid_fraction: float = setting(0.02)
    test_fraction: float = setting(0.05)
    split_seed: int = setting(0)
    min_length: int = setting(1)
