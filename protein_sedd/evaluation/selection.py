"""From a design run to a plate: join the evaluations, filter, rank, and pick a diverse shortlist.

1. Join: every design (the FASTA) gets its row of each table given, by id: seq-eval's results (family bits,
   nearest identity, low-complexity flag), fold-eval's (mean pLDDT, pTM), and per-sequence scores
   (`evaluate --csv`: nats, bits per residue and their error). A design missing from a table is an error.
2. Filter, each filter applying only when its table is given: mean pLDDT >= `min_plddt`, family bits >=
   `min_family_bits`, nearest-reference identity <= `max_nearest_identity` (novelty), and no low-complexity
   flag unless kept.
3. Rank the designs that pass by one stated key: `plddt` or `family_bits` (higher first), or
   `bits_per_residue` (the model's bound, lower first).
4. Pick greedily down that ranking, skipping any design more than `max_pair_identity` identical to one
   already picked, until `n` are picked or none are left. The funnel counts the designs left after each
   step; the diversity step is counted over every eligible design, as if the plate were unlimited.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from protein_sedd.errors import UserError
from protein_sedd.evaluation.sequence_metrics import identity
from protein_sedd.io.fasta import FastaRecord
from protein_sedd.io.tables import numeric_column, read_text_table

RANK_KEYS = {  # key -> (column, higher is better)
    "plddt": ("mean_plddt", True),
    "family_bits": ("family_bits", True),
    "bits_per_residue": ("bits_per_residue", False),
}
NUMERIC_COLUMNS = {  # the columns of each table holding numbers (read as text, converted, each cell checked)
    "fold-eval": ["mean_plddt", "ptm"],
    "seq-eval": ["family_bits", "nearest_identity"],
    "scores": ["nats", "bits_per_residue", "standard_error_nats"],
}
MAY_BE_MISSING = {"ptm", "standard_error_nats"}  # shown, never filtered or ranked on
TABLE_COLUMNS = {  # the columns each table contributes
    "fold-eval": ["mean_plddt", "ptm"],
    "seq-eval": ["family_bits", "nearest_identity", "nearest_id", "low_complexity"],
    "scores": ["nats", "bits_per_residue", "standard_error_nats"],
}


@dataclass(frozen=True)
class Thresholds:
    """The filters' bounds and the diversity rule (checked: pLDDT on 0-100, identities in 0-1)."""

    min_plddt: float = 70.0
    min_family_bits: float = 25.0
    max_nearest_identity: float = 0.9
    keep_low_complexity: bool = False
    max_pair_identity: float = 0.8

    def __post_init__(self) -> None:
        for field, high in (("min_plddt", 100.0), ("max_nearest_identity", 1.0), ("max_pair_identity", 1.0)):
            value = getattr(self, field)
            if not 0.0 <= value <= high:  # also refuses NaN
                raise UserError(f"{{{field}}} {value}: give a value from 0 to {high:g}", field=field)


TABLE_SOURCES = {  # table -> (the parameter naming it, what it names, the file in it)
    "seq-eval": ("seq_eval", "DIR", "results.csv"),
    "fold-eval": ("fold_eval", "DIR", "results.csv"),
    "scores": ("scores", "CSV", None),
}


FILTER_TABLES = {  # a filter's parameter -> the table it reads (it applies only when that table is given)
    "min_plddt": "fold-eval",
    "min_family_bits": "seq-eval",
    "max_nearest_identity": "seq-eval",
    "keep_low_complexity": "seq-eval",
}


def check_filters_apply(tables: dict, **given) -> None:
    """Refuse a filter the caller set (not None, not False) whose table is not given: it would be ignored."""
    for field, value in given.items():
        table = FILTER_TABLES[field]
        if value not in (None, False) and table not in tables:
            source = TABLE_SOURCES[table][0]
            raise UserError(
                f"{{{field}}} filters on the {table} table: give {{{source}}} DIR too, or leave "
                f"{{{field}}} out",
                field=(field, source),
            )


def applied_thresholds(thresholds: Thresholds, tables: dict) -> dict:
    """The thresholds as they applied: a filter whose table was not given is None (it filtered nothing)."""
    values = asdict(thresholds)
    return {k: v if FILTER_TABLES.get(k) in (None, *tables) else None for k, v in values.items()}


def read_tables(**given: Path | None) -> dict[str, pd.DataFrame]:
    """The evaluation tables given (`seq_eval=`, `fold_eval=` folders, `scores=` a CSV), by table name."""
    tables = {}
    for name, (field, _, file) in TABLE_SOURCES.items():
        source = given.get(field)
        if source is None:
            continue
        path = Path(source) / file if file else Path(source)
        if not path.is_file():
            raise UserError(
                f"{{{field}}}: {path} not found; give the {name} output of these designs", field=field
            )
        try:
            table = read_text_table(path, f"{{{field}}}", f"the {name} table of these designs")
        except UserError as err:
            raise UserError(f"{{{field}}}: {err}", field=field) from None
        for column in NUMERIC_COLUMNS[name]:
            if column in table.columns:
                table[column] = numeric_column(
                    table, column, lambda row, at=f"{{{field}}}: {path}": f"{at} row {row + 2}",
                    missing_ok=column in MAY_BE_MISSING, hint=f"; rerun {name} on these designs", field=field,
                )  # fmt: skip
        tables[name] = table
    return tables


def fold_note(fold_eval: Path | None) -> str | None:
    """The note fold-eval's summary.json carries when its pLDDT means nothing (the toy random-weight
    ESMFold), for select to repeat: a ranking on it is a plumbing check, not a choice."""
    import json

    if fold_eval is None:
        return None
    path = Path(fold_eval) / "summary.json"
    if not path.is_file():
        return None  # results.csv alone (another tool's, or an older fold-eval's) is usable as it is
    try:
        note = json.loads(path.read_text()).get("note")
    except (OSError, ValueError, UnicodeDecodeError, AttributeError):
        raise UserError(
            f"{{fold_eval}}: {path} is not fold-eval's summary (unreadable JSON); rerun fold-eval",
            field="fold_eval",
        ) from None
    return str(note) if note else None


def check_rank_key(rank_by: str | None) -> None:
    if rank_by is not None and rank_by not in RANK_KEYS:
        raise UserError(f"{{rank_by}} {rank_by!r}: choose {', '.join(RANK_KEYS)}", field="rank_by")


@dataclass
class Selection:
    table: pd.DataFrame  # every design: metrics, pass_* per filter, eligible, rank, picked
    picks: list[FastaRecord]  # in rank order
    funnel: list[tuple[str, int]]  # (stage, designs left)


def join_tables(records: Sequence[FastaRecord], tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per design with the columns of every table given; ids missing from a table are refused."""
    frame = pd.DataFrame({"id": [r.id for r in records], "sequence": [r.sequence for r in records]}).assign(
        length=lambda f: f["sequence"].str.len()
    )
    for name, table in tables.items():
        wanted = TABLE_COLUMNS[name]
        absent = [c for c in ["id", *wanted] if c not in table.columns]
        if absent:
            raise UserError(f"{name} table: lacks the column(s) {', '.join(absent)}")
        rows = table.drop_duplicates(["id", *wanted])  # a row given twice is one row
        twice = rows["id"][rows["id"].duplicated()]
        if len(twice):
            raise UserError(
                f"{name} table: {rows['id'].duplicated(keep=False).sum()} rows for design(s) "
                f"{', '.join(repr(i) for i in twice.unique()[:5])} that disagree; keep one row per design"
            )
        by_id = rows.set_index("id")
        missing = [i for i in frame["id"] if i not in by_id.index]
        if missing:
            shown = ", ".join(repr(i) for i in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise UserError(
                f"{name} table: no row for {len(missing)} design(s): {shown}; evaluate them first"
            )
        frame = frame.join(by_id[wanted], on="id")
    return frame


def select(
    records: Sequence[FastaRecord],
    tables: dict[str, pd.DataFrame],
    n: int,
    rank_by: str | None = None,
    thresholds: Thresholds = Thresholds(),
) -> Selection:
    """Filter, rank and pick up to `n` diverse designs (see the module docstring)."""
    if not tables:
        raise UserError(
            "give at least one of {seq_eval} DIR, {fold_eval} DIR or {scores} CSV",
            field=("seq_eval", "fold_eval", "scores"),
        )
    check_rank_key(rank_by)
    rank_by = rank_by or default_rank_key(tables)
    column, higher_first = RANK_KEYS[rank_by]
    source = next(name for name, columns in TABLE_COLUMNS.items() if column in columns)
    if source not in tables:
        field, kind, _ = TABLE_SOURCES[source]
        raise UserError(
            f"{{rank_by}} {rank_by} needs the {source} table ({{{field}}} {kind})", field=("rank_by", field)
        )
    frame = join_tables(records, tables)
    funnel = [("designs", len(frame))]
    eligible = pd.Series(True, index=frame.index)
    for name, field, passed in _filters(frame, tables, thresholds):
        frame[f"pass_{name}"] = passed
        if len(frame) and not (eligible & passed).any():
            raise _none_pass(frame, name, field, eligible)
        eligible &= passed
        funnel.append((name, int(eligible.sum())))
    frame["eligible"] = eligible
    order = frame[eligible].sort_values(column, ascending=not higher_first, kind="stable").index
    frame["rank"] = pd.Series(range(1, len(order) + 1), index=order)
    diverse = _greedy_diverse(frame, order, thresholds.max_pair_identity)
    picked = diverse[:n]  # the greedy set's first n are what stopping at n would have picked
    frame["picked"] = frame.index.isin(picked)
    funnel.append((f"pair identity <= {thresholds.max_pair_identity:g}", len(diverse)))
    funnel.append(("picked", len(picked)))
    by_id = {r.id: r for r in records}
    return Selection(frame, [by_id[frame.at[i, "id"]] for i in picked], funnel)


def default_rank_key(tables: dict) -> str:
    """pLDDT when folds are given, else family bits, else the model's bound."""
    return "plddt" if "fold-eval" in tables else "family_bits" if "seq-eval" in tables else "bits_per_residue"


def _filters(frame: pd.DataFrame, tables: dict, t: Thresholds):
    """(stage name, the parameter setting it, which designs pass) for each filter that applies (its table,
    FILTER_TABLES, is given)."""

    def applies(field: str) -> bool:
        return FILTER_TABLES[field] in tables

    if applies("min_plddt"):
        yield f"plddt >= {t.min_plddt:g}", "min_plddt", frame["mean_plddt"] >= t.min_plddt
    if applies("min_family_bits"):
        bits = frame["family_bits"] >= t.min_family_bits
        yield f"family bits >= {t.min_family_bits:g}", "min_family_bits", bits
    if applies("max_nearest_identity"):
        novel = frame["nearest_identity"] <= t.max_nearest_identity
        yield f"nearest identity <= {t.max_nearest_identity:g}", "max_nearest_identity", novel
    if applies("keep_low_complexity"):
        if not t.keep_low_complexity:
            flags = frame["low_complexity"].astype(str).str.lower().isin(["true", "1", "yes"])
            yield "not low-complexity", "keep_low_complexity", ~flags


BEST_SEEN = {  # a filter's parameter -> (its column, best is the highest, the metric's name)
    "min_plddt": ("mean_plddt", True, "mean pLDDT"),
    "min_family_bits": ("family_bits", True, "family score"),
    "max_nearest_identity": ("nearest_identity", False, "nearest identity"),
}


def _none_pass(frame: pd.DataFrame, stage: str, field: str, before: pd.Series) -> UserError:
    """No design passes: name the filter that left none, the best value among the designs it was given,
    and the parameter to loosen (a plate of nothing is never the answer)."""
    head = f"no design passes the filters: {stage!r} left none of {int(before.sum())}"
    if field not in BEST_SEEN:
        return UserError(f"{head}; pass {{{field}}} to keep them", field=field)
    column, highest, what = BEST_SEEN[field]
    values = frame.loc[before, column]
    best = values.max() if highest else values.min()
    return UserError(f"{head} (the best {what} is {best:.4g}); loosen {{{field}}}", field=field)


def _greedy_diverse(frame: pd.DataFrame, order, max_identity: float) -> list:
    """Down the ranking, keep each design no more than `max_identity` identical to every one kept before."""
    kept: list = []
    for index in order:
        sequence = frame.at[index, "sequence"]
        if all(identity(sequence, frame.at[k, "sequence"]) <= max_identity for k in kept):
            kept.append(index)
    return kept
