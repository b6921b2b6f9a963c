"""The golden outputs: what the commands and the API write for fixed seeds must not change by accident.

tests/golden/scenarios.py runs every scenario; tests/golden/expected/ holds today's outputs, recorded with
`python -m tests.golden.record`. On the machine kind they were recorded on (torch build and CPU kernels), a
fresh run must match every file byte for byte: a refactor that changes one draw, one float or one header shows
here. Elsewhere floats (and so draws) may legitimately differ, and the comparison is skipped with the reason.
"""

from __future__ import annotations

import difflib

import pytest

from tests.golden.scenarios import EXPECTED, machine, run_all


def _sequences(fasta: str) -> list[tuple[str, str]]:
    records, header = [], None
    for line in fasta.splitlines():
        if line.startswith(">"):
            header = line[1:]
            records.append([header, ""])
        elif header is not None:
            records[-1][1] += line.strip()
    return [tuple(r) for r in records]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, str]:
    recorded = (EXPECTED / "MACHINE").read_text().strip()
    if machine() != recorded:
        pytest.skip(f"golden outputs were recorded on '{recorded}', this is '{machine()}'")
    return run_all(tmp_path_factory.mktemp("golden"))


def test_every_golden_output_is_byte_identical(outputs):
    expected = {p.name: p.read_text() for p in EXPECTED.iterdir() if p.name != "MACHINE"}
    assert sorted(outputs) == sorted(expected), "the scenarios write other files than were recorded"
    changed = []
    for name in sorted(expected):
        if outputs[name] != expected[name]:
            before, now = expected[name].splitlines(), outputs[name].splitlines()
            diff = difflib.unified_diff(before, now, "expected/" + name, "now/" + name, lineterm="")
            changed.append("\n".join(list(diff)[:12]))
    assert not changed, f"{len(changed)} golden outputs changed:\n" + "\n\n".join(changed)


def test_api_and_command_design_the_same_sequences(outputs):
    """The API's design() and the design command are one pipeline: same seed, same records."""
    command = _sequences(outputs["design_free_events.fasta"])
    api = _sequences(outputs["api_design_free_events.fasta"])
    assert len(command) == 5
    assert api == command
