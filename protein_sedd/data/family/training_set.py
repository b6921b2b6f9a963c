"""A family file as training sees it: records in a token store, fragments filtered, redundancy weights.

`data.weights`, `data.min_coverage` and `data.length_prior` default to `auto`. What `auto` means is
versioned by `data.auto_version`, so a run keeps the meaning it was made with:

- 2 (new runs): for an alignment the EVmutation/DeepSequence practice (weights at 80% identity, fragments
  below 50% coverage dropped, design lengths from full-length members); for unaligned FASTA fragments
  (records shorter than half the median length) dropped and design lengths from full-length members, but
  no weights (identity there is only a k-mer estimate: opt in with data.weights=identity). Measured on
  ACYP with a quarter of its records cut to fragments (workflows/benchmarks/fragments.py): 97% of designs
  pass the family HMM with the filter, 77% without; on ACYP as it is, the filter drops no record and the
  full-length prior leaves out the shortest 1.6% of lengths.
- 1 (runs from before the key): as 2, but unaligned FASTA trains unfiltered with every length.

A config without these keys (a run from before them) reads as `none`, `0` and `all`: it trains and designs
exactly as it did.

Order of work: read, drop fragments, weigh the remaining records (before the length filter and dedupe: a
neighbour counts whether or not it trains), split; Neff sums the weights of the records kept. With
`dedupe` an identical copy's weight moves to the copy that is kept, so a split's weights still sum to the
weight of the sequences it holds.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from protein_sedd.data.cache.store import BLOCK, TokenStore
from protein_sedd.data.cache.tokens import token_cache_root
from protein_sedd.data.family.clusters import identity_clusters
from protein_sedd.data.family.fragments import FULL_LENGTH, coverage, full_length
from protein_sedd.data.family.weights import identity_weights, kmer_weights
from protein_sedd.data.focus_columns import column_records, residue_ranges
from protein_sedd.data.length_prior import median_of_counts
from protein_sedd.errors import UserError
from protein_sedd.io.alignment import is_alignment_file, read_sequences
from protein_sedd.io.atomic import atomic_path

WEIGHTS = ("auto", "identity", "none")
LENGTH_PRIORS = ("auto", "full_length", "all")
# what a data config without the keys means: a run from before them trained unweighted, unfiltered
LEGACY = {
    "weights": "none",
    "weight_identity": 0.8,
    "min_coverage": 0.0,
    "length_prior": "all",
    "focus": None,
    "representation": "sequence",
    "auto_version": 1,  # what `auto` meant before the key: unaligned FASTA unfiltered
}
AUTO_VERSIONS = (1, 2)


@dataclass(frozen=True)
class FamilyPolicy:
    weights: str  # identity or none
    weight_identity: float
    min_coverage: float
    length_prior: str  # full_length or all
    focus: str | None
    representation: str  # sequence or focus_columns (data/focus_columns.py)

    @classmethod
    def resolve(cls, data_cfg, aligned: bool) -> FamilyPolicy:
        """The config's choices with `auto` made concrete for this file (aligned or not)."""

        def get(key):
            return data_cfg.get(key, LEGACY[key])

        weights, min_coverage, length_prior = get("weights"), get("min_coverage"), get("length_prior")
        weights = ("identity" if aligned else "none") if weights == "auto" else weights
        unaligned_coverage = 0.5 if int(get("auto_version")) >= 2 else 0.0
        min_coverage = (
            (0.5 if aligned else unaligned_coverage) if min_coverage == "auto" else float(min_coverage)
        )
        if length_prior == "auto":
            length_prior = "full_length" if min_coverage > 0 else "all"
        focus = get("focus")  # an id such as ColabFold's query '101' arrives from the command line as an int
        focus = None if focus is None else str(focus)
        identity = float(get("weight_identity"))
        return cls(weights, identity, min_coverage, length_prior, focus, str(get("representation")))


@dataclass
class FamilyData:
    """The records that may train (a token store), each one's coverage and weight, and what was done."""

    store: TokenStore
    # float64 per store record for an alignment; None for unaligned FASTA, whose coverage is a record's
    # length over `typical_length` and is computed when asked for (no array the size of the file)
    coverage: np.ndarray | None
    weights: np.ndarray | None  # float64 per store record (None: unweighted)
    policy: FamilyPolicy
    min_length: int  # the length filter's lower bound, raised to the fragment cut-off for unaligned FASTA
    stats: dict = field(default_factory=dict)
    typical_length: float = 1.0  # unaligned FASTA: the median record length
    # an alignment's: each store record's focus-column symbols and the focus's record (None: unaligned)
    columns: np.ndarray | None = None
    focus_record: int | None = None

    def clusters(self, identity: float, source) -> np.ndarray:
        """Each record's cluster at `identity` (clusters.py; 0: the focus's), for `data.split=cluster`."""
        if self.columns is None or self.focus_record is None:
            raise UserError(
                f"data.split=cluster holds out whole clusters of an alignment's rows; {source} is unaligned "
                "FASTA: align it (A2M, A3M, Stockholm, aligned FASTA) or use data.split=sequence_hash"
            )
        return identity_clusters(self.columns, identity, self.focus_record)

    def split_weights(self, indices: np.ndarray) -> np.ndarray | None:
        return None if self.weights is None else self.weights[indices]

    def coverage_of(self, indices: np.ndarray) -> np.ndarray:
        """Coverage (float64) of these records (ascending store indices)."""
        if self.coverage is not None:
            return self.coverage[indices]
        return self.store.block_lengths(indices) / self.typical_length

    def length_members(self, indices: np.ndarray) -> np.ndarray:
        """Of these records, those whose lengths designs draw from: the full-length ones (all of them when
        the length prior is `all`, or when none is full-length, rather than no lengths at all)."""
        if self.policy.length_prior == "all":
            return indices
        blocks = [indices[start : start + BLOCK] for start in range(0, len(indices), BLOCK)]
        members = np.concatenate(
            [indices[:0], *(block[full_length(self.coverage_of(block))] for block in blocks)]
        )
        return members if len(members) else indices

    def length_source(self, indices: np.ndarray) -> str:
        """How the run config describes its length distribution (design logs it)."""
        kept = len(self.length_members(indices))
        if kept == len(indices):
            return f"all {kept} training sequences"
        return f"{kept} full-length training sequences (coverage >= {FULL_LENGTH}) of {len(indices)}"

    def describe_splits(self, splits, dedupe: bool) -> None:
        """Into `splits.stats`: what was filtered and weighted, and Neff (sum of weights) of the records
        kept and of the training split. With `dedupe`, duplicates' weights first move onto the kept copy."""
        splits.stats.update(self.stats)
        if self.weights is not None:
            kept = np.concatenate([splits[name].indices for name in ("train", "valid", "test")])
            if dedupe:
                self._fold_duplicates(kept)
            splits.stats["neff"] = round(float(self.weights[kept].sum()), 3)
            splits.stats["neff_train"] = round(float(self.weights[splits.train.indices].sum()), 3)

    def summary(self, stats: dict, max_length: int) -> str:
        """The training log's line on the data: format, records read and dropped (by the length filter,
        as duplicates), fragments, weights and Neff."""
        policy = self.policy
        text = f"data: {stats.get('format', 'fasta')}, {stats['n_records']} records"
        if stats.get("n_length_filtered"):
            text += (
                f", {stats['n_length_filtered']} outside lengths {self.min_length}-{max_length} dropped "
                f"(model.max_length={max_length})"
            )
        if stats.get("n_duplicates_removed"):
            text += f", {stats['n_duplicates_removed']} duplicates dropped"
        if "focus" in stats:
            text += f", focus {stats['focus']} ({stats['n_focus_columns']} columns)"
        if policy.representation == "focus_columns":
            text += "; records: rows over the focus columns (X = gap, insertions dropped)"
        if policy.min_coverage > 0 and "typical_length" in stats:  # unaligned: coverage is a length ratio
            text += (
                f"; {stats['n_fragments_filtered']} fragments (shorter than {policy.min_coverage:g} x the "
                f"median length {stats['typical_length']:g}) dropped"
            )
        elif policy.min_coverage > 0:
            text += f"; {stats['n_fragments_filtered']} fragments (coverage < {policy.min_coverage}) dropped"
        elif n := stats.get("n_fragments_filtered"):  # the filter is off: only rows with no residue went
            text += f"; {n} row{'s' * (n != 1)} with no residue dropped"
        if self.weights is None:
            return text + "; unweighted"
        return (
            f"{text}; weights 1/neighbours at >= {policy.weight_identity:g} identity: "
            f"Neff {stats['neff']:.1f} ({stats['neff_train']:.1f} in train)"
        )

    def _fold_duplicates(self, kept: np.ndarray) -> None:
        """Each identical copy's weight moves onto the copy that dedupe kept (`kept`, store indices)."""
        keys = np.ascontiguousarray(self.store.sequence_hash).view("<u8").reshape(-1, 2)
        _, group = np.unique(keys, axis=0, return_inverse=True)
        total = np.bincount(group.reshape(-1), weights=self.weights)
        folded = np.zeros_like(self.weights)
        folded[kept] = total[group.reshape(-1)[kept]]
        self.weights = folded


def family_data(data_cfg, source: Path, store_of_fasta) -> tuple[FamilyData, str]:
    """The family of file `source` and its sha256. `store_of_fasta(path)` gives an unaligned file's
    (token store, sha256) (the token cache); an alignment is read here, in memory."""
    if is_alignment_file(source):
        focus = data_cfg.get("focus")
        data = read_sequences(source, focus=None if focus is None else str(focus))
        policy = FamilyPolicy.resolve(data_cfg, data.aligned)
    else:
        data = None
        policy = FamilyPolicy.resolve(data_cfg, False)
        if policy.focus is not None:
            raise UserError(f"data.focus={policy.focus}: {source} is not an alignment; drop data.focus")
    if policy.representation == "focus_columns" and not (data is not None and data.aligned):
        raise UserError(
            f"data.representation=focus_columns needs an alignment (A2M, A3M, Stockholm or aligned FASTA); "
            f"{source} is unaligned FASTA: align it, or drop the override"
        )
    if data is not None and data.aligned:
        return _aligned_family(data, policy, int(data_cfg.min_length)), data.sha256
    if data is not None:  # a gapped first record, yet not an alignment: the records as FASTA gives them
        store, sha256 = TokenStore.from_records(data.records), data.sha256
    else:
        store, sha256 = store_of_fasta(source)
    return _unaligned_family(store, policy, data_cfg, sha256), sha256


def _aligned_family(data, policy: FamilyPolicy, min_length: int) -> FamilyData:
    covered = coverage(data)
    empty = np.array([not record.sequence for record in data.records])  # rows of gaps only: never trained
    keep = np.flatnonzero((covered >= policy.min_coverage) & ~empty)
    if not len(keep):
        raise UserError(
            f"data.min_coverage={policy.min_coverage}: every record covers less of the focus "
            f"{data.focus_id!r}; lower it or check data.focus"
        )
    records = [data.records[i] for i in keep]
    columns = data.columns[keep]  # the kept rows' focus-column symbols (one copy, shared below)
    if policy.representation == "focus_columns":  # rows over the focus columns, X at gaps
        records = column_records(records, columns)
    store = TokenStore.from_records(records)
    weights = None
    if policy.weights != "none":
        choices = (data.format, data.focus_id, policy.min_coverage, policy.weight_identity)
        key = "|".join([data.sha256, *map(repr, choices)])
        weights = cached_weights(key, len(keep), lambda: identity_weights(columns, policy.weight_identity))
    stats = {
        "format": data.format,
        "focus": data.focus_id,
        "n_focus_columns": int(data.columns.shape[1]),
        "n_alignment_records": len(data.records),
        # where a scan's wild type meets the family (evaluation/wildtype.py): the focus's real sequence
        "focus_sequence": data.records[data.focus_index].sequence,
    }
    if policy.representation == "focus_columns":  # what maps a wild type onto the columns later
        stats.update(representation="focus_columns", focus_residues=residue_ranges(data.focus_positions))
    family = FamilyData(store, covered[keep], weights, policy, min_length, stats, columns=columns)
    if data.focus_index in keep:  # the focus covers its own columns, so only an empty focus is missing
        family.focus_record = int(np.searchsorted(keep, data.focus_index))
    return _described(family, len(data.records) - len(keep))


def cached_weights(key: str, n: int, compute) -> np.ndarray:
    """`compute()`'s weights, kept in the user cache beside the token cache (`weights/<hash of key>.npy`,
    key: the file's sha256 and every choice the weights depend on): a long alignment is weighed once, and
    a resume or an evaluate reads them back. A damaged or unwritable cache only costs the computation."""
    path = token_cache_root().parent / "weights" / f"{hashlib.sha256(key.encode()).hexdigest()}-v1.npy"
    with contextlib.suppress(OSError, ValueError):
        cached = np.load(path, allow_pickle=False)
        if cached.shape == (n,) and cached.dtype == np.float64 and bool(np.all((cached > 0) & (cached <= 1))):
            return cached
    weights = compute()
    with contextlib.suppress(OSError, UserError):
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, ".npy") as tmp:
            np.save(tmp, weights)
    return weights


def _unaligned_family(store: TokenStore, policy: FamilyPolicy, data_cfg, sha256: str) -> FamilyData:
    counts = store.length_counts()  # the lengths' histogram: one pass, no array the size of the file
    typical = median_of_counts(counts) if len(store) else 1.0
    # a fragment of unaligned FASTA is a short record: the filter is a raised length floor
    floor = max(int(data_cfg.min_length), math.ceil(policy.min_coverage * typical - 1e-9))
    n_fragments = int(counts[int(data_cfg.min_length) : floor].sum())
    weights = None
    if policy.weights != "none":

        def compute():
            return kmer_weights([store.sequence(i) for i in range(len(store))], policy.weight_identity)

        weights = cached_weights(f"{sha256}|kmer|{policy.weight_identity!r}", len(store), compute).copy()
        weights[store.lengths < floor] = 0.0  # fragments never train and count for nothing
    stats = {"format": "fasta", "typical_length": typical}
    return _described(FamilyData(store, None, weights, policy, floor, stats, typical), n_fragments)


def _described(family: FamilyData, n_fragments: int) -> FamilyData:
    policy = family.policy
    family.stats.update(
        {
            "weights": policy.weights,
            "weight_identity": policy.weight_identity,
            "min_coverage": policy.min_coverage,
            "n_fragments_filtered": n_fragments,
            "length_prior": policy.length_prior,
        }
    )
    return family
