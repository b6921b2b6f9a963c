"""`protein-sedd select`: turn a design run and its evaluations into a diverse shortlist worth ordering.

The rules are `protein_sedd.evaluation.selection`'s; the folder it writes, `selection_report`'s.
"""

from __future__ import annotations

from pathlib import Path

import typer


def select(
    designs: Path = typer.Argument(..., help="FASTA file of designs (from `design`).", show_default=False),
    n: int = typer.Option(96, "--n", help="How many designs to pick (a 96-well plate by default)."),
    out: Path = typer.Option(..., "--out", help="Output folder for picks.fasta, picks.csv, funnel.png."),
    seq_eval: Path = typer.Option(None, "--seq-eval", help="A seq-eval output folder of these designs."),
    fold_eval: Path = typer.Option(None, "--fold-eval", help="A fold-eval output folder of these designs."),
    scores: Path = typer.Option(
        None, "--scores", help="Per-sequence scores of these designs (`evaluate --fasta ... --csv`)."
    ),
    min_plddt: float = typer.Option(
        None,
        "--min-plddt",
        help="With --fold-eval: least mean pLDDT (0-100; default 70).",
        show_default=False,
    ),
    min_family_bits: float = typer.Option(
        None,
        "--min-family-bits",
        help="With --seq-eval: least family HMM score (bits; default 25).",
        show_default=False,
    ),
    max_nearest_identity: float = typer.Option(
        None,
        "--max-nearest-identity",
        show_default=False,
        help="With --seq-eval: most identity to the nearest natural (novelty; default 0.9).",
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
    from rich.console import Console

    from protein_sedd.config.limits import MAX_DESIGNS, check_int
    from protein_sedd.evaluation.reports import print_tables, rows_table, summary_table
    from protein_sedd.evaluation.selection import (
        Thresholds,
        applied_thresholds,
        check_filters_apply,
        check_rank_key,
        default_rank_key,
        fold_note,
        read_tables,
    )
    from protein_sedd.evaluation.selection import select as choose
    from protein_sedd.evaluation.selection_report import write_selection
    from protein_sedd.io.fasta import read_fasta
    from protein_sedd.io.outputs import OutputFolder
    from protein_sedd.runtime.progress import log_line

    check_int("n", n, 1, MAX_DESIGNS)
    filters = {
        "min_plddt": min_plddt, "min_family_bits": min_family_bits,
        "max_nearest_identity": max_nearest_identity, "keep_low_complexity": keep_low_complexity,
    }  # fmt: skip
    given = {name: value for name, value in filters.items() if value is not None}
    thresholds = Thresholds(**given, max_pair_identity=max_pair_identity)
    check_rank_key(rank_by)
    records = read_fasta(designs, unique_ids=True)
    tables = read_tables(seq_eval=seq_eval, fold_eval=fold_eval, scores=scores)
    check_filters_apply(tables, **filters)
    folder = OutputFolder(out, "select", "--out")
    folder.check(inputs=[designs, scores], overwrite=overwrite)
    rank_by = rank_by or default_rank_key(tables)
    note = fold_note(fold_eval)
    chosen = choose(records, tables, n, rank_by, thresholds)
    write_selection(folder, chosen, n, rank_by, applied_thresholds(thresholds, tables), designs, note)
    picked = chosen.table[chosen.table["picked"]].sort_values("rank")
    console = Console(stderr=True)
    if note:
        log_line(
            console,
            f"warning: --fold-eval {fold_eval}: {note}; its pLDDT filter and ranking show the plumbing only",
        )
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
