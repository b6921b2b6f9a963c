"""seq-eval's report: every design scored against a reference family, and the summary across designs.

Per design: family HMM score (bits; 0.0 = no HMMER hit), identity to the nearest reference (identical
aligned pairs / length of the shorter sequence) with its id, and whether it copies a reference exactly.
Per design also: low-complexity and repeat flags (`low_complexity`: the rule is in that module).
Across designs: HMM pass rate, mean pairwise identity (diversity), fraction unique, amino-acid composition
divergence (Jensen-Shannon, bits) and the length distribution against the reference. Every rate comes with
its 95% Wilson interval (`rates`), overall and per length bin, beside the same rates for a length-matched
sample of natural reference sequences that the family HMM was not built from (`natural_baseline`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from protein_sedd.errors import UserError
from protein_sedd.evaluation import family_hmm, sequence_metrics
from protein_sedd.evaluation.baseline import length_matched
from protein_sedd.evaluation.low_complexity import complexity
from protein_sedd.evaluation.rates import rate, rates_by_length
from protein_sedd.io.fasta import FastaRecord
from protein_sedd.io.outputs import OutputFolder

RESULT_COLUMNS = [
    "id", "sequence", "length", "family_bits", "nearest_identity", "nearest_id", "exact_copy",
    "low_complexity", "longest_run", "min_window_entropy", "repeated_kmer",
]  # fmt: skip


def score_designs(
    records: list[FastaRecord],
    references: list[FastaRecord],
    reference_path: Path,
    reference_sha256: str,
    hmm_sample_size: int = family_hmm.HMM_SAMPLE_SIZE,
) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """(one row per design, the summary, one row per natural of the baseline); the family HMM is read from
    its cache or built anew."""
    reference_sequences = [r.sequence for r in references]
    design_sequences = [r.sequence for r in records]
    hmm, hmm_path = family_hmm.load_or_build_family_hmm(
        reference_path, reference_sha256, reference_sequences, hmm_sample_size
    )
    bits = family_hmm.family_bits(hmm, design_sequences)
    nearest = sequence_metrics.nearest_references(design_sequences, reference_sequences)
    pairwise, n_pairs = sequence_metrics.mean_pairwise_identity(design_sequences)
    flags = [complexity(s) for s in design_sequences]
    frame = pd.DataFrame(
        {
            "id": [r.id for r in records],
            "sequence": design_sequences,
            "length": [len(s) for s in design_sequences],
            "family_bits": bits,
            "nearest_identity": [n.identity for n in nearest],
            "nearest_id": [references[n.index].id for n in nearest],
            "exact_copy": [n.exact_copy for n in nearest],
            "low_complexity": [f.low_complexity for f in flags],
            "longest_run": [f.longest_run for f in flags],
            "min_window_entropy": [round(f.min_window_entropy, 4) for f in flags],
            "repeated_kmer": [f.repeated_kmer for f in flags],
        },
        columns=RESULT_COLUMNS,
    )
    summary = _summary(
        frame, reference_sequences, reference_path, reference_sha256, hmm_sample_size, hmm_path
    )
    summary["mean_pairwise_identity"] = pairwise
    summary["pairwise_pairs"] = n_pairs
    summary.update(_rates(frame))
    summary["natural_baseline"], naturals = natural_baseline(
        hmm, references, frame["length"].tolist(), hmm_sample_size
    )
    return frame, summary, naturals


def _rates(frame: pd.DataFrame) -> dict:
    """Every yes/no rate with its 95% Wilson interval; the family pass rate also per length bin."""
    passed = (frame["family_bits"] >= family_hmm.PASS_BITS).tolist()
    first_copies = (~frame["sequence"].duplicated()).tolist()  # unique = first occurrence of its sequence
    return {
        "family_pass": rate(passed),
        "family_pass_by_length": rates_by_length(frame["length"].tolist(), passed),
        "unique": rate(first_copies),
        "exact_copy": rate(frame["exact_copy"].tolist()),
        "low_complexity": rate(frame["low_complexity"].tolist()),
        "low_complexity_count": int(frame["low_complexity"].sum()),
    }


NATURAL_COLUMNS = ["id", "sequence", "length", "family_bits", "low_complexity"]


def natural_baseline(
    hmm, references: list[FastaRecord], lengths: list[int], hmm_sample_size: int
) -> tuple[dict, pd.DataFrame]:
    """The same rates for natural references outside the HMM's build sample, one per design length, and
    those naturals one per row (`natural_baseline.csv`: the report draws them beside the designs).

    Each design length takes a held-out reference of the nearest length (`baseline.length_matched`), so
    the baseline has the designs' length distribution; empty when every reference built the HMM.
    """
    reference_sequences = [r.sequence for r in references]
    built = set(family_hmm.sample_sequences(reference_sequences, hmm_sample_size))
    held_out = [s for s in dict.fromkeys(reference_sequences) if s not in built]
    if not held_out:
        note = {"n": 0, "note": "every reference sequence was used to build the family HMM"}
        return note, pd.DataFrame(columns=NATURAL_COLUMNS)
    chosen = length_matched(held_out, lengths)
    bits = family_hmm.family_bits(hmm, chosen)
    passed = [b >= family_hmm.PASS_BITS for b in bits]
    flags = [complexity(s).low_complexity for s in chosen]
    first_id = {}
    for record in references:
        first_id.setdefault(record.sequence, record.id)
    naturals = pd.DataFrame(
        {
            "id": [first_id[s] for s in chosen],
            "sequence": chosen,
            "length": [len(s) for s in chosen],
            "family_bits": bits,
            "low_complexity": flags,
        },
        columns=NATURAL_COLUMNS,
    )
    summary = {
        "n": len(chosen),
        "family_pass": rate(passed),
        "family_pass_by_length": rates_by_length([len(s) for s in chosen], passed),
        "family_bits_median": float(np.median(bits)),
        "low_complexity": rate(flags),
    }
    return summary, naturals


def _summary(frame, reference_sequences, reference_path, sha256, sample_size, hmm_path) -> dict:
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


OUTPUT_FILES = [
    "results.csv",
    "summary.json",
    "natural_baseline.csv",
    "family_bits_histogram.png",
    "identity_histogram.png",
]


def claim_folder(target: Path, inputs: list[Path], overwrite: bool) -> OutputFolder:
    """The output folder, checked (new, empty, ours, or `overwrite`) and holding no input under our names."""
    folder = OutputFolder(target, "seq-eval", "{out_dir}")
    folder.check(inputs=inputs, overwrite=overwrite)
    for name in OUTPUT_FILES:  # an input named like one of our files in the folder would be overwritten
        written = folder.path / name
        for path in inputs:
            if written.exists() and path.exists() and written.resolve() == path.resolve():
                raise UserError(
                    f"{{out_dir}} {folder.path}: seq-eval writes {name} there, which is the input "
                    f"{path}; choose another folder",
                    field="out_dir",
                )
    return folder


def write_report(folder: OutputFolder, frame: pd.DataFrame, summary: dict, naturals: pd.DataFrame) -> None:
    """results.csv, summary.json, natural_baseline.csv and the two histograms, each whole, under the folder's
    lock."""
    from protein_sedd.evaluation.reports import histogram_png, write_csv_atomic
    from protein_sedd.io.atomic import write_json_atomic

    target = folder.path
    with folder:  # locked: a second seq-eval on this folder is refused until this one ends
        folder.record(OUTPUT_FILES)
        write_csv_atomic(target / "results.csv", frame)
        write_json_atomic(target / "summary.json", summary)
        write_csv_atomic(target / "natural_baseline.csv", naturals)
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
