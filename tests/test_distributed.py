"""Data-parallel training on the CPU: two gloo ranks through `protein-sedd train --devices 2`."""

import torch
from safetensors.torch import load_file

from .conftest import run_cli, write_synthetic_fasta
from .test_train import _quick_args


def test_two_ranks_hold_identical_weights_and_write_one_checkpoint(tmp_path, monkeypatch):
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=200)
    dumps = tmp_path / "ranks"
    dumps.mkdir()
    monkeypatch.setenv("PROTEIN_SEDD_RANK_WEIGHTS", str(dumps))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run = tmp_path / "ddp"
    code, _, _ = run_cli([*_quick_args(fasta, run, 4), "--devices", "2"])
    assert code == 0
    rank0, rank1 = load_file(dumps / "rank0.safetensors"), load_file(dumps / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    # training moved the weights away from their initialisation on both ranks alike
    assert torch.count_nonzero(rank0["final.linear.weight"]) > 0
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoint",
        "config.yaml",
        "loss_curve.png",
        "metrics.csv",
        "splits.json",
    ]
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
