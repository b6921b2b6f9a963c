"""The site-independent baseline for variant effects: column frequencies of a family's sequences.

Each position i of the wild type has its own residue distribution, estimated from the family's residues
in that column with a pseudocount c over the 20 amino acids:

    f_i(a) = (n_i(a) + c) / (n_i + 20 c),        score(variant) = sum_{i in P} log f_i(m_i) - log f_i(w_i),

n_i(a) counting residue a in column i (X is not counted). It sees conservation, never a dependence
between positions. The columns here are the positions of sequences as long as the wild type (an ungapped
family numbered like it); alignment input (A2M match columns) is not read yet.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from protein_sedd.data.alphabet import AMINO_ACIDS
from protein_sedd.errors import UserError


def column_log_frequencies(sequences: Sequence[str], length: int, pseudocount: float = 0.5) -> np.ndarray:
    """log f_i(a), [length, 20] in AMINO_ACIDS order, from the sequences of exactly `length` residues."""
    if pseudocount <= 0:
        raise UserError(f"pseudocount {pseudocount}: must be positive (a zero count would give log 0)")
    columns = [s for s in sequences if len(s) == length]
    if not columns:
        raise UserError(f"no sequence has the wild type's length ({length}): no columns to count")
    index = {a: i for i, a in enumerate(AMINO_ACIDS)}
    counts = np.full((length, len(AMINO_ACIDS)), pseudocount, dtype=float)
    for sequence in columns:
        for position, residue in enumerate(sequence):
            if residue in index:
                counts[position, index[residue]] += 1
    return np.log(counts / counts.sum(axis=1, keepdims=True))


def site_independent_scores(log_frequencies: np.ndarray, variants) -> np.ndarray:
    """sum over mutated positions of log f_i(new) - log f_i(wild type), one score per variant (nats).

    `variants`: parsed `protein_sedd.evaluation.variants.Variant`s. A wild-type X scores as the column's
    average log frequency.
    """
    index = {a: i for i, a in enumerate(AMINO_ACIDS)}

    def log_f(position: int, residue: str) -> float:
        row = log_frequencies[position]
        return float(row[index[residue]]) if residue in index else float(row.mean())

    return np.array(
        [
            sum(log_f(p, m) - log_f(p, w) for p, w, m in zip(v.positions, v.wild, v.new, strict=True))
            for v in variants
        ]
    )
