"""Sampling controls: temperature and nucleus (top-p) reshaping of the denoising distribution.

On the absorbing graph a masked position becomes real token y with probability proportional to the
model's denoising distribution p(y | unmasked rest) (the score is p / expm1(sigma_bar)). The controls
reshape that distribution over the N real tokens only (the mask is never a target):

- temperature T: p_T(y) = p(y)^(1/T) / sum_z p(z)^(1/T), i.e. softmax(log p / T); T = 1 is the model,
  T < 1 sharpens towards the most likely residue, T > 1 flattens towards uniform;
- top-p: keep the smallest set of most likely residues whose p_T mass reaches top_p, renormalise
  (the most likely residue is always kept); top_p = 1 keeps every residue.

Neither changes how much probability goes to "some real token", so the time at which a position unmasks
stays the model's: only which residue it becomes changes (why the event sampler still applies).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from protein_sedd.errors import UserError


@dataclass(frozen=True)
class SamplingControls:
    temperature: float = 1.0
    top_p: float = 1.0

    @property
    def is_model(self) -> bool:
        """Whether the controls leave the model's distribution as it is."""
        return self.temperature == 1.0 and self.top_p == 1.0

    def apply(self, probs: torch.Tensor) -> torch.Tensor:
        """Reshaped distributions [..., N] from normalised float64 distributions `probs` [..., N]."""
        if self.is_model:
            return probs
        if self.temperature != 1.0:
            log_p = probs.log()
            # max first: at small T the most likely residue keeps weight 1, the rest underflow to 0
            shifted = (log_p - log_p.amax(-1, keepdim=True)) / self.temperature
            probs = torch.softmax(shifted, dim=-1)
        if self.top_p < 1.0:
            ordered, order = probs.sort(-1, descending=True)
            mass_before = ordered.cumsum(-1) - ordered
            kept_sorted = mass_before < self.top_p  # the first residue always: nothing comes before it
            kept = torch.zeros_like(kept_sorted).scatter(-1, order, kept_sorted)
            probs = torch.where(kept, probs, 0.0)
            probs = probs / probs.sum(-1, keepdim=True)
        return probs

    def note(self) -> str:
        """' temperature=T top_p=P' for a design header, each only when it differs from the model's 1."""
        parts = []
        if self.temperature != 1.0:
            parts.append(f" temperature={self.temperature:g}")
        if self.top_p != 1.0:
            parts.append(f" top_p={self.top_p:g}")
        return "".join(parts)


def check_sampling_controls(temperature, top_p) -> SamplingControls:
    """The controls, if in range: temperature > 0 (finite), 0 < top_p <= 1. Messages name the parameter."""
    for field, value in (("temperature", temperature), ("top_p", top_p)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise UserError(f"{{{field}}} {value!r}: must be a finite number", field=field)
    if not temperature > 0:
        raise UserError(
            f"{{temperature}} {temperature:g}: must be > 0 (1.0 samples the model's own distribution)",
            field="temperature",
        )
    if not 0 < top_p <= 1:
        raise UserError(f"{{top_p}} {top_p:g}: must be in (0, 1] (1.0 keeps every residue)", field="top_p")
    return SamplingControls(float(temperature), float(top_p))
