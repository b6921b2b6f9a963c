"""Deterministic train/valid/test splits and the length filter.

With `dedupe`, identical sequences are collapsed to their first record before splitting, so no test
sequence also appears in train. Order comes from a salted hash of the sequence (or of the record index
and id without dedupe), so a split depends on the seed and the set of sequences, not on the machine.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from protein_sedd.data.fasta import FastaRecord
from protein_sedd.errors import UserError

SPLITS = ("train", "valid", "test")


@dataclass
class Splits:
    train: list[FastaRecord]
    valid: list[FastaRecord]
    test: list[FastaRecord]
    stats: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> list[FastaRecord]:
        if name not in SPLITS:
            raise UserError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        return getattr(self, name)

    def ids(self) -> dict[str, list[str]]:
        return {name: [r.id for r in self[name]] for name in SPLITS}


def _order_key(seed: int, text: str) -> bytes:
    return hashlib.blake2b(f"{seed}:{text}".encode(), digest_size=16).digest()


def _count(fraction: float, n: int) -> int:
    return 0 if fraction <= 0 else max(1, round(fraction * n))


def split_records(
    records: list[FastaRecord],
    *,
    valid_fraction: float,
    test_fraction: float,
    seed: int = 0,
    dedupe: bool = True,
    min_length: int = 1,
    max_length: int | None = None,
) -> Splits:
    if not 0 <= valid_fraction < 1 or not 0 <= test_fraction < 1 or valid_fraction + test_fraction >= 1:
        raise UserError(
            f"valid_fraction={valid_fraction} and test_fraction={test_fraction} must be in [0, 1) "
            "and leave room for training data"
        )
    stats = {"n_records": len(records)}
    kept = [
        r
        for r in records
        if len(r.sequence) >= min_length and (max_length is None or len(r.sequence) <= max_length)
    ]
    stats["n_length_filtered"] = len(records) - len(kept)
    if dedupe:
        seen: set[str] = set()
        unique = []
        for record in kept:
            if record.sequence not in seen:
                seen.add(record.sequence)
                unique.append(record)
        stats["n_duplicates_removed"] = len(kept) - len(unique)
        kept = unique
        keys = [_order_key(seed, r.sequence) for r in kept]
    else:
        keys = [_order_key(seed, f"{i}:{r.id}") for i, r in enumerate(kept)]
    if not kept:
        raise UserError(
            f"no sequences left after the length filter [{min_length}, {max_length}]; "
            "raise model.max_length or check the FASTA file"
        )
    order = sorted(range(len(kept)), key=keys.__getitem__)
    n_test, n_valid = _count(test_fraction, len(kept)), _count(valid_fraction, len(kept))
    if n_test + n_valid >= len(kept):
        raise UserError(
            f"only {len(kept)} sequences: too few to hold out {n_valid} for valid and {n_test} for test"
        )
    # keep each split in file order so it reads naturally
    test = sorted(order[:n_test])
    valid = sorted(order[n_test : n_test + n_valid])
    train = sorted(order[n_test + n_valid :])
    splits = Splits([kept[i] for i in train], [kept[i] for i in valid], [kept[i] for i in test], stats)
    stats.update({f"n_{name}": len(splits[name]) for name in SPLITS})
    return splits
