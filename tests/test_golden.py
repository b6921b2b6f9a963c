"""The golden outputs: what the commands and the API write for fixed seeds must not change by accident.

tests/golden/scenarios.py runs every scenario; tests/golden/expected/ holds today's outputs, recorded with
`python -m tests.golden.record`. On the machine kind they were recorded on (torch build and CPU kernels), a
fresh run must match every file byte for byte: a refactor that changes one draw, one float or one header shows
here. Elsewhere float32 sums may differ in the sixth or seventh digit (measured across two AVX512 machines:
at most 1e-6 relative on values above 1, 1.6e-5 absolute), so every number must agree within RTOL + ATOL
and every other character, designed sequences and headers included, exactly; file hashes (sha256 of
weights) are not compared there.
"""

from __future__ import annotations

import difflib
import re

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


# |a - b| <= RTOL * max(|a|, |b|) + ATOL: 10x and 6x the largest relative and absolute differences seen
RTOL, ATOL = 1e-5, 1e-4
FLOAT = re.compile(r"-?\d+\.\d+(?:[eE][-+]?\d+)?|-?\d+[eE][-+]?\d+")
DIGEST = re.compile(r"\b[0-9a-f]{64}\b")


def same_but_for_float_rounding(before: str, now: str) -> bool:
    """Whether two outputs differ only in float digits within RTOL and ATOL (and in sha256 digests)."""
    before, now = DIGEST.sub("<sha256>", before), DIGEST.sub("<sha256>", now)
    if FLOAT.split(before) != FLOAT.split(now):
        return False
    pairs = zip(FLOAT.findall(before), FLOAT.findall(now), strict=True)
    return all(abs(float(a) - float(b)) <= RTOL * max(abs(float(a)), abs(float(b))) + ATOL for a, b in pairs)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, str]:
    return run_all(tmp_path_factory.mktemp("golden"))


def test_every_golden_output_is_unchanged(outputs):
    expected = {p.name: p.read_text() for p in EXPECTED.iterdir() if p.name != "MACHINE"}
    assert sorted(outputs) == sorted(expected), "the scenarios write other files than were recorded"
    recorded = (EXPECTED / "MACHINE").read_text().strip()
    exact = machine() == recorded
    changed = []
    for name in sorted(expected):
        if outputs[name] == expected[name]:
            continue
        if not exact and same_but_for_float_rounding(expected[name], outputs[name]):
            continue
        before, now = expected[name].splitlines(), outputs[name].splitlines()
        diff = difflib.unified_diff(before, now, "expected/" + name, "now/" + name, lineterm="")
        changed.append("\n".join(list(diff)[:12]))
    how = "byte for byte"
    if not exact:
        how = f"within rtol {RTOL:g}, atol {ATOL:g} (recorded on '{recorded}', this is '{machine()}')"
    assert not changed, f"{len(changed)} golden outputs changed, compared {how}:\n" + "\n\n".join(changed)


def test_the_float_comparison_tells_rounding_from_change():
    row = "wt,53,109.48763005327959,2.9803256776707907,17.99428319525162\n"
    rounded = "wt,53,109.48762986858081,2.980325672643168,17.99428430711021\n"  # measured on another CPU
    assert same_but_for_float_rounding(row, rounded)
    assert not same_but_for_float_rounding(row, row.replace("109.48763", "109.48963"))  # 0.002 nats off
    assert not same_but_for_float_rounding(row, row.replace("wt,53", "wt,54"))  # an integer is exact
    assert not same_but_for_float_rounding(">d length=5\nMKVLA\n", ">d length=5\nMKVLS\n")  # a draw
    weights = '{"sha256": "%s", "w": [0.06171474938309984]}' % ("a" * 64)
    assert same_but_for_float_rounding(weights, weights.replace("a" * 64, "b" * 64).replace("0984", "1011"))


def test_api_and_command_design_the_same_sequences(outputs):
    """The API's design() and the design command are one pipeline: same seed, same records."""
    command = _sequences(outputs["design_free_events.fasta"])
    api = _sequences(outputs["api_design_free_events.fasta"])
    assert len(command) == 5
    assert api == command
