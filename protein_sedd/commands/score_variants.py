"""`protein-sedd score-variants`: zero-shot scores of a deep mutational scan's variants.

Writes the scores CSV and `<out stem>.summary.json` beside it (`protein_sedd/evaluation/variant_report.py`);
the scoring is `protein_sedd/evaluation/variants.py`'s, which `ProteinSEDD.score_variants` runs too.
"""

from __future__ import annotations

from pathlib import Path

import typer

from protein_sedd.commands.options import Checkpoint, Device, Threads
from protein_sedd.runtime.devices import check_threads, cpu_threads, select_device


def score_variants(
    checkpoint: Checkpoint = None,
    wildtype: Path = typer.Option(
        ...,
        "--wildtype",
        help="FASTA file whose first record is the wild type the positions number: the full-length "
        "protein or the model's focus region (an id ending /24-300 numbers the record from 24).",
    ),
    focus_start: int = typer.Option(
        None,
        "--focus-start",
        help="The wild-type residue where the model's focus region begins (ProteinGym's MSA_start). "
        "Default: where the focus sequence is found in the wild type (once).",
    ),
    allow_differences: bool = typer.Option(
        False,
        "--allow-differences",
        help="Score a wild type that differs from the model's focus inside the region (a strain), on its "
        "own residues, instead of stopping at the first difference.",
    ),
    variants: Path = typer.Option(
        None,
        "--variants",
        help="CSV in ProteinGym's format: a column 'mutant' (A23V, multi-mutants A23V:G45L; 1-based "
        "positions on the wild type); other columns (DMS_score, ...) are carried through.",
    ),
    potts: Path = typer.Option(
        None,
        "--potts",
        help="Instead of a checkpoint: fit the Potts (EVmutation) baseline on this alignment (A2M, A3M, "
        "Stockholm; its focus is the first record) and score with it: the change in its Hamiltonian. Rows "
        "covering < 50% of the focus columns are dropped, the rest weighted at 80% identity; minutes for a "
        "few hundred columns.",
    ),
    scan: bool = typer.Option(
        False,
        "--scan",
        help="Instead of --variants: every single substitution (19 per position) of --positions, or of the "
        "model's focus region in the wild type (the whole wild type without one). Also writes "
        "<stem>.heatmap.png (position x residue, wild type dotted, 0 = as likely as the wild type) and "
        "<stem>.positions.csv (per-position mean, median, minimum and tolerated count).",
    ),
    positions: str = typer.Option(
        None, "--positions", help="With --scan: residue ranges in the wild type's numbering, e.g. 10-80,95."
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Output CSV (mutant, score, with elbo standard_error, then the input's other columns); "
        "<stem>.summary.json goes beside it.",
    ),
    method: str = typer.Option(
        "masked-marginal",
        "--method",
        help="masked-marginal: log p(mutant) - log p(wild type) at the masked mutated positions, one network "
        "pass per distinct set of positions (exact for time-independent absorbing models). elbo: the "
        "difference of the sequences' likelihood bounds, with its standard error, --t-samples passes "
        "per variant (exact for model=ar).",
    ),
    t_samples: int = typer.Option(
        32, "--t-samples", help="elbo: noise draws per sequence, shared by the wild type and every mutant."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the elbo draws and the bootstrap interval."),
    batch_size: int = typer.Option(64, "--batch-size", help="Sequences per network pass."),
    device: Device = "auto",
    threads: Threads = 0,
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace --out and its summary even when they are not earlier score-variants outputs.",
    ),
) -> None:
    """Score variants of a wild type zero-shot (nats, higher = fitter); Spearman's rho with DMS_score."""
    from rich.console import Console
    from rich.table import Table

    from protein_sedd.api import load
    from protein_sedd.baselines.potts import PottsModel
    from protein_sedd.errors import UserError
    from protein_sedd.evaluation import variant_report as report_
    from protein_sedd.evaluation.reports import print_tables
    from protein_sedd.evaluation.variant_maps import parse_positions, scan_table
    from protein_sedd.evaluation.variants import (
        VariantSet,
        check_variant_settings,
        measured_scores,
        read_variants,
    )
    from protein_sedd.evaluation.wildtype import read_wildtype
    from protein_sedd.runtime.progress import LoopProgress, log_line

    check_variant_settings(method, t_samples, seed, batch_size)
    if potts is not None and checkpoint is not None:
        raise UserError(
            "give --checkpoint (a SEDD model) or --potts ALIGNMENT (the Potts baseline), not both"
        )
    if (variants is None) == (not scan):
        raise UserError("give --variants FILE (a scan's table) or --scan (every single mutant), one of them")
    if positions is not None and not scan:
        raise UserError("--positions chooses what --scan scans; with --variants the table says")
    report_.check_outputs(
        out, [wildtype, *([variants] if variants else []), *([potts] if potts else [])], overwrite
    )
    check_threads(threads)
    requested = select_device(device)
    given = read_wildtype(wildtype, "--wildtype")
    where, first = given.where, given.first
    if positions is not None:  # its mistakes before the model loads
        parse_positions(positions, first, first + len(given.sequence) - 1)
    rows = (lambda row: f"--scan row {row + 1}") if scan else (lambda row: f"{variants} line {row + 2}")
    asked = None if scan else VariantSet.parse(given.sequence, read_variants(variants), rows, first)
    measured = None if scan else measured_scores(asked.table)  # before any work: every mistake shows first
    with cpu_threads(threads) as n_threads:
        model = PottsModel.fit(potts, threads=n_threads) if potts else load(checkpoint, requested)
        method = "potts" if potts else method
        if scan:  # the region to scan depends on the model's focus
            table = scan_table(
                model, given.sequence, first=first, positions=positions, focus_start=focus_start,
                allow_differences=allow_differences, where=where,
            )  # fmt: skip
            asked = VariantSet.parse(given.sequence, table, rows, first)
        job = asked.job(
            model, method=method, t_samples=t_samples, seed=seed, batch_size=batch_size, where=where,
            focus_start=focus_start, allow_differences=allow_differences,
        )  # fmt: skip
        console = Console(stderr=True)
        for line in report_.run_notes(job, given.id, n_threads):
            log_line(console, line)
        with LoopProgress(console, "sequence passes", job.passes) as progress:
            scores = job.run(progress.advance)
    wildtype_ = {"file": str(wildtype), "id": given.id, "length": len(given.sequence), "first": first}
    source = variants if variants is not None else f"--scan {positions or 'the focus region'}"
    report = report_.variant_report(job, scores, measured, wildtype=wildtype_, variants=source, out=out)
    figures = report_.write_outputs(out, scores, report, measured, scan)
    shown = Table(title=f"score-variants: {method}")
    shown.add_column("metric")
    shown.add_column("value", justify="right")
    for row in report_.summary_rows(report):
        shown.add_row(*row)
    print_tables(shown)
    written = ", ".join([str(report_.summary_path(out)), *(str(out.with_name(f)) for f in figures)])
    log_line(Console(), f"wrote {out} and {written}")
