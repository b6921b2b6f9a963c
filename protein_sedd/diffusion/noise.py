"""Noise schedules: total noise sigma_bar(t) and rate sigma(t) = d sigma_bar / dt on t in [0, 1], and the
time `t_end` at which sampling's time grid ends (its final denoise removes the noise left there)."""

from __future__ import annotations

import math

import torch

from protein_sedd.errors import UserError


class LogLinearNoise:
    """sigma_bar(t) = -log(1 - (1 - eps) t): the mask probability 1 - exp(-sigma_bar) grows linearly in t."""

    PARAMETERS = ("eps",)

    def __init__(self, eps: float = 1e-3):
        self.eps = eps
        self.t_end = eps  # sampling stops at t = eps (sigma_bar(1) is infinite at eps = 0)

    def total(self, t: torch.Tensor) -> torch.Tensor:
        return -torch.log1p(-(1 - self.eps) * t)

    def rate(self, t: torch.Tensor) -> torch.Tensor:
        return (1 - self.eps) / (1 - (1 - self.eps) * t)


class GeometricNoise:
    """sigma_bar(t) = sigma_min^(1-t) sigma_max^t."""

    PARAMETERS = ("sigma_min", "sigma_max")

    def __init__(self, sigma_min: float = 1e-4, sigma_max: float = 20.0):
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        self.log_ratio = math.log(sigma_max / sigma_min)
        self.t_end = 0.0  # sigma_bar(0) = sigma_min: sampling runs all the way to t = 0

    def total(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma_min ** (1 - t) * self.sigma_max**t

    def rate(self, t: torch.Tensor) -> torch.Tensor:
        return self.total(t) * self.log_ratio


NOISES = {"loglinear": LogLinearNoise, "geometric": GeometricNoise}  # noise.type -> schedule


def build_noise(cfg) -> LogLinearNoise | GeometricNoise:
    """The schedule a (validated, see config/checks.py) noise config names; unknown names are a UserError."""
    kind = cfg.get("type")
    if kind not in NOISES:
        raise UserError(f"noise.type={kind!r}: choose {' or '.join(NOISES)}")
    schedule = NOISES[kind]
    return schedule(**{name: cfg[name] for name in schedule.PARAMETERS})
