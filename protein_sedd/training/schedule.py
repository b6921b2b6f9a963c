"""The learning rate at each step: linear warm-up over `trainer.warmup_steps`, then constant or a cosine
decay to `trainer.min_lr_ratio` of `trainer.lr` at `trainer.max_steps` (`trainer.schedule`)."""

from __future__ import annotations

import math

from omegaconf import DictConfig


def lr_at(step: int, t: DictConfig) -> float:
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    if t.schedule == "cosine":
        progress = min(1.0, (step - t.warmup_steps) / max(1, t.max_steps - t.warmup_steps))
        return t.lr * (t.min_lr_ratio + (1 - t.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
    return t.lr
