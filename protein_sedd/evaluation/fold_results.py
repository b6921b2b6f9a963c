"""fold-eval's results: rows folded so far (earlier runs' and this one's), PDB names, results.csv, summary.

Rows are keyed by design id. A design counts as done when its id, sequence and PDB file are all there;
success is recomputed from the stored mean pLDDT with the current threshold, so a new threshold refolds
nothing. Earlier rows of designs that are not in the current FASTA file (another designs file, or a changed
sequence) are never dropped silently: loading them is refused unless the caller starts again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from protein_sedd.errors import UserError
from protein_sedd.evaluation import folding
from protein_sedd.evaluation.rates import rate, rates_by_length
from protein_sedd.evaluation.reports import write_csv_atomic
from protein_sedd.io.atomic import write_json_atomic, write_text_atomic
from protein_sedd.io.fasta import FastaRecord
from protein_sedd.testing.tiny_esmfold import PLUMBING_NOTE, is_toy_esmfold

RESULT_COLUMNS = ["id", "sequence", "length", "mean_plddt", "ptm", "success"]
REPORT_FILES = ["results.csv", "summary.json", "plddt_histogram.png", "natural_baseline.csv"]
BASELINE_FILE = "natural_baseline.csv"  # folded length-matched naturals (scores only, no PDB files)
BASELINE_COLUMNS = ["sequence", "length", "mean_plddt", "ptm"]


def pdb_names(path: Path, records: list[FastaRecord]) -> dict[str, str]:
    """A safe file name per id (characters outside [A-Za-z0-9._-] become '_'); collisions are an error."""
    names: dict[str, str] = {}
    owners: dict[str, str] = {}
    for record in records:
        name = re.sub(r"[^A-Za-z0-9._-]", "_", record.id).lstrip(".") or "_"
        name = f"{name}.pdb"
        if name.lower() in owners:
            raise UserError(
                f"{path}: ids {owners[name.lower()]!r} and {record.id!r} map to the same file {name}"
            )
        owners[name.lower()] = record.id
        names[record.id] = name
    return names


def model_label(model: str) -> str:
    local = Path(model).expanduser()
    return str(local.resolve()) if local.exists() else model


@dataclass
class FoldResults:
    """The rows folded so far (from earlier runs and this one), and how they are written out."""

    records: list[FastaRecord]
    file_names: dict[str, str]
    work: Path
    threshold: float
    model_label: str
    backend: str
    rows: dict[str, dict] = field(default_factory=dict)
    baseline: list[dict] = field(default_factory=list)  # rows of BASELINE_COLUMNS

    def load_baseline(self, sequences: list[str]) -> bool:
        """Reuse an earlier baseline of exactly these naturals; True when nothing is left to fold."""
        import pandas as pd

        path = self.work / BASELINE_FILE
        if not sequences or not path.is_file():
            return not sequences
        try:
            earlier = pd.read_csv(path, dtype={"sequence": str}, keep_default_na=False)
        except (OSError, ValueError):
            return False  # unreadable: folded again, and rewritten
        if list(earlier.columns) != BASELINE_COLUMNS or earlier["sequence"].tolist() != sequences:
            return False
        self.baseline = earlier.to_dict("records")
        return True

    def set_baseline(self, sequences: list[str], folded: list[folding.FoldedDesign]) -> None:
        import pandas as pd

        self.baseline = [
            {"sequence": s, "length": len(s), "mean_plddt": d.mean_plddt, "ptm": d.ptm}
            for s, d in zip(sequences, folded, strict=True)
        ]
        write_csv_atomic(self.work / BASELINE_FILE, pd.DataFrame(self.baseline, columns=BASELINE_COLUMNS))

    def has(self, record: FastaRecord) -> bool:
        return record.id in self.rows

    def load_previous(self, designs: Path, overwrite: bool) -> None:
        """Keep earlier rows whose id and sequence match a design and whose PDB file is still there.

        Rows of designs that are not in this FASTA file (by id, or with another sequence) would be dropped
        from results.csv: refused, so that another designs file never truncates earlier results silently.
        """
        previous = {} if overwrite else _previous_results(self.work, self.model_label)
        current = {r.id: r.sequence for r in self.records}
        stale = [i for i, row in previous.items() if current.get(i) != row["sequence"]]
        if stale:
            raise UserError(
                f"{{out_dir}} {self.work}: holds fold-eval results of {len(stale)} design(s) that are not in "
                f"{designs} (e.g. {stale[0]!r}); choose another {{out_dir}}, or pass {{overwrite}} to start "
                "again",
                field=("out_dir", "overwrite"),
            )
        for record in self.records:
            row = previous.get(record.id)
            if (
                row
                and row["sequence"] == record.sequence
                and (self.work / self.file_names[record.id]).is_file()
            ):
                self.rows[record.id] = row

    def add(self, record: FastaRecord, design: folding.FoldedDesign) -> None:
        write_text_atomic(self.work / self.file_names[record.id], design.pdb)
        self.rows[record.id] = {
            "id": record.id,
            "sequence": record.sequence,
            "length": len(record.sequence),
            "mean_plddt": design.mean_plddt,
            "ptm": design.ptm,
        }

    def frame(self):
        import pandas as pd

        ordered = [self.rows[r.id] for r in self.records if r.id in self.rows]
        frame = pd.DataFrame(ordered, columns=RESULT_COLUMNS)
        frame = frame.astype({"length": int, "mean_plddt": float, "ptm": float})
        frame["success"] = frame["mean_plddt"] >= self.threshold  # always from the current threshold
        return frame

    def summary(self, frame) -> dict:
        n = len(frame)
        successes = int(frame["success"].sum())
        nan = float("nan")
        summary = {
            "n": n,
            "successes": successes,
            "success_rate": successes / n if n else nan,
            "mean_plddt": float(frame["mean_plddt"].mean()) if n else nan,
            "median_plddt": float(frame["mean_plddt"].median()) if n else nan,
            "mean_ptm": float(frame["ptm"].mean()) if n else nan,
            "success": rate(frame["success"].tolist()),  # with its 95% Wilson interval
            "success_by_length": rates_by_length(frame["length"].tolist(), frame["success"].tolist()),
            "threshold": self.threshold,
            "model": self.model_label,
            "backend": self.backend,
        }
        if self.baseline:  # naturals of the designs' lengths, judged by the same threshold
            success = [row["mean_plddt"] >= self.threshold for row in self.baseline]
            summary["natural_baseline"] = {
                "n": len(self.baseline),
                "success": rate(success),
                "success_by_length": rates_by_length([row["length"] for row in self.baseline], success),
                "mean_plddt": sum(row["mean_plddt"] for row in self.baseline) / len(self.baseline),
            }
        if is_toy_esmfold(self.model_label):  # random weights: every report says its pLDDT is meaningless
            summary["note"] = PLUMBING_NOTE
        return summary

    def save(self):
        frame = self.frame()
        summary = self.summary(frame)
        write_csv_atomic(self.work / "results.csv", frame)
        write_json_atomic(self.work / "summary.json", summary)
        return frame, summary


def _previous_results(work: Path, model_label: str) -> dict[str, dict]:
    import json

    import pandas as pd

    results, summary = work / "results.csv", work / "summary.json"
    if not results.is_file():
        return {}
    if summary.is_file():
        try:
            folded_with = json.loads(summary.read_text()).get("model")
        except (OSError, ValueError):
            folded_with = None
        if folded_with is not None and folded_with != model_label:
            raise UserError(
                f"{work}: holds designs folded with model {folded_with}, not {model_label}; "
                "use that {model} or another {out_dir}",
                field=("model", "out_dir"),
            )
    try:
        frame = pd.read_csv(results, dtype={"id": str, "sequence": str}, keep_default_na=False)
    except (OSError, ValueError) as err:
        raise UserError(f"{results}: unreadable previous results ({err}); delete it to start again") from None
    if missing := [c for c in RESULT_COLUMNS if c not in frame.columns]:
        raise UserError(f"{results}: previous results lack columns {missing}; delete it to start again")
    return {row["id"]: row for row in frame[RESULT_COLUMNS].to_dict("records")}
