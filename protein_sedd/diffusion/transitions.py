"""Reverse-step transition weights of the two graphs, from scores to unnormalised probabilities.

`score` is exp(log score) over the N real tokens, float64 [..., N]; `d` is the size of a step from t to
s < t: the noise it removes, sigma_bar(t) - sigma_bar(s), for analytic; the rate times the step,
sigma(t) (t - s), for euler (`sampling.step_sizes`). Every function returns non-negative weights for
`sample_categorical`.

Absorbing (mask = the extra last column "stay masked"):
- analytic (Tweedie tau-leaping, SEDD Alg. 2): p(y) = expm1(d) score[y], stay = 1 - sum_y p(y), clamped at 0;
- euler: p(y) = d score[y], stay = the rest;
- denoise (the last step, to t = 0): proportional to score[y], the mask column dropped.

Uniform (Q = 11^T / N - I, so exp(dQ) = e^-d I + (1 - e^-d) 11^T / N):
- analytic: p(y) proportional to [exp(-dQ) s]_y * exp(dQ)[x, y], s = score with s[x] = 1, clamped at 0;
- euler: p(y) = d s[y] / N for y != x, the current token keeps the rest;
- denoise: the analytic step over the remaining noise sigma_bar(t_end).
"""

from __future__ import annotations

import math

import torch

PREDICTORS = ("analytic", "euler")


def absorbing_step_weights(score: torch.Tensor, d: float, predictor: str) -> torch.Tensor:
    """[..., N + 1]: N real tokens, then "stay masked"."""
    if predictor == "analytic":
        jump = math.expm1(d) * score
    elif predictor == "euler":
        jump = d * score
    else:
        raise ValueError(f"unknown predictor {predictor!r}")
    stay = (1 - jump.sum(-1, keepdim=True)).clamp(min=0)
    return torch.cat([jump, stay], dim=-1)


def absorbing_denoise_weights(score: torch.Tensor) -> torch.Tensor:
    """[..., N]: the Tweedie step to t = 0 with the mask column dropped is proportional to the score."""
    return score


def _with_current_one(score: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The score vector with s[x] = 1 (the ratio of a sequence to itself); x must hold real tokens."""
    return score.scatter(-1, x.unsqueeze(-1), 1.0)


def uniform_step_weights(score: torch.Tensor, x: torch.Tensor, d: float, predictor: str) -> torch.Tensor:
    """[..., N] reverse weights for current real tokens x [...]."""
    n = score.shape[-1]
    s = _with_current_one(score, x)
    current = torch.nn.functional.one_hot(x, n).to(torch.float64)
    if predictor == "euler":
        jump = (d / n) * s * (1 - current)
        return jump + current * (1 - jump.sum(-1, keepdim=True)).clamp(min=0)
    if predictor != "analytic":
        raise ValueError(f"unknown predictor {predictor!r}")
    # exp(-dQ) s = e^d s - expm1(d) mean(s); exp(dQ)[x, y] = e^-d [y == x] - expm1(-d) / N
    staggered = math.exp(d) * s - math.expm1(d) * s.mean(-1, keepdim=True)
    forward = math.exp(-d) * current - math.expm1(-d) / n
    return (staggered * forward).clamp(min=0)
