"""A FASTA file tokenised once, kept on disk and memory-mapped: the token cache.

The file is streamed (plain or gzip, `FastaStream`) into a folder of flat arrays (see store.py):
`tokens.bin`, `offsets.npy`, `headers.bin`, `header_offsets.npy`, `sequence_hash.npy`, `id_hash.npy`,
`first_copy.npy` (dedupe's choice, made once) and `manifest.json`, which records the format version,
the alphabet, the FASTA file's sha256 and each file's size and sha256. More per-record arrays (a weight,
a coverage) are more named .npy files in the manifest. The folder lives in the user cache,
`cache_root()/tokens/<sha256 of the FASTA>-v<FORMAT>`: a changed file is a new key, a new format
another version.

Written atomically: built in a hidden temporary folder beside it and renamed into place, so a reader
sees a whole cache or none. The building folder's first file, `owner.json`, names its builder; a build
killed outright (kill -9, a lost node) leaves its folder behind, and a later build removes such folders
when it can prove their builder dead (build_owner.py). A live build's folder is never touched.

On every use the manifest, each file's presence and size, and each file's sha256 are verified; a cache
that fails (a truncated file, a flipped byte, another format) is reported and rebuilt, never used.
What keeps a use cheap (no file read whole when nothing changed; 575 MB of FASTA and as much of cache
took 1.4 s to hash on every start before): the FASTA's sha256, which names its cache, and each cache
file's checksum are remembered by the file's stat key (device, inode, size, mtime_ns, ctime_ns;
hash_memo.py): the FASTA's in the user cache, the cache files' in the folder's `verified.json`, written
when they were built or last hashed. A file whose key changed (edited in place, replaced, copied over,
touched) is hashed again, so a changed FASTA finds a new cache and a damaged cache file fails its
checksum. What only a full check catches (content changed without the kernel updating ctime: bit rot,
raw-device writes) is left to `prepare-data --verify` (`verify=True`), which hashes every file whatever
the memos say.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import uuid
from pathlib import Path

import numpy as np

from protein_sedd.data.alphabet import ALPHABET, Alphabet
from protein_sedd.data.cache.build_owner import OWNER, build_owner, remove_dead_builds
from protein_sedd.data.cache.hash_memo import remember_sha256, remembered_sha256, stat_key
from protein_sedd.data.cache.record_columns import Column, repeated_rows, write_npy
from protein_sedd.data.cache.store import BLOCK as BLOCK_RECORDS
from protein_sedd.data.cache.store import (
    DIGEST_BYTES,
    TokenStore,
    digest,
    open_store,
)
from protein_sedd.data.datasets import cache_root, sha256_of
from protein_sedd.errors import UserError
from protein_sedd.io.atomic import raise_no_space, write_json_atomic
from protein_sedd.io.fasta import FastaStream, normalised_tokens

FORMAT = 1
MANIFEST = "manifest.json"
VERIFIED = "verified.json"  # each cache file's stat key when its checksum last matched (hash_memo.py)
BLOCK = 1 << 22  # tokens and headers are written in blocks of about this many bytes


def token_cache_root() -> Path:
    return cache_root() / "tokens"


def cache_folder(sha256: str) -> Path:
    """Where the token cache of a FASTA file with this sha256 lives."""
    return token_cache_root() / f"{sha256}-v{FORMAT}"


def token_cache(
    path: str | Path, alphabet: Alphabet = ALPHABET, report=None, verify: bool = False, outcome=None
) -> tuple[TokenStore, str]:
    """The token store of FASTA `path` and the file's sha256: from an intact cache, else built (and kept).

    `report(line)` hears of a damaged cache being rebuilt (default: standard error). FASTA problems are
    the `UserError`s of `read_fasta`; a residue outside the alphabet names its record. `verify` hashes
    the FASTA and every cache file in full, whatever the stat memos say. `outcome(how)` hears how the
    cache was come by: "built", "rebuilt" (it was damaged), "reused" (checked by the stat memos) or
    "verified" (every file hashed).
    """
    path = Path(path)
    report = report or (lambda line: print(line, file=sys.stderr))
    outcome = outcome or (lambda how: None)
    damaged = False
    if path.is_file() and os.access(path, os.R_OK):  # else (a pipe, an unreadable file) stream it once
        sha256 = remembered_sha256(path, trust_memo=not verify)
        folder = cache_folder(sha256)
        if folder.exists():
            problem = cache_problem(folder, sha256, alphabet, full=verify)
            if problem is None:
                outcome("verified" if verify else "reused")
                return open_store(folder, alphabet), sha256
            report(f"warning: token cache {folder} is damaged ({problem}); rebuilding it")
            damaged = True
    built, sha256 = build_cache(path, alphabet)
    store = open_store(_install(built, cache_folder(sha256), alphabet), alphabet)
    outcome("rebuilt" if damaged else "built")
    return store, sha256


def build_cache(path: Path, alphabet: Alphabet = ALPHABET) -> tuple[Path, str]:
    """Tokenise FASTA `path` into a new hidden folder under the cache root; returns it and the file's
    sha256. Memory does not grow with the file: tokens, headers and the per-record columns go to disk as
    they stream, and repeated ids and sequences are found a bucket at a time (record_columns.py)."""
    root = token_cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(
            f"cannot create the token cache folder {root} ({err.strerror or type(err).__name__}); "
            "set XDG_CACHE_HOME to a writable folder"
        ) from None
    remove_dead_builds(root)
    folder = root / f".building-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    try:
        write_json_atomic(folder / OWNER, build_owner())
        key = stat_key(path) if path.is_file() else None
        with raise_no_space(folder / "tokens.bin"):
            sha256 = _write_arrays(folder, path, alphabet)
        if key is not None:  # the stream hashed the FASTA: remember it (if it did not change meanwhile)
            remember_sha256(path, sha256, key)
        return folder, sha256
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


class _HashedWriter:
    """A binary file written in blocks, its sha256 and size kept as it grows."""

    def __init__(self, path: Path):
        self.handle, self.sha256, self.size, self.pending = open(path, "wb"), hashlib.sha256(), 0, []
        self.pending_bytes = 0

    def write(self, data: bytes) -> None:
        self.pending.append(data)
        self.pending_bytes += len(data)
        if self.pending_bytes >= BLOCK:
            self.flush()

    def flush(self) -> None:
        block = b"".join(self.pending)
        self.handle.write(block)
        self.sha256.update(block)
        self.size += len(block)
        self.pending, self.pending_bytes = [], 0

    def close(self) -> dict:
        self.flush()
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        return {"bytes": self.size, "sha256": self.sha256.hexdigest()}


def _write_arrays(folder: Path, path: Path, alphabet: Alphabet) -> str:
    """Stream the FASTA into the folder's files. Per-record columns (lengths and digests, 48 bytes a
    record) go to scratch files as they come and the repeats among digests are found bucket by bucket
    (record_columns.py), so memory does not grow with the number of records."""
    stream = FastaStream(path, in_memory=False)  # tokens go to disk: no 2 GiB bound on the text
    tokens, headers = _HashedWriter(folder / "tokens.bin"), _HashedWriter(folder / "headers.bin")
    columns = {
        "lengths": Column(folder / ".lengths", np.int64),
        "header_lengths": Column(folder / ".header_lengths", np.int64),
        "sequence_hash": Column(folder / ".sequence_hash", np.uint8, DIGEST_BYTES),
        "id_hash": Column(folder / ".id_hash", np.uint8, DIGEST_BYTES),
    }
    lengths, header_lengths = columns["lengths"].buffer, columns["header_lengths"].buffer
    sequence_hash, id_hash = columns["sequence_hash"].buffer, columns["id_hash"].buffer
    try:
        for number, record_id, title, raw in stream:
            data = normalised_tokens(raw, f"{stream.name}: record {record_id!r}", alphabet)
            tokens.write(data)
            lengths.append(len(data))
            sequence_hash += digest(data)
            header = title.encode()
            headers.write(header)
            header_lengths.append(len(header))
            id_hash += digest(record_id.encode())
            if number % BLOCK_RECORDS == 0:
                for column in columns.values():
                    column.flush()
    finally:
        files = {"tokens.bin": tokens.close(), "headers.bin": headers.close()}
        for column in columns.values():
            column.close()
    n = columns["lengths"].rows
    repeated_ids = repeated_rows(columns["id_hash"], folder)
    if len(repeated_ids):
        _refuse_duplicate_id(stream.name, int(repeated_ids[0]), columns["header_lengths"], folder)
    repeated_sequences = repeated_rows(columns["sequence_hash"], folder)
    n_residues = _write_offsets(folder / "offsets.npy", columns["lengths"], n)
    _write_offsets(folder / "header_offsets.npy", columns["header_lengths"], n)
    for name in ("sequence_hash", "id_hash"):
        write_npy(folder / f"{name}.npy", np.uint8, (n, DIGEST_BYTES), columns[name].blocks())
    write_npy(folder / "first_copy.npy", np.bool_, (n,), _first_copy_blocks(n, repeated_sequences))
    for column in columns.values():
        column.path.unlink()
    for name in ("offsets", "header_offsets", "sequence_hash", "id_hash", "first_copy"):
        files[f"{name}.npy"] = _file_entry(folder / f"{name}.npy")
    manifest = {
        "format": FORMAT,
        "alphabet": alphabet.tokens,
        "source_sha256": stream.sha256,
        "n_records": n,
        "n_residues": n_residues,
        "files": files,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    _remember_checked(folder, files)  # their checksums were taken from the bytes written
    return stream.sha256


def _write_offsets(target: Path, lengths: Column, n: int) -> int:
    """offsets[i] = sum of lengths before record i (n + 1 of them, int64); returns the total."""
    total = 0

    def blocks():
        nonlocal total
        yield np.zeros(1, np.int64)
        for block in lengths.blocks():
            ends = total + np.cumsum(block)
            total = int(ends[-1])
            yield ends

    write_npy(target, np.int64, (n + 1,), blocks())
    return total


def _first_copy_blocks(n: int, repeated: np.ndarray):
    """first_copy, BLOCK records at a time: True but at the (ascending) repeated records."""
    for start in range(0, n, BLOCK):
        block = np.ones(min(BLOCK, n - start), dtype=bool)
        inside = repeated[np.searchsorted(repeated, start) : np.searchsorted(repeated, start + BLOCK)]
        block[inside - start] = False
        yield block


def _refuse_duplicate_id(name: str, number: int, header_lengths: Column, folder: Path) -> None:
    """Record `number` (from 0) repeats an earlier record's id: named as `read_fasta` names it."""
    start = seen = 0
    for block in header_lengths.blocks():
        if number < seen + len(block):
            start += int(block[: number - seen].sum())
            length = int(block[number - seen])
            break
        start, seen = start + int(block.sum()), seen + len(block)
    with open(folder / "headers.bin", "rb") as handle:
        handle.seek(start)
        header = handle.read(length).decode()
    raise UserError(f"{name}: duplicate record id {header.split(None, 1)[0]!r} (record {number + 1})")


def _file_entry(path: Path) -> dict:
    return {"bytes": path.stat().st_size, "sha256": sha256_of(path)}


def cache_problem(folder: Path, sha256: str, alphabet: Alphabet = ALPHABET, full: bool = False) -> str | None:
    """Why the cache in `folder` cannot be used for a FASTA file of this sha256, or None if it can.

    A file whose stat key is the one `verified.json` recorded when its checksum last matched is not hashed
    again, unless `full`."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as err:
        return f"{MANIFEST} unreadable: {type(err).__name__}"
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return f"format {manifest.get('format') if isinstance(manifest, dict) else '?'}, expected {FORMAT}"
    if manifest.get("alphabet") != alphabet.tokens:
        return "another alphabet"
    if manifest.get("source_sha256") != sha256:
        return "made from another file"
    files = manifest.get("files")
    if not isinstance(files, dict) or not {
        "tokens.bin",
        "offsets.npy",
        "id_hash.npy",
        "first_copy.npy",
    } <= set(files):
        return "its manifest lists no files"
    checked = {} if full else _checked(folder)
    hashed = []
    for name, entry in files.items():
        target = folder / name
        if not target.is_file():
            return f"{name} missing"
        if target.stat().st_size != entry.get("bytes"):
            return f"{name} has {target.stat().st_size} bytes, the manifest says {entry.get('bytes')}"
        if checked.get(name) == stat_key(target):
            continue
        if sha256_of(target) != entry.get("sha256"):
            return f"{name} checksum mismatch"
        hashed.append(name)
    if hashed:
        _remember_checked(folder, files)
    return None


def _checked(folder: Path) -> dict:
    """verified.json: file name -> stat key when its checksum last matched ({} when unreadable)."""
    try:
        checked = json.loads((folder / VERIFIED).read_text())
    except (OSError, ValueError):
        return {}
    return checked if isinstance(checked, dict) else {}


def _remember_checked(folder: Path, names) -> None:
    """Record the stat keys of these just-checked files (a read-only cache only costs the next check)."""
    with contextlib.suppress(OSError, UserError):
        write_json_atomic(folder / VERIFIED, {name: stat_key(folder / name) for name in names})


def _install(built: Path, folder: Path, alphabet: Alphabet) -> Path:
    """Rename the built cache into place. A damaged cache there is moved aside and removed; an intact one
    (another process finished first) is kept and ours dropped. Judged in full (not by stat memos): this is
    where a cache that `verify` found damaged is replaced."""
    sha256 = json.loads((built / MANIFEST).read_text())["source_sha256"]
    if folder.exists():
        if cache_problem(folder, sha256, alphabet, full=True) is None:
            shutil.rmtree(built, ignore_errors=True)
            return folder
        stale = folder.with_name(f".stale-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        with contextlib.suppress(OSError, UserError):  # so that a kill -9 while removing it is cleaned up
            write_json_atomic(folder / OWNER, build_owner())
        os.rename(folder, stale)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.rename(built, folder)
    except OSError:
        if folder.exists() and cache_problem(folder, sha256, alphabet, full=True) is None:
            shutil.rmtree(built, ignore_errors=True)
            return folder
        raise
    return folder
