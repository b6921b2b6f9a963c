"""`protein-sedd score-variants`: zero-shot scores of a deep mutational scan's variants.

Writes the scores CSV (`mutant`, `score`, for elbo `standard_error`, then the input's other columns) and
`<out stem>.summary.json` beside it (method, cost, and Spearman's rho with `DMS_score` when the input has
it). The maths is in `protein_sedd/evaluation/variants.py`; this is a thin wrapper over
`ProteinSEDD.score_variants`.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from protein_sedd.commands.options import Checkpoint, Device, Threads
from protein_sedd.errors import UserError
from protein_sedd.io.outputs import check_output_file
from protein_sedd.runtime.devices import check_threads, cpu_threads, select_device
from protein_sedd.runtime.progress import log_line

COMMAND = "score-variants"
BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE = 0.95


def summary_path(out: Path) -> Path:
    """`scores.csv` -> `scores.summary.json`, beside it."""
    return out.with_name(f"{out.stem}.summary.json")


def _summary(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("command") == COMMAND else None


def is_summary(path: Path) -> bool:
    """Whether `path` is an earlier score-variants summary (then it is ours to replace)."""
    return _summary(path) is not None


def is_scores_csv(path: Path) -> bool:
    """Whether `path` is an earlier score-variants table: its summary beside it records its sha256."""
    from protein_sedd.data.datasets import sha256_of

    record = _summary(summary_path(path))
    if record is None or record.get("csv") != path.name:
        return False
    try:
        return record.get("csv_sha256") == sha256_of(path)
    except OSError:
        return False


def score_variants(
    checkpoint: Checkpoint = None,
    wildtype: Path = typer.Option(
        ..., "--wildtype", help="FASTA file whose first record is the wild type the positions number."
    ),
    variants: Path = typer.Option(
        ...,
        "--variants",
        help="CSV in ProteinGym's format: a column 'mutant' (A23V, multi-mutants A23V:G45L; 1-based "
        "positions on the wild type); other columns (DMS_score, ...) are carried through.",
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
    from protein_sedd.api import load
    from protein_sedd.evaluation.variants import (
        VariantSet,
        check_variant_settings,
        measured_scores,
        read_variants,
        spearman_interval,
    )
    from protein_sedd.io.alignment import ALIGNMENT_FORMATS
    from protein_sedd.io.fasta import read_fasta

    check_variant_settings(method, t_samples, seed, batch_size)
    summary = summary_path(out)
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: folder {out.parent} does not exist")
    inputs = [wildtype, variants]
    check_output_file(out, "--out", inputs=inputs, overwrite=overwrite, is_own=is_scores_csv, command=COMMAND)
    check_output_file(
        summary, "summary of --out", inputs=inputs, overwrite=overwrite, is_own=is_summary, command=COMMAND
    )
    check_threads(threads)
    requested = select_device(device)
    record = read_fasta(wildtype)[0]
    table = read_variants(variants)
    asked = VariantSet.parse(record.sequence, table, lambda row: f"{variants} line {row + 2}")
    parsed = asked.variants
    measured = measured_scores(table)  # before any work: every mistake shows first

    with cpu_threads(threads) as n_threads:
        model = load(checkpoint, requested)
        # what the model scores: the wild type, or a focus_columns model's row over its columns
        where = f"--wildtype {wildtype}: record {record.id!r}"
        job = asked.job(
            model, method=method, t_samples=t_samples, seed=seed, batch_size=batch_size, where=where
        )
        plan = job.plan
        from protein_sedd.runtime.progress import LoopProgress

        console = Console(stderr=True)
        length = f"{len(record.sequence)} residues{model.representation.scored_note(plan.sequence)}"
        log_line(
            console,
            f"score-variants: {len(parsed)} variants of {record.id} ({length}), "
            f"method {method}, device {model.device.type}, {n_threads} CPU thread{'s' * (n_threads > 1)}, "
            f"checkpoint {model.path}",
        )
        trained_on = (model.config.get("dataset") or {}).get("format")
        if model.focus is None and trained_on in ALIGNMENT_FORMATS:  # the better choice, measured on PTEN
            log_line(
                console,
                "note: this model was trained on the alignment's real sequences; on the PTEN scan a model "
                "trained with data.representation=focus_columns scored variants better (README: A real scan)",
            )
        if plan.n_unscored:
            log_line(
                console,
                f"{plan.n_unscored} of {len(parsed)} variants not scored (empty score): "
                f"{plan.unscored_reason}",
            )
        with LoopProgress(console, "sequence passes", job.passes) as progress:
            scores = job.run(progress.advance)
    correlation = None
    if measured is not None:  # over the scored variants (an unscored one is NaN; the summary counts them)
        scored = scores["score"].notna().to_numpy()
        correlation = spearman_interval(
            scores["score"].to_numpy()[scored], measured[scored], resamples=BOOTSTRAP_RESAMPLES,
            confidence=CONFIDENCE, seed=seed,
        ).as_dict()  # fmt: skip
    report = {
        "command": COMMAND,
        "checkpoint": str(model.path),
        "wildtype": {"file": str(wildtype), "id": record.id, "length": len(record.sequence)},
        "variants": str(variants),
        "n_variants": len(parsed),
        "n_multi_mutants": sum(len(v.positions) > 1 for v in parsed),
        "n_not_scored": plan.n_unscored,
        "not_scored_reason": plan.unscored_reason,
        "method": method,
        "note": scores.attrs["note"],
        "t_samples": t_samples if method == "elbo" and not model.is_autoregressive else None,
        "seed": seed,
        "network_passes": scores.attrs["network_passes"],
        "network_passes_per_variant": scores.attrs["network_passes"] / len(parsed),
        "seconds": scores.attrs["seconds"],
        "mean_standard_error": float(scores["standard_error"].mean()) if "standard_error" in scores else None,
        "spearman_vs_DMS_score": correlation,
        "csv": out.name,
    }
    _write(out, summary, scores, report)
    _print_table(report, out, summary)


def _write(out: Path, summary: Path, scores, report: dict) -> None:
    """The table, then the summary recording its sha256 (so a rerun recognises both as its own)."""
    from protein_sedd.data.datasets import sha256_of
    from protein_sedd.evaluation.reports import write_csv_atomic
    from protein_sedd.io.atomic import write_json_atomic

    write_csv_atomic(out, scores)
    write_json_atomic(summary, {**report, "csv_sha256": sha256_of(out)})


def _print_table(report: dict, out: Path, summary: Path) -> None:
    table = Table(title=f"score-variants: {report['method']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("variants", str(report["n_variants"]))
    if report["n_not_scored"]:
        table.add_row("not scored (outside the focus columns)", str(report["n_not_scored"]))
    per_variant = report["network_passes_per_variant"]
    table.add_row("network passes", f"{report['network_passes']} ({per_variant:.3g} per variant)")
    table.add_row("seconds", f"{report['seconds']:.1f}")
    if report["mean_standard_error"] is not None:
        table.add_row("mean standard error (nats)", f"{report['mean_standard_error']:.3f}")
    correlation = report["spearman_vs_DMS_score"]
    if correlation is not None:
        interval = f"[{correlation['low']:.3f}, {correlation['high']:.3f}]"
        table.add_row(
            f"Spearman rho vs DMS_score (n={correlation['n']})", f"{correlation['rho']:.3f} {interval}"
        )
    Console().print(table)
    log_line(Console(), f"wrote {out} and {summary}")
