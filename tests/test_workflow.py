"""The smoke profile of the ACYP workflow: every command in a chain, on a CPU, in minutes."""

import json
import os
import subprocess
import sys

import pytest

from protein_sedd.io.fasta import read_fasta

from .conftest import REPO, acyp_available

pytestmark = pytest.mark.skipif(not acyp_available(), reason="needs acyp/hypf.fa under $PROTEIN_SEDD_DATA")


@pytest.mark.slow
def test_smoke_workflow_writes_a_summary(tmp_path):
    out = tmp_path / "smoke"
    workflow = [sys.executable, str(REPO / "workflows" / "acyp.py"), "--smoke", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    result = subprocess.run(
        [*workflow, "--device", "cpu"], capture_output=True, text=True, env=env, timeout=900
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = (out / "summary.md").read_text()
    for section in (
        "## Likelihood (test split)",
        "## Designs: sequence metrics",
        "## Designs: folding",
        "## The shortlist (select)",
        "seconds",
    ):
        assert section in summary
    assert "Folding skipped" not in summary  # the smoke profile folds with a toy ESMFold...
    assert "**Plumbing check only:**" in summary  # ...and says its pLDDT means nothing, wherever it shows
    assert "plumbing check" in json.loads((out / "fold_eval" / "summary.json").read_text())["note"]
    assert "[fold-eval] no ESMFold weights given: plumbing check" in result.stdout
    assert "Writing model shards" not in result.stderr  # transformers' save progress bar is silenced
    designs = [r.sequence for r in read_fasta(out / "designs.fasta")]
    assert len(designs) == 12 and all(set(d) <= set("ACDEFGHIKLMNPQRSTVWYX") for d in designs)
    assert len(list((out / "fold_eval").glob("*.pdb"))) == 12
    assert (out / "run" / "loss_curve.png").exists() and list((out / "seq_eval").glob("*.png"))
    picks = json.loads((out / "picks" / "summary.json").read_text())
    assert picks["rank_by"] == "family_bits"  # the toy ESMFold's pLDDT picks nothing
    assert picks["funnel"][0] == {"stage": "designs", "left": 12} and picks["n_picked"] <= 12
    assert picks["min_family_bits"] == 0.0  # smoke designs are no family members: the filter is opened
    page = (out / "report.html").read_text()  # the campaign's page, with every part the workflow made
    for part in ("training run", "designs", "seq-eval", "fold-eval", "select"):
        assert f"<tr><td>{part}</td>" in page
    assert 'class="absent"' in page and "Plumbing check only" in page  # no variants; a toy ESMFold
    # a second run into the same folder is refused instead of overwriting it
    again = subprocess.run(workflow, capture_output=True, text=True)
    assert again.returncode != 0 and "is not a new or empty folder" in again.stderr
