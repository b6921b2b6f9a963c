"""Per-record columns of a file being tokenised, kept on disk rather than in memory, and the repeats among
their 128-bit digests found bucket by bucket: building a token cache takes memory bounded by a block and
a bucket, not by the number of records.

A `Column` collects rows and writes them to a scratch file a block at a time, and reads them back in blocks;
`write_npy` writes an .npy file from blocks (header first, then rows, as `np.save` lays it out).
`repeated_rows` gives the rows whose digest an earlier row has: with at most `BUCKET_ROWS` rows it is one
sort in memory (store.first_occurrences); above that the rows are first spread over
ceil(n / BUCKET_ROWS) bucket files by their digest (equal digests share a bucket, each bucket in file
order), and each bucket is sorted on its own.
"""

from __future__ import annotations

import contextlib
import os
from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from protein_sedd.data.cache.store import BLOCK, DIGEST_BYTES, first_occurrences

BUCKET_ROWS = 1 << 20  # rows sorted at a time when looking for repeats: about 60 MB of temporaries
MAX_BUCKETS = 256  # open bucket files; above 256 x BUCKET_ROWS rows, buckets grow instead
# a bucket row: the digest and the row's index in the file
BUCKET_ROW = np.dtype([("digest", np.uint8, (DIGEST_BYTES,)), ("index", np.int64)])


class Column:
    """Fixed-width rows of one dtype, collected in `buffer` (an array('q') of int64 or a bytearray that the
    writer appends to directly: no call per record) and written to a scratch file by `flush` (call it
    every BLOCK records or so); `blocks()` reads them back."""

    def __init__(self, path: Path, dtype, width: int = 1):
        self.path, self.dtype, self.width = path, np.dtype(dtype), width
        self.row_bytes = self.dtype.itemsize * width
        self.handle = open(path, "wb")  # noqa: SIM115 (closed by `close`)
        self.buffer = array("q") if self.dtype == np.int64 and width == 1 else bytearray()
        self.rows = 0

    def flush(self) -> None:
        data = memoryview(self.buffer).cast("B")
        self.handle.write(data)
        self.rows += len(data) // self.row_bytes
        data.release()
        del self.buffer[:]

    def close(self) -> None:
        self.flush()
        self.handle.close()

    def blocks(self) -> Iterator[np.ndarray]:
        """The rows, BLOCK at a time ([rows] or [rows, width] arrays)."""
        with open(self.path, "rb") as handle:
            while data := handle.read(BLOCK * self.row_bytes):
                rows = np.frombuffer(data, self.dtype)
                yield rows if self.width == 1 else rows.reshape(-1, self.width)


def write_npy(path: Path, dtype, shape: tuple, blocks: Iterable[np.ndarray]) -> None:
    """An .npy file of `shape` whose rows come from `blocks` (together exactly shape[0] rows)."""
    dtype = np.dtype(dtype)
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        written = 0
        for block in blocks:
            block = np.ascontiguousarray(block, dtype=dtype)
            handle.write(block.data)
            written += len(block)
        if written != shape[0]:
            raise RuntimeError(f"{path.name}: {written} rows written, {shape[0]} expected")
        handle.flush()
        os.fsync(handle.fileno())


def repeated_rows(digests: Column, scratch: Path) -> np.ndarray:
    """Ascending indices (int64) of the rows whose digest an earlier row has. Memory: one bucket (at most
    about BUCKET_ROWS rows, 24 bytes each, and its sort) and 8 bytes per repeat."""
    n = digests.rows
    if n <= BUCKET_ROWS:
        every = np.concatenate([np.zeros((0, DIGEST_BYTES), np.uint8), *digests.blocks()])
        return _not_first(every, np.arange(n, dtype=np.int64))
    count = min(MAX_BUCKETS, -(-n // BUCKET_ROWS))
    paths = [scratch / f".bucket-{b}" for b in range(count)]
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(open(p, "wb")) for p in paths]
        start = 0
        for block in digests.blocks():
            rows = np.empty(len(block), BUCKET_ROW)
            rows["digest"], rows["index"] = block, np.arange(start, start + len(block))
            start += len(block)
            # a bucket from 64 bits of the digest (equal digests, equal buckets); stable: file order kept
            bucket = np.ascontiguousarray(block[:, 8:]).view("<u8").reshape(-1) % np.uint64(count)
            order = np.argsort(bucket, kind="stable")
            ends = np.cumsum(np.bincount(bucket.astype(np.int64), minlength=count))
            for b, (lo, hi) in enumerate(zip(np.concatenate([[0], ends[:-1]]), ends, strict=True)):
                if hi > lo:
                    files[b].write(rows[order[lo:hi]].tobytes())
    repeats = []
    for path in paths:
        rows = np.fromfile(path, BUCKET_ROW)
        path.unlink()
        repeats.append(_not_first(rows["digest"], rows["index"]))
    return np.sort(np.concatenate(repeats))


def _not_first(digests: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Of rows in file order with these file indices, the indices of those that are not the first with
    their digest."""
    repeated = np.ones(len(digests), dtype=bool)
    repeated[first_occurrences(digests)] = False
    return indices[repeated]
