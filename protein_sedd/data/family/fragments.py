"""Coverage of the family by each training record, the fragment filter and the full-length members.

Coverage is, for an alignment, the fraction of the focus columns where the row holds a residue; for
unaligned FASTA, which has no columns, the record's length over the family's typical full length, the
median record length (robust to a minority of fragments and of long multi-domain hits).

Records with coverage < data.min_coverage are fragments and never train (DeepSequence and EVE filter at
0.5). Full-length members, coverage >= FULL_LENGTH (0.9), give the length distribution designs draw from,
so no design is drawn at a fragment's length.
"""

from __future__ import annotations

import numpy as np

from protein_sedd.io.alignment import GAP_CODE, SequenceInput

FULL_LENGTH = 0.9


def coverage(data: SequenceInput) -> np.ndarray:
    """Each record's coverage (float64, aligned with `data.records`)."""
    if data.aligned:
        return (data.columns != GAP_CODE).mean(axis=1)
    lengths = np.array([len(r.sequence) for r in data.records], dtype=np.float64)
    return lengths / np.median(lengths)


def full_length(coverages: np.ndarray) -> np.ndarray:
    """Which records count as full-length members (a boolean mask)."""
    return coverages >= FULL_LENGTH
