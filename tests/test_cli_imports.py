"""`protein-sedd --help` and `protein-sedd COMMAND --help` start without torch or pandas: the commands load
their libraries when they run (and torch's thread settings can still be chosen before it loads)."""

import subprocess
import sys

import pytest

from protein_sedd.cli import app

COMMANDS = sorted(command.name for command in app.registered_commands)
PROBE = (
    "import sys\n"
    "from protein_sedd.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print(code, *[m for m in ('torch', 'pandas') if m in sys.modules])\n"
)


def test_every_command_is_probed():
    assert COMMANDS == sorted(
        ["design", "evaluate", "fold-eval", "prepare-data", "report", "score-variants", "select", "seq-eval",
         "train", "train-guide"]
    )  # fmt: skip


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_imports_neither_torch_nor_pandas(command):
    args = [command, "--help"] if command else ["--help"]
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True)
    assert "Usage: protein-sedd" in done.stdout
    assert done.stdout.splitlines()[-1] == "0", (
        f"protein-sedd {' '.join(args)} imported: {done.stdout.splitlines()[-1]}"
    )
