"""One step of a workflow: run a protein-sedd command as a user would, log it, stop on its error."""

from __future__ import annotations

import subprocess
import sys
import time


def step(name: str, args: list[str], log) -> float:
    """Run `protein-sedd ARGS`; stop the workflow with its message if it fails."""
    print(f"[{name}] protein-sedd {' '.join(args)}", flush=True)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "protein_sedd", *args], stdout=log, stderr=subprocess.PIPE, text=True
    )
    log.write(result.stderr)
    if result.returncode != 0:
        last = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ""
        sys.exit(f"workflow stopped at {name} (exit {result.returncode}): {last}")
    return time.perf_counter() - start
