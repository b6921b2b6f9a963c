"""Noise schedules: total noise sigma_bar(t) and rate sigma(t) = d sigma_bar / dt on t in [0, 1]."""

from __future__ import annotations

import math

import torch

from protein_sedd.errors import UserError


class LogLinearNoise:
    """sigma_bar(t) = -log(1 - (1 - eps) t): the mask probability 1 - exp(-sigma_bar) grows linearly in t."""

    def __init__(self, eps: float = 1e-3):
        self.eps = eps

    def total(self, t: torch.Tensor) -> torch.Tensor:
        return -torch.log1p(-(1 - self.eps) * t)

    def rate(self, t: torch.Tensor) -> torch.Tensor:
        return (1 - self.eps) / (1 - (1 - self.eps) * t)


class GeometricNoise:
    """sigma_bar(t) = sigma_min^(1-t) sigma_max^t."""

    def __init__(self, sigma_min: float = 1e-4, sigma_max: float = 20.0):
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        self.log_ratio = math.log(sigma_max / sigma_min)

    def total(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma_min ** (1 - t) * self.sigma_max**t

    def rate(self, t: torch.Tensor) -> torch.Tensor:
        return self.total(t) * self.log_ratio


def build_noise(cfg) -> LogLinearNoise | GeometricNoise:
    """The schedule a (validated, see config_checks) noise config names; unknown names are a UserError."""
    kind = cfg.get("type")
    if kind == "loglinear":
        return LogLinearNoise(eps=cfg.eps)
    if kind == "geometric":
        return GeometricNoise(sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max)
    raise UserError(f"noise.type={kind!r}: choose loglinear or geometric")
