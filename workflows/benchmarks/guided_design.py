"""Label-guided design on a family with a known rule: how often designs carry a motif, guided or not.

    python workflows/benchmarks/guided_design.py --work /tmp/guided-design     # ~2 min on 1 CPU core

The family is the neighbour-rule family of `variant_baselines.py` (12 residues in four triplets: a free
residue, a lead residue, and the lead's fixed partner, which breaks with probability 0.02). The label of
a sequence is whether it holds the motif `SD` (lead S with its partner D, or a free S before a lead D):
about a quarter of the family does. The benchmark trains a tiny SEDD model on 4,000 family sequences
(`train`, reused when the folder holds one), labels 400 fresh family sequences, trains a guide on them
(`train-guide`), then designs `--n` sequences without a guide and with `--target 1` at each guide scale
(`design --guide`). It reports, per scale, the share of designs that carry the motif and the share that
obey the family rule (every follow residue its lead's partner), with 95% Wilson intervals, the share of
unique designs, and the seconds and guide passes each took. Scale 0 must repeat the unguided FASTA byte
for byte.

    python workflows/benchmarks/guided_design.py --work /tmp/guided-acyp --acyp          # ~5 min on 1 core

With `--acyp` the same is done on a real family with the bundled model: 300 ACYP sequences (from
$PROTEIN_SEDD_DATA, at most 128 residues, drawn with seed 0) labelled by whether they hold the dipeptide `GW`
(about half do), a guide trained on them (`--fasta` with `id,label`), then `--n` designs at 256 steps with the
step loop, unguided and at guide scale 2, each checked by `seq-eval` against ACYP (its family HMM pass rate).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import random
import re
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

MOTIF = "SD"
N_LABELLED = 400
LABEL_SEED = 7  # the labelled sequences are fresh draws, not the diffusion model's training set


@functools.cache
def variant_baselines():
    """The sibling benchmark, whose family and `train` this one reuses."""
    path = Path(__file__).resolve().parent / "variant_baselines.py"
    spec = importlib.util.spec_from_file_location("variant_baselines", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def family():
    """The neighbour-rule family (variant_baselines.NeighbourRule)."""
    return variant_baselines().NeighbourRule


def has_motif(sequence: str) -> bool:
    return MOTIF in sequence


def obeys_rule(sequence: str) -> bool:
    """Every triplet's follow residue is its lead's partner."""
    partner = family().partner
    return len(sequence) == 12 and all(
        sequence[j + 2] == partner.get(sequence[j + 1]) for j in range(0, 12, 3)
    )


def read_designs(path: Path) -> list[str]:
    from protein_sedd.io.fasta import read_fasta

    return [record.sequence for record in read_fasta(path)]


def _cli(args: list) -> None:
    from protein_sedd.cli import main

    code = main([str(a) for a in args])
    if code != 0:
        raise SystemExit(f"protein-sedd {args[0]} failed with exit code {code}")


def benchmark(
    work: Path,
    train_steps: int,
    n: int,
    steps: int | str,
    scales: list[float],
    threads: int,
    methods: tuple[str, ...] = ("taylor",),
) -> dict:
    """Train (or reuse) the model and the guide, design at each scale with each ratio method (`methods`:
    taylor runs the step loop at `steps`; exact the event sampler at `steps`), and return the report."""
    from protein_sedd.evaluation.rates import rate

    neighbour_rule = family()
    work.mkdir(parents=True, exist_ok=True)
    fasta = work / "family.fa"
    if not fasta.is_file():
        fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(neighbour_rule.sample(4000))))
    run = variant_baselines().train(fasta, work / "sedd", train_steps, threads)

    labelled = neighbour_rule.sample(N_LABELLED, seed=LABEL_SEED)
    labels = work / "labels.csv"
    labels.write_text("sequence,label\n" + "".join(f"{s},{int(has_motif(s))}\n" for s in labelled))
    began = time.perf_counter()
    guide = work / "guide"
    _cli(["train-guide", "--labels", labels, "--checkpoint", run, "--out", guide, "--device", "cpu",
          "--threads", threads])  # fmt: skip
    guide_seconds = time.perf_counter() - began
    report = {
        "labelled": {"n": N_LABELLED, "motif_rate": sum(map(has_motif, labelled)) / N_LABELLED},
        "guide": json.loads((guide / "guide.json").read_text())["training"],
        "guide_seconds": guide_seconds,
        "designs": [],
    }
    common = ["design", "--checkpoint", run, "--n", n, "--steps", steps, "--length", 12, "--device", "cpu",
              "--threads", threads, "--seed", 0]  # fmt: skip
    fastas = {}
    runs = [(None, None)] + [(method, scale) for method in methods for scale in scales]
    for method, scale in runs:
        name = "unguided" if scale is None else f"{method}_scale_{scale:g}"
        if method == "taylor":
            name = "unguided" if scale is None else f"scale_{scale:g}"  # the names earlier reports used
        out = work / f"designs_{name}.fasta"
        extra = [] if scale is None else ["--guide", guide, "--target", 1, "--guide-scale", scale,
                                          "--guidance", method]  # fmt: skip
        began = time.perf_counter()
        _cli([*common, "--out", out, *extra])
        seconds = time.perf_counter() - began
        designs = read_designs(out)
        fastas[method, scale] = out.read_bytes()
        report["designs"].append(
            {
                "guidance": method,
                "guide_scale": scale,
                "motif": rate([has_motif(s) for s in designs]),
                "rule": rate([obeys_rule(s) for s in designs]),
                "unique": len(set(designs)) / len(designs),
                "seconds": seconds,
            }
        )
    if 0.0 in scales:
        report["scale_0_identical_to_unguided"] = all(
            fastas[method, 0.0] == fastas[None, None] for method in methods
        )
    natural = neighbour_rule.sample(max(n, 4000), seed=11)
    carriers = [s for s in natural if has_motif(s)]
    report["family"] = {
        "motif": rate(list(map(has_motif, natural))),
        "rule": rate(list(map(obeys_rule, natural))),
        "rule_given_motif": rate(list(map(obeys_rule, carriers))),  # the conditional's rule rate
    }
    return report


ACYP_MOTIF = "GW"


def acyp_benchmark(work: Path, n: int, threads: int, scale: float = 2.0) -> dict:
    """Guided design on ACYP with the bundled model: the motif's share and the family HMM's pass rate."""
    from protein_sedd.data.datasets import resolve_reference
    from protein_sedd.evaluation.rates import rate
    from protein_sedd.io.fasta import read_fasta

    work.mkdir(parents=True, exist_ok=True)
    fasta = resolve_reference("acyp")
    records = [r for r in read_fasta(fasta) if len(r.sequence) <= 128]
    picked = random.Random(0).sample(records, 300)
    labels = work / "labels.csv"
    labels.write_text("id,label\n" + "".join(f"{r.id},{int(ACYP_MOTIF in r.sequence)}\n" for r in picked))
    began = time.perf_counter()
    guide = work / "guide"
    _cli(["train-guide", "--labels", labels, "--fasta", fasta, "--out", guide, "--device", "cpu",
          "--threads", threads])  # fmt: skip
    report = {
        "labelled": {
            "n": len(picked),
            "motif_rate": sum(ACYP_MOTIF in r.sequence for r in picked) / len(picked),
        },
        "guide": json.loads((guide / "guide.json").read_text())["training"],
        "guide_seconds": time.perf_counter() - began,
        "designs": [],
    }
    common = [
        "design",
        "--n",
        n,
        "--steps",
        256,
        "--sampler",
        "steps",
        "--device",
        "cpu",
        "--threads",
        threads,
    ]
    for name, extra in [
        ("unguided", []),
        ("guided", ["--guide", guide, "--target", 1, "--guide-scale", scale]),
    ]:
        out = work / f"{name}.fasta"
        began = time.perf_counter()
        _cli([*common, "--out", out, *extra])
        seconds = time.perf_counter() - began
        _cli(["seq-eval", out, "--reference", "acyp", "--out-dir", work / f"{name}_seq_eval"])
        summary = json.loads((work / f"{name}_seq_eval" / "summary.json").read_text())
        designs = read_designs(out)
        report["designs"].append(
            {
                "guide_scale": None if name == "unguided" else scale,
                "motif": rate([ACYP_MOTIF in s for s in designs]),
                "family_pass_rate": summary["family_pass_rate"],
                "nearest_identity_median": summary["nearest_identity_median"],
                "unique": summary["fraction_unique"],
                "seconds": seconds,
            }
        )
    return report


def _interval(record: dict) -> str:
    low, high = record["ci95"]
    return f"{record['rate']:.3f} [{low:.3f}, {high:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--work", type=Path, required=True, help="Folder for the data, model, guide, designs."
    )
    parser.add_argument("--train-steps", type=int, default=300, help="Training steps of the SEDD model.")
    parser.add_argument("--n", type=int, default=None, help="Designs per scale (300; 100 with --acyp).")
    parser.add_argument("--steps", default="64", help="Design steps (a number, or exact).")
    parser.add_argument("--scales", default="0,1,2,4", help="Guide scales, comma-separated.")
    parser.add_argument(
        "--guidance", default="taylor", help="Ratio methods, comma-separated: taylor, exact or both."
    )
    parser.add_argument("--threads", type=int, default=1, help="CPU threads.")
    parser.add_argument("--acyp", action="store_true", help="ACYP with the bundled model instead (--n 100).")
    args = parser.parse_args()
    if args.acyp:
        report = acyp_benchmark(args.work, args.n or 100, args.threads)
        (args.work / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        for row in report["designs"]:
            print(
                f"guide scale {row['guide_scale']}: {ACYP_MOTIF} in {_interval(row['motif'])}, family HMM "
                f"pass rate {row['family_pass_rate']:.3f}, median nearest identity "
                f"{row['nearest_identity_median']:.3f}, unique {row['unique']:.3f}, {row['seconds']:.1f} s"
            )
        print(f"guide: {report['guide_seconds']:.1f} s, held-out accuracy {report['guide']['valid']}")
        return
    scales = [float(s) for s in re.split(r"\s*,\s*", args.scales.strip())]
    args.n = args.n or 300
    steps = args.steps if args.steps == "exact" else int(args.steps)
    methods = tuple(m.strip() for m in args.guidance.split(","))
    report = benchmark(args.work, args.train_steps, args.n, steps, scales, args.threads, methods)
    (args.work / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    table = Table(title=f"motif {MOTIF}: {args.n} designs of 12 residues, {steps} steps, target 1")
    for column in ("guidance", "guide scale", "carry the motif", "obey the rule", "unique", "seconds"):
        table.add_column(column, justify="right")
    family_rates = report["family"]
    table.add_row("family sample", "", _interval(family_rates["motif"]), _interval(family_rates["rule"]), "",
                  "")  # fmt: skip
    table.add_row("family with the motif", "", "1", _interval(family_rates["rule_given_motif"]), "", "")
    for row in report["designs"]:
        scale = "unguided" if row["guide_scale"] is None else f"{row['guide_scale']:g}"
        table.add_row(row["guidance"] or "", scale, _interval(row["motif"]), _interval(row["rule"]),
                      f"{row['unique']:.3f}", f"{row['seconds']:.1f}")  # fmt: skip
    Console(width=160).print(table)
    valid = report["guide"]["valid"]
    print(f"guide: {report['guide_seconds']:.1f} s, held-out accuracy {valid}")
    if "scale_0_identical_to_unguided" in report:
        print(f"scale 0 identical to unguided: {report['scale_0_identical_to_unguided']}")


if __name__ == "__main__":
    main()
