"""`protein-sedd report`: a campaign's outputs gathered into one offline HTML page.

The page is `protein_sedd.campaign`'s; `protein_sedd.report(...)` is the same function for Python."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer


def report(
    out: Path = typer.Option(..., "--out", help="The HTML file to write (e.g. campaign.html)."),
    run: Path = typer.Option(None, "--run", help="A training run folder (`train --out`)."),
    designs: Path = typer.Option(None, "--designs", help="The designs FASTA (`design --out`)."),
    seq_eval: Path = typer.Option(None, "--seq-eval", help="A seq-eval output folder of these designs."),
    fold_eval: Path = typer.Option(None, "--fold-eval", help="A fold-eval output folder of these designs."),
    select: Path = typer.Option(None, "--select", help="A select output folder of these designs."),
    variants: Path = typer.Option(None, "--variants", help="A score-variants table (its summary beside it)."),
    title: str = typer.Option(None, "--title", help="The page title (default: from the designs or run)."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing file that this command did not write."
    ),
) -> None:
    """One self-contained HTML page of a campaign: any subset of its outputs, each section drawn from them."""
    from protein_sedd.campaign import write_report
    from protein_sedd.runtime.progress import log_line

    given = {
        "--out": out, "--run": run, "--designs": designs, "--seq-eval": seq_eval, "--fold-eval": fold_eval,
        "--select": select, "--variants": variants, "--title": title,
    }  # fmt: skip
    words = [word for flag, value in given.items() if value is not None for word in (flag, str(value))]
    command = shlex.join(["protein-sedd", "report", *words, *(["--overwrite"] if overwrite else [])])
    written = write_report(
        out, run=run, designs=designs, seq_eval=seq_eval, fold_eval=fold_eval, select=select,
        variants=variants, title=title, overwrite=overwrite, command=command,
    )  # fmt: skip
    from rich.console import Console

    log_line(Console(stderr=True), f"report: {written} ({written.stat().st_size / 1024:.0f} KiB)")
