"""Pre-emption and crashes: kill -9 mid-run, SIGTERM, non-finite losses. Nothing complete is ever lost."""

import math
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file

from protein_sedd.model.sources import load_checkpoint
from protein_sedd.training import step as trainer_step

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


@pytest.mark.slow
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


@pytest.mark.slow
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


def _resume_with_loss(tmp_path, capsys, monkeypatch, loss, max_bad_steps: int):
    """Train 2 steps, then resume with `loss` as the score entropy; (run, weights before, stderr lines)."""
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=100)
    run = tmp_path / "run"
    assert run_cli(_quick_args(fasta, run, 2))[0] == 0
    before = (run / "checkpoint" / "model.safetensors").read_bytes()
    monkeypatch.setattr(trainer_step, "score_entropy_loss", loss)
    capsys.readouterr()
    args = ["train", "--out", run, "--resume", "--max-steps", "10", f"trainer.max_bad_steps={max_bad_steps}"]
    code, _, err = run_cli(args, capsys)
    assert code == 2
    return run, before, err.strip().splitlines()


def test_non_finite_losses_are_skipped_then_stop_the_run(tmp_path, capsys, monkeypatch):
    def poisoned(*args, **kwargs):
        return torch.full((args[3].shape[0],), float("nan"), requires_grad=True)

    run, before, lines = _resume_with_loss(tmp_path, capsys, monkeypatch, poisoned, max_bad_steps=3)
    assert sum("non-finite loss at step 2; step skipped" in line for line in lines) == 3
    assert lines[-1].startswith("error: 3 non-finite losses in a row") and "last good checkpoint" in lines[-1]
    assert (run / "checkpoint" / "model.safetensors").read_bytes() == before
    assert load_checkpoint(run).config.step == 2


def _weights(run):
    return load_file(run / "checkpoint" / "model.safetensors")


@pytest.mark.parametrize("dropout", [0.0, 0.3])  # dropout's generator is rewound and resumed too
def test_sigterm_between_micro_batches_drops_the_partial_step_and_resumes_exactly(
    tmp_path, capsys, monkeypatch, dropout
):
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=200)
    extra = ["trainer.accumulate=4", "trainer.checkpoint_every=100", "trainer.val_every=100"]
    extra.append(f"model.dropout={dropout}")
    assert run_cli(_quick_args(fasta, tmp_path / "whole", 4) + extra)[0] == 0

    real, calls = trainer_step.score_entropy_loss, []

    def preempted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 10:  # step 3 (index 2), micro-batch 2 of 4: the notice lands mid-step
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_step, "score_entropy_loss", preempted)
    run = tmp_path / "split"
    code, _, err = run_cli(_quick_args(fasta, run, 4) + extra, capsys)
    assert code == 130, err
    assert len(calls) == 10  # no micro-batch ran after the one the signal interrupted
    assert "stopped by signal at step 2" in err and "partial step was dropped" in err
    assert load_checkpoint(run).config.step == 2
    assert torch.load(run / "checkpoint" / "trainer_state.pt", weights_only=True)["step"] == 2

    monkeypatch.setattr(trainer_step, "score_entropy_loss", real)
    assert run_cli(["train", "--out", run, "--resume", "--max-steps", "4"])[0] == 0
    whole, split = _weights(tmp_path / "whole"), _weights(run)
    assert whole.keys() == split.keys()
    for name in whole:
        assert torch.equal(whole[name], split[name]), name


class _NanGradient(torch.autograd.Function):
    """Identity forward, NaN backward: a finite loss whose gradient is not."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


def test_a_non_finite_gradient_is_never_applied(tmp_path, capsys, monkeypatch):
    real = trainer_step.score_entropy_loss
    loss = lambda *a, **k: _NanGradient.apply(real(*a, **k))  # noqa: E731
    run, before, lines = _resume_with_loss(tmp_path, capsys, monkeypatch, loss, max_bad_steps=2)
    assert sum("non-finite gradient norm at step 2; step skipped" in line for line in lines) == 2
    assert lines[-1].startswith("error: 2 non-finite gradient norms in a row at step 2")
    assert (run / "checkpoint" / "model.safetensors").read_bytes() == before


def test_non_finite_weights_are_never_saved_and_never_used_to_design(tmp_path, capsys):
    from protein_sedd.errors import UserError
    from protein_sedd.model.sources import bundled_checkpoint
    from protein_sedd.training.checkpoint import save_checkpoint

    copy = tmp_path / "run" / "checkpoint"
    shutil.copytree(bundled_checkpoint(), copy)
    before = (copy / "model.safetensors").read_bytes()
    loaded = load_checkpoint(copy)
    with torch.no_grad():
        loaded.model.embedding.weight[0, 0] = float("nan")
    with pytest.raises(UserError, match="not saved.*'embedding.weight'.*previous checkpoint is kept"):
        save_checkpoint(tmp_path / "run", loaded.model, loaded.config, None)
    assert (copy / "model.safetensors").read_bytes() == before
    assert not (tmp_path / "run" / "checkpoint.tmp").exists()

    weights = load_file(copy / "model.safetensors")
    weights["embedding.weight"][3, 1] = float("inf")
    save_file(weights, str(copy / "model.safetensors"))
    out = tmp_path / "d.fa"
    code, _, err = run_cli(
        ["design", "--checkpoint", copy, "--n", "2", "--steps", "2", "--device", "cpu", "--out", out], capsys
    )
    assert code == 2 and err.strip().splitlines() == [
        f"error: {copy / 'model.safetensors'}: weight 'embedding.weight' holds NaN or infinite values; "
        "unusable"
    ]
    assert not out.exists()
