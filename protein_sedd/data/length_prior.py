"""p(L): the length distribution of a checkpoint's training split, over the model's lengths 1..max_length.

Stored in the run config as `lengths.histogram`, [[length, count], ...] in ascending length (a run
writes it; `from_config` reads it back, with `model.max_length`). In a run with redundancy weights each
count is the summed weight of the records of that length (`lengths.weighted: true`): the network learnt the
weighted family, so its lengths follow the same measure (a clade sampled fifty times counts once, as it
does in training). With N the counts inside 1..max_length,

    log p(L) = log((c_L + 1 / max_length) / (N + 1)),   L = 1..max_length  (-inf outside),

one pseudo-count spread evenly, so a held-out length never seen in training costs a finite -log p(L).
`sample` draws from the counts alone (no pseudo-count): designs get only lengths seen in training.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from protein_sedd.errors import UserError
from protein_sedd.io.fasta import FastaRecord


def median_of_counts(counts: np.ndarray) -> float:
    """The median of the lengths a histogram counts (counts[L] of length L), as `np.median` of the lengths
    gives it: the middle length, or the mean of the two middle ones when their number is even."""
    cumulative = np.cumsum(counts)
    n = int(cumulative[-1])
    low = int(np.searchsorted(cumulative, (n - 1) // 2, side="right"))  # the length of sorted[(n - 1) // 2]
    high = int(np.searchsorted(cumulative, n // 2, side="right"))
    return (low + high) / 2


@dataclass(frozen=True)
class LengthPrior:
    counts: dict[int, float]  # length -> training records (or their summed weight), in the config's order
    max_length: int  # the model's: lengths above it are never drawn and have probability 0

    @classmethod
    def from_records(cls, records: list[FastaRecord], max_length: int) -> LengthPrior:
        return cls(dict(sorted(Counter(len(r.sequence) for r in records).items())), int(max_length))

    @classmethod
    def from_lengths(cls, lengths: np.ndarray, max_length: int) -> LengthPrior:
        """`from_records` given the lengths alone (a token store's: one bincount, no per-record objects)."""
        return cls.from_counts(np.bincount(np.asarray(lengths, dtype=np.int64)), max_length)

    @classmethod
    def from_counts(cls, counts: np.ndarray, max_length: int) -> LengthPrior:
        """From a length histogram, counts[L] records of length L (the token store's `length_counts`), or
        their summed redundancy weights (float: kept to 6 decimals, as the config records them)."""
        present = np.flatnonzero(counts)
        values = counts[present]
        values = values.tolist() if values.dtype.kind in "iu" else np.round(values, 6).tolist()
        return cls(dict(zip(present.tolist(), values, strict=True)), int(max_length))

    @classmethod
    def from_config(cls, config) -> LengthPrior:
        """From a run config's `lengths.histogram` (no counts when it records none) and `model.max_length`."""
        histogram = config.get("lengths", {}).get("histogram") or []
        return cls({int(length): count for length, count in histogram}, int(config.model.max_length))

    def to_config(self) -> dict:
        """The run config's `lengths` entry."""
        return {"histogram": [[length, count] for length, count in self.counts.items()]}

    def _in_range(self) -> list[tuple[int, int]]:
        return [(length, count) for length, count in self.counts.items() if 1 <= length <= self.max_length]

    def log_prob(self, lengths: torch.Tensor) -> torch.Tensor:
        """log p(L) in nats (float64) for each length in `lengths`."""
        table = torch.full((self.max_length + 1,), 1.0 / self.max_length, dtype=torch.float64)
        table[0] = 0.0
        for length, count in self._in_range():
            table[length] += count
        table = torch.log(table / table.sum())
        lengths = torch.as_tensor(lengths)
        inside = (lengths >= 1) & (lengths <= self.max_length)
        return torch.where(inside, table[lengths.clamp(0, self.max_length)], -torch.inf)

    def sample(self, n: int, generator: torch.Generator) -> list[int]:
        """n lengths drawn with the training frequencies (those inside 1..max_length)."""
        if not self.counts:
            raise UserError(
                "the checkpoint records no training lengths; pass {length} or {length_range}",
                field=("length", "length_range"),
            )
        usable = self._in_range()
        if not usable or not any(count for _, count in usable):
            raise UserError(
                "the checkpoint records no usable training lengths; pass {length} or {length_range}",
                field=("length", "length_range"),
            )
        values = torch.tensor([length for length, _ in usable])
        weights = torch.tensor([count for _, count in usable], dtype=torch.float64)
        return values[torch.multinomial(weights, n, replacement=True, generator=generator)].tolist()
