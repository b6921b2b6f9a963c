"""A guide scale chosen for a label rate: `target_rate=0.9` instead of a scale the user must tune.

The label rate of a batch of designs is the mean of the guide's own p(y = target | x) on the finished
sequences (mask fraction 0): the share of designs carrying the label as the guide judges it, which is
all the sampler knows of the label. It rises with the scale (at 0, the unguided designs; larger scales
sharpen every residue draw toward the label), so the search is a ladder then a bisection:

    scale 0, then 1, 2, 4, ... up to MAX_SCALE until a pilot batch reaches the target rate; then
    BISECTIONS halvings of the last interval in log2(scale), keeping the smallest scale that reached it.

Each step designs one pilot batch (`pilot`: `PILOT_DESIGNS` designs with the run's own settings and a seed
of their own, so the designs the user receives are fresh draws, not the pilot's). The smallest scale that
reaches the rate is chosen: a larger one costs diversity and family likeness for little gain. When even
MAX_SCALE falls short, MAX_SCALE is chosen and the search says so. The pilot's rate is an estimate from
a few dozen designs: its binomial error (about 0.05 at 32 designs and rate 0.9) is the scale's precision.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

PILOT_DESIGNS = 32
MAX_SCALE = 64.0
BISECTIONS = 3
PILOT_SEED_OFFSET = 1_000_003  # the pilot's seed: the run's plus this, never the designs' own draws


def label_rate(guide, target: float, tokens: list[torch.Tensor]) -> float:
    """Mean p(y = target | x) of finished token rows (mask fraction 0) under the guide."""
    from protein_sedd.data.alphabet import ALPHABET
    from protein_sedd.data.batches import pad_batch

    x, lengths = pad_batch(tokens, ALPHABET.pad_index)
    device = next(guide.network.parameters()).device
    onehot = F.one_hot(x, guide.network.config.vocab_size).float().to(device)
    with torch.inference_mode():
        log_p = guide.log_likelihood(onehot, torch.zeros(len(x), device=device), lengths.to(device), target)
    return float(log_p.double().exp().mean())


@dataclass
class ScaleSearch:
    """The pilot batches' (scale, label rate) in the order run, and the scale chosen."""

    target_rate: float
    tried: list[tuple[float, float]] = field(default_factory=list)
    scale: float | None = None

    @property
    def reached(self) -> bool:
        return any(rate >= self.target_rate for _, rate in self.tried)

    def note(self) -> str:
        """One log line: the scale chosen and every pilot's rate."""
        steps = ", ".join(f"{scale:g} -> {rate:.2f}" for scale, rate in self.tried)
        verdict = "" if self.reached else f" (no scale up to {MAX_SCALE:g} reached it: the largest is used)"
        return (
            f"guide scale {self.scale:g} chosen for target rate {self.target_rate:g}{verdict}; pilot label "
            f"rates ({PILOT_DESIGNS} designs each, by the guide at mask 0): {steps}"
        )


def choose_scale(target_rate: float, rate_at: Callable[[float], float]) -> ScaleSearch:
    """The smallest scale whose pilot rate `rate_at(scale)` reaches `target_rate` (see the module doc)."""
    search = ScaleSearch(target_rate)

    def reaches(scale: float) -> bool:
        rate = rate_at(scale)
        search.tried.append((scale, rate))
        return rate >= target_rate

    if reaches(0.0):
        search.scale = 0.0
        return search
    low, high = None, 1.0
    while not reaches(high):
        if high >= MAX_SCALE:
            search.scale = MAX_SCALE
            return search
        low, high = high, high * 2
    if low is None:  # scale 1 reached it: bisect between 1/8 and 1 on the log scale
        low = 2.0**-BISECTIONS
    for _ in range(BISECTIONS):
        middle = 2 ** ((math.log2(low) + math.log2(high)) / 2)
        if reaches(middle):
            high = middle
        else:
            low = middle
    search.scale = high
    return search
