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
from protein_sedd.io.atomic import write_json_atomic
from protein_sedd.io.outputs import OutputFolder

OUTPUT_FILES = ["results.csv", "summary.json", "family_bits_histogram.png", "identity_histogram.png"]
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
        "(results.csv, summary.json, the two histograms) are replaced, other files stay.",
    ),
    hmm_sample_size: int = typer.Option(
        family_hmm.HMM_SAMPLE_SIZE,
        "--hmm-sample-size",
        help="Distinct reference sequences (fixed seed) aligned to build the family HMM; the HMM is cached.",
    ),
) -> None:
    """Score designs against a reference family: HMM bits, novelty, diversity, composition and lengths."""
    from protein_sedd.data.datasets import resolve_reference
    from protein_sedd.evaluation.reports import (
        histogram_png,
        print_tables,
        rows_table,
        summary_table,
        write_csv_atomic,
    )
    from protein_sedd.evaluation.sequence_report import score_designs
    from protein_sedd.io.fasta import read_fasta, read_fasta_hashed

    if hmm_sample_size < 2:
        raise UserError(f"--hmm-sample-size {hmm_sample_size}: needs at least 2 sequences to build an HMM")
    records = read_fasta(designs, unique_ids=True)
    reference_path = resolve_reference(reference)
    references, sha256 = read_fasta_hashed(reference_path)  # one read: a named pipe works too
    target = out_dir if out_dir is not None else designs.with_name(f"{designs.stem}_seq_eval")
    folder = OutputFolder(target, "seq-eval", "--out-dir")
    folder.check(inputs=[designs, reference_path], overwrite=overwrite)
    _refuse_input_names(folder, [designs, reference_path])

    from rich.console import Console

    with Console(stderr=True).status("building or loading the family HMM, then scoring designs"):
        frame, summary = score_designs(records, references, reference_path, sha256, hmm_sample_size)

    with folder:  # locked: a second seq-eval on this folder is refused until this one ends
        folder.record(OUTPUT_FILES)
        write_csv_atomic(target / "results.csv", frame)
        write_json_atomic(target / "summary.json", summary)
        histogram_png(
            target / "family_bits_histogram.png",
            frame["family_bits"].tolist(),
            title=f"Family HMM score of {len(frame)} designs",
            xlabel="bits (0 = no hit)",
            threshold=family_hmm.PASS_BITS,
            threshold_label=f"pass at {family_hmm.PASS_BITS:g} bits",
        )
        histogram_png(
            target / "identity_histogram.png",
            frame["nearest_identity"].tolist(),
            title="Identity to the nearest reference sequence",
            xlabel="identity (over the shorter sequence)",
            value_range=(0.0, 1.0),
            bins=40,
        )
    closest = frame.sort_values("nearest_identity", ascending=False).head(CLOSEST_SHOWN)
    print_tables(
        summary_table(f"seq-eval: {target}", summary),
        rows_table(
            "designs closest to the reference",
            closest,
            ["id", "length", "family_bits", "nearest_identity", "nearest_id", "exact_copy"],
        ),
    )


def _refuse_input_names(folder: OutputFolder, inputs: list[Path]) -> None:
    """An input named like one of seq-eval's files inside the output folder would be overwritten."""
    for name in OUTPUT_FILES:
        written = folder.path / name
        for path in inputs:
            if written.exists() and path.exists() and written.resolve() == path.resolve():
                raise UserError(
                    f"--out-dir {folder.path}: seq-eval writes {name} there, which is the input "
                    f"{path}; choose another folder"
                )
