"""How many design steps: family pass rate, joint draws and cost by `--steps`, up to `--steps exact`.

    python workflows/benchmarks/design_steps.py --work /tmp/steps-acyp         # the bundled model on ACYP
    python workflows/benchmarks/design_steps.py --work /tmp/steps-pten --checkpoint RUN --reference family.fa

For each value of `--steps` (default 4,64,1024,exact) the benchmark designs `--n` sequences with the event
sampler (`design --steps S`, same seed) and scores them with `seq-eval --reference` (the family HMM: a
design passes at 25 bits). It reports per row the family pass rate with its 95% Wilson interval, the share
of designed positions drawn jointly with another (1 - network passes / designed positions: at `exact`
every position is drawn alone), the network passes per design and the seconds `design` took. Writes
summary.json in --work.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing


def _cli(args: list) -> None:
    from protein_sedd.cli import main

    code = main([str(a) for a in args])
    if code != 0:
        raise SystemExit(f"protein-sedd {args[0]} failed with exit code {code}")


def benchmark(work: Path, checkpoint: str | None, reference: str, n: int, steps: list[str], threads: int,
              seed: int) -> list[dict]:  # fmt: skip
    import protein_sedd
    from protein_sedd.runtime.devices import cpu_threads

    work.mkdir(parents=True, exist_ok=True)
    rows = []
    model = protein_sedd.load(checkpoint or "acyp-tiny", "cpu")
    for value in steps:
        out = work / f"designs_steps_{value}.fasta"
        with cpu_threads(threads):
            began = time.perf_counter()
            designs = model.design(
                n, steps=value if value == "exact" else int(value), seed=seed, progress=False
            )
            seconds = time.perf_counter() - began
        designs.write_fasta(out)
        evaluated = work / f"seq_eval_steps_{value}"
        _cli(["seq-eval", out, "--reference", reference, "--out-dir", evaluated, "--overwrite"])
        summary = json.loads((evaluated / "summary.json").read_text())
        positions = sum(d.length for d in designs)
        rows.append(
            {
                "steps": value,
                "family_pass_rate": summary["family_pass_rate"],
                "family_pass": summary.get("family_pass"),
                "joint_share": 1 - designs.network_passes / positions,
                "passes_per_design": designs.network_passes / n,
                "mean_length": positions / n,
                "seconds": seconds,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    (work / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="Folder for the designs and reports.")
    parser.add_argument("--checkpoint", default=None, help="Run or checkpoint (default: the bundled model).")
    parser.add_argument("--reference", default="acyp", help="seq-eval's reference family (name or FASTA).")
    parser.add_argument("--n", type=int, default=300, help="Designs per row.")
    parser.add_argument("--steps", default="4,64,1024,exact", help="Comma-separated --steps values.")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    steps = [s.strip() for s in args.steps.split(",")]
    rows = benchmark(args.work, args.checkpoint, args.reference, args.n, steps, args.threads, args.seed)
    print(f"{'steps':>8} {'family pass':>24} {'joint':>7} {'passes/design':>14} {'length':>7} {'seconds':>8}")
    for row in rows:
        interval = (row["family_pass"] or {}).get("ci95")
        shown = f"{row['family_pass_rate']:.3f}" + (
            f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""
        )
        print(f"{row['steps']:>8} {shown:>24} {row['joint_share']:>7.3f} {row['passes_per_design']:>14.1f} "
              f"{row['mean_length']:>7.1f} {row['seconds']:>8.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
