"""Record the golden outputs of today's code: `python -m tests.golden.record` (writes tests/golden/expected/).

Run it only when a change of output is intended, and say why in the commit.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from tests.golden.scenarios import EXPECTED, machine, run_all


def main() -> int:
    with tempfile.TemporaryDirectory() as work:
        outputs = run_all(Path(work))
    if EXPECTED.exists():
        shutil.rmtree(EXPECTED)
    EXPECTED.mkdir(parents=True)
    for name, text in outputs.items():
        (EXPECTED / name).write_text(text)
    (EXPECTED / "MACHINE").write_text(machine() + "\n")
    print(f"wrote {len(outputs)} golden outputs to {EXPECTED} ({machine()})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
