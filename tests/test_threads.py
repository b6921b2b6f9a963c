"""`--threads` on every heavy command, the one thread chooser behind it, and progress lines off a terminal."""

import os
import re
from types import SimpleNamespace

import pytest
import torch
from rich.console import Console

from protein_sedd.design import run as design_run
from protein_sedd.evaluation import folding
from protein_sedd.evaluation import likelihood_report as likelihood
from protein_sedd.model.sources import bundled_checkpoint
from protein_sedd.runtime import devices, progress
from protein_sedd.testing.tiny_esmfold import build_tiny_esmfold
from protein_sedd.training import trainer

from .conftest import SYNTHETIC_SEQUENCES, run_cli

CORES = len(os.sched_getaffinity(0))
BUNDLED = bundled_checkpoint()


@pytest.fixture
def unpinned(monkeypatch):
    """No thread count pinned by the environment, and no torchrun ranks."""
    for name in ("OMP_NUM_THREADS", "LOCAL_WORLD_SIZE", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)


def test_default_threads_follow_the_cores_this_process_may_use(unpinned, monkeypatch):
    assert devices.default_threads() == CORES
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two ranks on this machine share the cores
    assert devices.default_threads() == max(1, CORES // 2)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(4 * CORES))
    assert devices.default_threads() == 1
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})  # taskset -c 0, whatever the machine
    assert devices.default_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # a count pinned by the user wins
    assert devices.default_threads() == 3


def _recording(monkeypatch, module, name, result=None):
    """Replace module.name by a function noting torch's thread count when called; returns the notes."""
    seen = []
    original = getattr(module, name)

    def record(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return result if result is not None else original(*args, **kwargs)

    monkeypatch.setattr(module, name, record)
    return seen


@pytest.fixture
def inputs(tmp_path):
    fasta = tmp_path / "seqs.fa"
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(SYNTHETIC_SEQUENCES[:4])))
    return SimpleNamespace(fasta=fasta, out=tmp_path)


def _command(name, inputs):
    return {
        "design": ["design", "--n", "2", "--steps", "2", "--length", "12", "--out", inputs.out / "d.fa"],
        "evaluate": ["evaluate", "--checkpoint", BUNDLED, "--fasta", inputs.fasta, "--t-samples", "1"],
        "train": ["train", "--fasta", inputs.fasta, "--out", inputs.out / "run", "--max-steps", "1"],
        "fold-eval": ["fold-eval", inputs.fasta, "--out-dir", inputs.out / "fold"],
    }[name] + ["--device", "cpu"]


@pytest.mark.parametrize(
    "given, expected", [(["--threads", "1"], 1), ([], CORES)], ids=["threads-1", "default"]
)
def test_design_and_evaluate_compute_with_the_chosen_threads(
    unpinned, monkeypatch, inputs, capsys, given, expected
):
    before = torch.get_num_threads()
    sampled = _recording(monkeypatch, design_run, "sample_batches")
    code, _, err = run_cli([*_command("design", inputs), *given], capsys)
    assert code == 0, err
    assert sampled == [expected]
    assert f"{expected} CPU thread" in err
    evaluated = _recording(monkeypatch, likelihood, "likelihood_report")
    code, _, err = run_cli([*_command("evaluate", inputs), *given], capsys)
    assert code == 0, err
    assert evaluated == [expected]
    assert torch.get_num_threads() == before  # the command's choice ends with the command


def test_train_and_fold_eval_compute_with_the_chosen_threads(monkeypatch, inputs, capsys):
    trained = _recording(monkeypatch, trainer, "train", SimpleNamespace(interrupted=False, step=1))
    code, _, err = run_cli([*_command("train", inputs), "--threads", "1"], capsys)
    assert code == 0, err
    assert trained == [1]

    loads = _recording(monkeypatch, folding, "load_backend")
    esmfold = build_tiny_esmfold(inputs.out / "esmfold")
    code, _, err = run_cli([*_command("fold-eval", inputs), "--model", esmfold, "--threads", "1"], capsys)
    assert code == 0, err
    assert loads == [1]


@pytest.mark.parametrize("command", ["design", "evaluate", "train", "fold-eval"])
@pytest.mark.parametrize("threads", ["-1", str(CORES + 1)])
def test_bad_threads_exit_2_with_one_line(inputs, capsys, command, threads):
    model = ["--model", "unused"] if command == "fold-eval" else []  # refused before any model is loaded
    code, _, err = run_cli([*_command(command, inputs), *model, "--threads", threads], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2
    expected = (
        f"--threads {threads}: give 1 to {CORES} (the cores this process may use), or 0 for the default"
    )
    assert lines == [f"error: {expected}"]
    assert not (inputs.out / "d.fa").exists() and not (inputs.out / "run").exists()


def test_design_prints_progress_lines_with_an_eta_off_a_terminal(monkeypatch, inputs, capsys):
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)  # a line per step instead of one every 30 s
    code, _, err = run_cli([*_command("design", inputs), "--batch-size", "1", "--threads", "1"], capsys)
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("design steps")]
    pattern = r"design steps \(2 batches x 2\): {}/4 \({}%\), \d+ s elapsed, ETA \d+ s"
    assert len(lines) == 4, err
    assert all(re.fullmatch(pattern.format(k, 25 * k), line) for k, line in enumerate(lines, 1)), lines


def test_train_prints_progress_lines_off_a_terminal_and_says_where_it_resumed(monkeypatch, inputs, capsys):
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)  # a line per step instead of one every 30 s
    run = ["--out", inputs.out / "run", "--device", "cpu", "--threads", "1"]
    settings = ["model=tiny", "trainer.batch_size=2", "trainer.log_every=1", "trainer.val_every=2"]
    code, _, err = run_cli(["train", "--fasta", inputs.fasta, *run, "--max-steps", "2", *settings], capsys)
    assert code == 0, err
    steps = [line for line in err.splitlines() if line.startswith("train: step")]
    number = r"\d+\.\d{3} bits/res, \d+\.\d\d steps/s, \d+ s elapsed, ETA \d+ s"
    assert [
        re.fullmatch(rf"train: step (\d)/2 \((\d+)%\), loss {number}", line).groups() for line in steps
    ] == [
        ("1", "50"),
        ("2", "100"),
    ], err
    # the closing validation counts its sequences (the one validation sequence here), then says its bound
    valid = [line for line in err.splitlines() if line.startswith("validation at step 2")]
    assert [re.sub(r"\d+ s", "T", line) for line in valid] == [
        "validation at step 2: sequences: 1/1 (100%), T elapsed, ETA T"
    ], err
    assert re.search(r"^step 2: valid -ELBO \d+\.\d\d nats/sequence", err, re.M), err
    assert "resumed" not in err
    code, _, err = run_cli(["train", *run, "--resume", "--max-steps", "3"], capsys)
    assert code == 0, err
    assert f"resumed from step 2 of 3 ({inputs.out / 'run'}" in err.replace("\n", "")
    steps = [line.split(",")[0] for line in err.splitlines() if line.startswith("train: step")]
    assert steps == ["train: step 3/3 (100%)"], err


def test_train_progress_line_by_hand():
    from protein_sedd.training.step_log import TrainProgress

    line = TrainProgress(Console(quiet=True), 20000, 1000)
    line.step, line.info = 1200, "loss 3.012 bits/res, 4.10 steps/s"
    # this session's pace: 200 steps in 50 s, 18,800 left
    assert (
        line.line(50.0)
        == "train: step 1200/20000 (6%), loss 3.012 bits/res, 4.10 steps/s, 50 s elapsed, ETA 1h18m"
    )
    line.step, line.info = 1000, ""
    assert line.line(3.0) == "train: step 1000/20000 (5%), 3 s elapsed, ETA unknown"


def test_progress_line_and_durations_by_hand():
    steps = progress.LoopProgress(Console(quiet=True), "steps", 10)
    steps.done = 4
    assert steps.line(8.0) == "steps: 4/10 (40%), 8 s elapsed, ETA 12 s"
    steps.done = 0
    assert steps.line(3.0) == "steps: 0/10 (0%), 3 s elapsed, ETA unknown"
    durations = [progress.format_duration(s) for s in (0.4, 59, 61, 3599, 3720)]
    assert durations == ["0 s", "59 s", "1m01s", "59m59s", "1h02m"]


def test_the_entry_point_calms_openmp_before_torch_loads_unless_told_otherwise():
    environ = {}
    assert devices.calm_openmp(environ) == devices.SPIN_COUNT == "3000"
    assert environ == {"GOMP_SPINCOUNT": "3000"}
    chosen = ({"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "300000"}, {"PROTEIN_SEDD_OPENMP": "off"})
    for given in chosen:
        environ = dict(given)
        assert devices.calm_openmp(environ) is None and environ == given  # the user's choice stands


def test_a_command_started_from_the_shell_runs_with_the_calm_spin_count(tmp_path):
    """`python -m protein_sedd` sets GOMP_SPINCOUNT before torch loads; a subprocess shows what torch saw."""
    import subprocess
    import sys

    probe = (
        "import os, sys\n"
        "from protein_sedd import cli\n"
        "assert 'torch' not in sys.modules\n"
        "cli.main = lambda argv=None: print(os.environ.get('GOMP_SPINCOUNT')) or 0\n"
        "cli.run()\n"
    )
    environment = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    done = subprocess.run([sys.executable, "-c", probe], env=environment, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "3000"
