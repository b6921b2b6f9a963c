"""Benchmark the fragment filter: a family with a quarter fragments, trained with and without it.

    python workflows/benchmarks/fragments.py --work /tmp/fragments                  # 600 steps an arm
    python workflows/benchmarks/fragments.py --work DIR --steps 1500 --n 300 --threads 2

The family is ACYP (the `acyp` dataset) with `--fraction` (0.25) of its records, drawn with `--seed`,
replaced by fragments: a contiguous piece of the record of 30-85% of its length at a random offset, as a
sequence search exports partial hits. Two arms train a tiny model on that file for `--steps` steps each:

- `unfiltered`: data.min_coverage=0, data.length_prior=all (fragments train; design lengths follow every
  training length, fragments included: what unaligned FASTA does by default);
- `filtered`: data.min_coverage=0.5, data.length_prior=full_length (records shorter than half the median
  length are dropped; design lengths come from records of >= 0.9 of the median length).

Each arm designs `--n` sequences with the default lengths (`--design-steps` steps) and `seq-eval` scores
them against the natural family (`--reference acyp`: the family HMM, pass at 25 bits). Prints per arm the
family-HMM pass rate with its 95% interval, the share of designs shorter than 0.9 of the median natural
length and the seconds each command took; writes summary.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from protein_sedd.data.datasets import resolve_dataset_path  # noqa: E402
from protein_sedd.io.fasta import read_fasta  # noqa: E402

ARMS = {
    "unfiltered": ["data.min_coverage=0", "data.length_prior=all"],
    "filtered": ["data.min_coverage=0.5", "data.length_prior=full_length"],
}


def planted_fragments(records, fraction: float, seed: int) -> tuple[list[tuple[str, str]], int]:
    rng = random.Random(seed)
    out, planted = [], 0
    for record in records:
        sequence = record.sequence
        if rng.random() < fraction:
            keep = max(1, round(len(sequence) * rng.uniform(0.30, 0.85)))
            start = rng.randint(0, len(sequence) - keep)
            sequence, planted = sequence[start : start + keep], planted + 1
        out.append((record.id, sequence))
    return out, planted


def run(command: list[str], log) -> float:
    start = time.perf_counter()
    log.write("$ protein-sedd " + " ".join(command) + "\n")
    log.flush()
    done = subprocess.run([sys.executable, "-m", "protein_sedd", *command], stdout=log, stderr=log)
    if done.returncode:
        sys.exit(f"protein-sedd {' '.join(command)} failed (exit {done.returncode}); see the workflow log")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, required=True, help="a new or empty folder")
    parser.add_argument("--steps", type=int, default=600, help="training steps of each arm")
    parser.add_argument("--n", type=int, default=100, help="designs per arm")
    parser.add_argument("--design-steps", type=int, default=256)
    parser.add_argument("--fraction", type=float, default=0.25, help="share of records made fragments")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    work = args.work
    if work.exists() and any(work.iterdir()):
        sys.exit(f"{work} is not empty; choose another --work")
    work.mkdir(parents=True, exist_ok=True)

    natural = read_fasta(resolve_dataset_path("acyp"))
    median = statistics.median(len(r.sequence) for r in natural)
    rows, planted = planted_fragments(natural, args.fraction, args.seed)
    family = work / "acyp_with_fragments.fa"
    family.write_text("".join(f">{i}\n{s}\n" for i, s in rows))
    print(f"{len(rows)} records, {planted} made fragments; natural median length {median}", flush=True)

    common = ["--threads", str(args.threads), "--device", "cpu"]
    summary = {"records": len(rows), "fragments": planted, "median_length": median, "arms": {}}
    with open(work / "workflow.log", "w") as log:
        for arm, overrides in ARMS.items():
            run_dir, designs, report = work / arm, work / f"{arm}.fasta", work / f"{arm}-seq-eval"
            seconds = {
                "train": run(["train", "--fasta", str(family), "--out", str(run_dir), "--max-steps",
                              str(args.steps), *common, *overrides], log),
                "design": run(["design", "--checkpoint", str(run_dir), "--n", str(args.n), "--steps",
                               str(args.design_steps), "--out", str(designs), *common], log),
                "seq-eval": run(["seq-eval", str(designs), "--reference", "acyp", "--out-dir",
                                 str(report)], log),
            }  # fmt: skip
            result = json.loads((report / "summary.json").read_text())
            lengths = [len(r.sequence) for r in read_fasta(designs)]
            summary["arms"][arm] = {
                "overrides": overrides,
                "family_pass": result["family_pass"],
                "short_designs": sum(length < 0.9 * median for length in lengths) / len(lengths),
                "lengths_source": _lengths_source(run_dir),
                "seconds": {k: round(v, 1) for k, v in seconds.items()},
            }
            print(f"{arm}: {json.dumps(summary['arms'][arm])}", flush=True)
    (work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def _lengths_source(run_dir: Path) -> str:
    from omegaconf import OmegaConf

    config = OmegaConf.load(run_dir / "config.yaml")
    return str(config.lengths.get("source", "all training sequences"))


if __name__ == "__main__":
    main()
