"""A FASTA file tokenised once, kept on disk and memory-mapped: the token cache.

The file is streamed (plain or gzip, `FastaStream`) into a folder of flat arrays (see token_store.py):
`tokens.bin`, `offsets.npy`, `headers.bin`, `header_offsets.npy`, `sequence_hash.npy`, `id_hash.npy`,
`first_copy.npy` (dedupe's choice, made once) and `manifest.json`, which records the format version,
the alphabet, the FASTA file's sha256 and each file's size and sha256. More per-record arrays (a weight,
a coverage) are more named .npy files in the manifest. The folder lives in the user cache,
`cache_root()/tokens/<sha256 of the FASTA>-v<FORMAT>`: a changed file is a new key, a new format
another version.

Written atomically: built in a hidden temporary folder beside it and renamed into place, so a reader
sees a whole cache or none. On every use the manifest and every file's checksum are verified; a cache
that fails (a truncated file, a flipped byte, another format) is reported and rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import uuid
from array import array
from pathlib import Path

import numpy as np

from protein_sedd.atomic import raise_no_space
from protein_sedd.data.alphabet import ALPHABET, Alphabet
from protein_sedd.data.datasets import cache_root, sha256_of
from protein_sedd.data.fasta import FastaStream, normalised_tokens
from protein_sedd.data.token_store import (
    DIGEST_BYTES,
    TokenStore,
    digest,
    first_occurrences,
    first_of_sequence,
    open_store,
)
from protein_sedd.errors import UserError

FORMAT = 1
MANIFEST = "manifest.json"
BLOCK = 1 << 22  # tokens and headers are written in blocks of about this many bytes


def token_cache_root() -> Path:
    return cache_root() / "tokens"


def cache_folder(sha256: str) -> Path:
    """Where the token cache of a FASTA file with this sha256 lives."""
    return token_cache_root() / f"{sha256}-v{FORMAT}"


def token_cache(path: str | Path, alphabet: Alphabet = ALPHABET, report=None) -> tuple[TokenStore, str]:
    """The token store of FASTA `path` and the file's sha256: from an intact cache, else built (and kept).

    `report(line)` hears of a damaged cache being rebuilt (default: standard error). FASTA problems are
    the `UserError`s of `read_fasta`; a residue outside the alphabet names its record.
    """
    path = Path(path)
    report = report or (lambda line: print(line, file=sys.stderr))
    if path.is_file() and os.access(path, os.R_OK):  # else (a pipe, an unreadable file) stream it once
        sha256 = sha256_of(path)
        folder = cache_folder(sha256)
        if folder.exists():
            problem = cache_problem(folder, sha256, alphabet)
            if problem is None:
                return open_store(folder, alphabet), sha256
            report(f"warning: token cache {folder} is damaged ({problem}); rebuilding it")
    built, sha256 = build_cache(path, alphabet)
    return open_store(_install(built, cache_folder(sha256), alphabet), alphabet), sha256


def build_cache(path: Path, alphabet: Alphabet = ALPHABET) -> tuple[Path, str]:
    """Tokenise FASTA `path` into a new hidden folder under the cache root; returns it and the file's
    sha256. Memory: 48 bytes a record (lengths and hashes) while streaming, then the sorts that find
    repeated ids and sequences; the tokens and headers go straight to disk."""
    root = token_cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(
            f"cannot create the token cache folder {root} ({err.strerror or type(err).__name__}); "
            "set XDG_CACHE_HOME to a writable folder"
        ) from None
    folder = root / f".building-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    try:
        with raise_no_space(folder / "tokens.bin"):
            sha256 = _write_arrays(folder, path, alphabet)
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
    stream = FastaStream(path)
    tokens, headers = _HashedWriter(folder / "tokens.bin"), _HashedWriter(folder / "headers.bin")
    lengths, header_lengths = array("q"), array("q")
    sequence_hash, id_hash = bytearray(), bytearray()
    try:
        for _, record_id, title, raw in stream:
            data = normalised_tokens(raw, f"{stream.name}: record {record_id!r}", alphabet)
            tokens.write(data)
            lengths.append(len(data))
            sequence_hash += digest(data)
            header = title.encode()
            headers.write(header)
            header_lengths.append(len(header))
            id_hash += digest(record_id.encode())
    finally:
        files = {"tokens.bin": tokens.close(), "headers.bin": headers.close()}
    offsets = np.concatenate([[0], np.cumsum(np.frombuffer(lengths, np.int64))]).astype(np.int64)
    header_offsets = np.concatenate([[0], np.cumsum(np.frombuffer(header_lengths, np.int64))]).astype(
        np.int64
    )
    ids = np.frombuffer(id_hash, np.uint8).reshape(-1, DIGEST_BYTES)
    sequences = np.frombuffer(sequence_hash, np.uint8).reshape(-1, DIGEST_BYTES)
    _refuse_duplicate_ids(stream.name, ids, folder / "headers.bin", header_offsets)
    arrays = {
        "offsets": offsets,
        "header_offsets": header_offsets,
        "sequence_hash": sequences,
        "id_hash": ids,
        "first_copy": first_of_sequence(sequences),
    }
    for name, values in arrays.items():
        target = folder / f"{name}.npy"
        with open(target, "wb") as handle:
            np.save(handle, values)
            handle.flush()
            os.fsync(handle.fileno())
        files[target.name] = _file_entry(target)
    manifest = {
        "format": FORMAT,
        "alphabet": alphabet.tokens,
        "source_sha256": stream.sha256,
        "n_records": len(lengths),
        "n_residues": int(arrays["offsets"][-1]),
        "files": files,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return stream.sha256


def _refuse_duplicate_ids(name: str, ids: np.ndarray, headers: Path, header_offsets: np.ndarray) -> None:
    """The first record (in file order) whose id an earlier record has, named as `read_fasta` names it."""
    first = first_occurrences(ids)
    if len(first) == len(ids):
        return
    repeated = np.ones(len(ids), dtype=bool)
    repeated[first] = False
    number = int(np.flatnonzero(repeated)[0])
    with open(headers, "rb") as handle:
        handle.seek(int(header_offsets[number]))
        header = handle.read(int(header_offsets[number + 1] - header_offsets[number])).decode()
    raise UserError(f"{name}: duplicate record id {header.split(None, 1)[0]!r} (record {number + 1})")


def _file_entry(path: Path) -> dict:
    return {"bytes": path.stat().st_size, "sha256": sha256_of(path)}


def cache_problem(folder: Path, sha256: str, alphabet: Alphabet = ALPHABET) -> str | None:
    """Why the cache in `folder` cannot be used for a FASTA file of this sha256, or None if it can."""
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
    for name, entry in files.items():
        target = folder / name
        if not target.is_file():
            return f"{name} missing"
        if target.stat().st_size != entry.get("bytes"):
            return f"{name} has {target.stat().st_size} bytes, the manifest says {entry.get('bytes')}"
        if sha256_of(target) != entry.get("sha256"):
            return f"{name} checksum mismatch"
    return None


def _install(built: Path, folder: Path, alphabet: Alphabet) -> Path:
    """Rename the built cache into place. A damaged cache there is moved aside and removed; an intact one
    (another process finished first) is kept and ours dropped."""
    sha256 = json.loads((built / MANIFEST).read_text())["source_sha256"]
    if folder.exists():
        if cache_problem(folder, sha256, alphabet) is None:
            shutil.rmtree(built, ignore_errors=True)
            return folder
        stale = folder.with_name(f".stale-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        os.rename(folder, stale)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.rename(built, folder)
    except OSError:
        if folder.exists() and cache_problem(folder, sha256, alphabet) is None:
            shutil.rmtree(built, ignore_errors=True)
            return folder
        raise
    return folder
