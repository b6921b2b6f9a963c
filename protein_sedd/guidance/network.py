"""GuideNet: a small convolutional network that predicts a label from a partly masked sequence.

one-hot tokens [B, L, V] -> linear embedding -> n_layers x [LayerNorm, FiLM by the noise level, GELU, dilated
1-D convolution, residual] -> mean and max over the sequence's positions -> MLP -> outputs [B, n_outputs].

The input is the one-hot matrix, not token ids, so that d log p(y | x) / d onehot(x) exists: Taylor-
approximated guidance (reweighting.py) reads it. The noise level enters as the expected fraction of masked
positions m = 1 - exp(-sigma_bar), which lies in [0, 1] under any schedule. Max pooling lets one local
feature (a motif anywhere) decide; mean pooling carries composition. Dilations 1, 2, 4, ... widen the
receptive field to about (kernel - 1) * 2^n_layers positions at little cost.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

NOISE_FEATURES = 8  # sin/cos pairs of the mask fraction


@dataclass
class GuideConfig:
    vocab_size: int = 23
    n_outputs: int = 2  # classes, or 2 (mean and log variance) for a regressor
    hidden_size: int = 64
    n_layers: int = 3
    kernel_size: int = 5

    @classmethod
    def from_dict(cls, values: dict) -> GuideConfig:
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})

    def to_dict(self) -> dict:
        return asdict(self)


class GuideNet(nn.Module):
    def __init__(self, config: GuideConfig):
        super().__init__()
        self.config = config
        h = config.hidden_size
        self.embed = nn.Linear(config.vocab_size, h, bias=False)
        self.noise = nn.Sequential(
            nn.Linear(1 + 2 * NOISE_FEATURES, h), nn.SiLU(), nn.Linear(h, 2 * h * config.n_layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(h) for _ in range(config.n_layers))
        self.convs = nn.ModuleList(
            nn.Conv1d(h, h, config.kernel_size, dilation=2**k, padding=(config.kernel_size - 1) // 2 * 2**k)
            for k in range(config.n_layers)
        )
        self.head = nn.Sequential(nn.Linear(2 * h, h), nn.GELU(), nn.Linear(h, config.n_outputs))

    @staticmethod
    def noise_features(mask_fraction: torch.Tensor) -> torch.Tensor:
        m = mask_fraction.float()[:, None]
        k = torch.arange(1, NOISE_FEATURES + 1, device=m.device, dtype=torch.float32)[None]
        return torch.cat([m, torch.sin(math.pi * k * m), torch.cos(math.pi * k * m)], dim=-1)

    def forward(
        self, onehot: torch.Tensor, mask_fraction: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """onehot [B, L, V] (right-padded), mask fraction [B] in [0, 1], lengths [B] -> [B, n_outputs]."""
        valid = (torch.arange(onehot.shape[1], device=onehot.device)[None] < lengths[:, None])[..., None]
        film = self.noise(self.noise_features(mask_fraction)).chunk(2 * self.config.n_layers, dim=-1)
        x = self.embed(onehot) * valid
        for k, (norm, conv) in enumerate(zip(self.norms, self.convs, strict=True)):
            scale, shift = film[2 * k][:, None], film[2 * k + 1][:, None]
            h = F.gelu(norm(x) * (1 + scale) + shift) * valid  # pads stay zero: they never leak into a window
            x = x + conv(h.transpose(1, 2)).transpose(1, 2) * valid
        mean = x.sum(1) / lengths[:, None].clamp(min=1)
        peak = x.masked_fill(~valid, float("-inf")).amax(1)
        return self.head(torch.cat([mean, peak], dim=-1))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
