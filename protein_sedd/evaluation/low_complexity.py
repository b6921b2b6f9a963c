"""Low-complexity stretches and internal repeats: designs a lab should not order as they are.

A design is flagged `low_complexity` when any of these holds (each a column of seq-eval's results):
- a homopolymer run of `MAX_RUN` (6) or more identical residues (poly-A, poly-Q, ...);
- a window of `WINDOW` (12) residues whose Shannon entropy is at most `MIN_ENTROPY_BITS` (1.8 bits; at most
  log2(12) = 3.58). SEG (Wootton & Federhen) scans the same window but triggers at 2.2 bits, which one in five
  natural AcyP proteins reaches somewhere; 1.8 bits is about their 1st percentile, so the flag marks designs
  far off the natural range, not ordinary compositional bias;
- an internal repeat: some `REPEAT_K`-mer (8 residues) occurring twice or more, without overlap.
Natural family members are scored by the same rule, so the rate has a baseline to be read against.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

MAX_RUN = 6
WINDOW = 12
MIN_ENTROPY_BITS = 1.8
REPEAT_K = 8


@dataclass(frozen=True)
class Complexity:
    longest_run: int  # the longest homopolymer run
    min_window_entropy: float  # bits, lowest over all windows (the whole sequence when shorter)
    repeated_kmer: str  # a REPEAT_K-mer found twice or more without overlap, '' when none

    @property
    def low_complexity(self) -> bool:
        return (
            self.longest_run >= MAX_RUN
            or self.min_window_entropy <= MIN_ENTROPY_BITS
            or bool(self.repeated_kmer)
        )


def entropy_bits(counts: Counter, total: int) -> float:
    return -sum(c / total * math.log2(c / total) for c in counts.values() if c)


def longest_run(sequence: str) -> int:
    best = run = 0
    previous = None
    for residue in sequence:
        run = run + 1 if residue == previous else 1
        best, previous = max(best, run), residue
    return best


def min_window_entropy(sequence: str, window: int = WINDOW) -> float:
    """The lowest Shannon entropy (bits) of any `window`-residue stretch, updated as the window slides."""
    width = min(window, len(sequence))
    counts = Counter(sequence[:width])
    lowest = entropy_bits(counts, width)
    for end in range(width, len(sequence)):
        counts[sequence[end]] += 1
        counts[sequence[end - width]] -= 1
        lowest = min(lowest, entropy_bits(counts, width))
    return lowest


def repeated_kmer(sequence: str, k: int = REPEAT_K) -> str:
    """The first k-mer that occurs again at least k positions after an earlier occurrence, or ''."""
    first_seen: dict[str, int] = {}
    for start in range(len(sequence) - k + 1):
        kmer = sequence[start : start + k]
        if kmer in first_seen and start - first_seen[kmer] >= k:
            return kmer
        first_seen.setdefault(kmer, start)
    return ""


def complexity(sequence: str) -> Complexity:
    return Complexity(longest_run(sequence), min_window_entropy(sequence), repeated_kmer(sequence))
