"""Data parallelism on the CPU: two gloo ranks through `--devices 2` for train, design and fold-eval."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from protein_sedd.cli import main
from protein_sedd.testing.tiny_esmfold import build_tiny_esmfold

from .conftest import run_cli, write_synthetic_fasta
from .test_train import _quick_args


@pytest.fixture(autouse=True)
def _one_thread_per_rank(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # two ranks on two cores; one process runs alike


# Each rank's raw (non-EMA) weights after every checkpoint save, for the tests that compare ranks: a
# sitecustomize module on PYTHONPATH wraps `Checkpoints.save` in every process of the run (torchrun sets
# RANK).
RANK_WEIGHTS_HOOK = """
import os
from pathlib import Path

from protein_sedd.model.folder import write_weights
from protein_sedd.training import run_folder

_save = run_folder.Checkpoints.save


def _save_and_dump(self, state):
    _save(self, state)
    rank = os.environ.get("RANK", "0")
    write_weights(Path(os.environ["RANK_WEIGHTS_DIR"]) / f"rank{rank}.safetensors", state.model)


run_folder.Checkpoints.save = _save_and_dump
"""


def _rank_weights_env(tmp_path, dumps) -> dict:
    """Environment variables under which every Python process of a run dumps its rank's weights to `dumps`."""
    import os

    hook = tmp_path / "rank_weights_hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(RANK_WEIGHTS_HOOK)
    path = os.pathsep.join(p for p in [str(hook), os.environ.get("PYTHONPATH", "")] if p)
    return {"PYTHONPATH": path, "RANK_WEIGHTS_DIR": str(dumps)}


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.mark.slow
def test_two_ranks_hold_identical_weights_and_write_one_checkpoint(tmp_path, monkeypatch):
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=200)
    dumps = tmp_path / "ranks"
    dumps.mkdir()
    for name, value in _rank_weights_env(tmp_path, dumps).items():
        monkeypatch.setenv(name, value)
    run = tmp_path / "ddp"
    code, _, _ = run_cli([*_quick_args(fasta, run, 4), "--devices", "2"])
    assert code == 0
    rank0, rank1 = load_file(dumps / "rank0.safetensors"), load_file(dumps / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    # training moved the weights away from their initialisation on both ranks alike
    assert torch.count_nonzero(rank0["final.linear.weight"]) > 0
    assert sorted(p.name for p in run.iterdir()) == [
        ".protein-sedd",  # the run's owner record and lock
        "best",  # step 4's validation lowered the bound of step 2's: the same EMA weights as checkpoint/
        "checkpoint",
        "config.yaml",
        "loss_curve.png",
        "metrics.csv",
        "splits.json",
    ]
    assert OmegaConf.load(run / "best" / "config.yaml").step == 4
    assert sorted(p.name for p in (run / "best").iterdir()) == ["config.yaml", "model.safetensors"]
    best = load_file(run / "best" / "model.safetensors")
    last = load_file(run / "checkpoint" / "model.safetensors")
    assert best.keys() == last.keys() and all(torch.equal(best[k], last[k]) for k in best)
    steps = [
        line.split(",")[0]
        for line in (run / "metrics.csv").read_text().splitlines()[1:]
        if line.split(",")[1]
    ]
    assert steps == ["1", "2", "3", "4"]  # logged once, by rank 0
    state = torch.load(run / "checkpoint" / "trainer_state.pt", weights_only=True)
    assert state["step"] == 4
    for name, tensor in state["model"].items():
        assert torch.equal(tensor, rank0[name])


@pytest.mark.slow
def test_design_on_two_ranks_writes_the_same_designs_as_one_process(tmp_path, capfd):
    args = ["design", "--n", "10", "--length-range", "8:40", "--steps", "16", "--batch-size", "4"]
    args += ["--seed", "5", "--device", "cpu"]
    alone, shared = tmp_path / "alone.fasta", tmp_path / "shared.fasta"
    assert main([*args, "--out", str(alone)]) == 0
    capfd.readouterr()
    assert main([*args, "--out", str(shared), "--devices", "2"]) == 0
    log = capfd.readouterr().err
    assert shared.read_text() == alone.read_text()
    assert len(shared.read_text().splitlines()) == 20
    assert "2 ranks sharing 3 batches" in log
    assert "32/32" in log  # rank 0's progress: batches 0 and 2 of 3, 16 steps each; rank 1 ran batch 1
    assert log.count("wrote ") == 1 and "Traceback" not in log


@pytest.mark.slow
def test_fold_eval_on_two_ranks_matches_one_process(tmp_path, capfd):
    esmfold = build_tiny_esmfold(tmp_path / "esmfold")
    designs = tmp_path / "designs.fasta"
    sequences = [
        "GSHMKKLLPPQQ",
        "ACDEFGHIKLMNPQRSTVWY",
        "MKVLAAGIVGAVLLAMKVLAEE",
        "MSTNPKPQRKTKRNTNRRPQDVKFPGG",
    ]
    sequences.append("MADEEKLPPGWEKRMSRSSGRVYYFNHITNASQWERPSG")
    designs.write_text("".join(f">d{i}\n{s}\n" for i, s in enumerate(sequences)))
    args = [
        "fold-eval",
        str(designs),
        "--model",
        str(esmfold),
        "--device",
        "cpu",
        "--max-tokens-per-batch",
        "60",
    ]
    assert main([*args, "--out-dir", str(tmp_path / "alone")]) == 0  # 3 batches: rounds (0, 1) and (2)
    assert main([*args, "--out-dir", str(tmp_path / "shared"), "--devices", "2"]) == 0
    alone = pd.read_csv(tmp_path / "alone" / "results.csv")
    shared = pd.read_csv(tmp_path / "shared" / "results.csv")
    assert shared["id"].tolist() == [f"d{i}" for i in range(5)] == alone["id"].tolist()
    for column in ("mean_plddt", "ptm"):
        assert np.allclose(shared[column], alone[column], atol=1e-3)
    pdbs = sorted(p.name for p in (tmp_path / "shared").glob("*.pdb"))
    assert (
        pdbs == sorted(p.name for p in (tmp_path / "alone").glob("*.pdb")) == [f"d{i}.pdb" for i in range(5)]
    )
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no .partial left
    assert capfd.readouterr().err.count("Traceback") == 0


@pytest.mark.slow
def test_a_mistake_every_rank_meets_is_reported_once(tmp_path, capfd):
    code = main(
        ["design", "--checkpoint", str(tmp_path / "missing"), "--out", str(tmp_path / "d.fasta")]
        + ["--devices", "2", "--device", "cpu"]
    )
    assert code == 2
    assert "missing" in _one_error_line(capfd.readouterr().err)
    assert not (tmp_path / "d.fasta").exists()


@pytest.mark.slow
def test_a_mistake_rank_0_finds_stops_every_rank(tmp_path, capfd):
    designs = tmp_path / "designs.fasta"
    designs.write_text(">d1\nMKVLAAGIVG\n")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    code = main(["fold-eval", str(designs), "--model", "unused", "--out-dir", str(taken), "--devices", "2"])
    assert code == 2
    assert "not empty" in _one_error_line(capfd.readouterr().err)
    assert sorted(p.name for p in taken.iterdir()) == ["notes.txt"]


def test_the_command_line_is_rebuilt_for_the_ranks_without_devices():
    import typer

    from protein_sedd.commands.ranks import arguments_given

    seen = []
    app = typer.Typer()

    @app.command()
    def command(
        ctx: typer.Context,
        paths: list[str] = typer.Argument(None),
        n: int = typer.Option(3, "--n"),
        seed: int = typer.Option(0, "--seed"),
        cache: bool = typer.Option(True, "--cache/--no-cache"),
        resume: bool = typer.Option(False, "--resume"),
        devices: int = typer.Option(1, "--devices"),
    ):
        seen.append((arguments_given(ctx, leave_out="devices"), dict(ctx.params)))

    def run(args):
        typer.main.get_command(app).main(args=args, prog_name="command", standalone_mode=False)

    run(["--no-cache", "--devices", "4", "x.fa", "--seed", "0", "--resume", "--", "-y.fa"])
    rebuilt, params = seen[-1]
    # defaults stay out (--n), values typed equal to a default stay in (--seed 0), positionals after "--"
    assert rebuilt == ["command", "--seed", "0", "--no-cache", "--resume", "--", "x.fa", "-y.fa"]
    run(rebuilt[1:])
    assert seen[-1][1] == {**params, "devices": 1}


# what each rank of a two-node run reads from its node's memory-mapped token cache
READS_SCRIPT = """
import os, sys
import numpy as np
from protein_sedd.data.cache import store as token_store
from protein_sedd.cli import main

reads = []
read = token_store.TokenView.__getitem__
def counted(view, i):
    reads.append(int(view.indices[i]))
    return read(view, i)
token_store.TokenView.__getitem__ = counted
code = main(sys.argv[1:])
np.save(os.path.join(os.environ["READS_DIR"], f"rank{os.environ['RANK']}.npy"), np.array(reads))
sys.exit(code)
"""


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_each_read_only_their_share_of_the_token_cache(tmp_path, monkeypatch):
    """`torchrun --nnodes 2` (two single-rank "nodes" on this machine, gloo, a token cache each): every rank
    reads its own half of each global batch and nothing else, and the ranks end with the same weights."""
    import os
    import subprocess
    import sys

    from protein_sedd.data.batches import epoch_order
    from protein_sedd.data.prepare import prepare_splits

    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=400, seed=1)
    script, reads, dumps = tmp_path / "reads.py", tmp_path / "reads", tmp_path / "weights"
    script.write_text(READS_SCRIPT)
    reads.mkdir()
    dumps.mkdir()
    steps, batch, port = 4, 8, _free_port()
    train = [*_quick_args(fasta, tmp_path / "run", steps), "data.split=id_hash"]  # no dedupe: draws repeat
    processes, hook_env = [], _rank_weights_env(tmp_path, dumps)
    for node in range(2):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "READS_DIR": str(reads)}
        env.update(hook_env)
        env["XDG_CACHE_HOME"] = str(tmp_path / f"node{node}-cache")  # not shared: each node builds its own
        launch = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1"]
        launch += ["--node-rank", str(node), "--master-addr", "127.0.0.1", "--master-port", str(port)]
        processes.append(subprocess.Popen([*launch, str(script), *map(str, train)], env=env))
    assert [p.wait(timeout=300) for p in processes] == [0, 0]

    rank0, rank1 = np.load(reads / "rank0.npy"), np.load(reads / "rank1.npy")
    assert len(rank0) == len(rank1) == steps * batch
    assert not set(rank0.tolist()) & set(rank1.tolist())
    # the known answer: global batch k is the next 2 x 8 of the epoch's order; rank r reads its r-th half
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "node0-cache"))
    config = OmegaConf.load(tmp_path / "run" / "config.yaml")
    train_split = prepare_splits(config.data, int(config.model.max_length)).splits.train
    order = train_split.indices[epoch_order(len(train_split), int(config.seed), 0).numpy()]
    halves = order[: steps * 2 * batch].reshape(steps, 2, batch)
    assert np.array_equal(rank0, halves[:, 0].reshape(-1)) and np.array_equal(rank1, halves[:, 1].reshape(-1))
    assert len(list((tmp_path / "node1-cache" / "protein-sedd" / "tokens").glob("*-v1"))) == 1

    first, second = load_file(dumps / "rank0.safetensors"), load_file(dumps / "rank1.safetensors")
    assert all(torch.equal(first[k], second[k]) for k in first)
    splits = json.loads((tmp_path / "run" / "splits.json").read_text())
    assert splits["split"] == "id_hash" and "train" not in splits  # no id lists under id_hash
    assert splits["n_train"] + splits["n_valid"] + splits["n_test"] == 400
