"""How much of the package one `protein-sedd design` touches, and what `--help` costs to start.

    python workflows/benchmarks/design_trace.py [--json out.json]

Reports: the package's modules imported by a small design (bundled acyp-tiny, --n 2 --steps 8, one thread),
the modules in which code ran during a second identical design in the same process (a function of the
module was called; import-time code is left out, since the first run did the imports), their lines, and
the import cost of `protein-sedd --help` (wall time of a fresh process, best of 3, and whether torch or
pandas were imported). Run it alone: the timings are of a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "protein_sedd"

TRACE = r"""
import sys, json, threading
from pathlib import Path
package = str(Path(sys.argv[1]))
ran = set()
def profile(frame, event, arg):
    if event == "call":
        name = frame.f_code.co_filename
        if name.startswith(package) and frame.f_code.co_name != "<module>":
            ran.add(name)
from protein_sedd.cli import main
args = ["design", "--n", "2", "--steps", "8", "--seed", "1", "--threads", "1", "--device", "cpu", "--out"]
main([*args, sys.argv[2] + ".warm"])  # once unprofiled: what import time runs is not the design's code
imported = sorted(m.__file__ for m in list(sys.modules.values())
                  if getattr(m, "__file__", None) and m.__file__.startswith(package))
sys.setprofile(profile); threading.setprofile(profile)
code = main([*args, sys.argv[2]])
sys.setprofile(None)
print(json.dumps({"code": code, "ran": sorted(ran), "imported": imported}))
"""

HELP = (
    "import sys; from protein_sedd.cli import main; code = main(sys.argv[1:]); "
    "print('\\n', 'torch' in sys.modules, 'pandas' in sys.modules, file=sys.stderr)"
)


def lines(paths: list[str]) -> int:
    return sum(len(Path(p).read_text().splitlines()) for p in paths)


def help_cost(args: list[str]) -> dict:
    times, heavy = [], None
    for _ in range(3):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", HELP, *args], capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        torch, pandas = done.stderr.split()[-2:]
        heavy = {"torch": torch == "True", "pandas": pandas == "True"}
    return {"seconds": round(min(times), 3), **heavy}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()
    total = sorted(str(p) for p in PACKAGE.rglob("*.py"))
    with tempfile.TemporaryDirectory() as work:
        done = subprocess.run(
            [sys.executable, "-c", TRACE, str(PACKAGE), f"{work}/d.fasta"],
            capture_output=True,
            text=True,
            check=True,
        )
    trace = json.loads(done.stdout.strip().splitlines()[-1])
    report = {
        "package_modules": len(total),
        "design_imported_modules": len(trace["imported"]),
        "design_ran_modules": len(trace["ran"]),
        "design_ran_lines": lines(trace["ran"]),
        "ran": [str(Path(p).relative_to(PACKAGE.parent)) for p in trace["ran"]],
        "help": help_cost(["--help"]),
        "design_help": help_cost(["design", "--help"]),
    }
    for key, value in report.items():
        if key != "ran":
            print(f"{key}: {value}")
    print("ran in:", " ".join(report["ran"]))
    if options.json:
        options.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
