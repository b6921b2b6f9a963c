"""`protein-sedd seq-eval`: offline sequence metrics of designs against a reference family.

Per design: family HMM score (bits; 0.0 = no HMMER hit), identity to the nearest reference (identical
aligned pairs / length of the shorter sequence) with its id, and whether it copies a reference exactly.
Across designs: HMM pass rate at 25 bits, mean pairwise identity (diversity), fraction unique, amino-acid
composition divergence (Jensen-Shannon, bits) and length distribution against the reference. Everything is
computed before the output folder is written, and the folder appears in one rename.
"""

from __future__ import annotations

from pathlib import Path

import typer

from protein_sedd.data.fasta import read_fasta
from protein_sedd.errors import UserError
from protein_sedd.evaluation import family_hmm, sequence_metrics
from protein_sedd.evaluation.reports import (
    histogram_png,
    print_tables,
    rows_table,
    staged_output_dir,
    summary_table,
    write_csv_atomic,
    write_json_atomic,
)
from protein_sedd.paths import check_output_path

RESULT_COLUMNS = ["id", "sequence", "length", "family_bits", "nearest_identity", "nearest_id", "exact_copy"]
CLOSEST_SHOWN = 5


def seq_eval(
    designs: Path = typer.Argument(..., help="FASTA file of designs.", show_default=False),
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
    hmm_sample_size: int = typer.Option(
        family_hmm.HMM_SAMPLE_SIZE,
        "--hmm-sample-size",
        help="Distinct reference sequences (fixed seed) aligned to build the family HMM; the HMM is cached.",
    ),
) -> None:
    """Score designs against a reference family: HMM bits, novelty, diversity, composition and lengths."""
    if hmm_sample_size < 2:
        raise UserError(f"--hmm-sample-size {hmm_sample_size}: needs at least 2 sequences to build an HMM")
    records = read_fasta(designs, unique_ids=True)
    reference_path = resolve_reference(reference)
    references = read_fasta(reference_path)
    target = out_dir if out_dir is not None else designs.with_name(f"{designs.stem}_seq_eval")
    _check_target(target, [designs, reference_path])

    from rich.console import Console

    from protein_sedd.data.datasets import sha256_of

    reference_sequences = [r.sequence for r in references]
    design_sequences = [r.sequence for r in records]
    with Console(stderr=True).status("building or loading the family HMM, then scoring designs"):
        sha256 = sha256_of(reference_path)
        hmm, hmm_path = family_hmm.load_or_build_family_hmm(
            reference_path, sha256, reference_sequences, hmm_sample_size
        )
        bits = family_hmm.family_bits(hmm, design_sequences)
        nearest = sequence_metrics.nearest_references(design_sequences, reference_sequences)
        pairwise, n_pairs = sequence_metrics.mean_pairwise_identity(design_sequences)

    import pandas as pd

    frame = pd.DataFrame(
        {
            "id": [r.id for r in records],
            "sequence": design_sequences,
            "length": [len(s) for s in design_sequences],
            "family_bits": bits,
            "nearest_identity": [n.identity for n in nearest],
            "nearest_id": [references[n.index].id for n in nearest],
            "exact_copy": [n.exact_copy for n in nearest],
        },
        columns=RESULT_COLUMNS,
    )
    summary = _summary(frame, reference_sequences, reference_path, sha256, hmm_sample_size, hmm_path)
    summary["mean_pairwise_identity"] = pairwise
    summary["pairwise_pairs"] = n_pairs

    with staged_output_dir(target) as stage:
        write_csv_atomic(stage / "results.csv", frame)
        write_json_atomic(stage / "summary.json", summary)
        histogram_png(
            stage / "family_bits_histogram.png",
            frame["family_bits"].tolist(),
            title=f"Family HMM score of {len(frame)} designs",
            xlabel="bits (0 = no hit)",
            threshold=family_hmm.PASS_BITS,
            threshold_label=f"pass at {family_hmm.PASS_BITS:g} bits",
        )
        histogram_png(
            stage / "identity_histogram.png",
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


def resolve_reference(spec: str) -> Path:
    """A FASTA path as given, or a named dataset (`acyp`) through the dataset resolver."""
    from protein_sedd.data.datasets import available_datasets, resolve_dataset_path

    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if spec in available_datasets():
        return resolve_dataset_path(spec)
    if path.exists():
        return path  # a folder or something odd: read_fasta names the problem
    if "/" in spec or "." in spec:
        raise UserError(f"--reference {spec}: no such file")
    known = ", ".join(available_datasets())
    raise UserError(f"--reference {spec!r}: neither a file nor a known dataset (known: {known})")


def _check_target(target: Path, inputs: list[Path]) -> None:
    """The output folder is replaced as a whole: refuse anything that is not a previous seq-eval output."""
    check_output_path(target, "--out-dir")
    if target.exists() and not target.is_dir():
        raise UserError(f"--out-dir {target}: exists and is not a folder")
    resolved = target.resolve()
    for path in inputs:
        if resolved in path.resolve().parents:
            raise UserError(
                f"--out-dir {target}: contains the input {path}, which replacing the folder would delete"
            )
    if target.is_dir() and any(target.iterdir()) and not (target / "results.csv").is_file():
        raise UserError(
            f"--out-dir {target}: folder is not empty and holds no seq-eval results; choose another"
        )


def _summary(frame, reference_sequences, reference_path, sha256, sample_size, hmm_path) -> dict:
    import numpy as np

    bits = frame["family_bits"].to_numpy()
    identities = frame["nearest_identity"].to_numpy()
    design_sequences = frame["sequence"].tolist()
    design_lengths = frame["length"].tolist()
    reference_lengths = [len(s) for s in reference_sequences]
    design_composition = sequence_metrics.composition(design_sequences)
    reference_composition = sequence_metrics.composition(reference_sequences)
    lo, hi = min(reference_lengths), max(reference_lengths)
    return {
        "n": len(frame),
        "reference": str(reference_path),
        "reference_sha256": sha256,
        "n_reference": len(reference_sequences),
        "hmm_sample_size": sample_size,
        "hmm_cache": str(hmm_path) if hmm_path else None,
        "family_pass_bits": family_hmm.PASS_BITS,
        "family_pass_rate": float(np.mean(bits >= family_hmm.PASS_BITS)),
        "family_no_hit_fraction": float(np.mean(bits == 0.0)),
        "family_bits_mean": float(np.mean(bits)),
        "family_bits_median": float(np.median(bits)),
        "nearest_identity_mean": float(np.mean(identities)),
        "nearest_identity_median": float(np.median(identities)),
        "nearest_identity_max": float(np.max(identities)),
        "exact_copies": int(frame["exact_copy"].sum()),
        "fraction_unique": sequence_metrics.fraction_unique(design_sequences),
        "composition_js_bits": sequence_metrics.js_divergence(design_composition, reference_composition),
        "length_mean": float(np.mean(design_lengths)),
        "reference_length_mean": float(np.mean(reference_lengths)),
        "length_ks": sequence_metrics.ks_distance(design_lengths, reference_lengths),
        "length_in_reference_range": float(np.mean([lo <= n <= hi for n in design_lengths])),
        "lengths": {
            "design": sequence_metrics.length_stats(design_lengths),
            "reference": sequence_metrics.length_stats(reference_lengths),
        },
        "composition": {
            residue: {"design": float(d), "reference": float(r)}
            for residue, d, r in zip(
                sequence_metrics.RESIDUES, design_composition, reference_composition, strict=True
            )
        },
    }
