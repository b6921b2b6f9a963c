"""The site-independent baseline for variant effects: column frequencies of a family's sequences.

Each position i of the wild type has its own residue distribution, estimated from the family's residues
in that column with a pseudocount c over the 20 amino acids:

    f_i(a) = (n_i(a) + c) / (n_i + 20 c),        score(variant) = sum_{i in P} log f_i(m_i) - log f_i(w_i),

n_i(a) counting residue a in column i (X and gaps are not counted). It sees conservation, never a
dependence between positions. Columns come from either an ungapped family numbered like the wild type
(`column_log_frequencies`: the sequences as long as it) or an alignment's focus columns
(`alignment_log_frequencies`), where each row may count with a redundancy weight w (n_i(a) = sum of the
weights of the rows with a in column i) and wild-type positions outside the focus columns have no
column (their variants score NaN).
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


def alignment_log_frequencies(
    columns: np.ndarray,
    focus_positions: Sequence[int],
    length: int,
    weights: np.ndarray | None = None,
    pseudocount: float = 0.5,
) -> np.ndarray:
    """log f_i(a), [length, 20], from an alignment's focus columns: `columns` (rows, focus columns) symbol
    codes (AMINO_ACIDS order first, as `protein_sedd.io.alignment` writes them), `focus_positions` the
    0-based wild-type position of each focus column, `weights` one per row (None: all 1). Rows of the
    wild-type positions without a focus column are NaN."""
    if pseudocount <= 0:
        raise UserError(f"pseudocount {pseudocount}: must be positive (a zero count would give log 0)")
    codes = np.asarray(columns)
    weights = np.ones(len(codes)) if weights is None else np.asarray(weights, dtype=float)
    counts = np.full((codes.shape[1], len(AMINO_ACIDS)), pseudocount, dtype=float)
    for residue in range(len(AMINO_ACIDS)):  # one weighted column sum per residue, not a loop over rows
        counts[:, residue] += weights @ (codes == residue)
    table = np.full((length, len(AMINO_ACIDS)), np.nan)
    table[np.asarray(focus_positions, dtype=int)] = np.log(counts / counts.sum(axis=1, keepdims=True))
    return table


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
