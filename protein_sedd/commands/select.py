"""`protein-sedd select`: turn a design run and its evaluations into a diverse shortlist worth ordering.

The rules are `protein_sedd.evaluation.selection`'s. Output folder: `picks.fasta` (the picks, in rank
order), `picks.csv` (every design with its metrics, whether it passed each filter, its rank and whether it
was picked), `funnel.png` (designs left after each step) and `summary.json`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from protein_sedd.errors import UserError
from protein_sedd.io.outputs import OutputFolder

OUTPUT_FILES = ["picks.fasta", "picks.csv", "funnel.png", "summary.json"]


def select(
    designs: Path = typer.Argument(..., help="FASTA file of designs (from `design`).", show_default=False),
    n: int = typer.Option(96, "--n", help="How many designs to pick (a 96-well plate by default)."),
    out: Path = typer.Option(..., "--out", help="Output folder for picks.fasta, picks.csv, funnel.png."),
    seq_eval: Path = typer.Option(None, "--seq-eval", help="A seq-eval output folder of these designs."),
    fold_eval: Path = typer.Option(None, "--fold-eval", help="A fold-eval output folder of these designs."),
    scores: Path = typer.Option(
        None, "--scores", help="Per-sequence scores of these designs (`evaluate --fasta ... --csv`)."
    ),
    min_plddt: float = typer.Option(70.0, "--min-plddt", help="With --fold-eval: least mean pLDDT (0-100)."),
    min_family_bits: float = typer.Option(
        25.0, "--min-family-bits", help="With --seq-eval: least family HMM score (bits)."
    ),
    max_nearest_identity: float = typer.Option(
        0.9, "--max-nearest-identity", help="With --seq-eval: most identity to the nearest natural (novelty)."
    ),
    keep_low_complexity: bool = typer.Option(
        False, "--keep-low-complexity", help="With --seq-eval: keep designs flagged low-complexity."
    ),
    rank_by: str = typer.Option(
        None,
        "--rank-by",
        help="plddt or family_bits (higher first) or bits_per_residue (lower first). Default: plddt with "
        "--fold-eval, else family_bits with --seq-eval, else bits_per_residue.",
        show_default=False,
    ),
    max_pair_identity: float = typer.Option(
        0.8,
        "--max-pair-identity",
        help="No two picks are more identical than this (greedy, down the ranking).",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Write into a non-empty folder holding no select output (only its files)."
    ),
) -> None:
    """Pick a diverse shortlist: join evaluations by id, filter, rank by one key, skip near-duplicates."""
    from protein_sedd.config.limits import MAX_DESIGNS, check_int
    from protein_sedd.evaluation.selection import RANK_KEYS, Thresholds
    from protein_sedd.io.fasta import read_fasta

    check_int("n", n, 1, MAX_DESIGNS)
    for option, value, high in (
        ("--min-plddt", min_plddt, 100.0),
        ("--max-nearest-identity", max_nearest_identity, 1.0),
        ("--max-pair-identity", max_pair_identity, 1.0),
    ):
        if not 0.0 <= value <= high:  # also refuses NaN
            raise UserError(f"{option} {value}: give a value from 0 to {high:g}")
    if rank_by is not None and rank_by not in RANK_KEYS:
        raise UserError(f"--rank-by {rank_by!r}: choose {', '.join(RANK_KEYS)}")
    records = read_fasta(designs, unique_ids=True)
    tables = _read_tables(seq_eval, fold_eval, scores)
    folder = OutputFolder(out, "select", "--out")
    folder.check(inputs=[designs, scores], overwrite=overwrite)
    thresholds = Thresholds(
        min_plddt, min_family_bits, max_nearest_identity, keep_low_complexity, max_pair_identity
    )

    from protein_sedd.evaluation.selection import default_rank_key
    from protein_sedd.evaluation.selection import select as choose

    rank_by = rank_by or default_rank_key(tables)
    chosen = choose(records, tables, n, rank_by, thresholds)
    _write(folder, chosen, n, rank_by, thresholds, designs)


def _read_tables(seq_eval: Path | None, fold_eval: Path | None, scores: Path | None) -> dict:
    import pandas as pd

    sources = {
        "seq-eval": ("--seq-eval", seq_eval / "results.csv" if seq_eval else None),
        "fold-eval": ("--fold-eval", fold_eval / "results.csv" if fold_eval else None),
        "scores": ("--scores", scores),
    }
    tables = {}
    for name, (option, path) in sources.items():
        if path is None:
            continue
        if not path.is_file():
            raise UserError(f"{option}: {path} not found; give the {name} output of these designs")
        try:
            tables[name] = pd.read_csv(path, dtype={"id": str, "nearest_id": str}, keep_default_na=False)
        except (OSError, ValueError, UnicodeDecodeError) as err:
            raise UserError(f"{option}: {path} is not a readable CSV ({type(err).__name__})") from None
    return tables


def _write(folder: OutputFolder, chosen, n: int, rank_by: str, thresholds, designs: Path) -> None:
    from dataclasses import asdict

    from rich.console import Console

    from protein_sedd.evaluation.reports import print_tables, rows_table, summary_table, write_csv_atomic
    from protein_sedd.io.atomic import write_json_atomic
    from protein_sedd.io.fasta import write_fasta

    picked = chosen.table[chosen.table["picked"]].sort_values("rank")
    summary = {
        "designs": str(designs),
        "n_requested": n,
        "n_picked": len(chosen.picks),
        "rank_by": rank_by,
        **asdict(thresholds),
        "funnel": [{"stage": stage, "left": left} for stage, left in chosen.funnel],
    }
    for column in ("family_bits", "nearest_identity", "mean_plddt", "bits_per_residue"):
        if column in chosen.table:
            summary[f"{column}_median_all"] = float(chosen.table[column].median())
            summary[f"{column}_median_picks"] = float(picked[column].median()) if len(picked) else None
    with folder:
        folder.record(OUTPUT_FILES)
        write_fasta(folder.path / "picks.fasta", [(r.description, r.sequence) for r in chosen.picks])
        columns = [c for c in chosen.table.columns if c != "sequence"] + ["sequence"]  # long text last
        write_csv_atomic(folder.path / "picks.csv", chosen.table[columns])
        _funnel_png(folder.path / "funnel.png", chosen.funnel)
        write_json_atomic(folder.path / "summary.json", summary)
    console = Console(stderr=True)
    if len(chosen.picks) < n:
        console.print(
            f"select: only {len(chosen.picks)} designs pass every filter and the diversity rule; picked them "
            f"all (asked for {n})",
            markup=False,
            highlight=False,
        )
    shown = [
        c
        for c in ("id", "length", "mean_plddt", "family_bits", "nearest_identity", "bits_per_residue")
        if c in picked
    ]
    print_tables(
        summary_table(f"select: {folder.path}", {stage: left for stage, left in chosen.funnel}),
        rows_table(f"top {min(10, len(picked))} picks", picked.head(10), shown),
    )


def _funnel_png(path: Path, funnel: list[tuple[str, int]]) -> None:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from protein_sedd.io.atomic import atomic_path

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
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp)
