"""Training on a FASTA file too large for memory: peak RSS, time to the first step, tokenising speed.

    python workflows/benchmarks/data_scale.py --work /tmp/data_scale [--sizes 200000 2000000] [--steps 20]

For each size it writes a FASTA of random sequences (lengths uniform in 50..500) into --work (never the
repository), then, each in a fresh process and with its own token cache (XDG_CACHE_HOME under --work):

1. tokenise: `token_cache(fasta)` alone, timed inside the process (the file's sha256 pass and the
   cache's write included, start-up not): residues/s; and the process's peak RSS;
2. cold: `protein-sedd train --max-steps N` with an empty cache of its own: peak RSS, tokenising included;
3. warm: the same command on another run, the cache now built: seconds from process start to the first
   training step (the first metrics.csv row; python and torch start-up included) and peak RSS;
4. prepare: `prepare_splits` alone on the built cache (find the FASTA's cache, verify it, split) and the
   first epoch's order, timed inside the process: the part of the warm start that the data costs; and
   the resident memory (anonymous and mapped file pages, /proc/self/statm) they add, which divided by
   the record count is the data's bytes per record.

Peak RSS is the child's ru_maxrss. Everything runs on the CPU with model=tiny, batch 8, data.split=id_hash.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

LETTERS = np.frombuffer(b"ACDEFGHIKLMNPQRSTVWY", np.uint8)
CHUNK = 20_000  # sequences generated and written at a time


def write_fasta(path: Path, n: int, seed: int = 0, low: int = 50, high: int = 500) -> int:
    """n random sequences, lengths uniform in low..high, one line each; returns the residue count."""
    rng = np.random.default_rng(seed)
    residues = 0
    with open(path, "wb") as handle:
        for start in range(0, n, CHUNK):
            lengths = rng.integers(low, high + 1, size=min(CHUNK, n - start))
            letters = LETTERS[rng.integers(0, len(LETTERS), size=int(lengths.sum()))].tobytes()
            ends = np.cumsum(lengths)
            lines = []
            for i, (end, length) in enumerate(zip(ends.tolist(), lengths.tolist(), strict=True)):
                lines.append(b">seq%d\n%s\n" % (start + i, letters[end - length : end]))
            handle.write(b"".join(lines))
            residues += int(lengths.sum())
    return residues


# run in a fresh interpreter: its peak RSS is its own (ru_maxrss of RUSAGE_CHILDREN is the largest child's)
MEASURE = """
import json, resource, subprocess, sys, time
start = time.time()
process = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
metrics, first_step = sys.argv[1], None
while process.poll() is None:
    if first_step is None and metrics != "-":
        try:
            with open(metrics) as handle:
                if any(line.startswith("1,") for line in handle):
                    first_step = time.time() - start
        except OSError:
            pass
    time.sleep(0.02)
stderr = process.stderr.read()
print(json.dumps({"rc": process.returncode, "seconds": time.time() - start, "first_step_s": first_step,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "stderr_tail": stderr[-600:]}))
"""


# the data's share of a warm start, in time and in resident memory (what stays resident, not the peak)
PREPARE = """
import os, time
from omegaconf import OmegaConf
from protein_sedd.data.batches import epoch_order
from protein_sedd.data.prepare import prepare_splits
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
cfg = OmegaConf.create({{"name": "fasta", "fasta": {fasta!r}, "dedupe": True, "split": "id_hash",
                        "valid_fraction": 0.02, "test_fraction": 0.05, "split_seed": 0, "min_length": 1}})
before, start = rss_mb(), time.perf_counter()
prepared = prepare_splits(cfg, 1024)
order = epoch_order(len(prepared.splits.train), 0, 0)
print(time.perf_counter() - start, rss_mb() - before)
"""


def measured(command: list[str], env: dict, metrics: Path | None = None) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(metrics) if metrics else "-", *command],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout)
    if result["rc"] != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result['stderr_tail']}")
    return result


def train_command(fasta: Path, run: Path, steps: int) -> list[str]:
    return [
        sys.executable, "-m", "protein_sedd", "train", "--fasta", str(fasta), "--out", str(run),
        "--max-steps", str(steps), "--device", "cpu", "model=tiny", "data.split=id_hash",
        "trainer.batch_size=8", "trainer.log_every=1", "trainer.val_every=1000", "trainer.val_sequences=16",
        "trainer.val_t_samples=1", "trainer.checkpoint_every=1000",
    ]  # fmt: skip


def bench(work: Path, n: int, steps: int) -> dict:
    folder = work / f"n{n}"
    folder.mkdir(parents=True, exist_ok=True)
    fasta = folder / "big.fa"
    if not fasta.exists():
        residues = write_fasta(fasta, n)
        (folder / "residues.txt").write_text(str(residues))
    residues = int((folder / "residues.txt").read_text())
    for cache in ("cache_tokenise", "cache_train"):
        if (folder / cache).exists():
            sys.exit(f"{folder / cache} exists: remove it so that tokenising is measured from scratch")
    env = {**os.environ, "XDG_CACHE_HOME": str(folder / "cache_tokenise"), "OMP_NUM_THREADS": "1"}
    seconds = folder / "tokenise_seconds.txt"
    code = (
        "import time; from protein_sedd.data.cache.tokens import token_cache; start = time.perf_counter()\n"
        f"token_cache({str(fasta)!r}); open({str(seconds)!r}, 'w').write(str(time.perf_counter() - start))"
    )
    tokenised = measured([sys.executable, "-c", code], env)
    tokenise_s = float(seconds.read_text())
    env["XDG_CACHE_HOME"] = str(folder / "cache_train")
    code = PREPARE.format(fasta=str(fasta))
    runs = {}
    for name in ("cold", "warm"):
        run = folder / f"run_{name}"
        if run.exists():
            sys.exit(f"{run} exists: remove it (or use another --work)")
        runs[name] = measured(train_command(fasta, run, steps), env, run / "metrics.csv")
    prepare = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return {
        "sequences": n,
        "residues": residues,
        "fasta_mb": fasta.stat().st_size / 1e6,
        "tokenise_s": round(tokenise_s, 1),
        "tokenise_residues_per_s": round(residues / tokenise_s),
        "tokenise_peak_rss_mb": round(tokenised["peak_rss_mb"]),
        "train_cold_peak_rss_mb": round(runs["cold"]["peak_rss_mb"]),
        "train_cold_total_s": round(runs["cold"]["seconds"], 1),
        "train_warm_peak_rss_mb": round(runs["warm"]["peak_rss_mb"]),
        "first_step_s_warm": round(runs["warm"]["first_step_s"], 2),
        "train_total_s_warm": round(runs["warm"]["seconds"], 1),
        "prepare_s_warm": round(float(prepare.stdout.split()[-2]), 2),
        "prepare_rss_added_mb": round(float(prepare.stdout.split()[-1]), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, required=True, help="a folder outside the repository")
    parser.add_argument("--sizes", type=int, nargs="+", default=[200_000, 2_000_000])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}, {os.cpu_count()} cores", flush=True)
    for n in args.sizes:
        print(json.dumps(bench(args.work, n, args.steps)), flush=True)
    print(f"load average after: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
