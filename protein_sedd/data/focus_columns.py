"""The `focus_columns` training representation (`data.representation`): every alignment row read over the
focus's match columns only, so that position i of every record is column i, as in EVE/DeepSequence.

A record is the row's symbol in each focus column: its residue (upper case), or `X` where the row has a
gap; insertions (columns the focus does not match) are dropped, and every record has the same length, the
number of focus columns C. In this representation `X` stands for a deletion relative to the focus, or an
unknown residue. The default, `sequence`, trains on each row's real sequence (alignment.py).

What a later command needs to read a wild type in column space is recorded in the run's `dataset`
section: `focus_sequence` (the focus's real sequence, every letter) and `focus_residues`, the 1-based
positions of that sequence that are focus columns as ranges ("1-12,15-403"). Column c holds residue
focus_positions[c]; a variant at a position with no column has no score in this model. A designed row
becomes a sequence by dropping its X.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.errors import UserError
from protein_sedd.io.fasta import FastaRecord

GAP_LETTER = "X"  # a focus column where the row has no residue
ROW_HINT = "give each sequence as its alignment row over the focus columns (X at deletions, no insertions)"
_RANGE = re.compile(r"([0-9]+)(?:-([0-9]+))?")
# symbol code (alignment.CODES: residues 0..20, GAP_CODE 21) -> letter; X for the gap
_LETTERS = np.frombuffer((ALPHABET.residues + GAP_LETTER).encode("ascii"), dtype=np.uint8)


def representation_of(data_cfg) -> str:
    """The config's representation; a config from before the key trained on sequences."""
    return str(data_cfg.get("representation", "sequence"))


def column_records(records: Sequence[FastaRecord], columns: np.ndarray) -> list[FastaRecord]:
    """Each record's row over the focus columns (`columns`: [records, C] symbol codes), X at gaps."""
    letters = _LETTERS[columns].tobytes().decode("ascii")
    width = columns.shape[1]
    return [
        FastaRecord(r.id, r.description, letters[i * width : (i + 1) * width]) for i, r in enumerate(records)
    ]


def residue_ranges(positions: np.ndarray) -> str:
    """0-based ascending positions as 1-based inclusive ranges: [0, 1, 2, 5] -> '1-3,6'."""
    parts, values = [], [int(p) + 1 for p in positions]
    start = previous = values[0]
    for value in [*values[1:], None]:
        if value is not None and value == previous + 1:
            previous = value
            continue
        parts.append(f"{start}" if start == previous else f"{start}-{previous}")
        if value is not None:
            start = previous = value
    return ",".join(parts)


def parse_residue_ranges(text: str) -> np.ndarray:
    """The inverse of `residue_ranges`: 0-based positions (int64), strictly ascending; ValueError if not."""
    positions: list[int] = []
    for part in str(text).split(","):
        match = _RANGE.fullmatch(part.strip())
        if match is None:
            raise ValueError(f"{part!r} is not a range like 15-403")
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        if low < 1 or high < low or (positions and low - 1 <= positions[-1]):
            raise ValueError(f"{part!r}: ranges must be 1-based and ascending")
        positions.extend(range(low - 1, high))
    return np.array(positions, dtype=np.int64)


@dataclass(frozen=True)
class FocusMapping:
    """A focus_columns model's focus: its real sequence and each column's 0-based position in it."""

    sequence: str
    positions: np.ndarray

    @classmethod
    def from_config(cls, config, where: str = "") -> FocusMapping | None:
        """The mapping a focus_columns run recorded (None for a sequence model); a damaged record is a
        UserError naming the key."""
        data = config.get("data") or {}
        if representation_of(data) != "focus_columns":
            return None
        dataset = config.get("dataset") or {}
        sequence, ranges = dataset.get("focus_sequence"), dataset.get("focus_residues")
        if not isinstance(sequence, str) or not sequence or not isinstance(ranges, str):
            raise UserError(
                f"{where}data.representation=focus_columns needs dataset.focus_sequence and "
                "dataset.focus_residues (written by train); retrain, or restore the run's config.yaml"
            )
        try:
            ALPHABET.encode(sequence)
            positions = parse_residue_ranges(ranges)
        except ValueError as err:
            raise UserError(f"{where}dataset.focus_residues / focus_sequence: {err}") from None
        if positions[-1] >= len(sequence):
            raise UserError(
                f"{where}dataset.focus_residues={ranges!r} reaches beyond dataset.focus_sequence "
                f"({len(sequence)} residues)"
            )
        return cls(sequence, positions)

    @property
    def row(self) -> str:
        """The focus's own record: its residues at the focus columns (it has one at every column)."""
        return "".join(self.sequence[int(p)] for p in self.positions)

    def column_positions(self, positions: Sequence[int]) -> tuple[int, ...] | None:
        """0-based wild-type positions -> their columns, or None when one of them has no column."""
        column_of = self._column_of
        if not all(p in column_of for p in positions):
            return None
        return tuple(column_of[p] for p in positions)

    def check_rows(self, lengths: Iterable[tuple[str, int]], hint: str = ROW_HINT) -> None:
        """Sequences given to this model must be rows over its focus columns, C letters each: a raw
        sequence of another length would be read as columns it does not fill (a meaningless score)."""
        width = len(self.positions)
        for name, length in lengths:
            if length != width:
                raise UserError(
                    f"{name}: {length} letters, but this focus_columns model reads rows over its {width} "
                    f"focus columns; {hint}"
                )

    @cached_property
    def _column_of(self) -> dict[int, int]:
        return {int(p): c for c, p in enumerate(self.positions)}


def design_sequence(row: str) -> str:
    """A designed row of column letters as a protein: its X (deletions) dropped. A row of nothing but X
    is kept as it is: an empty record would make the designs file unreadable FASTA."""
    return row.replace(GAP_LETTER, "") or row


def check_fits(n_columns: int, max_length: int, source) -> None:
    """Every focus_columns record is C letters long: the model's context must hold them."""
    if n_columns > max_length:
        raise UserError(
            f"model.max_length={max_length} is shorter than the {n_columns} focus columns of {source} "
            f"(data.representation=focus_columns); set model.max_length={n_columns} or more"
        )
