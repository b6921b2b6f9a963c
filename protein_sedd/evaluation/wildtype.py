"""The user's wild type placed on the model's focus: full-length proteins, `/start-end` ids, MSA_start.

Scans number mutations on the protein as users have it, usually the full UniProt sequence (`H24C`), while
a family model knows a region of it: the focus sequence of the alignment it was trained on (recorded as
`dataset.focus_sequence`). Two shifts relate them, both checked:

- **numbering**: mutant position p is residue p of the wild type as given, or, when the wild type's id
  ends in `/start-end` (A2M/A3M focus ids such as `PTEN_HUMAN/1-403`), residue p of the protein of which
  the record holds residues start..end (`numbering_start`);
- **placement**: where the focus lies in the wild type (`place`): at `focus_start` (1-based, in the
  wild type's numbering: ProteinGym's MSA_start), or else where the focus sequence is found, once;
  the wild type may also be the focus itself.

Variants outside the focus region go unscored (their score empty) and are counted. Inside it the wild type
must equal the focus residue for residue: a variant strain differs, and is an error naming the first
differing position, unless `allow_differences` (then the strain's own residues are scored). A model with
no recorded focus (a sequence model trained on unaligned FASTA, or a run from before the record) scores
the wild type as given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from protein_sedd.errors import UserError

RANGE_ID = re.compile(r"/(\d+)-(\d+)$")


def numbering_start(record_id: str | None, length: int, where: str) -> int:
    """The residue number of the wild type's first letter: `start` of a `/start-end` id whose range spans
    the record (a range of another length is an error), else 1."""
    match = RANGE_ID.search(record_id or "")
    if match is None:
        return 1
    start, end = int(match.group(1)), int(match.group(2))
    if start < 1 or end - start + 1 != length:
        raise UserError(
            f"{where}: its id says residues {start}-{end} ({end - start + 1}), but it holds {length}; fix "
            "the id's range, or drop it to number the record from 1"
        )
    return start


@dataclass(frozen=True)
class Wildtype:
    """The wild type as given: its sequence, record id (None for a bare sequence), where it came from (for
    messages) and its first residue's number (`numbering_start`)."""

    sequence: str
    id: str | None
    where: str
    first: int = 1


def read_wildtype(wildtype, name: str = "wildtype") -> Wildtype:
    """A sequence (normalised) or a FASTA file as a Path (its first record, numbered by its id); a wrong
    type or a bad record is a UserError naming `name`."""
    from pathlib import Path

    from protein_sedd.io.fasta import normalised_sequence, read_fasta

    if isinstance(wildtype, Path):
        record = read_fasta(wildtype)[0]
        where = f"{name} {wildtype}: record {record.id!r}"
        return Wildtype(
            record.sequence, record.id, where, numbering_start(record.id, len(record.sequence), where)
        )
    if isinstance(wildtype, str):
        return Wildtype(normalised_sequence(wildtype, "wild type"), None, "the wild type")
    raise UserError(f"{name}: expected a sequence or a Path, got {type(wildtype).__name__}")


@dataclass(frozen=True)
class Placement:
    """Where the model's focus lies in the wild type: from index `offset` (0-based) for `length` residues,
    how that was found (for the log), and the 0-based wild-type positions where the two differ."""

    offset: int
    length: int
    how: str
    differences: tuple[int, ...] = ()

    def inside(self, positions) -> bool:
        return all(self.offset <= p < self.offset + self.length for p in positions)

    def region(self, wildtype: str) -> str:
        return wildtype[self.offset : self.offset + self.length]


def place(
    wildtype: str,
    focus: str | None,
    *,
    first: int = 1,
    focus_start: int | None = None,
    allow_differences: bool = False,
    where: str = "the wild type",
) -> Placement:
    """The focus's place in `wildtype` (see the module doc); `first` is the wild type's first residue
    number, in which `focus_start` and the messages count."""
    if focus is None:
        return Placement(0, len(wildtype), "the model records no focus: the wild type is scored as given")
    if focus_start is not None:
        if isinstance(focus_start, bool) or not isinstance(focus_start, int):
            raise UserError(
                f"{{focus_start}} {focus_start!r}: expected a residue number", field="focus_start"
            )
        offset = focus_start - first
        if offset < 0 or offset + len(focus) > len(wildtype):
            raise UserError(
                f"{{focus_start}} {focus_start}: the focus ({len(focus)} residues) would span residues "
                f"{focus_start}-{focus_start + len(focus) - 1}, but {where} holds residues "
                f"{first}-{first + len(wildtype) - 1}",
                field="focus_start",
            )
        how = f"at residue {focus_start} (focus_start)"
    else:
        found = _occurrences(wildtype, focus)
        if len(found) > 1:
            shown = " and ".join(str(first + i) for i in found[:2])
            raise UserError(
                f"{where}: the focus sequence ({len(focus)} residues) occurs at residues {shown}; give "
                "{focus_start} to say which",
                field="focus_start",
            )
        if not found:
            if len(wildtype) != len(focus):
                raise UserError(
                    f"{where} ({len(wildtype)} residues) does not contain the focus sequence this model was "
                    f"trained on ({len(focus)} residues, dataset.focus_sequence in its config.yaml); give "
                    "{focus_start} (the wild-type residue where the focus begins, ProteinGym's MSA_start), "
                    "or the focus itself as the wild type",
                    field="focus_start",
                )
            offset, how = 0, "the wild type, residue for residue (a strain of the focus)"
        else:
            offset = found[0]
            whole = offset == 0 and len(wildtype) == len(focus)
            how = (
                "the focus itself"
                if whole
                else f"found once, at residues {first + offset}-{first + offset + len(focus) - 1}"
            )
    differences = tuple(
        offset + i
        for i, (a, b) in enumerate(zip(wildtype[offset : offset + len(focus)], focus, strict=True))
        if a != b
    )
    if differences and not allow_differences:
        i = differences[0]
        raise UserError(
            f"{where}: residue {first + i} is {wildtype[i]!r} where the focus has {focus[i - offset]!r} "
            f"({len(differences)} difference{'s' * (len(differences) > 1)} in the focus region); pass "
            "{allow_differences} to score this strain's own residues",
            field="allow_differences",
        )
    if differences:
        how += f", {len(differences)} residue{'s' * (len(differences) > 1)} differing from the focus"
    return Placement(offset, len(focus), how, differences)


def _occurrences(text: str, part: str) -> list[int]:
    found, start = [], text.find(part)
    while start >= 0 and len(found) < 2:
        found.append(start)
        start = text.find(part, start + 1)
    return found
