"""Rotary position embedding (rotate-half form) applied to queries and keys."""

from __future__ import annotations

import torch
from torch import nn


class Rotary(nn.Module):
    def __init__(self, head_dim: int, base: float = 10_000.0):
        super().__init__()
        inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self._cache: tuple[int, torch.device, torch.Tensor, torch.Tensor] | None = None

    def cos_sin(self, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin tables of shape [length, 1, head_dim], cached across calls of the same length."""
        stale = self._cache is None or self._cache[0] < length or self._cache[1] != device
        # tables built under inference_mode (sampling) cannot be saved for backward: rebuild them for training
        if stale or (self._cache[2].is_inference() and not torch.is_inference_mode_enabled()):
            positions = torch.arange(length, device=device, dtype=torch.float32)
            angles = torch.outer(positions, self.inv_freq.to(device))
            angles = torch.cat([angles, angles], dim=-1)[:, None, :]
            self._cache = (length, device, angles.cos(), angles.sin())
        return self._cache[2][:length], self._cache[3][:length]


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: [batch, length, heads, head_dim]; rotation computed in float32, returned in x's dtype."""
    rotated = x.float() * cos + rotate_half(x.float()) * sin
    return rotated.to(x.dtype)
