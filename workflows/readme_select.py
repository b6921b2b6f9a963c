"""Regenerate the README's `select` table and funnel from the commands it quotes.

    python workflows/readme_select.py --work DIR

runs, in DIR (each step skipped when its output is already there), the README's three commands on the
bundled model: `design --n 300 --steps 1024 --threads 1`, `seq-eval --reference acyp` and
`select --n 96 --seq-eval`, then prints the Markdown table, the funnel and the family pass rate by length
that the README shows. Rerun it whenever the sampler, the bundled model or the evaluation changes, and paste.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from command_steps import step  # noqa: E402

from protein_sedd.evaluation.sequence_metrics import identity  # noqa: E402


def share(value: float) -> str:
    """94.7%, 1.3%, 100%."""
    return f"{100 * value:.1f}".rstrip("0").rstrip(".") + "%"


def percent(r: dict) -> str:
    low, high = r["ci95"]
    return f"{share(r['rate'])} [{100 * low:.1f}, {100 * high:.1f}]".replace("100.0]", "100]")


def mean_pairwise(sequences: list[str]) -> float:
    pairs = [identity(a, b) for i, a in enumerate(sequences) for b in sequences[i + 1 :]]
    return float(np.mean(pairs))


def table(work: Path) -> str:
    summary = json.loads((work / "se" / "summary.json").read_text())
    designs = pd.read_csv(work / "se" / "results.csv", keep_default_na=False)
    picks = pd.read_csv(work / "picks" / "picks.csv", keep_default_na=False)
    picked = picks[picks["picked"].astype(str) == "True"]
    chosen = designs.set_index("id").loc[picked["id"]]
    natural = summary["natural_baseline"]

    def spread(frame, column, digits):
        values = np.percentile(frame[column].astype(float), [10, 50, 90])
        return " / ".join(f"{v:.{digits}f}" for v in values)

    low = summary["low_complexity"]
    nat_low = natural["low_complexity"]
    chosen_pass = float(np.mean(chosen["family_bits"] >= summary["family_pass_bits"]))
    rows = [
        "| | all {n} designs | natural baseline ({m}, length-matched) | {k} picks |".format(
            n=len(designs), m=natural["n"], k=len(chosen)
        ),
        "| --- | --- | --- | --- |",
        f"| family pass (>= 25 bits), 95% interval | {percent(summary['family_pass'])} | "
        f"{percent(natural['family_pass'])} | {share(chosen_pass)} |",
        f"| family bits, 10th / 50th / 90th percentile | {spread(designs, 'family_bits', 1)} | "
        f"median {natural['family_bits_median']:.1f} | {spread(chosen, 'family_bits', 1)} |",
        f"| nearest-natural identity, 10th / 50th / 90th | {spread(designs, 'nearest_identity', 2)} | | "
        f"{spread(chosen, 'nearest_identity', 2)} |",
        f"| mean pairwise identity | {summary['mean_pairwise_identity']:.3f} | | "
        f"{mean_pairwise(chosen['sequence'].tolist()):.3f} |",
        f"| low complexity | {percent(low)} ({low['count']}) | {percent(nat_low)} ({nat_low['count']}) | "
        f"{int(chosen['low_complexity'].astype(str).eq('True').sum())} |",
    ]
    funnel = json.loads((work / "picks" / "summary.json").read_text())["funnel"]
    stages = " -> ".join(f"{f['left']} {f['stage']}" for f in funnel)
    by_length = ", ".join(f"{b['lengths']}: {b['count']}/{b['n']}" for b in summary["family_pass_by_length"])
    return "\n".join(rows) + f"\n\nFunnel: {stages}\n\nFamily pass by length: {by_length}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the designs and evaluations")
    args = parser.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    fasta = work / "designs.fasta"
    with open(work / "commands.log", "a") as log:
        if not fasta.exists():
            step(
                "design",
                [
                    "design",
                    "--n",
                    "300",
                    "--steps",
                    "1024",
                    "--threads",
                    "1",
                    "--precision",
                    "fp32",
                    "--out",
                    str(fasta),
                ],  # fmt: skip
                log,
            )
        if not (work / "se" / "summary.json").exists():
            step(
                "seq-eval",
                ["seq-eval", str(fasta), "--reference", "acyp", "--out-dir", str(work / "se")],
                log,
            )
        if not (work / "picks" / "summary.json").exists():
            picks = ["--n", "96", "--seq-eval", str(work / "se"), "--out", str(work / "picks")]
            step("select", ["select", str(fasta), *picks], log)
    print(table(work))


if __name__ == "__main__":
    main()
