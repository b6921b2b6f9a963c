"""Training input as users get it from search tools: unaligned FASTA, or an alignment (A2M, A3M, Stockholm,
aligned FASTA), plain or gzip, read in one streamed pass with Biopython's parsers.

A training record is the real sequence of each alignment row: all its letters, upper-cased, gaps ('-', '.')
removed (A2M/A3M lower-case insertions belong to the homolog), so the model keeps learning sequences of
their real length and scores full-length wild types. The alignment adds what only it gives, over the
focus's match columns (the "focus columns"):

- the focus (query): the first record, or `data.focus=ID`;
- focus columns: where the focus has an upper-case residue (A2M/A3M/Stockholm match states); in an
  alignment written all in one case (aligned FASTA), where it has a residue;
- each row's symbols in those columns (`SequenceInput.columns`: residue codes 0..20, `GAP_CODE` for a
  gap), from which fragments.py takes coverage and weights.py identity.

The format comes from the extension (.a2m, .a3m, .afa/.afasta, .sto/.stk/.sth/.stockholm; a trailing .gz
is ignored) or else the content: '# STOCKHOLM' on the first line; FASTA records holding gaps whose rows
all have one width (aligned FASTA, A2M) or one count of match symbols, upper-case letters and '-' (A3M,
whose insertions are not padded). Any other FASTA is unaligned and reads as it always has.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from Bio import AlignIO
from Bio.SeqIO.FastaIO import SimpleFastaParser

from protein_sedd.data.alphabet import ALPHABET, SUBSTITUTIONS
from protein_sedd.errors import UserError
from protein_sedd.io.fasta import GZIP_MAGIC, FastaRecord, FastaStream, _checked_lines, normalised_sequence

GAP_CODE = ALPHABET.n_residues  # one symbol past the residues: identity counts a shared gap as a match
EXTENSIONS = {
    ".a2m": "a2m", ".a3m": "a3m", ".afa": "afa", ".afasta": "afa",
    ".sto": "stockholm", ".stk": "stockholm", ".sth": "stockholm", ".stockholm": "stockholm",
}  # fmt: skip
ALIGNMENT_FORMATS = ("a2m", "a3m", "afa", "stockholm")
_INSERTIONS = re.compile(r"[a-z.]")  # A3M/A2M insert states: dropped to line rows up on match columns


@dataclass
class SequenceInput:
    """A training file's records, its sha256 and, for an alignment, the focus and its columns."""

    records: list[FastaRecord]
    sha256: str
    format: str  # "fasta" (unaligned) or one of ALIGNMENT_FORMATS
    focus_id: str | None = None
    columns: np.ndarray | None = None  # (records, focus columns) uint8 symbol codes; None when unaligned
    focus_index: int | None = None  # the focus's place in `records`
    focus_positions: np.ndarray | None = None  # each focus column's 0-based residue in the focus sequence

    @property
    def aligned(self) -> bool:
        return self.columns is not None


def _code_table() -> np.ndarray:
    """Byte -> symbol code: residues (either case, with the alphabet's substitutions), gaps, 255 otherwise."""
    table = np.full(256, 255, dtype=np.uint8)
    for index, residue in enumerate(ALPHABET.residues):
        table[ord(residue)] = table[ord(residue.lower())] = index
    for letter, residue in SUBSTITUTIONS.items():
        table[ord(letter)] = table[ord(letter.lower())] = ALPHABET.residues.index(residue)
    table[ord("-")] = table[ord(".")] = table[ord("*")] = GAP_CODE
    return table


CODES = _code_table()


def format_from_extension(path: str | Path) -> str | None:
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return EXTENSIONS.get(suffixes[-1]) if suffixes else None


def is_alignment_file(path: str | Path) -> bool:
    """An alignment by extension, or by its first record's content (a regular file only: a pipe is read
    once, by the reader, and is taken for FASTA unless its name says otherwise)."""
    if format_from_extension(path) in ALIGNMENT_FORMATS:
        return True
    path = Path(path)
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as raw:
            head = raw.read(2)
        opener = gzip.open if head == GZIP_MAGIC else open
        with opener(path, "rt", errors="replace") as handle:
            first = handle.readline()
            if first.startswith("# STOCKHOLM"):
                return True
            if not first.startswith(">"):
                return False  # not FASTA either: the FASTA reader names the problem
            for line in handle:  # the first record's rows: a gap says aligned
                if line.startswith(">"):
                    return False
                if "-" in line or "." in line:
                    return True
    except (OSError, EOFError, zlib.error):
        return False  # the reader names the problem
    return False


class _Lines:
    """A text stream's lines, counted; the first can be looked at before a parser reads it. Records the
    line of each FASTA header not yet claimed by a record and of each Stockholm row name's first row."""

    def __init__(self, text):
        self._text, self.number = text, 0
        self.first = text.readline()
        self._pending: str | None = self.first
        self.headers: deque[int] = deque()
        self.first_row: dict[str, int] | None = None  # kept once a Stockholm reader asks for it
        self.ends = 0  # Stockholm '//' lines read

    def readline(self) -> str:
        if self._pending is not None:
            line, self._pending = self._pending, None
        else:
            line = self._text.readline()
        if line:
            self.number += 1
            head = line.lstrip()[:1]
            if head == ">":
                self.headers.append(self.number)
            elif self.first_row is not None and head and head not in "#/":
                self.first_row.setdefault(line.split(None, 1)[0], self.number)
            elif line.strip() == "//":
                self.ends += 1
        return line

    def __iter__(self):
        while line := self.readline():
            yield line


def read_sequences(path: str | Path, focus: str | None = None) -> SequenceInput:
    """Every record of an unaligned FASTA or alignment file, and for an alignment its focus columns.

    Mistakes are a UserError naming the file, and the line where the fault lies: a row of another width
    (or, in A3M, another count of match symbols), an invalid residue, a repeated id, an unknown
    `focus`, a malformed Stockholm file. Path, size and encoding problems are as for FASTA (fasta.py).
    """
    name = str(path)
    declared = format_from_extension(path)
    stream = FastaStream(path)  # its path checks, gzip sniffing, size bound and sha256
    with stream.text("sequence") as text:
        lines = _Lines(text)
        if declared == "stockholm" or (declared is None and lines.first.startswith("# STOCKHOLM")):
            ids, rows, line_of = _stockholm_rows(lines, name)
            fmt = "stockholm"
        else:
            ids, rows, line_of = _fasta_rows(lines, name)
            fmt = declared or _fasta_format(rows)
    if fmt == "fasta" and focus is not None:
        raise UserError(f"data.focus={focus}: {name} is not an alignment; drop data.focus")
    records = [
        FastaRecord(record_id, title, _sequence(row, name, record_id, line_of, fmt))
        for (record_id, title), row in zip(ids, rows, strict=True)
    ]
    if fmt == "fasta":
        return SequenceInput(records, stream.sha256, fmt)
    focus_index = _focus_index(ids, focus, name)
    columns, positions = _focus_columns(rows, focus_index, fmt, name, ids, line_of)
    return SequenceInput(records, stream.sha256, fmt, ids[focus_index][0], columns, focus_index, positions)


def _sequence(row: str, name: str, record_id: str, line_of: dict[str, int], fmt: str) -> str:
    if fmt == "fasta":  # the messages FASTA input has always given
        return normalised_sequence(row, f"{name}: record {record_id!r}")
    # a row of gaps only is a record with no residues: a zero-coverage fragment, dropped and counted later
    where = f"{name}: line {line_of[record_id]}, record {record_id!r}"
    return normalised_sequence(row, where, allow_empty=True)


def _fasta_rows(lines: _Lines, name: str):
    """(id, header) pairs, raw rows and the header line of each id, in file order (SimpleFastaParser)."""
    ids, rows, line_of = [], [], {}
    for number, (title, row) in enumerate(SimpleFastaParser(_checked_lines(lines, name)), start=1):
        line = lines.headers.popleft()  # the parser has read one header ahead: this record's is the oldest
        record_id = title.split(None, 1)[0] if title.strip() else ""
        if not record_id:
            raise UserError(f"{name}: record {number} has an empty header, expected '>id'")
        if record_id in line_of:
            raise UserError(f"{name}: duplicate record id {record_id!r} (record {number})")
        line_of[record_id] = line
        ids.append((record_id, title))
        rows.append(row)
    if not rows:
        raise UserError(f"{name}: no FASTA records found")
    return ids, rows, line_of


def _fasta_format(rows: list[str]) -> str:
    """A FASTA file's content decides: gapped rows of one width are aligned FASTA (A2M when it holds
    lower-case insert states), of one match-symbol count A3M; anything else is unaligned."""
    if not any("-" in row or "." in row for row in rows):
        return "fasta"
    if len({len(row) for row in rows}) == 1:
        return "a2m" if any(c.islower() for c in rows[0]) or any("." in row for row in rows) else "afa"
    if len({len(_INSERTIONS.sub("", row)) for row in rows}) == 1:
        return "a3m"
    return "fasta"


def _stockholm_rows(lines: _Lines, name: str):
    """The first alignment of a Stockholm file (Biopython's parser; '.' read as '-', case kept)."""
    lines.first_row = {}
    try:
        alignments = AlignIO.parse(lines, "stockholm")
        alignment = next(alignments, None)
        if alignment is not None and next(alignments, None) is not None:
            raise UserError(f"{name}: holds more than one alignment; keep one (up to its '//' line)")
    except ValueError as err:
        message = " ".join(str(err).split())[:120]
        raise UserError(f"{name}: line {lines.number}: not a valid Stockholm alignment ({message})") from None
    if alignment is None or not len(alignment):
        raise UserError(f"{name}: no Stockholm alignment found ('# STOCKHOLM 1.0', rows, then '//')")
    if lines.ends == 0:  # Biopython returns what it read of a cut file: a block's columns, silently
        raise UserError(
            f"{name}: ends at line {lines.number} without the closing '//' line; the file is cut short "
            "(a truncated download or copy): fetch it again"
        )
    ids = [(record.id, record.id) for record in alignment]
    # Biopython keeps no line numbers: a row's message names the line where that row first appears
    line_of = {record.id: lines.first_row.get(record.id, lines.number) for record in alignment}
    return ids, [str(record.seq) for record in alignment], line_of


def _focus_index(ids: list[tuple[str, str]], focus: str | None, name: str) -> int:
    if focus is None:
        return 0
    for index, (record_id, _) in enumerate(ids):
        if record_id == focus:
            return index
    raise UserError(f"data.focus={focus}: no record with that id in {name} (its first record is {ids[0][0]})")


def _focus_columns(
    rows, focus_index: int, fmt: str, name: str, ids, line_of
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, focus columns) symbol codes, rows lined up on their match columns and the focus's kept, and
    each kept column's 0-based position in the focus's sequence (all its letters, insertions included)."""
    raw_focus = rows[focus_index]
    insertions_dropped = fmt == "a3m" or (fmt != "stockholm" and len({len(row) for row in rows}) > 1)
    if insertions_dropped:
        rows = [_INSERTIONS.sub("", row) for row in rows]  # insertions are not padded: drop them
        what = "match columns (upper-case letters and '-')"
    else:
        what = "columns"
    width = len(rows[focus_index])
    for (record_id, _), row in zip(ids, rows, strict=True):
        if len(row) != width:
            raise UserError(
                f"{name}: line {line_of[record_id]}, record {record_id!r}: {len(row)} {what}, "
                f"expected {width} like the focus {ids[focus_index][0]!r}; is this a {fmt.upper()} alignment?"
            )
    focus_row = rows[focus_index]
    upper = any(c.isupper() for c in focus_row) and any(c.islower() for c in focus_row)
    keep = [i for i, c in enumerate(focus_row) if (c.isupper() if upper else c.isalpha())]
    if not keep:
        raise UserError(f"{name}: the focus {ids[focus_index][0]!r} has no residues to align to")
    matrix = np.frombuffer("".join(rows).encode("ascii", "replace"), dtype=np.uint8).reshape(len(rows), width)
    codes = CODES[matrix[:, keep]]
    bad = np.flatnonzero((codes == 255).any(axis=1))
    if bad.size:  # normalise passed every letter: what is left is a character no alignment uses
        record_id = ids[int(bad[0])][0]
        raise UserError(f"{name}: line {line_of[record_id]}, record {record_id!r}: unexpected character")
    return codes, _residue_positions(raw_focus, insertions_dropped)[keep]


def _residue_positions(raw_row: str, insertions_dropped: bool) -> np.ndarray:
    """For each column of the lined-up row, the 0-based index of its residue in the row's sequence (every
    letter counts, insertions too), -1 at a gap."""
    positions, residue = [], 0
    for c in raw_row:
        if not (insertions_dropped and (c.islower() or c == ".")):
            positions.append(residue if c.isalpha() else -1)
        residue += c.isalpha()
    return np.array(positions, dtype=np.int64)
