"""Categorical draws by inverse CDF in float64.

Why float64: a float32 uniform has 24 bits, so every category whose probability mass is below ~6e-8, or
that sits in the tail of a cumulative sum near 1, is drawn at the wrong rate or never (a float32
Gumbel-max truncates the same way). Over a 1024-step sampler that visits each position hundreds of
times these small per-draw biases add up and measurably lower sample diversity (Zheng et al. 2024).
A float64 uniform and a float64 cumulative sum represent masses down to ~1e-16.
"""

from __future__ import annotations

import torch


def uniforms(shape, generator: torch.Generator, device) -> torch.Tensor:
    """float64 uniforms on [0, 1) from `generator` (which must live on `device`)."""
    return torch.rand(shape, generator=generator, device=device, dtype=torch.float64)


def sample_categorical(weights: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Index k drawn with probability weights[..., k] / weights.sum(-1), using the uniforms `u` [...].

    `weights` are non-negative and need not be normalised; a zero weight is never drawn. Inverse CDF:
    the first k whose cumulative weight exceeds u * total.
    """
    if weights.dtype != torch.float64 or u.dtype != torch.float64:
        raise TypeError("sample_categorical draws in float64: pass float64 weights and uniforms")
    cumulative = weights.cumsum(-1)
    target = (u * cumulative[..., -1]).unsqueeze(-1)
    index = torch.searchsorted(cumulative, target, right=True).squeeze(-1)
    return index.clamp(max=weights.shape[-1] - 1)  # u * total == total only through rounding
