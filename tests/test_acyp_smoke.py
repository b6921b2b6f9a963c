"""A short run on the real ACYP file (in $PROTEIN_SEDD_DATA): train, checkpoint, reload, evaluate on test."""

import json
import math

import pytest

from protein_sedd.model.sources import load_checkpoint

from .conftest import acyp_available, run_cli

pytestmark = pytest.mark.skipif(not acyp_available(), reason="needs acyp/hypf.fa under $PROTEIN_SEDD_DATA")


@pytest.mark.slow
def test_acyp_smoke(tmp_path, capsys):
    run = tmp_path / "acyp"
    args = [
        "train",
        "--dataset",
        "acyp",
        "--out",
        run,
        "--max-steps",
        "60",
        "--device",
        "cpu",
        "model=tiny",
        "trainer.batch_size=32",
        "trainer.warmup_steps=10",
        "trainer.lr=2e-3",
        "trainer.log_every=10",
        "trainer.val_every=60",
        "trainer.val_sequences=64",
        "trainer.val_t_samples=2",
    ]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert "21645 train / 465 valid / 1164 test" in " ".join(err.split())
    rows = [line.split(",") for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    losses = [float(r[1]) for r in rows if r[1]]
    assert len(losses) == 6 and all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0] - 0.1  # bits/residue, from ~log2(21) = 4.39 at the start

    checkpoint = load_checkpoint(run)
    assert checkpoint.config.step == 60 and checkpoint.config.dataset.name == "acyp"
    assert checkpoint.config.dataset.sha256.startswith("9ebd5dfc")
    histogram = dict(checkpoint.config.lengths.histogram)
    assert min(histogram) >= 64 and max(histogram) <= 127

    report_path = tmp_path / "test.json"
    code, _, err = run_cli(
        [
            "evaluate",
            "--checkpoint",
            run,
            "--dataset",
            "acyp",
            "--split",
            "test",
            "--t-samples",
            "1",
            "--batch-size",
            "128",
            "--json",
            report_path,
        ],
        capsys,
    )
    assert code == 0, err
    report = json.loads(report_path.read_text())
    assert report["n_sequences"] == 1164
    assert 3.0 < report["bits_per_residue"] < math.log2(21) + 0.1
