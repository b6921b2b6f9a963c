"""`protein-sedd seq-eval`: offline sequence metrics of designs against a reference family.

The metrics are `protein_sedd.evaluation.sequence_report`'s. Everything is computed before anything is
written; each file then appears whole (atomic writes), and only seq-eval's own files in the output folder
are ever replaced.
"""

from __future__ import annotations

from pathlib import Path

import typer

from protein_sedd.errors import UserError
from protein_sedd.evaluation import family_hmm

CLOSEST_SHOWN = 5


def seq_eval(
    designs: Path = typer.Argument(..., help="FASTA file of designs (a path, not '-').", show_default=False),
    reference: str = typer.Option(
        ...,
        "--reference",
        help="Reference family: a dataset name (acyp) or a FASTA file. acyp resolves to "
        "$PROTEIN_SEDD_DATA/acyp/hypf.fa, then the user cache (~/.cache/protein-sedd/acyp/hypf.fa).",
        show_default=False,
    ),
    out_dir: Path | None = typer.Option(
        None,
        "--out-dir",
        help="Output folder. Default: <designs stem>_seq_eval next to the FASTA file.",
        show_default=False,
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Write into a non-empty folder that holds no seq-eval output; only seq-eval's own files "
        "(results.csv, summary.json, natural_baseline.csv, the two histograms) are replaced, other "
        "files stay.",
    ),
    hmm_sample_size: int = typer.Option(
        family_hmm.HMM_SAMPLE_SIZE,
        "--hmm-sample-size",
        help="Distinct reference sequences (fixed seed) aligned to build the family HMM; the HMM is cached.",
    ),
) -> None:
    """Score designs against a reference family: HMM bits, novelty, diversity, composition and lengths."""
    from rich.console import Console

    from protein_sedd.data.datasets import resolve_reference
    from protein_sedd.evaluation.reports import print_tables, rows_table, summary_table
    from protein_sedd.evaluation.sequence_report import claim_folder, score_designs, write_report
    from protein_sedd.io.fasta import read_fasta, read_fasta_hashed

    if hmm_sample_size < 2:
        raise UserError(f"--hmm-sample-size {hmm_sample_size}: needs at least 2 sequences to build an HMM")
    records = read_fasta(designs, unique_ids=True)
    reference_path = resolve_reference(reference)
    references, sha256 = read_fasta_hashed(reference_path)  # one read: a named pipe works too
    target = out_dir if out_dir is not None else designs.with_name(f"{designs.stem}_seq_eval")
    folder = claim_folder(target, [designs, reference_path], overwrite)

    with Console(stderr=True).status("building or loading the family HMM, then scoring designs"):
        frame, summary, naturals = score_designs(records, references, reference_path, sha256, hmm_sample_size)
    write_report(folder, frame, summary, naturals)

    closest = frame.sort_values("nearest_identity", ascending=False).head(CLOSEST_SHOWN)
    print_tables(
        summary_table(f"seq-eval: {target}", summary),
        rows_table(
            "designs closest to the reference",
            closest,
            ["id", "length", "family_bits", "nearest_identity", "nearest_id", "exact_copy"],
        ),
    )
