"""Average saved variant scores across runs (seeds, models, Potts) and correlate the mean with a scan.

    python workflows/benchmarks/combine_scores.py --dms SCAN.csv \
        runs/small64_s0/sedd-columns.step1000.scores.npy runs/small64_s1/sedd-columns.step1000.scores.npy ...

Each file is a `.scores.npy` that `dms.py` saved (one score per row of the scan, NaN where unscored). The
combination is `dms.py`'s own `z_average` (each vector standardised over its scored variants, then the mean),
over the variants every file scores. Prints Spearman's rho with DMS_score and its bootstrap interval for each
file alone and for the mean of the first k files, k = 2 .. N (the ensemble growing in the order given).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dms", type=Path, required=True, help="ProteinGym-format CSV: mutant, DMS_score")
    parser.add_argument("scores", type=Path, nargs="+", help="saved .scores.npy files, one per run")
    args = parser.parse_args(argv)
    from dms import z_average

    from protein_sedd.evaluation.variants import read_variants, spearman_interval

    measured = read_variants(args.dms)["DMS_score"].to_numpy(dtype=float)
    scores = []
    for path in args.scores:
        try:
            scores.append(np.load(path))
        except (OSError, ValueError) as error:
            parser.error(f"{path}: not a saved .scores.npy ({error})")
    for path, score in zip(args.scores, scores, strict=True):
        if score.shape != measured.shape:
            parser.error(f"{path}: {score.shape[0]} scores, the scan has {measured.shape[0]} rows")
    every = np.all([np.isfinite(score) for score in scores], axis=0)

    def show(label: str, score: np.ndarray) -> None:
        rho = spearman_interval(score[every], measured[every]).as_dict()
        print(f"{label}: rho {rho['rho']:.3f} [{rho['low']:.3f}, {rho['high']:.3f}] (n={rho['n']})")

    for path, score in zip(args.scores, scores, strict=True):
        show(str(path), score)
    for k in range(2, len(scores) + 1):
        show(f"mean of the first {k}", z_average([np.where(every, score, np.nan) for score in scores[:k]]))


if __name__ == "__main__":
    main()
