"""Held-out likelihood of a checkpoint: -log p(x) <= -log p(length) - ELBO(x | length)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from protein_sedd.config.limits import MAX_BATCH_SIZE, MAX_SEED, MAX_T_SAMPLES, check_int
from protein_sedd.data.batches import encode_all
from protein_sedd.diffusion.likelihood import LN2
from protein_sedd.errors import UserError, check_type
from protein_sedd.io.fasta import FastaRecord


def check_lengths(records: list[FastaRecord], max_length: int, source: str) -> None:
    for record in records:
        if len(record.sequence) > max_length:
            raise UserError(
                f"{source}: record {record.id!r} has {len(record.sequence)} residues, "
                f"longer than the model context ({max_length})"
            )


def likelihood_report(
    model, records: list[FastaRecord], *, t_samples: int, batch_size: int, seed: int, progress=None
):
    """Bound per sequence and in total for a `TrainedModel`; nats per sequence include the length term."""
    tokens = encode_all([r.sequence for r in records])
    total, error = model.nats(
        tokens, t_samples=t_samples, batch_size=batch_size, seed=seed, progress=progress
    )
    lengths = torch.tensor([len(t) for t in tokens])
    length_nats = -model.length_prior.log_prob(lengths)
    n_residues = int(lengths.sum())
    n = len(records)
    nats_per_residue = float(total.sum()) / n_residues
    return {
        "nats_per_sequence": float(total.mean()),
        "bits_per_residue": nats_per_residue / LN2,
        "perplexity_bound": math.exp(nats_per_residue),
        "n_sequences": n,
        "n_residues": n_residues,
        "length_nats_per_sequence": float(length_nats.mean()),
        "standard_error_nats_per_sequence": float(total.std() / math.sqrt(n)) if n > 1 else 0.0,
        "exact": model.is_autoregressive,
        "t_samples": t_samples,
        "seed": seed,
        "per_sequence": [
            {
                "id": r.id,
                "length": len(r.sequence),
                "nats": float(v),
                "bits_per_residue": float(v) / len(r.sequence) / LN2,
                "standard_error_nats": float(e),
            }
            for r, v, e in zip(records, total, error, strict=True)
        ],
    }


SPLITS = ("train", "valid", "test")


def check_evaluation_settings(sequences, dataset, split, t_samples, batch_size, seed) -> None:
    """`evaluate`'s settings, before any model is loaded (see `ProteinSEDD.evaluate`)."""
    if dataset is not None and sequences is not None:
        raise UserError(
            "give one of {dataset} NAME (with {split}) or {sequences} PATH, not both",
            field=("dataset", "split", "sequences"),
        )
    check_type("dataset", dataset, str, "a dataset name")
    if split not in SPLITS:
        raise UserError(f"{{split}} {split!r}: choose train, valid or test", field="split")
    if isinstance(sequences, (str, bytes)):
        raise UserError(
            "{sequences}: give a FASTA file as a Path, or a list of sequences, not one string",
            field="sequences",
        )
    check_int("t_samples", t_samples, 1, MAX_T_SAMPLES)
    check_int("batch_size", batch_size, 1, MAX_BATCH_SIZE)
    check_int("seed", seed, 0, MAX_SEED)


def evaluation_records(model, sequences, dataset: str | None, split: str) -> tuple[list[FastaRecord], str]:
    """What `evaluate` scores, and its name in the report: every record of a FASTA file (`sequences` a
    Path), the given sequences (a list), or the `split` of `dataset` (default the model's own data, its
    split recomputed exactly; the file it was trained on must be unchanged)."""
    if isinstance(sequences, Path):
        from protein_sedd.io.fasta import read_fasta

        records = read_fasta(sequences)
        model.representation.check_rows((f"{sequences}: record {r.id!r}", len(r.sequence)) for r in records)
        check_lengths(records, model.max_length, str(sequences))
        return records, str(sequences)
    if sequences is not None:
        ids, texts = model.rows(sequences)
        return [FastaRecord(i, "", s) for i, s in zip(ids, texts, strict=True)], "sequences"
    return _split_records(model.config, dataset, split)


def _split_records(config, dataset: str | None, split: str) -> tuple[list[FastaRecord], str]:
    from omegaconf import OmegaConf

    from protein_sedd.data.prepare import prepare_splits, recorded_data_config

    own = dataset is None or dataset == config.data.name
    if own:
        data_cfg = recorded_data_config(config)  # the file it was trained on, if still there unchanged
        dataset = config.data.name
    elif dataset == "fasta":
        raise UserError(
            "{dataset} fasta: this checkpoint was not trained on a FASTA file; use {sequences} PATH",
            field=("dataset", "sequences"),
        )
    else:
        data_cfg = OmegaConf.merge(config.data, {"name": dataset, "fasta": None})
    # a FASTA file is evaluated whole, not split: the not-found message names PROTEIN_SEDD_DATA alone
    prepared = prepare_splits(data_cfg, int(config.model.max_length), option=None)
    recorded = config.get("dataset", {}).get("sha256")
    if own and recorded and recorded != prepared.sha256:
        raise UserError(
            f"{prepared.source}: differs from the file this checkpoint was trained on (sha256 mismatch)"
        )
    records = prepared.splits[split]
    if not records:
        raise UserError(f"split {split!r} of {dataset} is empty for this checkpoint's split settings")
    return records, f"{dataset}:{split}"


SCORE_COLUMNS = ["id", "length", "nats", "bits_per_residue", "standard_error_nats"]
SUMMARY_KEYS = ["nats_per_sequence", "bits_per_residue", "perplexity_bound", "n_sequences", "n_residues"]
SHOWN_KEYS = SUMMARY_KEYS + ["length_nats_per_sequence", "standard_error_nats_per_sequence"]


def is_report_json(path: Path) -> bool:
    """Whether `path` holds an earlier evaluate report (then it is ours to replace)."""
    import json

    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(report, dict) and {"checkpoint", "source", "nats_per_sequence"} <= report.keys()


def is_scores_csv(path: Path) -> bool:
    """Whether `path` holds an earlier per-sequence scores table (then it is ours to replace)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.readline().strip() == ",".join(SCORE_COLUMNS)
    except (OSError, UnicodeDecodeError):
        return False


def check_outputs(json_out: Path | None, csv_out: Path | None, inputs: list, overwrite: bool) -> None:
    """The report (`json`) and per-sequence table (`csv`) may be written: ours, or `overwrite`."""
    from protein_sedd.io.outputs import check_output_file

    for path, field, is_own in ((json_out, "json", is_report_json), (csv_out, "csv", is_scores_csv)):
        if path is None:
            continue
        if not path.parent.is_dir():
            raise UserError(f"{{{field}}} {path}: folder {path.parent} does not exist", field=field)
        check_output_file(
            path, f"{{{field}}}", inputs=inputs, overwrite=overwrite, is_own=is_own, command="evaluate"
        )
    if json_out is not None and csv_out is not None and json_out.absolute() == csv_out.absolute():
        raise UserError("{json} and {csv} name the same file; give two names", field=("json", "csv"))


def write_outputs(report: dict, json_out: Path | None, csv_out: Path | None) -> None:
    """The report as JSON, its per-sequence rows as a CSV (each where asked for)."""
    from protein_sedd.io.atomic import write_json_atomic

    if json_out is not None:
        write_json_atomic(json_out, report)
    if csv_out is not None:
        import pandas as pd

        from protein_sedd.evaluation.reports import write_csv_atomic

        write_csv_atomic(csv_out, pd.DataFrame(report["per_sequence"], columns=SCORE_COLUMNS))
