"""Benchmark the redundancy weights (data/family/weights.py) on a generated alignment: time and peak memory.

    python workflows/benchmarks/alignment_weights.py                         # 50,000 x 300, 1 thread
    python workflows/benchmarks/alignment_weights.py --rows 20000 --columns 300 --threads 2

The alignment is generated, not read: `--clusters` random ancestors over the 20 residues, each row a copy
of one ancestor with every column substituted with probability `--mutation` (0.1: about 90% identical to
its ancestor, 81% to a sibling) and gapped with probability `--gaps`. Weights are 1 / (rows within 80%
identity over the columns), so Neff is about the number of clusters when the copies stay within 80% of
each other. Prints seconds, rows^2 / second, the process's peak resident memory before and after
(getrusage: what the one-hot blocks and counts add to the alignment itself) and Neff.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from protein_sedd.data.family.weights import identity_weights  # noqa: E402
from protein_sedd.io.alignment import GAP_CODE  # noqa: E402


def generated_alignment(rows: int, columns: int, clusters: int, mutation: float, gaps: float, seed: int):
    rng = np.random.default_rng(seed)
    ancestors = rng.integers(0, 20, size=(clusters, columns), dtype=np.uint8)
    alignment = ancestors[rng.integers(0, clusters, size=rows)]
    mutated = rng.random((rows, columns)) < mutation
    alignment[mutated] = rng.integers(0, 20, size=int(mutated.sum()), dtype=np.uint8)
    alignment[rng.random((rows, columns)) < gaps] = GAP_CODE
    return alignment


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--columns", type=int, default=300)
    parser.add_argument("--clusters", type=int, default=2_000)
    parser.add_argument("--mutation", type=float, default=0.05)
    parser.add_argument("--gaps", type=float, default=0.02)
    parser.add_argument("--identity", type=float, default=0.8)
    parser.add_argument("--block", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shape = (args.rows, args.columns, args.clusters)
    alignment = generated_alignment(*shape, args.mutation, args.gaps, args.seed)
    before = peak_rss_mib()
    start = time.perf_counter()
    weights = identity_weights(alignment, args.identity, block=args.block)
    seconds = time.perf_counter() - start
    after = peak_rss_mib()
    print(
        f"{args.rows:,} rows x {args.columns} columns, {args.threads} thread(s), block {args.block}: "
        f"{seconds:.1f} s ({args.rows**2 / seconds / 1e9:.2f} G row pairs/s); peak RSS {before:.0f} MiB "
        f"before, {after:.0f} MiB after (+{after - before:.0f} MiB); Neff {weights.sum():.1f} "
        f"({args.clusters} clusters)"
    )


if __name__ == "__main__":
    main()
