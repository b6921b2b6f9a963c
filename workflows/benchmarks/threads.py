"""Threads that do not fight: each command alone and two copies at once, under OpenMP spin settings.

    python workflows/benchmarks/threads.py                       # design, train and evaluate; every setting
    python workflows/benchmarks/threads.py --commands design --settings default,unset

torch's CPU build runs its threads on GNU OpenMP, whose idle threads spin before they sleep (GOMP_SPINCOUNT
iterations; 300,000 when nothing is set). Alone, spinning saves a wake-up at every parallel region; with two
processes on two cores each one's spinning threads take the cores the other needs, and both crawl. Settings:
`default` (what the command line does now: nothing in the environment), `unset` (GOMP_SPINCOUNT and
OMP_WAIT_POLICY explicitly cleared, i.e. the command before it chose a spin count: pass
PROTEIN_SEDD_OPENMP=off), `spin=N` (GOMP_SPINCOUNT=N) and `passive` (OMP_WAIT_POLICY=PASSIVE). Each command
runs at its default thread count (all the cores this process may use), once alone and then twice at once;
the table gives wall seconds, CPU seconds (user + system, summed over the processes) and the slow-down of
two at once against alone. Run it on an otherwise quiet machine, and say the load beside the numbers.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {
    "default": {},
    "unset": {"PROTEIN_SEDD_OPENMP": "off"},
    "spin=30000": {"GOMP_SPINCOUNT": "30000"},
    "spin=10000": {"GOMP_SPINCOUNT": "10000"},
    "spin=1000": {"GOMP_SPINCOUNT": "1000"},
    "spin=3000": {"GOMP_SPINCOUNT": "3000"},
    "spin=5000": {"GOMP_SPINCOUNT": "5000"},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "threads=1": {"ARGS": "--threads 1"},  # one torch thread: nothing to spin for
}


def commands(work: Path) -> dict[str, list[str]]:
    """The README's commands, sized to take seconds: a design, a short training run, an evaluate."""
    fasta = work / "seqs.fa"
    rows = (f">s{i}\nMKVLAGHEWRMKVLSGHEMRVLAGHDMKILAGWE{'AG' * (i % 9)}\n" for i in range(400))
    fasta.write_text("".join(rows))
    return {
        "design": ["design", "--n", "64", "--steps", "256", "--out", "{out}/d.fasta"],
        "train": ["train", "--fasta", str(fasta), "--out", "{out}/run", "--max-steps", "20", "model=tiny",
                  "trainer.batch_size=32", "trainer.val_every=1000", "data.dedupe=false"],
        "evaluate": ["evaluate", "--checkpoint", "acyp-tiny", "--fasta", str(fasta), "--t-samples", "8",
                     "--json", "{out}/e.json"],
    }  # fmt: skip


def start(args: list[str], env: dict, out: Path) -> tuple[subprocess.Popen, float]:
    out.mkdir(parents=True, exist_ok=True)
    args = [*args, *env.get("ARGS", "").split()]
    env = {k: v for k, v in env.items() if k != "ARGS"}
    argv = [sys.executable, "-m", "protein_sedd", *(a.replace("{out}", str(out)) for a in args)]
    environment = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    return subprocess.Popen(argv, env={**environment, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True), time.perf_counter()  # fmt: skip


def run(args: list[str], env: dict, work: Path, copies: int) -> tuple[float, float]:
    """Wall seconds (the slowest copy) and CPU seconds (all copies) of `copies` runs started together."""
    before = os.times()
    started = [start(args, env, work / f"copy{i}") for i in range(copies)]
    walls = []
    for process, began in started:
        _, err = process.communicate()
        walls.append(time.perf_counter() - began)
        if process.returncode != 0:
            raise SystemExit(f"{' '.join(args)}: exit {process.returncode}\n{err[-2000:]}")
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return max(walls), cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", default="design,train,evaluate")
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--repeat", type=int, default=1, help="runs of each (the fastest is shown)")
    options = parser.parse_args()
    print(f"load before: {os.getloadavg()[0]:.2f}; cores: {len(os.sched_getaffinity(0))}")
    print("| command | setting | alone s (cpu s) | two at once s (cpu s) | slow-down |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        table = commands(work)
        for name in options.commands.split(","):
            for setting in options.settings.split(","):
                env = SETTINGS[setting]
                alone, alone_cpu = min(
                    run(table[name], env, work / f"{name}-{setting}-1-{r}", 1) for r in range(options.repeat)
                )
                pair, pair_cpu = min(
                    run(table[name], env, work / f"{name}-{setting}-2-{r}", 2) for r in range(options.repeat)
                )
                print(f"| {name} | {setting} | {alone:.1f} ({alone_cpu:.1f}) | {pair:.1f} ({pair_cpu:.1f}) "
                      f"| {pair / alone:.2f}x |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
