"""Deterministic train/valid/test splits and the length filter, over a token store's records.

With `dedupe`, identical sequences are collapsed to their first record before splitting (compared by a
128-bit hash of the sequence), so no test sequence also appears in train. Two methods (`data.split`):

- `sequence_hash` (the default, and what a run config without `data.split` used): records are ordered
  by a salted hash of the sequence (of the record index and id without dedupe) and the first
  round(test_fraction * n) go to test, the next round(valid_fraction * n) to valid: exact sizes, at
  least one record each when asked for. A Python hash per record: fine for families, slow for millions.
- `id_hash`: record r goes to test when u(r) < test_fraction, to valid when u(r) < test_fraction +
  valid_fraction, else to train, with u(r) = splitmix64(h(id) XOR splitmix64(seed)) / 2^64 and h(id) the
  first 64 bits of the id's blake2b hash. Sizes are binomial around the fractions; a record's split
  depends on its id and the seed alone (records added to the file never move others), and the whole
  split is a few vectorised numpy passes, so it suits files of millions of records.
- `cluster` (alignments only): valid and test hold whole clusters of distant family members
  (data/family/clusters.py: greedy clusters at `data.split_identity` over the focus columns, the focus's
  own cluster always in train). Clusters are taken in the order of a salted hash of their label, test
  first, each until it holds round(fraction * n) records or more. The bound then measures how a model
  generalises to members unlike those it trained on, where a random split's members have close relatives
  in train. On PTEN's scan its minimum came one or two validations before rho's peak, so
  `trainer.patience=1` stops a run close to the peak without labels (README: Variant effects).

Each way, a split depends on the seed and the records, not on the machine.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from protein_sedd.data.cache.store import BLOCK, INDEX, TokenStore, check_record_count
from protein_sedd.errors import UserError
from protein_sedd.io.fasta import FastaRecord

SPLITS = ("train", "valid", "test")
SPLIT_METHODS = ("sequence_hash", "id_hash", "cluster")


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


def split_records(records: list[FastaRecord], **options) -> Splits:
    """`split_store` of records in memory (their sequences already normalised), as lists of records."""
    splits = split_store(TokenStore.from_records(records), **options)
    return Splits(*(list(splits[name]) for name in SPLITS), splits.stats)


def split_store(
    store: TokenStore,
    *,
    valid_fraction: float,
    test_fraction: float,
    seed: int = 0,
    dedupe: bool = True,
    min_length: int = 1,
    max_length: int | None = None,
    method: str = "sequence_hash",
    clusters: np.ndarray | None = None,
) -> Splits:
    """Splits whose members are views of the store (cache.store.RecordView), each in file order.
    `clusters`: a label per store record (0: the focus's cluster), which `method="cluster"` needs."""
    if not 0 <= valid_fraction < 1 or not 0 <= test_fraction < 1 or valid_fraction + test_fraction >= 1:
        raise UserError(
            f"valid_fraction={valid_fraction} and test_fraction={test_fraction} must be in [0, 1) "
            "and leave room for training data"
        )
    if method not in SPLIT_METHODS:
        raise UserError(f"data.split={method!r}: choose one of {', '.join(SPLIT_METHODS)}")
    check_record_count(len(store))
    counts = {"n_length_filtered": 0, "n_duplicates_removed": 0, "longest": 0}
    blocks = _kept_blocks(store, min_length, max_length, dedupe, counts)
    if method == "cluster" and clusters is None:
        raise UserError("data.split=cluster holds out clusters of an alignment's rows: train on an alignment")
    if method == "id_hash":
        fractions = (valid_fraction, test_fraction)
        train, valid, test = _by_id_hash(store, blocks, fractions, seed, min_length, max_length, counts)
    else:
        kept = np.concatenate(list(blocks))
        _check_any_left(len(kept), min_length, max_length, counts["longest"])
        if method == "cluster":
            train, valid, test = _by_cluster(kept, clusters[kept], valid_fraction, test_fraction, seed)
        else:
            train, valid, test = _by_sequence_hash(store, kept, valid_fraction, test_fraction, seed, dedupe)
    stats = {"n_records": len(store), "n_length_filtered": counts["n_length_filtered"]}
    if dedupe:
        stats["n_duplicates_removed"] = counts["n_duplicates_removed"]
    splits = Splits(store.view(train), store.view(valid), store.view(test), stats)
    stats.update({f"n_{name}": len(splits[name]) for name in SPLITS})
    return splits


def _check_any_left(n_kept: int, min_length: int, max_length: int | None, longest: int) -> None:
    if n_kept:
        return
    if max_length is None or longest <= max_length:
        hint = f"the longest record has {longest} residues, under the minimum {min_length}; check the file"
    else:
        hint = f"the longest record has {longest} residues: set model.max_length={longest} to keep it"
    raise UserError(f"no sequences left after the length filter [{min_length}, {max_length}]; {hint}")


def _kept_blocks(store: TokenStore, min_length: int, max_length: int | None, dedupe: bool, counts: dict):
    """Store indices (int32) that pass the length filter (and dedupe), a block of records at a time
    (temporaries of a few MB whatever the file's size); what was dropped is counted into `counts`."""
    for start in range(0, len(store), BLOCK):
        stop = min(start + BLOCK, len(store))
        lengths = np.diff(store.rows("offsets", start, stop + 1))
        counts["longest"] = max(counts["longest"], int(lengths.max(initial=0)))
        inside = lengths >= min_length
        if max_length is not None:
            inside &= lengths <= max_length
        counts["n_length_filtered"] += len(lengths) - int(inside.sum())
        if dedupe:  # copies share their length: the first copy is inside the filter when any copy is
            unique = inside & store.rows("first_copy", start, stop)
            counts["n_duplicates_removed"] += int(inside.sum() - unique.sum())
            inside = unique
        yield (start + np.flatnonzero(inside)).astype(INDEX)


def _by_sequence_hash(store: TokenStore, kept: np.ndarray, valid_fraction, test_fraction, seed, dedupe):
    if dedupe:
        keys = [_order_key(seed, store.sequence(int(i))) for i in kept]
    else:
        keys = [_order_key(seed, f"{n}:{store.record_id(int(i))}") for n, i in enumerate(kept)]
    order = kept[sorted(range(len(kept)), key=keys.__getitem__)]
    n_test, n_valid = _count(test_fraction, len(kept)), _count(valid_fraction, len(kept))
    if n_test + n_valid >= len(kept):
        raise UserError(
            f"only {len(kept)} sequences: too few to hold out {n_valid} for valid and {n_test} for test"
        )
    # keep each split in file order so it reads naturally
    test, valid = np.sort(order[:n_test]), np.sort(order[n_test : n_test + n_valid])
    return np.sort(order[n_test + n_valid :]), valid, test


def _by_cluster(kept: np.ndarray, labels: np.ndarray, valid_fraction, test_fraction, seed):
    """Whole clusters (labels of the `kept` records) to test, then valid; cluster 0 stays in train."""
    n = len(kept)
    wanted = {"test": _count(test_fraction, n), "valid": _count(valid_fraction, n)}
    sizes = np.bincount(labels)
    order = sorted(range(1, len(sizes)), key=lambda label: _order_key(seed, f"cluster {label}"))
    chosen: dict[str, list[int]] = {"test": [], "valid": []}
    filled = {"test": 0, "valid": 0}
    for label in (label for label in order if sizes[label]):
        name = next((name for name in ("test", "valid") if filled[name] < wanted[name]), None)
        if name is None:
            break
        chosen[name].append(label)
        filled[name] += int(sizes[label])
    if any(filled[name] < wanted[name] for name in filled):
        outside = n - int(sizes[0])
        raise UserError(
            f"data.split=cluster: only {outside} of {n} sequences lie outside the focus's cluster, too few "
            f"to hold out {wanted['valid']} for valid and {wanted['test']} for test in whole clusters; lower "
            "data.valid_fraction or data.test_fraction, or raise data.split_identity (smaller clusters)"
        )
    test, valid = (kept[np.isin(labels, chosen[name])] for name in ("test", "valid"))
    return kept[~np.isin(labels, chosen["test"] + chosen["valid"])], valid, test


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: a bijection of uint64 that spreads every input bit over the output."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def id_hash_codes(store: TokenStore, indices: np.ndarray, seed: int) -> np.ndarray:
    """u(r) in [0, 1) of each record (see the module docstring), float64."""
    salt = _splitmix64(np.array([seed], dtype=np.uint64))[0]
    keys = np.ascontiguousarray(store.gather("id_hash", indices)[:, :8]).view("<u8").reshape(-1)
    mixed = _splitmix64(keys ^ salt)  # uint64 arithmetic wraps, as splitmix64 wants
    return (mixed >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _by_id_hash(store: TokenStore, blocks, fractions, seed, min_length, max_length, counts):
    """`counts`: what `blocks` dropped, complete once they are read (for the nothing-left message)."""
    valid_fraction, test_fraction = fractions
    # train, most of the records, is written in place into room for every record (pages never written
    # are never resident) rather than gathered in pieces and copied: no second copy of it, even briefly
    train, n_train = np.empty(len(store), INDEX), 0
    parts: dict[str, list[np.ndarray]] = {name: [np.zeros(0, INDEX)] for name in ("valid", "test")}
    for block in blocks:
        u = id_hash_codes(store, block, seed)
        test, valid = u < test_fraction, (u >= test_fraction) & (u < test_fraction + valid_fraction)
        parts["test"].append(block[test])
        parts["valid"].append(block[valid])
        chosen = block[~(test | valid)]
        train[n_train : n_train + len(chosen)] = chosen
        n_train += len(chosen)
    train = train[:n_train]
    valid, test = (np.concatenate(parts[name]) for name in ("valid", "test"))
    n_kept = len(train) + len(valid) + len(test)
    _check_any_left(n_kept, min_length, max_length, counts["longest"])
    if not len(train):
        raise UserError(f"only {n_kept} sequences and none fell to training; use more sequences")
    return train, valid, test
