"""The unigram baseline: residues drawn independently from the training composition."""

from __future__ import annotations

import math

from protein_sedd.data.alphabet import ALPHABET


def unigram_log_probs(train_sequences: list[str], pseudo_count: float = 1.0) -> dict[str, float]:
    counts = dict.fromkeys(ALPHABET.residues, pseudo_count)
    for sequence in train_sequences:
        for residue in sequence:
            counts[residue] += 1
    total = sum(counts.values())
    return {residue: math.log(count / total) for residue, count in counts.items()}


def unigram_nll(sequence: str, log_probs: dict[str, float]) -> float:
    """-log p(x | L) in nats."""
    return -sum(log_probs[residue] for residue in sequence)
