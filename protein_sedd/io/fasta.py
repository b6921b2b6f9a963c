"""FASTA reading with Biopython: plain or gzip, CRLF tolerated, errors that name file, record and position."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

from Bio.SeqIO.FastaIO import SimpleFastaParser

from protein_sedd.data.alphabet import ALPHABET, Alphabet, InvalidResidue
from protein_sedd.errors import UserError
from protein_sedd.io.atomic import atomic_path


@dataclass(frozen=True)
class FastaRecord:
    id: str
    description: str
    sequence: str


GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_MAX_FASTA_BYTES = 2 * 1024**3
MAX_FASTA_BYTES_ENV = "PROTEIN_SEDD_MAX_FASTA_BYTES"


def max_fasta_bytes(default: int | None = DEFAULT_MAX_FASTA_BYTES) -> int | None:
    """The most text one FASTA file may hold after gzip decompression: 2 GiB unless
    $PROTEIN_SEDD_MAX_FASTA_BYTES says otherwise (a bound on memory, and on a gzip bomb). A reader that
    streams to disk rather than memory (the token cache) passes `default=None`: no bound unless the
    variable sets one (a gzip bomb then ends when the disk is full, reported and cleaned up)."""
    value = os.environ.get(MAX_FASTA_BYTES_ENV, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise UserError(f"{MAX_FASTA_BYTES_ENV}={value!r}: expected a whole number of bytes >= 1")
    return int(value)


class _Source(io.RawIOBase):
    """The file's bytes, read once (a pipe cannot be reopened): hashed as they pass, the head peekable."""

    def __init__(self, handle):
        self._handle = handle
        self._head = b""
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def head(self, size: int) -> bytes:
        while len(self._head) < size:
            chunk = self._handle.read(size - len(self._head))
            if not chunk:
                break
            self.sha256.update(chunk)
            self._head += chunk
        return self._head

    def readinto(self, buffer) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n], self._head = self._head[:n], self._head[n:]
            return n
        n = self._handle.readinto(buffer)
        if n:
            self.sha256.update(memoryview(buffer)[:n])
        return n or 0

    def close(self) -> None:
        self._handle.close()
        super().close()


class _Bounded(io.RawIOBase):
    """Counts the (decompressed) bytes that pass; past `limit` a UserError stops the read."""

    def __init__(self, stream, limit: int, name: str):
        self._stream, self._limit, self._name, self.total = stream, limit, name, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._stream.readinto(buffer)
        self.total += n
        if self.total > self._limit:
            raise UserError(
                f"{self._name}: more than {self._limit:,} bytes of FASTA text (after decompression); "
                f"set {MAX_FASTA_BYTES_ENV} to allow more"
            )
        return n


def _checked_lines(handle, name: str):
    """The text's lines, refusing binary content and text before the first '>' header."""
    started = False
    for line in handle:
        if "\x00" in line:
            raise UserError(f"{name}: binary content, not a FASTA file")
        if not started:
            if not line.strip():
                continue
            line = line.lstrip()
            if not line.startswith(">"):
                raise UserError(f"{name}: not FASTA, line 1 {line.rstrip()[:40]!r} does not start with '>'")
            started = True
        yield line
    if not started:
        raise UserError(
            f"{name}: empty file, expected FASTA records ('>id' lines followed by sequence lines)"
        )


def _normalised(convert, raw: str, where: str, allow_empty: bool = False):
    """`convert(raw)` with the alphabet's errors, and an empty result (unless `allow_empty`), as a UserError
    naming `where`."""
    try:
        normalised = convert(raw)
    except InvalidResidue as err:
        raise UserError(f"{where}: {err}") from None
    if not normalised and not allow_empty:
        raise UserError(f"{where}: empty sequence")
    return normalised


def normalised_sequence(
    raw: str, where: str, alphabet: Alphabet = ALPHABET, allow_empty: bool = False
) -> str:
    """`raw` under the alphabet's policy; a bad residue or an empty result is a UserError naming `where`
    (an alignment row of gaps only may be empty: `allow_empty`; it is dropped as a fragment later)."""
    return _normalised(alphabet.normalise, raw, where, allow_empty)


def normalised_tokens(raw: str, where: str, alphabet: Alphabet = ALPHABET) -> bytes:
    """`normalised_sequence` as token bytes (`Alphabet.token_bytes`), with the same errors."""
    return _normalised(alphabet.token_bytes, raw, where)


def read_fasta(path: str | Path, alphabet: Alphabet = ALPHABET, unique_ids: bool = True) -> list[FastaRecord]:
    """Read every record of a FASTA file, normalised by the alphabet's policy.

    Raises `UserError` with one line naming the file (and record and position) for: a missing or
    unreadable path, a directory, standard input ('-'), an empty file, text before the first '>', binary
    content, more text than `max_fasta_bytes()`, an empty record, an invalid residue, and (with
    `unique_ids`) a repeated id.
    """
    return read_fasta_hashed(path, alphabet, unique_ids)[0]


def read_fasta_hashed(
    path: str | Path, alphabet: Alphabet = ALPHABET, unique_ids: bool = True
) -> tuple[list[FastaRecord], str]:
    """`read_fasta` and the sha256 of the file's bytes, from one pass over the file (`FastaStream`)."""
    stream = FastaStream(path)
    records: list[FastaRecord] = []
    seen: set[str] = set()
    for number, record_id, title, raw_sequence in stream:
        if unique_ids and record_id in seen:
            raise UserError(f"{stream.name}: duplicate record id {record_id!r} (record {number})")
        seen.add(record_id)
        sequence = normalised_sequence(raw_sequence, f"{stream.name}: record {record_id!r}", alphabet)
        records.append(FastaRecord(record_id, title, sequence))
    return records, stream.sha256


class FastaStream:
    """A FASTA file's records as they stream past, never held in memory: iterating yields
    (record number from 1, id, header, raw sequence); once the last is read `sha256` holds the hash of
    the file's bytes.

    The file is opened once and streamed (plain or gzip, sniffed from its first bytes), so a named pipe
    works and a gzip file that expands to gigabytes is stopped at the size limit. Problems with the file
    itself (see `read_fasta`) are a `UserError` naming it; residues are the reader's to check.
    """

    def __init__(self, path: str | Path, in_memory: bool = True):
        """`in_memory=False`: the reader keeps nothing per residue in memory (the token cache writes to
        disk), so the 2 GiB default bound does not apply (`max_fasta_bytes`)."""
        self.path = Path(path)
        self.name = str(self.path)
        self.sha256: str | None = None
        self.in_memory = in_memory
        if self.name == "-":
            raise UserError(
                "-: reading FASTA from standard input is not supported; save it to a file and pass its path"
            )
        if not self.path.exists():
            raise UserError(f"{self.name}: no such file")
        if self.path.is_dir():
            raise UserError(f"{self.name}: is a directory, expected a FASTA file")

    @contextlib.contextmanager
    def text(self, what: str = "FASTA"):
        """The file's text, streamed (for readers of other formats too: alignment.py); `sha256` is set
        once the block has read the whole file. `what` names the format in the not-text message."""
        name = self.name
        limit = max_fasta_bytes() if self.in_memory else max_fasta_bytes(default=None)
        try:
            source = _Source(open(self.path, "rb", buffering=0))
        except PermissionError:
            raise UserError(f"{name}: permission denied, cannot read the file") from None
        except OSError as err:
            raise UserError(f"{name}: cannot read the file ({err.strerror or type(err).__name__})") from None
        try:
            with source:
                raw = io.BufferedReader(source)
                stream = gzip.GzipFile(fileobj=raw, mode="rb") if source.head(2) == GZIP_MAGIC else raw
                # newline=None turns CRLF and CR into '\n' before the parser sees them
                bounded = io.BufferedReader(_Bounded(stream, limit, name)) if limit else stream
                yield io.TextIOWrapper(bounded, "utf-8", newline=None)
                while raw.read(1 << 20):  # bytes after the text (gzip padding): the hash covers them too
                    pass
        except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, zlib.error, OSError) as err:
            raise UserError(
                f"{name}: not a text {what} file ({type(err).__name__}); expected '>' header lines"
                if what == "FASTA"
                else f"{name}: not a text {what} file ({type(err).__name__})"
            ) from None
        self.sha256 = source.sha256.hexdigest()

    def __iter__(self):
        name, count = self.name, 0
        with self.text() as text:
            parsed = SimpleFastaParser(_checked_lines(text, name))
            for count, (title, raw_sequence) in enumerate(parsed, start=1):
                record_id = title.split(None, 1)[0] if title.strip() else ""
                if not record_id:
                    raise UserError(f"{name}: record {count} has an empty header, expected '>id'")
                yield count, record_id, title, raw_sequence
        if not count:
            self.sha256 = None  # no records: nothing was read that a caller may rely on
            raise UserError(f"{name}: no FASTA records found")


def write_fasta(path: str | Path, records) -> None:
    """Write (id or header, sequence) pairs atomically: a temporary file renamed into place."""
    with atomic_path(path) as tmp, open(tmp, "w") as handle:
        for header, sequence in records:
            handle.write(f">{header}\n")
            for start in range(0, len(sequence), 80):
                handle.write(sequence[start : start + 80] + "\n")
