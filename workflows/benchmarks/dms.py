"""Zero-shot variant effects on a real deep mutational scan, beside baselines from the same alignment.

    python workflows/benchmarks/dms.py --alignment FAMILY.a2m --dms SCAN.csv --work DIR
    python workflows/benchmarks/dms.py ... --steps 500,1500 --arms weighted,plain --threads 2
    python workflows/benchmarks/dms.py ... --checkpoint RUN        # score a trained model, no training
    python workflows/benchmarks/dms.py ... --override model.dropout=0.1   # any training override (last wins)
    python workflows/benchmarks/dms.py ... --arms '' --potts-every 25   # the Potts fit alone, and its path
    python workflows/benchmarks/dms.py ... --esm2 facebook/esm2_t33_650M_UR50D   # + ESM-2 zero-shot rows
    python workflows/benchmarks/dms.py ... --override model=esm2 --override model.pretrained=ID  # fine-tuned

The focus (first record, or --focus ID) is the wild type the scan's positions refer to (`mutant`
such as `M1V`, 1-based, ProteinGym's format; `DMS_score` higher = fitter). For each arm the benchmark
trains a SEDD model through `protein-sedd train` in stages (--resume between them, so the run at 1,500
steps is the run at 500 steps trained further), scores every variant by the masked marginal after each
stage (`score-variants`'s code), and records the CPU seconds each stage took and the run's validation bound
there (`--override data.split=cluster`: on whole clusters of distant members). Arms:

- weighted: the alignment defaults, redundancy weights at 80% identity and fragments (< 50% coverage of
  the focus columns) filtered;
- plain: every row, unweighted (`data.weights=none data.min_coverage=0`);
- columns: the weighted arm trained on each row restricted to the focus columns
  (`data.representation=focus_columns`: one letter per column, X at gaps, insertions dropped;
  model.max_length is the column count unless --max-length says otherwise). `score-variants`'s code maps
  the scan's positions onto the columns; variants outside them have no score.

Baselines from the same alignment: the site-independent model (column frequencies of the focus columns with
pseudocount 0.5, weighted and unweighted), the Potts model (EVmutation's pairwise model fitted by
pseudo-likelihood, protein_sedd/baselines/potts.py; `--no-potts` skips it) and the autoregressive model's
exact log-likelihood ratio (`model=ar`, trained like the first arm for the last stage's steps; `--no-ar` skips
it). With several stages, a row
averages the stages' z-scored variant scores (the checkpoints along one run's trajectory, no extra
training). Spearman's rho with `DMS_score` and its 95% bootstrap interval are reported over the variants whose
positions all lie in focus columns (the ones the site-independent model can score) and, for the sequence
models, over all variants. `--esm2 ID,...` adds ESM-2 as pretrained (`esm2:ID`, ESM-1v's masked marginal, no
training: the row users know). Results go to DIR/results.json and a printed table.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

ARMS = {
    "weighted": ["data.weights=identity", "data.min_coverage=0.5"],
    "plain": ["data.weights=none", "data.min_coverage=0"],
    "columns": ["data.weights=identity", "data.min_coverage=0.5", "data.representation=focus_columns"],
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def stage_ledger(run: Path, steps: int) -> Path:
    """`<run>.step<steps>.json`: what a finished stage cost (CPU seconds) and, once scored, its row."""
    return run.with_name(f"{run.name}.step{steps}.json")


def train_stage(alignment: Path, run: Path, steps: int, threads: int, extra: list[str]) -> float:
    """Train `run` up to `steps`, resuming an earlier stage; the CPU seconds this stage took (as recorded
    in its ledger when the stage was trained before)."""
    from protein_sedd.cli import main

    ledger = stage_ledger(run, steps)
    if ledger.is_file():
        return json.loads(ledger.read_text())["cpu_seconds"]
    resume = (run / "checkpoint" / "trainer_state.pt").is_file()
    data = ["--resume"] if resume else ["--fasta", alignment, *extra]  # a resumed run keeps its settings
    args = ["train", "--out", run, "--max-steps", steps, "--threads", threads, "--device", "cpu", *data]
    began = cpu_seconds()
    code = main([str(a) for a in args])
    if code != 0:
        raise SystemExit(f"training {run} to {steps} steps failed with exit code {code}")
    seconds = cpu_seconds() - began
    ledger.write_text(json.dumps({"cpu_seconds": seconds}) + "\n")
    return seconds


def scored_stage(run: Path, steps: int, cpu: float, label: str, method: str, scoring) -> dict:
    """The stage's row: scored now (the run is at this stage) or, when scored before, as recorded (a
    later stage has trained the run on since)."""
    ledger = stage_ledger(run, steps)
    recorded = json.loads(ledger.read_text())
    if "row" not in recorded:
        rho = scoring(run, method, steps)
        recorded["row"] = {"method": label, "steps": steps, "cpu_seconds": cpu, "rho": rho,
                           "valid_nats": valid_bound(run, steps)}  # fmt: skip
        ledger.write_text(json.dumps(recorded) + "\n")
    return recorded["row"]


def valid_bound(run: Path, steps: int) -> float | None:
    """The run's validation bound (nats per sequence) at `steps`, from its metrics.csv (None: not validated
    there). With `--override data.split=cluster` it is the bound on distant members."""
    metrics = pd.read_csv(run / "metrics.csv")
    at = metrics.loc[metrics["step"] == steps, "valid_nats_per_sequence"].dropna()
    return float(at.iloc[-1]) if len(at) else None


def stage_scores(run: Path, steps: int) -> Path:
    """`<run>.step<steps>.scores.npy`: the stage's score of every variant (NaN: not scored)."""
    return run.with_name(f"{run.name}.step{steps}.scores.npy")


def z_average(scores: list) -> np.ndarray:
    """The mean of each score vector standardised over its scored variants (NaN stays NaN)."""
    standard = [(s - np.nanmean(s)) / np.nanstd(s) for s in scores]
    return np.mean(standard, axis=0)


def model_scores(run: Path, wildtype: str, variants: pd.DataFrame, method: str, threads: int):
    import protein_sedd
    from protein_sedd.runtime.devices import cpu_threads

    with cpu_threads(threads):
        frame = protein_sedd.load(run, "cpu").score_variants(wildtype, variants, method, progress=None)
    return frame["score"].to_numpy()


def correlations(scores, measured, in_columns) -> dict:
    """rho over the variants in focus columns and over all; "all" is None for a model that leaves some
    unscored (a focus_columns model scores none outside the columns)."""
    import numpy as np

    from protein_sedd.evaluation.variants import spearman_interval

    every = None if np.isnan(scores).any() else spearman_interval(scores, measured).as_dict()
    return {
        "focus columns": spearman_interval(scores[in_columns], measured[in_columns]).as_dict(),
        "all": every,
    }


def benchmark(args) -> dict:
    from protein_sedd.baselines.site_independent import alignment_log_frequencies, site_independent_scores
    from protein_sedd.data.family.weights import identity_weights
    from protein_sedd.evaluation.variants import parse_variants, read_variants
    from protein_sedd.io.alignment import read_sequences

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    family = read_sequences(args.alignment, focus=args.focus)
    if not family.aligned:
        raise SystemExit(f"{args.alignment}: not an alignment (A2M, A3M, Stockholm or aligned FASTA)")
    wildtype = family.records[family.focus_index].sequence
    variants = read_variants(args.dms)
    parsed = parse_variants(wildtype, variants, lambda row: f"{args.dms}: row {row + 2}")
    measured = variants["DMS_score"].to_numpy(dtype=float)
    column_of = {int(p): c for c, p in enumerate(family.focus_positions)}
    in_columns = pd.Series([all(p in column_of for p in v.positions) for v in parsed]).to_numpy()

    results: dict = {
        "alignment": str(args.alignment),
        "dms": str(args.dms),
        "focus": family.focus_id,
        "sequences": len(family.records),
        "focus_columns": len(family.focus_positions),
        "variants": len(variants),
        "variants_in_focus_columns": int(in_columns.sum()),
        "rows": [],
    }

    # site-independent, weighted and not: seconds, no training
    began = time.perf_counter()
    weights = identity_weights(family.columns, 0.8)
    results["neff"] = float(weights.sum())
    for label, w in (("site-independent, weighted", weights), ("site-independent", None)):
        profile = alignment_log_frequencies(family.columns, family.focus_positions, len(wildtype), w, 0.5)
        score = site_independent_scores(profile, parsed)
        row = {"method": label, "steps": 0, "cpu_seconds": time.perf_counter() - began}
        results["rows"].append(row | {"rho": correlations(score, measured, in_columns)})

    if args.potts:  # the pairwise family model users compare with: seconds to minutes, no network
        from protein_sedd.baselines.potts import fit_potts, potts_scores, potts_symbols

        began = time.perf_counter()
        cpu = cpu_seconds()
        wild_row = potts_symbols(family.columns[family.focus_index])

        def potts_row(potts) -> dict:  # the fit so far, scored (its scoring's CPU included)
            score = potts_scores(potts, wild_row, family.focus_positions, parsed)
            np.save(work / f"potts.iter{potts.report['iterations']}.scores.npy", score)  # for combinations
            row = {"method": "Potts (EVmutation), weighted", "steps": potts.report["iterations"],
                   "cpu_seconds": cpu_seconds() - cpu, "seconds": time.perf_counter() - began}  # fmt: skip
            return row | {"rho": correlations(score, measured, in_columns), "fit": potts.report}

        def trajectory(potts) -> None:  # --potts-every: a row along the L-BFGS path
            results["rows"].append(potts_row(potts))
            _save(work, results)

        along = trajectory if args.potts_every else None
        potts = fit_potts(family.columns, weights, threads=args.threads, max_iterations=args.potts_iterations,
                          every=args.potts_every, callback=along)  # fmt: skip
        results["rows"].append(potts_row(potts))
        _save(work, results)
    max_length = args.max_length or max(len(r.sequence) for r in family.records)
    column_length = args.max_length or len(family.focus_positions)  # a focus_columns record's length
    extra = [f"trainer.batch_size={args.batch_size}"]
    extra += [f"trainer.checkpoint_every={min(args.steps)}", f"trainer.val_every={min(args.steps)}"]
    results["overrides"] = [*extra, *args.override]
    results["max_length"] = {"sequence arms": max_length, "columns arm": column_length}
    for name in args.esm2:  # ESM-2 as pretrained: the masked marginal of ESM-1v, no training
        cpu = cpu_seconds()
        score = model_scores(f"esm2:{name}", wildtype, variants, "masked-marginal", args.threads)
        row = {
            "method": f"ESM-2 masked marginal (zero-shot), {name}",
            "steps": 0,
            "cpu_seconds": cpu_seconds() - cpu,
        }
        results["rows"].append(row | {"rho": correlations(score, measured, in_columns)})
        _save(work, results)
    if args.checkpoint:
        score = model_scores(args.checkpoint, wildtype, variants, "masked-marginal", args.threads)
        row = {"method": f"SEDD masked marginal, {args.checkpoint}", "steps": None, "cpu_seconds": 0.0}
        results["rows"].append(row | {"rho": correlations(score, measured, in_columns)})
        _save(work, results)
        return results

    def scoring(run: Path, method: str, steps: int) -> dict:
        score = model_scores(run, wildtype, variants, method, args.threads)
        np.save(stage_scores(run, steps), score)  # for the trajectory average below
        return correlations(score, measured, in_columns)

    for arm in args.arms:
        run, total = work / f"sedd-{arm}", 0.0
        length = column_length if arm == "columns" else max_length
        for steps in args.steps:
            arm_extra = [f"model.max_length={length}", *extra, *ARMS[arm], *args.override]  # the user's last
            total += train_stage(args.alignment, run, steps, args.threads, arm_extra)
            label = f"SEDD masked marginal, {arm}"
            results["rows"].append(scored_stage(run, steps, total, label, "masked-marginal", scoring))
            _save(work, results)
        saved = [stage_scores(run, steps) for steps in args.steps]
        if len(saved) > 1 and all(p.is_file() for p in saved):  # one run's checkpoints along its trajectory
            score = z_average([np.load(p) for p in saved])
            row = {"method": f"SEDD masked marginal, {arm}, stages {'+'.join(map(str, args.steps))} averaged "
                             "(z-scores)", "steps": max(args.steps), "cpu_seconds": total}  # fmt: skip
            results["rows"].append(row | {"rho": correlations(score, measured, in_columns)})
            _save(work, results)
    if args.ar:
        steps, arm = max(args.steps), args.arms[0]
        run = work / f"ar-{arm}"
        length = column_length if arm == "columns" else max_length
        ar_extra = [f"model.max_length={length}", *extra, "model=ar", *ARMS[arm], *args.override]
        seconds = train_stage(args.alignment, run, steps, args.threads, ar_extra)
        label = f"AR log-likelihood ratio, {arm}"
        results["rows"].append(scored_stage(run, steps, seconds, label, "elbo", scoring))
    _save(work, results)
    return results


def _save(work: Path, results: dict) -> None:
    (work / "results.json").write_text(json.dumps(results, indent=2) + "\n")


def _interval(rho: dict) -> str:
    return f"{rho['rho']:.3f} [{rho['low']:.3f}, {rho['high']:.3f}] (n={rho['n']})"


def show(results: dict) -> None:
    r = results
    table = Table(
        title=f"{r['focus']}: {r['variants']} variants, {r['variants_in_focus_columns']} in "
        f"{r['focus_columns']} focus columns; {r['sequences']} sequences, Neff {r['neff']:.1f}"
    )
    for column in ("method", "steps", "CPU min", "rho, focus columns", "rho, all variants", "valid nats"):
        table.add_column(column)
    for row in results["rows"]:
        minutes = f"{row['cpu_seconds'] / 60:.1f}"
        every = row["rho"]["all"]
        all_variants = "-" if row["method"].startswith("site") or every is None else _interval(every)
        bound = "-" if row.get("valid_nats") is None else f"{row['valid_nats']:.1f}"
        table.add_row(
            row["method"],
            str(row["steps"]),
            minutes,
            _interval(row["rho"]["focus columns"]),
            all_variants,
            bound,
        )
    Console().print(table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--alignment", type=Path, required=True, help="the family: A2M, A3M, Stockholm, aligned FASTA"
    )
    parser.add_argument("--dms", type=Path, required=True, help="ProteinGym-format CSV: mutant, DMS_score")
    parser.add_argument("--work", type=Path, required=True, help="folder for the runs and results.json")
    parser.add_argument("--focus", default=None, help="the focus record's id (default: the first record)")
    parser.add_argument("--steps", default="500,1500", help="training stages, comma-separated")
    parser.add_argument("--arms", default="weighted,plain", help=f"comma-separated, of {', '.join(ARMS)}")
    parser.add_argument("--checkpoint", type=Path, default=None, help="score this run instead of training")
    parser.add_argument("--no-ar", dest="ar", action="store_false", help="skip the autoregressive baseline")
    parser.add_argument("--no-potts", dest="potts", action="store_false", help="skip the Potts baseline")
    parser.add_argument(
        "--potts-iterations", type=int, default=200, help="the Potts fit's L-BFGS iteration cap (default 200)"
    )
    parser.add_argument(
        "--potts-every", type=int, default=None, help="also score the Potts fit every N iterations (its path)"
    )
    parser.add_argument("--esm2", default="", help="ESM-2 ids or folders to score zero-shot, comma-separated")
    parser.add_argument(
        "--override", action="append", default=[], help="a training override for every run (repeatable)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--max-length", type=int, default=None, help="model.max_length (default: longest row)"
    )
    args = parser.parse_args(argv)
    args.steps = sorted(int(s) for s in args.steps.split(","))
    args.arms = [a for a in args.arms.split(",") if a]
    args.esm2 = [e for e in args.esm2.split(",") if e]
    unknown = [a for a in args.arms if a not in ARMS]
    if unknown:
        parser.error(f"unknown arms {unknown}; choose from {', '.join(ARMS)}")
    show(benchmark(args))


if __name__ == "__main__":
    main()
