"""FASTA reading with Biopython: plain or gzip, CRLF tolerated, errors that name file, record and position."""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass
from pathlib import Path

from Bio.SeqIO.FastaIO import SimpleFastaParser

from protein_sedd.data.alphabet import ALPHABET, Alphabet, InvalidResidue
from protein_sedd.errors import UserError


@dataclass(frozen=True)
class FastaRecord:
    id: str
    description: str
    sequence: str


def _open_text(path: Path):
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
    raw = gzip.open(path, "rb") if gzipped else open(path, "rb")
    # newline=None turns CRLF and CR into '\n' before the parser sees them
    return io.TextIOWrapper(raw, encoding="utf-8", newline=None)


def read_fasta(path: str | Path, alphabet: Alphabet = ALPHABET, unique_ids: bool = True) -> list[FastaRecord]:
    """Read every record of a FASTA file, normalised by the alphabet's policy.

    Raises `UserError` with one line naming the file (and record and position) for: a missing or
    unreadable path, a directory, an empty file, text before the first '>', binary content, an empty
    record, an invalid residue, and (with `unique_ids`) a repeated id.
    """
    path = Path(path)
    name = str(path)
    if not path.exists():
        raise UserError(f"{name}: no such file")
    if path.is_dir():
        raise UserError(f"{name}: is a directory, expected a FASTA file")
    records: list[FastaRecord] = []
    seen: set[str] = set()
    try:
        with _open_text(path) as handle:
            text = handle.read()
    except PermissionError:
        raise UserError(f"{name}: permission denied, cannot read the file") from None
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, OSError) as err:
        raise UserError(
            f"{name}: not a text FASTA file ({type(err).__name__}); expected '>' header lines"
        ) from None
    if "\x00" in text:
        raise UserError(f"{name}: binary content, not a FASTA file")
    stripped = text.lstrip()
    if not stripped:
        raise UserError(
            f"{name}: empty file, expected FASTA records ('>id' lines followed by sequence lines)"
        )
    if not stripped.startswith(">"):
        first = stripped.splitlines()[0][:40]
        raise UserError(f"{name}: not FASTA, line 1 {first!r} does not start with '>'")
    for number, (title, raw_sequence) in enumerate(SimpleFastaParser(io.StringIO(text)), start=1):
        record_id = title.split(None, 1)[0] if title.strip() else ""
        if not record_id:
            raise UserError(f"{name}: record {number} has an empty header, expected '>id'")
        if unique_ids and record_id in seen:
            raise UserError(f"{name}: duplicate record id {record_id!r} (record {number})")
        seen.add(record_id)
        try:
            sequence = alphabet.normalise(raw_sequence)
        except InvalidResidue as err:
            raise UserError(f"{name}: record {record_id!r}: {err}") from None
        if not sequence:
            raise UserError(f"{name}: record {record_id!r}: empty sequence")
        records.append(FastaRecord(record_id, title, sequence))
    if not records:
        raise UserError(f"{name}: no FASTA records found")
    return records


def write_fasta(path: str | Path, records) -> None:
    """Write (id or header, sequence) pairs atomically: a temporary file renamed into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as handle:
        for header, sequence in records:
            handle.write(f">{header}\n")
            for start in range(0, len(sequence), 80):
                handle.write(sequence[start : start + 80] + "\n")
    tmp.replace(path)
