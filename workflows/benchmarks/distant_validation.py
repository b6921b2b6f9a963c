"""Can a bound on distant family members choose the training steps and dropout that variant scoring needs?

    python workflows/benchmarks/distant_validation.py --alignment FAMILY.a2m --dms SCAN.csv --work DIR \
        --name recipe --steps 250,500,750,1000,1500,2000,3000
    python workflows/benchmarks/distant_validation.py ... --name dropout01 --override model.dropout=0.1

On a scan, rho with `DMS_score` peaks while the validation bound of the run's own (random) valid split keeps
improving: its members have close relatives in train, so the bound rewards learning the wild type's
neighbourhood. Here whole clusters are held out instead: the rows over the focus columns are clustered
greedily at `--identity` (identity over the columns where both rows have a residue, counted only when they
share at least 30% of the columns), and clusters other than the focus's, in a seeded order, are held out until
`--fraction` of the rows are. The run trains on the rest (the records written to DIR/train.a2m, the recipe's
settings: focus columns, `model=family`, batch 32, then the overrides) in stages (`--resume` between them),
and after each stage records rho over the scored variants with its bootstrap interval, the held-out rows' mean
-ELBO (nats, `Model.score`, 16 noise levels, seed 0) and the run's own valid bound. A label-free rule would
stop where the held-out bound stops improving and pick the setting whose bound is lowest; the table says
whether those are where rho peaks. Results go to DIR/NAME.json and a printed table.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

RECIPE = ["data.representation=focus_columns", "model=family", "trainer.batch_size=32"]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def column_identity(columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(identity, shared): for each pair of rows, the fraction of identical residues over the columns where
    both have one, and the number of such columns."""
    from protein_sedd.io.alignment import GAP_CODE

    residue = columns != GAP_CODE
    n, length = columns.shape
    same = np.zeros((n, n), dtype=np.float32)
    for symbol in range(GAP_CODE):  # one indicator product per residue: (n, L) @ (L, n)
        is_symbol = (columns == symbol).astype(np.float32)
        same += is_symbol @ is_symbol.T
    shared = residue.astype(np.float32) @ residue.T.astype(np.float32)
    return same / np.maximum(shared, 1), shared


def held_out_clusters(columns, focus_index: int, identity: float, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask of the rows held out: whole clusters (greedy, seeded order) other than the focus's."""
    similar, shared = column_identity(columns)
    n, length = columns.shape
    rng = np.random.default_rng(seed)
    cluster = np.full(n, -1)
    count = 0
    for row in rng.permutation(n):
        if cluster[row] >= 0:
            continue
        members = (cluster < 0) & (similar[row] >= identity) & (shared[row] >= 0.3 * length)
        cluster[members] = count
        cluster[row] = count
        count += 1
    held = np.zeros(n, dtype=bool)
    for label in rng.permutation(count):
        if held.sum() >= fraction * n:
            break
        if label != cluster[focus_index]:
            held |= cluster == label
    return held


def write_training_alignment(alignment: Path, held_ids: set[str], out: Path) -> int:
    """The alignment's records not held out, their text as it is; the number written."""
    kept, keep, written = [], True, 0
    with open(alignment) as lines:
        for line in lines:
            if line.startswith(">"):
                keep = line[1:].split()[0] not in held_ids
                written += keep
            if keep:
                kept.append(line)
    out.write_text("".join(kept))
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alignment", type=Path, required=True)
    parser.add_argument("--dms", type=Path, required=True, help="ProteinGym-format CSV: mutant, DMS_score")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--name", default="recipe", help="this setting's run: DIR/NAME, DIR/NAME.json")
    parser.add_argument("--steps", default="250,500,750,1000,1500,2000,3000")
    parser.add_argument("--identity", type=float, default=0.5)
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--override", action="append", default=[], help="a training override (repeatable)")
    args = parser.parse_args(argv)

    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    import protein_sedd
    from protein_sedd.cli import main as cli
    from protein_sedd.data.alphabet import ALPHABET
    from protein_sedd.evaluation.variants import read_variants, spearman_interval
    from protein_sedd.io.alignment import read_sequences
    from protein_sedd.runtime.devices import cpu_threads

    args.work.mkdir(parents=True, exist_ok=True)
    family = read_sequences(args.alignment)
    held = held_out_clusters(family.columns, family.focus_index, args.identity, args.fraction, args.seed)
    letters = np.array([*ALPHABET.residues, "X"])  # a gap is X in a focus-columns record
    held_rows = ["".join(letters[family.columns[i]]) for i in np.flatnonzero(held)]
    train = args.work / "train.a2m"
    kept = write_training_alignment(
        args.alignment, {family.records[i].id for i in np.flatnonzero(held)}, train
    )
    wildtype = family.records[family.focus_index].sequence
    variants = read_variants(args.dms)
    measured = variants["DMS_score"].to_numpy(dtype=float)
    run, ledger = args.work / args.name, args.work / f"{args.name}.json"
    result = json.loads(ledger.read_text()) if ledger.is_file() else {"rows": []}
    result |= {"held_out": int(held.sum()), "trained_on": kept, "identity": args.identity}
    done = {row["steps"] for row in result["rows"]}
    stages = [int(s) for s in args.steps.split(",")]
    first = min(stages)  # a resumed run keeps its first stage's settings
    for steps in stages:
        if steps in done:
            continue
        resume = (run / "checkpoint" / "trainer_state.pt").is_file()
        every = [f"trainer.val_every={first}", f"trainer.checkpoint_every={first}"]
        data = ["--resume"] if resume else ["--fasta", train, *RECIPE, *every, *args.override]
        began = cpu_seconds()
        command = ["train", "--out", run, "--max-steps", steps, "--threads", args.threads, "--device", "cpu"]
        if cli([str(a) for a in [*command, *data]]) != 0:
            raise SystemExit(f"training {run} to {steps} steps failed")
        cpu = cpu_seconds() - began
        with cpu_threads(args.threads):
            model = protein_sedd.load(run, "cpu")
            score = model.score_variants(wildtype, variants, "masked-marginal", progress=None)["score"]
            distant = model.score(held_rows, t_samples=16, seed=0)["nats"].mean()
        metrics = pd.read_csv(run / "metrics.csv").dropna(subset=["valid_nats_per_sequence"])
        row = {
            "steps": steps,
            "train_cpu_seconds": cpu,
            "rho": spearman_interval(score.to_numpy(dtype=float), measured).as_dict(),
            "held_out_nats": float(distant),
            "valid_nats": float(metrics["valid_nats_per_sequence"].iloc[-1]),
        }
        result["rows"].append(row)
        ledger.write_text(json.dumps(result, indent=1) + "\n")
    table = Table(title=f"{args.name}: {result['held_out']} rows held out, {kept} trained on")
    for column in ("steps", "rho [95%]", "held-out nats", "valid nats"):
        table.add_column(column)
    for row in result["rows"]:
        rho = row["rho"]
        interval = f"{rho['rho']:.3f} [{rho['low']:.3f}, {rho['high']:.3f}]"
        table.add_row(str(row["steps"]), interval, f"{row['held_out_nats']:.1f}", f"{row['valid_nats']:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
