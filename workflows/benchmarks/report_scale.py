"""The campaign report at the sizes a lab sends it: time, file size and what the page holds.

    python workflows/benchmarks/report_scale.py --work /tmp/report-scale            # 300 ACYP designs
    python workflows/benchmarks/report_scale.py --work W --n 300 --esmfold DIR     # real structures

It designs `--n` sequences with the bundled model (`--steps`, one thread), scores them with seq-eval against
ACYP, folds them with fold-eval (the toy ESMFold unless --esmfold), picks 96 with select (by pLDDT with
real weights, else by family bits), scans every single mutant of the first ACYP record (score-variants
--scan), then times `protein-sedd report` over all of it and
writes summary.json in --work: the seconds of each step, the page's size in KiB and the count of figures,
structures and table rows it holds.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing


def _cli(args: list) -> float:
    from protein_sedd.cli import main

    start = time.perf_counter()
    code = main([str(a) for a in args])
    if code != 0:
        raise SystemExit(f"protein-sedd {args[0]} failed with exit code {code}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--steps", default="256")
    parser.add_argument("--esmfold", help="ESMFold weights (default: the toy random-weight model)")
    args = parser.parse_args()
    from protein_sedd.data.datasets import resolve_dataset_path
    from protein_sedd.io.fasta import read_fasta
    from protein_sedd.testing.tiny_esmfold import build_tiny_esmfold

    work = args.work
    work.mkdir(parents=True, exist_ok=False)
    acyp = resolve_dataset_path("acyp")
    wildtype = work / "wt.fasta"
    first = read_fasta(acyp, unique_ids=False)[0]
    wildtype.write_text(f">{first.id}\n{first.sequence}\n")
    esmfold = args.esmfold or build_tiny_esmfold(work / "tiny_esmfold")
    one = ["--threads", 1]
    seconds = {
        "design": _cli(
            ["design", "--n", args.n, "--steps", args.steps, "--out", work / "designs.fasta", *one]
        ),
        "fold-eval": _cli(
            ["fold-eval", work / "designs.fasta", "--out-dir", work / "fold", "--model", esmfold, *one]
        ),
        "seq-eval": _cli(
            ["seq-eval", work / "designs.fasta", "--reference", "acyp", "--out-dir", work / "seq"]
        ),
        "select": _cli(
            [
                "select",
                work / "designs.fasta",
                "--out",
                work / "picks",
                "--seq-eval",
                work / "seq",
                *(["--fold-eval", work / "fold"] if args.esmfold else []),
            ]
        ),  # a toy's pLDDT picks nothing
        "score-variants": _cli(
            ["score-variants", "--wildtype", wildtype, "--scan", "--out", work / "scan.csv", *one]
        ),
    }
    seconds["report"] = _cli(
        [
            "report",
            "--out",
            work / "campaign.html",
            "--designs",
            work / "designs.fasta",
            "--seq-eval",
            work / "seq",
            "--fold-eval",
            work / "fold",
            "--select",
            work / "picks",
            "--variants",
            work / "scan.csv",
        ]
    )
    html = (work / "campaign.html").read_text()
    summary = {
        "n_designs": args.n,
        "esmfold": "toy" if args.esmfold is None else args.esmfold,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "report_kib": round(len(html.encode()) / 1024),
        "figures": len(re.findall(r'<figure class="figure"', html)),
        "structures": len(re.findall(r'<div class="structure"', html)),
        "pick_rows": html.count("<tr><td data-value="),
    }
    (work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
