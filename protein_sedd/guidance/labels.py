"""Labelled sequences for a guide: `sequence,label` in a CSV, or `id,label` with the sequences in a FASTA.

Labels are numbers. Whether the guide classifies or regresses is read from them (`task_of`): a few distinct
whole numbers (at most `MAX_CLASSES`) are classes, anything else is a measured value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from protein_sedd.errors import UserError
from protein_sedd.io.fasta import normalised_sequence, read_fasta
from protein_sedd.io.tables import parse_number, read_text_table

TASKS = ("auto", "classify", "regress")
MAX_CLASSES = 10
MIN_SEQUENCES = 8


@dataclass(frozen=True)
class Labelled:
    """Sequences (normalised residues) and their labels, in file order; `where[i]` names row i's line."""

    sequences: list[str]
    labels: list[float]
    where: list[str]


def labelled_from(labels, fasta: str | Path | None = None) -> Labelled:
    """`labels` as a CSV path (see `read_labels`) or a DataFrame with the same columns."""
    import pandas as pd

    if isinstance(labels, pd.DataFrame):
        # None and NaN are empty cells, as in a CSV, whatever the dtype (and pandas 2.0 has no DataFrame.map)
        table = labels.astype(object).where(labels.notna(), "").astype(str)
        return labelled_rows(
            table, "labels", None if fasta is None else Path(fasta), lambda row: f"labels row {row}"
        )
    if isinstance(labels, (str, Path)):
        return read_labels(Path(labels), None if fasta is None else Path(fasta))
    raise UserError(f"labels: expected a CSV path or a DataFrame, got {type(labels).__name__}")


def read_labels(path: Path, fasta: Path | None = None) -> Labelled:
    """Rows of `path`: a `label` column and either `sequence`, or `id` naming records of `fasta`."""
    path = Path(path)
    table = read_text_table(path, "--labels", "a CSV table with columns sequence,label or id,label")
    return labelled_rows(table, str(path), fasta, lambda row: f"{path} line {row + 2}")


def labelled_rows(table, path: str, fasta: Path | None, row_name) -> Labelled:
    """The rows of a text table; `path` names the table in messages, `row_name(row)` one of its rows."""
    columns = list(table.columns)
    if "label" not in columns or not {"sequence", "id"} & set(columns):
        shown = ", ".join(repr(c) for c in columns[:10]) or "none"
        raise UserError(
            f"{path}: expected columns sequence,label (or id,label with {{fasta}}), found {shown}",
            field=("labels", "fasta"),
        )
    if len(table) == 0:
        raise UserError(f"{path}: no labelled sequences (only a header line)")
    by_sequence = "sequence" in columns
    if by_sequence and fasta is not None:
        raise UserError(
            f"{path}: has a 'sequence' column, so {{fasta}} {fasta} is not used; drop one of the two",
            field="fasta",
        )
    if not by_sequence and fasta is None:
        raise UserError(
            f"{path}: names sequences by 'id'; pass the FASTA that holds them with {{fasta}}", field="fasta"
        )
    records = {} if by_sequence else {r.id: r.sequence for r in read_fasta(fasta)}
    sequences, labels, where = [], [], []
    for row, values in enumerate(table.itertuples(index=False)):
        line = row_name(row)
        entry = dict(zip(columns, values, strict=True))
        if by_sequence:
            sequence = normalised_sequence(entry["sequence"], line)
        else:
            ident = entry["id"].strip()
            if ident not in records:
                raise UserError(f"{line}: id {ident!r} is not a record of {fasta}")
            sequence = records[ident]
        labels.append(_number(entry["label"], line))
        sequences.append(sequence)
        where.append(line)
    if len(sequences) < MIN_SEQUENCES:
        raise UserError(
            f"{path}: {len(sequences)} labelled sequences; a guide needs {MIN_SEQUENCES} at least"
        )
    return Labelled(sequences, labels, where)


MAX_LABEL = 1e15  # larger labels overflow float32 once squared in training: the guide's weights became NaN


def _number(text: str, line: str) -> float:
    try:
        value = parse_number(text)
    except ValueError:
        raise UserError(f"{line}: label {text!r} is not a number (classes are 0, 1, ...)") from None
    if math.isnan(value):
        raise UserError(f"{line}: label is missing ({text!r}); give every sequence a label or drop the row")
    if abs(value) > MAX_LABEL:
        raise UserError(
            f"{line}: label {text!r} is larger than {MAX_LABEL:.0e} in magnitude; rescale the labels"
        )
    return value


def task_of(labels: list[float], task: str = "auto") -> str:
    """'classify' or 'regress': `task`, or for 'auto' classes when the labels are a few whole numbers."""
    if task not in TASKS:
        raise UserError(f"{{task}} {task!r}: choose {', '.join(TASKS)}", field="task")
    distinct = set(labels)
    whole = all(float(v).is_integer() for v in distinct)
    if task == "auto":
        task = "classify" if whole and len(distinct) <= MAX_CLASSES else "regress"
    if task == "classify":
        if not whole:
            raise UserError("{task} classify: labels must be whole numbers (classes 0, 1, ...)", field="task")
        if len(distinct) < 2:
            raise UserError(
                f"{{task}} classify: every label is {labels[0]:g}; a classifier needs two classes",
                field="task",
            )
        if len(distinct) > MAX_CLASSES:
            raise UserError(
                f"{{task}} classify: {len(distinct)} classes, more than {MAX_CLASSES}; use regress",
                field="task",
            )
    elif len(distinct) < 2:
        raise UserError(f"{{task}} regress: every label is {labels[0]:g}; nothing to learn", field="task")
    return task
