"""How a model reads proteins (`data.representation`): an adapter between the user's sequences and the rows
the network sees, so that design, scoring, guides and variant effects never ask which one they have.

- `sequence` (the default): a row is the protein itself, up to the model's context.
- `focus_columns` (data/focus_columns.py): a row is the protein's alignment row over the focus's match
  columns, C letters, X at deletions. A wild type is mapped onto the columns through the recorded focus; a
  mutated position without a column has no score; a designed row is a protein once its X are dropped.

Each adapter answers the same questions:

    check_rows(lengths, hint)         rows in: every (where, length) must be a row this model reads
    check_starts(starts)              the same for the start rows of a design request
    focus_sequence                    the family region it knows (the alignment's focus), or None
    wildtype_row(region, max_length, where)   the row the network scores for the wild type's focus region
    columns(positions)                a variant's 0-based wild-type positions on that row (None: unscored)
    protein(row), row_note(row)       designs out: the protein, and what its FASTA header adds
    design_note()                     the line `design` logs about the representation (None: nothing)
    scored_note(row)                  what `score-variants` says of the row it scores

`REPRESENTATIONS` maps each `data.representation` value to its adapter; `representation_for(config)`
builds a checkpoint's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.data.focus_columns import ROW_HINT, FocusMapping, design_sequence, representation_of
from protein_sedd.errors import UserError


class Sequences:
    """`data.representation=sequence`: the rows are the proteins. Trained on an alignment, the model knows
    its focus's region (`focus_sequence`, recorded by runs since it was): a wild type is scored there."""

    name = "sequence"
    focus: FocusMapping | None = None
    unscored_reason: str | None = None

    def __init__(self, focus_sequence: str | None = None):
        self.focus_sequence = focus_sequence

    @classmethod
    def from_config(cls, config, where: str = "") -> Sequences:
        recorded = (config.get("dataset") or {}).get("focus_sequence")
        if recorded is None:
            return cls()
        try:
            if not isinstance(recorded, str) or not recorded:
                raise ValueError("not a sequence")
            ALPHABET.encode(recorded)
        except ValueError as err:
            raise UserError(
                f"{where}dataset.focus_sequence {str(recorded)[:20]!r}: {err}; restore the run's config.yaml"
            ) from None
        return cls(recorded)

    def check_rows(self, lengths: Iterable[tuple[str, int]], hint: str = ROW_HINT) -> None:
        """Any length is a row (the model's context is checked where the sequences are read)."""

    def check_starts(self, starts: Sequence) -> None:
        """Design starts of any length (the request checks them against the context)."""

    def wildtype_row(self, wildtype: str, max_length: int, where: str = "the wild type") -> str:
        if len(wildtype) > max_length:
            raise UserError(
                f"{where} has {len(wildtype)} residues, longer than the model context ({max_length})"
            )
        return wildtype

    def columns(self, positions: Sequence[int]) -> tuple[int, ...] | None:
        return tuple(positions)

    def protein(self, row: str) -> str:
        return row

    def row_note(self, row: str) -> str:
        return ""

    def design_note(self) -> str | None:
        return None

    def scored_note(self, row: str) -> str:
        """What `score-variants` adds to the wild type's description."""
        return ""


class FocusColumns(Sequences):
    """`data.representation=focus_columns`: rows over the focus's match columns (data/focus_columns.py)."""

    name = "focus_columns"

    def __init__(self, focus: FocusMapping):
        self.focus, self.focus_sequence = focus, focus.sequence
        self.width = len(focus.positions)
        self.unscored_reason = f"a mutated position outside the {self.width} focus columns"

    @classmethod
    def from_config(cls, config, where: str = "") -> FocusColumns:
        """From the focus the run recorded (dataset.focus_sequence, dataset.focus_residues)."""
        return cls(FocusMapping.from_config(config, where))

    def check_rows(self, lengths: Iterable[tuple[str, int]], hint: str = ROW_HINT) -> None:
        self.focus.check_rows(lengths, hint)

    def check_starts(self, starts: Sequence) -> None:
        self.focus.check_rows(
            ((f"design {i}", len(row)) for i, row in enumerate(starts, start=1)),
            f"give no length (or length {self.width}), and a template or fixed sequence as a row over the "
            "focus columns (X at deletions)",
        )

    def wildtype_row(self, wildtype: str, max_length: int, where: str = "the wild type") -> str:
        """The region's residues at the focus columns (the focus's own row, or a strain's: evaluation/
        wildtype.py has placed and checked it)."""
        if len(wildtype) != len(self.focus.sequence):
            raise UserError(f"{where}: {len(wildtype)} residues, the focus has {len(self.focus.sequence)}")
        return "".join(wildtype[int(p)] for p in self.focus.positions)

    def columns(self, positions: Sequence[int]) -> tuple[int, ...] | None:
        return self.focus.column_positions(positions)  # ascending, as the positions are

    def protein(self, row: str) -> str:
        return design_sequence(row)

    def row_note(self, row: str) -> str:
        return f" aligned_length={len(row)}"

    def design_note(self) -> str | None:
        return (
            f"representation focus_columns: each design is a row over the {self.width} focus columns, "
            "written with its X (deletions) removed (aligned_length= in the header)"
        )

    def scored_note(self, row: str) -> str:
        return f", scored on its {len(row)} focus columns"


REPRESENTATIONS = {"sequence": Sequences, "focus_columns": FocusColumns}


def representation_for(config, where: str = "") -> Sequences:
    """The adapter of a checkpoint's config; a focus_columns model's damaged focus record is a UserError."""
    return REPRESENTATIONS[representation_of(config.get("data") or {})].from_config(config, where)
