"""Pre-emption and crashes: kill -9 mid-run, SIGTERM, non-finite losses. Nothing complete is ever lost."""

import math
import os
import signal
import subprocess
import sys
import time

import torch
from omegaconf import OmegaConf

from protein_sedd.training import trainer
from protein_sedd.training.checkpoint import load_checkpoint

from .conftest import run_cli, write_synthetic_fasta
from .test_train import _quick_args


def _start(args, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = open(tmp_path / "train.log", "w")
    return subprocess.Popen(
        [sys.executable, "-m", "protein_sedd.train", *map(str, args[1:])], env=env, stdout=log, stderr=log
    )


def _wait_for_checkpoint(run, process, min_step, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        config = run / "checkpoint" / "config.yaml"
        if config.exists():
            try:
                if OmegaConf.load(config).step >= min_step:
                    return
            except Exception:  # caught mid-swap: look again
                pass
        assert process.poll() is None, "training ended before it was interrupted"
        time.sleep(0.2)
    raise AssertionError("no checkpoint appeared in time")


def test_kill_9_then_resume_finishes_the_run(tmp_path):
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=200)
    run = tmp_path / "run"
    args = _quick_args(fasta, run, 100000) + ["trainer.checkpoint_every=2", "trainer.val_every=1000"]
    process = _start(args, tmp_path)
    try:
        _wait_for_checkpoint(run, process, min_step=6)
        time.sleep(0.3)  # land somewhere inside a later step or checkpoint write
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    killed_at = OmegaConf.load(
        next(p for p in [run / "checkpoint", run / "checkpoint.old"] if p.exists()) / "config.yaml"
    ).step
    target = killed_at + 6
    assert run_cli(["train", "--out", run, "--resume", "--max-steps", target])[0] == 0
    checkpoint = load_checkpoint(run)
    assert checkpoint.config.step == target
    assert not (run / "checkpoint.tmp").exists() and not (run / "checkpoint.old").exists()
    losses = [
        float(r.split(",")[1]) for r in (run / "metrics.csv").read_text().splitlines()[1:] if r.split(",")[1]
    ]
    assert all(math.isfinite(v) for v in losses)
    steps = [
        int(r.split(",")[0]) for r in (run / "metrics.csv").read_text().splitlines()[1:] if r.split(",")[1]
    ]
    assert steps == sorted(set(steps)) and steps[-1] == target  # no step logged twice after the crash


def test_sigterm_checkpoints_and_exits_cleanly(tmp_path):
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=200)
    run = tmp_path / "run"
    args = _quick_args(fasta, run, 100000) + ["trainer.checkpoint_every=1000", "trainer.val_every=1000"]
    process = _start(args, tmp_path)
    try:
        deadline = time.monotonic() + 120
        while not (run / "metrics.csv").exists() or len((run / "metrics.csv").read_text().splitlines()) < 4:
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert "stopped by signal" in (tmp_path / "train.log").read_text()
    last_logged = int((run / "metrics.csv").read_text().splitlines()[-1].split(",")[0])
    assert load_checkpoint(run).config.step == last_logged


def test_non_finite_losses_are_skipped_then_stop_the_run(tmp_path, capsys, monkeypatch):
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=100)
    run = tmp_path / "run"
    assert run_cli(_quick_args(fasta, run, 2))[0] == 0
    before = (run / "checkpoint" / "model.safetensors").read_bytes()

    def poisoned(*args, **kwargs):
        return torch.full((args[3].shape[0],), float("nan"), requires_grad=True)

    monkeypatch.setattr(trainer, "score_entropy_loss", poisoned)
    capsys.readouterr()
    args = ["train", "--out", run, "--resume", "--max-steps", "10", "trainer.max_bad_steps=3"]
    code, _, err = run_cli(args, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert sum("non-finite loss at step 2; step skipped" in line for line in lines) == 3
    assert lines[-1].startswith("error: 3 non-finite losses in a row") and "last good checkpoint" in lines[-1]
    assert (run / "checkpoint" / "model.safetensors").read_bytes() == before
    assert load_checkpoint(run).config.step == 2
