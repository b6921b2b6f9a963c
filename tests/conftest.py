"""Shared fixtures: the environment every test runs in, and a tiny model trained on a known distribution."""

from __future__ import annotations

import math
import os
import random
from pathlib import Path

import pytest

from protein_sedd.cli import main

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# A synthetic "family": eight length-8 sequences with known probabilities. Its entropy is the
# best achievable -log p per sequence, so a trained model's ELBO must approach it.
SYNTHETIC_SEQUENCES = [
    "MKVLAGHE",
    "MKVLSGHE",
    "MRVLAGHD",
    "MKILAGWE",
    "PKVLAGHE",
    "MKVDAGHE",
    "WKVLAGHC",
    "MKVLAYHE",
]
SYNTHETIC_PROBS = [0.3, 0.2, 0.15, 0.1, 0.1, 0.08, 0.05, 0.02]
SYNTHETIC_ENTROPY = -sum(p * math.log(p) for p in SYNTHETIC_PROBS)  # 1.858 nats


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run the tests marked slow")


def pytest_collection_modifyitems(config, items):
    """Without --slow the tests marked slow (training, workflows, subprocess runs) are deselected."""
    if config.getoption("--slow"):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


@pytest.fixture(autouse=True, scope="session")
def _environment(tmp_path_factory):
    """Tests find ACYP in ../shared/data, never download anything and never touch the user's caches."""
    os.environ.setdefault("PROTEIN_SEDD_DATA", str(SHARED_DATA))
    os.environ["PROTEIN_SEDD_OFFLINE"] = "1"
    os.environ.setdefault("COLUMNS", "120")  # rich: keep progress lines and tables on one line
    # the family-HMM cache (and any library's) goes to a folder of this session, not ~/.cache
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))


def data_dir() -> Path:
    """Where the tests read ACYP and the PTEN scan: $PROTEIN_SEDD_DATA, else ../shared/data."""
    return Path(os.environ.get("PROTEIN_SEDD_DATA") or SHARED_DATA)


def acyp_available() -> bool:
    return (data_dir() / "acyp" / "hypf.fa").is_file()


def write_synthetic_fasta(path: Path, n: int = 4000, seed: int = 0) -> Path:
    rng = random.Random(seed)
    draws = rng.choices(SYNTHETIC_SEQUENCES, SYNTHETIC_PROBS, k=n)
    path.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(draws)))
    return path


def run_cli(args: list[str], capsys=None) -> tuple[int, str, str]:
    """Run `protein-sedd ARGS` in-process; returns (exit code, stdout, stderr) when capsys is given."""
    code = main([str(a) for a in args])
    if capsys is None:
        return code, "", ""
    captured = capsys.readouterr()
    return code, captured.out, captured.err


SYNTHETIC_TRAIN_ARGS = [
    "data.dedupe=false",  # repeated draws are the distribution, not duplicates
    "data.test_fraction=0.1",
    "trainer.batch_size=128",
    "trainer.warmup_steps=50",
    "trainer.val_every=200",
    "trainer.checkpoint_every=400",
    "trainer.log_every=20",
]


def _train_synthetic(root: Path, steps: int, *extra: str) -> Path:
    """`root`/run: a tiny model trained through the CLI on `root`/synthetic.fa, the synthetic distribution."""
    fasta = write_synthetic_fasta(root / "synthetic.fa")
    run_dir = root / "run"
    args = ["train", "--fasta", fasta, "--out", run_dir, "--max-steps", steps, "--device", "cpu"]
    assert main([str(a) for a in [*args, *SYNTHETIC_TRAIN_ARGS, *extra]]) == 0
    return run_dir


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory) -> Path:
    """A tiny time-independent model trained on the synthetic distribution (~1 minute: its tests are slow)."""
    return _train_synthetic(tmp_path_factory.mktemp("synthetic"), 400)


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory) -> Path:
    """A run of two steps (seconds), laid out like `synthetic_run`: for tests that need a valid checkpoint of
    the synthetic data, not a good model (bad inputs, option checks)."""
    return _train_synthetic(
        tmp_path_factory.mktemp("quick"), 2, "trainer.val_sequences=16", "trainer.val_t_samples=1"
    )
