"""Sequence-only metrics: identity, nearest reference (novelty), diversity, uniqueness, composition, lengths.

Identity between two sequences = identical aligned pairs / length of the SHORTER sequence, from one global
alignment (BLOSUM62, gap open -10, extend -0.5, end gaps free so a shorter sequence is not penalised for
overhangs). A sequence contained in a longer one therefore has identity 1.0; `exact_copy` means the design
equals a reference sequence letter for letter.

The nearest reference is found in two steps: a 3-mer prefilter ranks every reference by the Jaccard overlap of
distinct 3-mers (an inverted index, numpy only), then the top `candidates` are aligned and the best identity
wins. Close relatives (the ones novelty is about) always share many 3-mers; for designs below ~40% identity to
everything the prefilter may miss the true nearest, so the reported identity is then a lower bound.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from protein_sedd.data.alphabet import ALPHABET

KMER = 3
NEAREST_CANDIDATES = 10
MAX_DIVERSITY_PAIRS = (
    5000  # above this many pairs, mean pairwise identity is estimated on a fixed random sample
)
RESIDUES = ALPHABET.residues  # the 20 amino acids + X


@lru_cache(maxsize=1)
def make_aligner():
    from Bio.Align import PairwiseAligner, substitution_matrices

    aligner = PairwiseAligner(
        mode="global",
        substitution_matrix=substitution_matrices.load("BLOSUM62"),
        open_gap_score=-10.0,
        extend_gap_score=-0.5,
    )
    aligner.end_gap_score = 0.0  # ends-free: overhangs of the longer sequence cost nothing
    return aligner


def identity(a: str, b: str) -> float:
    """Identical aligned pairs / length of the shorter sequence (see the module docstring)."""
    if a == b:
        return 1.0
    if not a or not b:
        return 0.0
    alignment = make_aligner().align(a, b)[0]
    return alignment.counts().identities / min(len(a), len(b))


def _kmer_codes(sequence: str) -> np.ndarray:
    """Distinct 3-mer codes of a sequence (letters outside the alphabet are treated as X)."""
    index = np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)
    letters = _LETTER_CODES[index]
    if len(letters) < KMER:
        return np.empty(0, dtype=np.int64)
    span = len(letters) - KMER + 1
    codes = np.zeros(span, dtype=np.int64)
    for offset in range(KMER):
        codes = codes * len(RESIDUES) + letters[offset : offset + span]
    return np.unique(codes)


_LETTER_CODES = np.full(256, RESIDUES.index("X"), dtype=np.int64)
for _code, _letter in enumerate(RESIDUES):
    _LETTER_CODES[ord(_letter)] = _code


class KmerIndex:
    """Inverted index from distinct 3-mers to the reference sequences that hold them."""

    def __init__(self, sequences: Sequence[str]):
        self.sequences = list(sequences)
        per_sequence = [_kmer_codes(s) for s in self.sequences]
        self.kmer_counts = np.array([len(c) for c in per_sequence], dtype=np.int64)
        codes = np.concatenate(per_sequence) if per_sequence else np.empty(0, dtype=np.int64)
        owners = np.repeat(np.arange(len(per_sequence)), self.kmer_counts)
        order = np.argsort(codes, kind="stable")
        self._owners = owners[order]
        self._offsets = np.searchsorted(codes[order], np.arange(len(RESIDUES) ** KMER + 1))

    def candidates(self, sequence: str, k: int) -> np.ndarray:
        """Indices of the `k` references with the highest 3-mer Jaccard overlap, best first."""
        codes = _kmer_codes(sequence)
        n = len(self.sequences)
        if len(codes) == 0:
            return np.arange(min(k, n))
        hits = np.concatenate([self._owners[self._offsets[c] : self._offsets[c + 1]] for c in codes])
        shared = np.bincount(hits, minlength=n)
        jaccard = shared / (len(codes) + self.kmer_counts - shared)
        k = min(k, n)
        top = np.argpartition(-jaccard, k - 1)[:k]
        return top[np.lexsort((top, -jaccard[top]))]


@dataclass(frozen=True)
class Nearest:
    index: int  # into the reference list
    identity: float
    exact_copy: bool


def nearest_references(
    designs: Sequence[str], references: Sequence[str], candidates: int = NEAREST_CANDIDATES
) -> list[Nearest]:
    """For every design, the closest reference by aligned identity (prefiltered by 3-mers)."""
    exact = {}
    for i, sequence in enumerate(references):
        exact.setdefault(sequence, i)
    index = KmerIndex(references)
    results = []
    for design in designs:
        if design in exact:
            results.append(Nearest(exact[design], 1.0, True))
            continue
        best, best_identity = -1, -1.0
        for j in index.candidates(design, candidates):
            value = identity(design, references[j])
            if value > best_identity:
                best, best_identity = int(j), value
        results.append(Nearest(best, best_identity, False))
    return results


def mean_pairwise_identity(
    sequences: Sequence[str], max_pairs: int = MAX_DIVERSITY_PAIRS, seed: int = 0
) -> tuple[float, int]:
    """Mean identity over pairs of distinct positions in the list (all pairs, or a seeded sample of them).

    Returns (mean, number of pairs used); NaN and 0 with fewer than two sequences. Lower means more diverse.
    """
    n = len(sequences)
    total = n * (n - 1) // 2
    if total == 0:
        return float("nan"), 0
    if total <= max_pairs:
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    else:
        rng = random.Random(seed)
        chosen = rng.sample(range(total), max_pairs)
        pairs = [_pair_from_rank(r, n) for r in sorted(chosen)]
    values = [identity(sequences[i], sequences[j]) for i, j in pairs]
    return float(np.mean(values)), len(pairs)


def _pair_from_rank(rank: int, n: int) -> tuple[int, int]:
    """The rank-th pair (i < j) in row-major order of the upper triangle."""
    i = 0
    while rank >= n - 1 - i:
        rank -= n - 1 - i
        i += 1
    return i, i + 1 + rank


def fraction_unique(sequences: Sequence[str]) -> float:
    return len(set(sequences)) / len(sequences) if sequences else float("nan")


def composition(sequences: Sequence[str]) -> np.ndarray:
    """Pooled residue frequencies over RESIDUES (20 amino acids + X), summing to 1."""
    counts = np.zeros(len(RESIDUES), dtype=np.float64)
    for sequence in sequences:
        index = np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)
        counts += np.bincount(_LETTER_CODES[index], minlength=len(RESIDUES))
    return counts / counts.sum() if counts.sum() else counts


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits (0 = identical, 1 = disjoint); finite even where one side is 0."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    m = (p + q) / 2

    def kl(a, b):
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))

    return (kl(p, m) + kl(q, m)) / 2


def length_stats(lengths: Sequence[int]) -> dict:
    values = np.asarray(lengths, dtype=np.float64)
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "median": float(np.median(values)),
        "min": int(values.min()),
        "max": int(values.max()),
    }


def ks_distance(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs."""
    a = np.sort(np.asarray(a, dtype=np.float64))
    b = np.sort(np.asarray(b, dtype=np.float64))
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / len(a)
    cdf_b = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.max(np.abs(cdf_a - cdf_b)))
