"""Records as flat numpy arrays: the tokens of every sequence end to end, where each starts, its header,
and 128-bit hashes of its sequence and id. Memory-mapped from a token cache (token_cache.py), so a file
of millions of sequences costs page cache, not resident memory; or built in memory from records.

Record i's tokens are `tokens[offsets[i]:offsets[i + 1]]`. Nothing here makes one Python object per
record for the whole file: a split is an int32 index array (`RecordView`, 4 bytes a record; a store holds
fewer than 2^31 records, `check_record_count`), and a record becomes a `FastaRecord` or a tensor only when
it is asked for.

Resident memory stays flat in the file's size: passes over every record (splitting, length histograms,
digests) and a run's batches read a cache's files with pread (`TokenStore.rows`) rather than through the
memory maps, whose touched pages would count as this process's resident memory (they are page cache the
kernel can drop either way, but a 65-million-record file would show gigabytes of RSS).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from protein_sedd.data.alphabet import ALPHABET, Alphabet
from protein_sedd.errors import UserError
from protein_sedd.io.fasta import FastaRecord

DIGEST_BYTES = 16
BLOCK = 1 << 16  # records handled at a time by whole-split passes: temporaries of a few MB
INDEX = np.int32  # record indices of splits and epoch orders
MAX_RECORDS = 2**31 - 1  # what an int32 index can address


def check_record_count(n: int, name: str = "the FASTA file") -> None:
    """Splits index records with int32 (4 bytes a record, not 8): refuse a file they cannot address."""
    if n > MAX_RECORDS:
        raise UserError(
            f"{name} holds {n:,} records, more than the {MAX_RECORDS:,} a run can index; split it"
        )


def digest(data: bytes) -> bytes:
    """The 128-bit hash used for sequences (of their token bytes) and ids (of their UTF-8 bytes)."""
    return hashlib.blake2b(data, digest_size=DIGEST_BYTES).digest()


def first_occurrences(digests: np.ndarray) -> np.ndarray:
    """Ascending positions of the first row of each distinct digest in `digests` [m, 16]."""
    keys = np.ascontiguousarray(digests).view("<u8").reshape(-1, 2)
    # a stable sort on the first 64 bits puts equal digests together, in file order; only if two distinct
    # digests share those bits (about m^2 / 2^65: never, in practice) does it take the full 128 bits
    order = np.argsort(keys[:, 0], kind="stable")
    ranked = keys[order]
    same_head = ranked[1:, 0] == ranked[:-1, 0]
    if (same_head & (ranked[1:, 1] != ranked[:-1, 1])).any():
        order = np.lexsort((np.arange(len(keys)), keys[:, 1], keys[:, 0]))
        ranked = keys[order]
        same_head = ranked[1:, 0] == ranked[:-1, 0]
    first = np.ones(len(order), dtype=bool)
    first[1:] = ~(same_head & (ranked[1:, 1] == ranked[:-1, 1]))
    return np.sort(order[first])


def first_of_sequence(digests: np.ndarray) -> np.ndarray:
    """bool per row: whether it is the first row (in file order) with its digest."""
    mask = np.zeros(len(digests), dtype=bool)
    mask[first_occurrences(digests)] = True
    return mask


class TokenStore:
    """`tokens` uint8 [residues], `offsets` int64 [n + 1], `headers` uint8 (UTF-8) with
    `header_offsets` int64 [n + 1], `sequence_hash` and `id_hash` uint8 [n, 16], and `first_copy` bool [n]
    (the record is the first with its sequence: what dedupe keeps; computed here when not given)."""

    def __init__(
        self,
        tokens,
        offsets,
        headers,
        header_offsets,
        sequence_hash,
        id_hash,
        alphabet=ALPHABET,
        first_copy=None,
    ):
        self.tokens, self.offsets = tokens, offsets
        self.headers, self.header_offsets = headers, header_offsets
        self.sequence_hash, self.id_hash = sequence_hash, id_hash
        self.alphabet = alphabet
        self._first_copy = first_copy
        self._letters = np.frombuffer(alphabet.residues.encode("ascii"), np.uint8)
        self._files: dict[str, tuple[str, int]] = {}  # array name -> (file, byte offset of row 0), `rows`
        self._handles: dict[str, object] = {}

    @classmethod
    def from_records(cls, records: Sequence[FastaRecord], alphabet: Alphabet = ALPHABET) -> TokenStore:
        """In memory, from records whose sequences are already normalised."""
        tokens = [np.frombuffer(alphabet.token_bytes(r.sequence), np.uint8) for r in records]
        headers = [r.description.encode() for r in records]
        return cls(
            np.concatenate(tokens) if tokens else np.zeros(0, np.uint8),
            np.concatenate([[0], np.cumsum([len(t) for t in tokens], dtype=np.int64)]),
            np.frombuffer(b"".join(headers), np.uint8),
            np.concatenate([[0], np.cumsum([len(h) for h in headers], dtype=np.int64)]),
            np.frombuffer(b"".join(digest(t.tobytes()) for t in tokens), np.uint8).reshape(-1, DIGEST_BYTES),
            np.frombuffer(b"".join(digest(r.id.encode()) for r in records), np.uint8).reshape(
                -1, DIGEST_BYTES
            ),
            alphabet,
        )

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def first_copy(self) -> np.ndarray:
        if self._first_copy is None:
            self._first_copy = first_of_sequence(self.sequence_hash)
        return self._first_copy

    def rows(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows start:stop of array `name` (`offsets`, `tokens`, `id_hash`, ...) as a new in-memory array,
        read from the cache file with pread when the store has one (see the module docstring)."""
        array = getattr(self, name)
        source = self._files.get(name)
        stop = min(stop, len(array))
        start = min(start, stop)
        if source is None:
            return np.array(array[start:stop])
        out = np.empty((stop - start, *array.shape[1:]), dtype=array.dtype)
        row_bytes = out.itemsize * int(np.prod(array.shape[1:], dtype=np.int64))
        handle = self._handles.get(name)
        if handle is None:
            handle = self._handles[name] = open(source[0], "rb")  # kept open for the store's life
        position = source[1] + start * row_bytes
        if (
            out.nbytes
            and os.preadv(handle.fileno(), [out.reshape(-1).view(np.uint8)], position) != out.nbytes
        ):
            raise UserError(
                f"{source[0]}: shorter than its manifest says; rebuild it with prepare-data --verify"
            )
        return out

    def gather(self, name: str, index: np.ndarray) -> np.ndarray:
        """`array[index]` for a block of ascending indices, read as the ranges that cover them."""
        index = np.asarray(index)
        if name not in self._files or not _ascending(index):
            return np.asarray(getattr(self, name)[index])
        parts = [self.rows(name, first, last + 1)[part - first] for part, first, last in _spans(index)]
        array = getattr(self, name)
        return np.concatenate([np.zeros((0, *array.shape[1:]), array.dtype), *parts])

    def block_lengths(self, index: np.ndarray) -> np.ndarray:
        """Lengths (int64) of a block of records given by indices (read by ranges when ascending)."""
        index = np.asarray(index)
        if "offsets" not in self._files or not _ascending(index):
            return np.asarray(self.offsets[index + 1] - self.offsets[index], dtype=np.int64)
        parts = [np.zeros(0, np.int64)]
        for part, first, last in _spans(index):
            offsets = self.rows("offsets", first, last + 2)
            parts.append(offsets[part - first + 1] - offsets[part - first])
        return np.concatenate(parts)

    def length_counts(self, indices: np.ndarray | None = None) -> np.ndarray:
        """counts[L] = how many of these records (every record when None) have length L: one pass of
        blocks, no per-record array."""
        counts = np.zeros(1, np.int64)
        total = len(self) if indices is None else len(indices)
        for start in range(0, total, BLOCK):
            if indices is None:
                lengths = np.diff(self.rows("offsets", start, min(start + BLOCK, total) + 1))
            else:
                lengths = self.block_lengths(indices[start : start + BLOCK])
            block = np.bincount(lengths)
            if len(block) > len(counts):
                counts = np.concatenate([counts, np.zeros(len(block) - len(counts), np.int64)])
            counts[: len(block)] += block
        return counts

    def token_array(self, i: int) -> np.ndarray:
        """Record i's residue tokens; a token outside the alphabet (a cache edited consistently with its
        manifest, so its checksums pass) is a UserError naming the file, not an IndexError downstream."""
        if "tokens" in self._files:
            start, stop = self.rows("offsets", i, i + 2)
            tokens = self.rows("tokens", int(start), int(stop))
        else:
            tokens = self.tokens[self.offsets[i] : self.offsets[i + 1]]
        if tokens.size and int(tokens.max()) >= len(self._letters):
            where = Path(self._files["tokens"][0]) if "tokens" in self._files else Path("the token store")
            raise UserError(
                f"{where}: record {i} holds token {int(tokens.max())}, outside the alphabet's "
                f"{len(self._letters)} residues; the cache was edited or damaged: delete {where.parent} "
                "and the next run builds it again"
            )
        return tokens

    def token_tensor(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.token_array(i).astype(np.int64))

    def sequence(self, i: int) -> str:
        return self._letters[self.token_array(i)].tobytes().decode("ascii")

    def header(self, i: int) -> str:
        return self.headers[self.header_offsets[i] : self.header_offsets[i + 1]].tobytes().decode()

    def record_id(self, i: int) -> str:
        return self.header(i).split(None, 1)[0]

    def record(self, i: int) -> FastaRecord:
        header = self.header(i)
        return FastaRecord(header.split(None, 1)[0], header, self.sequence(i))

    def view(self, indices: np.ndarray) -> RecordView:
        check_record_count(len(self))
        return RecordView(self, np.asarray(indices, dtype=INDEX))


SPAN = 1 << 20  # the most rows one range read covers: a sparse block is read as several ranges


def _ascending(index: np.ndarray) -> bool:
    return not len(index) or bool((np.diff(index) >= 0).all())


def _spans(index: np.ndarray):
    """Pieces of ascending `index` (piece, first, last) whose first and last are within SPAN rows."""
    start = 0
    while start < len(index):
        first = int(index[start])
        stop = int(np.searchsorted(index, first + SPAN, side="left"))
        yield index[start:stop], first, int(index[stop - 1])
        start = stop


class RecordView(Sequence):
    """Some of a store's records (a split), in the order of `indices`: a sequence of `FastaRecord`s made
    on demand, their lengths, and their tokens for batches."""

    def __init__(self, store: TokenStore, indices: np.ndarray):
        self.store, self.indices = store, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item):
        if isinstance(item, slice):
            return [self.store.record(int(i)) for i in self.indices[item]]
        return self.store.record(int(self.indices[item]))

    def __iter__(self) -> Iterator[FastaRecord]:
        return (self.store.record(int(i)) for i in self.indices)

    def lengths(self) -> np.ndarray:
        out = np.empty(len(self.indices), dtype=np.int64)
        for start in range(0, len(self.indices), BLOCK):  # no temporary the size of the store
            index = self.indices[start : start + BLOCK]
            out[start : start + len(index)] = self.store.block_lengths(index)
        return out

    def length_counts(self) -> np.ndarray:
        """counts[L] = how many of these records have length L (TokenStore.length_counts)."""
        return self.store.length_counts(self.indices)

    def tokens(self) -> TokenView:
        return TokenView(self.store, self.indices)

    def ids_digest(self) -> str:
        """sha256 of the records' id hashes in order: which records these are, in 64 hex characters."""
        digest = hashlib.sha256()
        for start in range(0, len(self.indices), BLOCK):
            rows = self.store.gather("id_hash", self.indices[start : start + BLOCK])
            digest.update(np.ascontiguousarray(rows).data)
        return digest.hexdigest()


class TokenView:
    """What `BatchStream` needs of its data, `len` and `[i]` (int64 tokens), read from the store on demand."""

    def __init__(self, store: TokenStore, indices: np.ndarray):
        self.store, self.indices = store, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.store.token_tensor(int(self.indices[i]))


def open_store(folder: Path, alphabet: Alphabet = ALPHABET) -> TokenStore:
    """The store of a token-cache folder, every array memory-mapped read-only."""

    def array(name: str) -> np.ndarray:
        return np.load(folder / f"{name}.npy", mmap_mode="r")

    store = TokenStore(
        np.memmap(folder / "tokens.bin", dtype=np.uint8, mode="r"),
        array("offsets"),
        np.memmap(folder / "headers.bin", dtype=np.uint8, mode="r"),
        array("header_offsets"),
        array("sequence_hash"),
        array("id_hash"),
        alphabet,
        array("first_copy"),
    )
    for name in ("tokens", "offsets", "sequence_hash", "id_hash", "first_copy"):
        mapped = getattr(store, name)  # each a whole file's map: its offset is that of row 0
        store._files[name] = (str(mapped.filename), int(mapped.offset))
    return store
