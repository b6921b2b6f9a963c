"""What `select` writes into its output folder: `picks.fasta` (the picks, in rank order), `picks.csv` (every
design with its metrics, whether it passed each filter, its rank and whether it was picked), `funnel.png`
(designs left after each step) and `summary.json` (the settings, the funnel, and the medians of each metric
over all designs and over the picks)."""

from __future__ import annotations

from pathlib import Path

from protein_sedd.evaluation.selection import Selection
from protein_sedd.io.outputs import OutputFolder

OUTPUT_FILES = ["picks.fasta", "picks.csv", "funnel.png", "summary.json"]


def write_selection(
    folder: OutputFolder,
    chosen: Selection,
    n: int,
    rank_by: str,
    thresholds: dict,
    designs: Path,
    note: str | None = None,
) -> None:
    """Write the folder's four files (see the module docstring); `folder` is checked and not yet locked.
    `thresholds`: as they applied (`selection.applied_thresholds`); `note`: why the numbers mean nothing
    (fold-eval's toy ESMFold), kept in summary.json."""
    from protein_sedd.evaluation.reports import write_csv_atomic
    from protein_sedd.io.atomic import write_json_atomic
    from protein_sedd.io.fasta import write_fasta

    picked = chosen.table[chosen.table["picked"]].sort_values("rank")
    summary = {
        "designs": str(designs),
        "n_requested": n,
        "n_picked": len(chosen.picks),
        "rank_by": rank_by,
        **thresholds,
        "funnel": [{"stage": stage, "left": left} for stage, left in chosen.funnel],
    }
    if note:
        summary["note"] = note
    for column in ("family_bits", "nearest_identity", "mean_plddt", "bits_per_residue"):
        if column in chosen.table:
            summary[f"{column}_median_all"] = float(chosen.table[column].median())
            summary[f"{column}_median_picks"] = float(picked[column].median()) if len(picked) else None
    with folder:
        folder.record(OUTPUT_FILES)
        write_fasta(folder.path / "picks.fasta", [(r.description, r.sequence) for r in chosen.picks])
        columns = [c for c in chosen.table.columns if c != "sequence"] + ["sequence"]  # long text last
        write_csv_atomic(folder.path / "picks.csv", chosen.table[columns])
        funnel_png(folder.path / "funnel.png", chosen.funnel)
        write_json_atomic(folder.path / "summary.json", summary)


def funnel_png(path: Path, funnel: list[tuple[str, int]]) -> None:
    """`funnel_figure` written as PNG."""
    from protein_sedd.io.atomic import atomic_path

    with atomic_path(path, suffix=".png") as tmp:
        funnel_figure(funnel).savefig(tmp)


def funnel_figure(funnel: list[tuple[str, int]]):
    """A bar chart of the designs left after each step."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(7, 0.5 * len(funnel) + 1.5), dpi=120)
    axes = figure.subplots()
    labels = [stage for stage, _ in funnel][::-1]
    counts = [left for _, left in funnel][::-1]
    axes.barh(labels, counts, color="#4C72B0")
    for y, count in enumerate(counts):
        axes.text(count, y, f" {count}", va="center")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("designs left")
    axes.set_title("select: designs left after each step")
    figure.tight_layout()
    return figure
