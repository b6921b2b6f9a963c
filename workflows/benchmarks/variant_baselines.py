"""Benchmark zero-shot variant scores against the simplest baselines on a family with a known fitness.

    python workflows/benchmarks/variant_baselines.py --work /tmp/variant-baselines      # ~2 min on 1 CPU core
    python workflows/benchmarks/variant_baselines.py --work DIR --steps 600 --threads 2

The synthetic neighbour-rule family (`NeighbourRule`): sequences of 12 residues in four triplets
(free, lead, follow). The free and lead residues are drawn independently from fixed Zipf-like
distributions over the 20 amino acids; the follow residue is the lead's partner (a fixed permutation:
the residue 7 places further in ACDEFGHIKLMNPQRSTVWY) with probability 1 - 0.02, else uniform. Its
log-likelihood is known exactly, so every variant of the wild type (the family's most likely sequence)
has a known fitness, the true log-likelihood ratio log p(variant) - log p(wild type). Mutating a free
position keeps the rule; mutating a lead or follow residue breaks its pair (about -7 nats).

The benchmark trains a tiny SEDD model (time-independent absorbing) and the autoregressive baseline
(`model=ar`) for the same steps through the CLI, then scores every single mutant and the double mutants
of each pair (lead and follow changed together, keeping or breaking the rule) by: the masked marginal,
the ELBO difference, the AR log-likelihood ratio (exact), the site-independent model (column
frequencies of the training sequences, pseudocount 0.5) and the true log-likelihood ratio. It prints
the AUC of rule-keeping against rule-breaking variants (singles; doubles) and Spearman's rho with the
true fitness (singles; all variants), with the network passes per variant and the seconds each took.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
ZIPF = [1 / (1 + rank) / sum(1 / (1 + r) for r in range(20)) for rank in range(20)]  # sums to 1


class NeighbourRule:
    """The synthetic family: in each triplet (free, lead, follow) the follow residue is the lead's partner."""

    length = 12
    error = 0.02  # probability that the follow residue is drawn uniformly instead
    free = dict(zip(AMINO_ACIDS[::-1], ZIPF, strict=True))  # Y most likely
    lead = dict(zip("DEKRSTAGNQLIVMFPWYCH", ZIPF, strict=True))  # D most likely
    partner = {a: AMINO_ACIDS[(i + 7) % 20] for i, a in enumerate(AMINO_ACIDS)}

    @classmethod
    def log_prob(cls, sequence: str) -> float:
        total = 0.0
        for j in range(0, cls.length, 3):
            free, lead, follow = sequence[j : j + 3]
            keeps = (1 - cls.error) if follow == cls.partner[lead] else 0.0
            total += math.log(cls.free[free]) + math.log(cls.lead[lead]) + math.log(keeps + cls.error / 20)
        return total

    @classmethod
    def sample(cls, n: int, seed: int = 0) -> list[str]:
        rng = random.Random(seed)
        out = []
        for _ in range(n):
            residues = []
            for _ in range(cls.length // 3):
                free = rng.choices(list(cls.free), list(cls.free.values()))[0]
                lead = rng.choices(list(cls.lead), list(cls.lead.values()))[0]
                follow = cls.partner[lead] if rng.random() >= cls.error else rng.choice(AMINO_ACIDS)
                residues += [free, lead, follow]
            out.append("".join(residues))
        return out

    @classmethod
    def wildtype(cls) -> str:
        """The most likely sequence: the likeliest free and lead residues, each lead with its partner."""
        free, lead = max(cls.free, key=cls.free.get), max(cls.lead, key=cls.lead.get)
        return (free + lead + cls.partner[lead]) * (cls.length // 3)

    @classmethod
    def single_mutants(cls) -> pd.DataFrame:
        """Every single mutant: `mutant`, `breaks` (the rule), `fitness` (true log-likelihood ratio)."""
        wt = cls.wildtype()
        rows = []
        for i, old in enumerate(wt):
            for new in AMINO_ACIDS:
                if new != old:
                    rows.append((f"{old}{i + 1}{new}", i % 3 != 0, wt[:i] + new + wt[i + 1 :]))
        return cls._table(rows)

    @classmethod
    def pair_double_mutants(cls) -> pd.DataFrame:
        """Lead and follow of one pair changed together: to the new lead's partner (keeps) or not (breaks)."""
        wt, rows = cls.wildtype(), []
        rng = random.Random(1)
        for j in range(1, cls.length, 3):
            for lead in AMINO_ACIDS:
                if lead == wt[j]:
                    continue
                wrong = rng.choice([a for a in AMINO_ACIDS if a not in (cls.partner[lead], wt[j + 1])])
                for follow, breaks in ((cls.partner[lead], False), (wrong, True)):
                    mutant = f"{wt[j]}{j + 1}{lead}:{wt[j + 1]}{j + 2}{follow}"
                    rows.append((mutant, breaks, wt[:j] + lead + follow + wt[j + 2 :]))
        return cls._table(rows)

    @classmethod
    def _table(cls, rows) -> pd.DataFrame:
        base = cls.log_prob(cls.wildtype())
        return pd.DataFrame(
            {
                "mutant": [r[0] for r in rows],
                "breaks": [r[1] for r in rows],
                "fitness": [cls.log_prob(r[2]) - base for r in rows],
            }
        )


TRAIN_ARGS = [
    "data.dedupe=false",  # repeated draws are the distribution, not duplicates
    "data.test_fraction=0.1",
    "trainer.batch_size=128",
    "trainer.warmup_steps=50",
    "trainer.log_every=50",
    "model.max_length=16",
]


def train(fasta: Path, out: Path, steps: int, threads: int, *extra: str) -> Path:
    """A run trained through the CLI (reused when `out` already holds a finished one)."""
    from protein_sedd.cli import main

    if (out / "checkpoint" / "model.safetensors").is_file():
        return out
    args = ["train", "--fasta", fasta, "--out", out, "--max-steps", steps, "--device", "cpu"]
    args += [
        "--threads",
        threads,
        *TRAIN_ARGS,
        f"trainer.val_every={steps}",
        f"trainer.checkpoint_every={steps}",
    ]
    code = main([str(a) for a in [*args, *extra]])
    if code != 0:
        raise SystemExit(f"training {out} failed with exit code {code}")
    return out


def benchmark(work: Path, steps: int, threads: int, t_samples: int) -> tuple[pd.DataFrame, int, int]:
    import protein_sedd
    from protein_sedd.baselines.site_independent import column_log_frequencies, site_independent_scores
    from protein_sedd.evaluation.variants import parse_variants, roc_auc, spearman
    from protein_sedd.io.fasta import read_fasta
    from protein_sedd.runtime.devices import cpu_threads

    work.mkdir(parents=True, exist_ok=True)
    fasta = work / "neighbour_rule.fa"
    if not fasta.is_file():
        fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(NeighbourRule.sample(4000))))
    sedd_run = train(fasta, work / "sedd", steps, threads)
    ar_run = train(fasta, work / "ar", steps, threads, "model=ar")

    wt = NeighbourRule.wildtype()
    singles, doubles = NeighbourRule.single_mutants(), NeighbourRule.pair_double_mutants()
    variants = pd.concat([singles.assign(kind="single"), doubles.assign(kind="double")], ignore_index=True)
    parsed = parse_variants(wt, variants, lambda row: f"variant {row}")
    train_ids = set(json.loads((sedd_run / "splits.json").read_text())["train"])
    training = [r.sequence for r in read_fasta(fasta) if r.id in train_ids]

    with cpu_threads(threads):
        sedd, ar = protein_sedd.load(sedd_run, "cpu"), protein_sedd.load(ar_run, "cpu")
        scored, rows = {}, []
        for name, run in [
            ("masked marginal (SEDD)", lambda: sedd.score_variants(wt, variants, "masked-marginal")),
            (
                "ELBO difference (SEDD)",
                lambda: sedd.score_variants(wt, variants, "elbo", t_samples=t_samples),
            ),
            ("AR log-likelihood ratio", lambda: ar.score_variants(wt, variants, "elbo")),
        ]:
            frame = run()
            scored[name] = (frame["score"].to_numpy(), frame.attrs["network_passes"], frame.attrs["seconds"])
        began = time.perf_counter()
        profile = column_log_frequencies(training, len(wt), pseudocount=0.5)
        site = site_independent_scores(profile, parsed)
        scored["site-independent (columns)"] = (site, 0, time.perf_counter() - began)
        scored["true log-likelihood ratio"] = (variants["fitness"].to_numpy(), 0, 0.0)

    for name, (score, passes, seconds) in scored.items():
        row = {"method": name, "passes per variant": passes / len(variants), "seconds": seconds}
        for kind in ("single", "double"):
            part = (variants["kind"] == kind).to_numpy()
            keeps = part & ~variants["breaks"].to_numpy()
            breaks = part & variants["breaks"].to_numpy()
            row[f"AUC {kind}s"] = roc_auc(score[keeps], score[breaks])
        single = (variants["kind"] == "single").to_numpy()
        row["Spearman singles"] = spearman(score[single], variants["fitness"].to_numpy()[single])
        row["Spearman all"] = spearman(score, variants["fitness"].to_numpy())
        rows.append(row)
    return pd.DataFrame(rows), len(singles), len(doubles)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="Folder for the data and the two runs.")
    parser.add_argument("--steps", type=int, default=300, help="Training steps of each model.")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads.")
    parser.add_argument("--t-samples", type=int, default=32, help="Noise draws of the ELBO difference.")
    args = parser.parse_args()
    frame, n_singles, n_doubles = benchmark(args.work, args.steps, args.threads, args.t_samples)
    table = Table(
        title=f"neighbour-rule family, wild type {NeighbourRule.wildtype()}: {n_singles} single mutants, "
        f"{n_doubles} pair double mutants; {args.steps} training steps"
    )
    for column in frame.columns:
        table.add_column(column, justify="left" if column == "method" else "right")
    for _, row in frame.iterrows():
        table.add_row(
            row["method"],
            f"{row['passes per variant']:.3g}",
            f"{row['seconds']:.2f}",
            *(f"{row[c]:.3f}" for c in frame.columns[3:]),
        )
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
