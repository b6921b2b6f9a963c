"""Clusters of an alignment's rows: the units that `data.split=cluster` holds out, so that the validation
bound measures distant family members rather than near copies of the training rows.

Greedy, the focus first and then the rows in file order: the first row not yet in a cluster founds one, and
every row not yet in a cluster whose identity with the founder reaches theta (`data.split_identity`) joins it,

    id(i, j) = #{c : x_ic = x_jc, both residues} / #{c : both residues}      (over the L focus columns),

a pair counting only when the two rows share residues in at least MIN_SHARED of the columns (two fragments
that agree on ten columns are not neighbours). The focus founds cluster 0, the wild type's own
neighbourhood, which a cluster split keeps in train. Unlike the redundancy weights (weights.py) a gap is
not a symbol here: a held-out member should differ from the training rows in its residues, not only in its
coverage. Each founder is compared with every row still unassigned (one rows x L comparison), so the cost
is at most clusters x rows x L: seconds for tens of thousands of rows in a few hundred clusters.
"""

from __future__ import annotations

import numpy as np

from protein_sedd.io.alignment import GAP_CODE

MIN_SHARED = 0.3  # a pair's shared residue columns, as a fraction of the focus columns, to count at all


def identity_clusters(columns: np.ndarray, identity: float, focus: int) -> np.ndarray:
    """A cluster label (int64, 0 for the focus's cluster, then in order of founding) for each row of
    `columns` (rows, L) symbol codes; `focus` is the focus's row."""
    rows, length = columns.shape
    residue = columns != GAP_CODE
    needed_shared = MIN_SHARED * length
    labels = np.full(rows, -1, dtype=np.int64)
    founders = [focus, *(row for row in range(rows) if row != focus)]
    count = 0
    for founder in founders:
        if labels[founder] >= 0:
            continue
        open_rows = np.flatnonzero(labels < 0)
        both = residue[open_rows] & residue[founder]
        shared = both.sum(1)
        same = (both & (columns[open_rows] == columns[founder])).sum(1)
        joins = (shared >= needed_shared) & (same >= identity * np.maximum(shared, 1) - 1e-9)
        labels[open_rows[joins]] = count
        labels[founder] = count  # a founder with few residues still founds its own cluster
        count += 1
    return labels
