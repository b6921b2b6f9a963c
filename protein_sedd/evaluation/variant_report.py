"""What a variant-scoring run writes: the scores CSV and `<stem>.summary.json` beside it.

The CSV holds `mutant`, `score` (for elbo also `standard_error`) and then the input's other columns. The
summary records the method, its cost, Spearman's rho with `DMS_score` when the input has it (with a bootstrap
interval), and the CSV's sha256, so that a rerun recognises both files as its own and may replace them.
"""

from __future__ import annotations

import json
from pathlib import Path

from protein_sedd.io.outputs import check_output_file

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


def figure_paths(out: Path) -> dict[str, Path]:
    """The pictures and profile a run may write beside `out` (a scan's heatmap and positions table; the
    scatter against DMS_score)."""
    return {
        "heatmap": out.with_name(f"{out.stem}.heatmap.png"),
        "positions": out.with_name(f"{out.stem}.positions.csv"),
        "scatter": out.with_name(f"{out.stem}.scatter.png"),
    }


def _is_listed(out: Path):
    """Whether a file beside `out` is one an earlier run's summary lists as its own, unchanged since (the
    summary records each file's sha256)."""
    from protein_sedd.data.datasets import sha256_of

    def own(path: Path) -> bool:
        record = _summary(summary_path(out))
        files = (record or {}).get("files")
        if not isinstance(files, dict) or not isinstance(files.get(path.name), str):
            return False
        try:
            return files[path.name] == sha256_of(path)
        except OSError:
            return False

    return own


def check_outputs(out: Path, inputs: list[Path], overwrite: bool) -> None:
    """`out`, its summary and the figures beside it may be written: a place that exists, no input, ours
    or `overwrite`."""
    from protein_sedd.errors import UserError

    if not out.parent.is_dir():
        raise UserError(f"{{out}} {out}: folder {out.parent} does not exist", field="out")
    check_output_file(out, "{out}", inputs=inputs, overwrite=overwrite, is_own=is_scores_csv, command=COMMAND)
    check_output_file(
        summary_path(out), "summary of {out}", inputs=inputs, overwrite=overwrite, is_own=is_summary,
        command=COMMAND,
    )  # fmt: skip
    for name, path in figure_paths(out).items():
        check_output_file(path, f"{name} of {{out}}", inputs=inputs, overwrite=overwrite,
                          is_own=_is_listed(out), command=COMMAND)  # fmt: skip


def write_figures(out: Path, scores, report: dict, measured, scan: bool) -> list[str]:
    """A scan's heatmap and positions table, and with measured scores the scatter; their file names."""
    import numpy as np

    from protein_sedd.evaluation import variant_maps
    from protein_sedd.evaluation.reports import write_csv_atomic

    paths, written = figure_paths(out), []
    source = Path(report["checkpoint"])
    source = source.parent if source.name == "checkpoint" else source  # a run's checkpoint: name the run
    title = f"{report['wildtype']['id']}: {report['method']}, {source.name}"
    if scan:
        variant_maps.heatmap_png(paths["heatmap"], scores, title)
        write_csv_atomic(paths["positions"], variant_maps.position_profile(scores))
        written += [paths["heatmap"].name, paths["positions"].name]
    correlation = report["spearman_vs_DMS_score"]
    if measured is not None and correlation is not None:
        scored = scores["score"].notna().to_numpy()
        predicted = scores["score"].to_numpy()[scored]
        observed = np.asarray(measured)[scored]
        variant_maps.scatter_png(paths["scatter"], predicted, observed, correlation["rho"], title)
        written.append(paths["scatter"].name)
    return written


def run_notes(job, record_id: str, n_threads: int) -> list[str]:
    """The lines a run logs before it scores: what is scored, on what, and what goes unscored."""
    from protein_sedd.io.alignment import ALIGNMENT_FORMATS

    model, plan, wildtype = job.model, job.plan, job.variants.wildtype
    n = len(job.variants.variants)
    length = f"{len(wildtype)} residues{model.representation.scored_note(plan.sequence)}"
    notes = [
        f"score-variants: {n} variants of {record_id} ({length}), method {job.method}, device "
        f"{model.device.type}, {n_threads} CPU thread{'s' * (n_threads > 1)}, checkpoint {model.path}"
    ]
    trained_on = (model.config.get("dataset") or {}).get("format")
    if model.focus is None and trained_on in ALIGNMENT_FORMATS:  # the better choice, measured on PTEN
        notes.append(
            "note: this model was trained on the alignment's real sequences; on the PTEN scan a model "
            "trained with data.representation=focus_columns scored variants better (README: A real scan)"
        )
    if model.representation.focus_sequence is not None:
        notes.append(
            f"wild type on the model's focus ({plan.placement.length} residues): {plan.placement.how}"
        )
    if plan.n_unscored:
        notes.append(f"{plan.n_unscored} of {n} variants not scored (empty score): {plan.unscored_reason}")
    return notes


def variant_report(job, scores, measured, *, wildtype: dict, variants: Path, out: Path) -> dict:
    """The summary of a finished run (`scores` from `job.run()`; `measured` the DMS scores or None);
    `wildtype` says where the wild type came from (file, id, length)."""
    from protein_sedd.evaluation.variants import spearman_interval

    parsed = job.variants.variants
    correlation = None
    if measured is not None:  # over the scored variants (an unscored one is NaN; the summary counts them)
        scored = scores["score"].notna().to_numpy()
        correlation = spearman_interval(
            scores["score"].to_numpy()[scored], measured[scored], resamples=BOOTSTRAP_RESAMPLES,
            confidence=CONFIDENCE, seed=job.seed,
        ).as_dict()  # fmt: skip
    elbo_draws = job.method == "elbo" and not job.model.is_autoregressive
    return {
        "command": COMMAND,
        "checkpoint": str(job.model.path),
        "wildtype": {**wildtype, **_region(job)},
        "variants": str(variants),
        "n_variants": len(parsed),
        "n_multi_mutants": sum(len(v.positions) > 1 for v in parsed),
        "n_not_scored": job.plan.n_unscored,
        "not_scored_reason": job.plan.unscored_reason,
        "method": job.method,
        "note": scores.attrs["note"],
        "t_samples": job.t_samples if elbo_draws else None,
        "seed": job.seed,
        "network_passes": scores.attrs["network_passes"],
        "network_passes_per_variant": scores.attrs["network_passes"] / len(parsed),
        "seconds": scores.attrs["seconds"],
        "mean_standard_error": float(scores["standard_error"].mean()) if "standard_error" in scores else None,
        "spearman_vs_DMS_score": correlation,
        "csv": out.name,
    }


def _region(job) -> dict:
    """Where the model's focus lies on the wild type, in the wild type's numbering (None without a focus)."""
    placement = job.plan.placement
    if placement is None or job.model.representation.focus_sequence is None:
        return {"focus_region": None}
    start = job.variants.first + placement.offset
    return {
        "focus_region": f"{start}-{start + placement.length - 1}",
        "placed": placement.how,
        "n_differences": len(placement.differences),
    }


def write_outputs(out: Path, scores, report: dict, measured=None, scan: bool = False) -> list[str]:
    """The table and the figures, then the summary recording the sha256 of each (so a rerun recognises
    every file as its own); the names of the figures written."""
    from protein_sedd.data.datasets import sha256_of
    from protein_sedd.evaluation.reports import write_csv_atomic
    from protein_sedd.io.atomic import write_json_atomic

    write_csv_atomic(out, scores)
    files = write_figures(out, scores, report, measured, scan)
    digests = {name: sha256_of(out.with_name(name)) for name in files}
    write_json_atomic(summary_path(out), {**report, "files": digests, "csv_sha256": sha256_of(out)})
    return files


def summary_rows(report: dict) -> list[tuple[str, str]]:
    """The summary as (metric, value) rows for a table."""
    rows = [("variants", str(report["n_variants"]))]
    if report["n_not_scored"]:
        rows.append(("not scored (outside the focus region or its columns)", str(report["n_not_scored"])))
    per_variant = report["network_passes_per_variant"]
    rows.append(("network passes", f"{report['network_passes']} ({per_variant:.3g} per variant)"))
    rows.append(("seconds", f"{report['seconds']:.1f}"))
    if report["mean_standard_error"] is not None:
        rows.append(("mean standard error (nats)", f"{report['mean_standard_error']:.3f}"))
    correlation = report["spearman_vs_DMS_score"]
    if correlation is not None:
        interval = f"[{correlation['low']:.3f}, {correlation['high']:.3f}]"
        rows.append(
            (f"Spearman rho vs DMS_score (n={correlation['n']})", f"{correlation['rho']:.3f} {interval}")
        )
    return rows
