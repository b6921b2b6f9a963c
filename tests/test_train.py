"""The train and evaluate commands end to end: known entropy, checkpoints, resume, user mistakes."""

import json
import pickle
import random
import shutil

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from protein_sedd.data.alphabet import ALPHABET

from .conftest import SYNTHETIC_ENTROPY, SYNTHETIC_SEQUENCES, run_cli, write_synthetic_fasta


@pytest.mark.slow
def test_elbo_reaches_the_known_entropy(synthetic_run, tmp_path, capsys):
    out = tmp_path / "eval.json"
    code, _, err = run_cli(
        ["evaluate", "--checkpoint", synthetic_run, "--split", "test", "--json", out], capsys
    )
    assert code == 0, err
    report = json.loads(out.read_text())
    assert report["n_sequences"] == 400 and report["n_residues"] == 400 * 8
    # an upper bound on -log p: within 10% of the entropy (and not far below it, which would be a bug)
    assert SYNTHETIC_ENTROPY * 0.97 <= report["nats_per_sequence"] <= SYNTHETIC_ENTROPY * 1.10
    assert report["bits_per_residue"] == pytest.approx(
        report["nats_per_sequence"] / 8 / 0.6931471805599453, rel=1e-4
    )
    assert {"perplexity_bound", "length_nats_per_sequence"} <= report.keys()


@pytest.mark.slow
def test_checkpoint_directory_contents(synthetic_run):
    checkpoint = synthetic_run / "checkpoint"
    config = OmegaConf.load(checkpoint / "config.yaml")
    assert config.alphabet.tokens == ALPHABET.tokens and config.alphabet.mask_index == 22
    assert config.step == 400 and config.model.name == "tiny"
    histogram = {int(k): int(v) for k, v in config.lengths.histogram}
    assert list(histogram) == [8] and histogram[8] == config.dataset.n_train
    weights = load_file(checkpoint / "model.safetensors")
    assert "embedding.weight" in weights and weights["embedding.weight"].shape == (23, 128)
    state = torch.load(checkpoint / "trainer_state.pt", weights_only=True)
    assert state["step"] == 400 and {"model", "ema", "optimizer", "batches", "generator"} <= state.keys()
    # the EMA weights are what is shipped, and they differ from the raw weights
    assert torch.equal(weights["embedding.weight"], state["ema"]["embedding.weight"])
    assert not torch.equal(weights["embedding.weight"], state["model"]["embedding.weight"])
    rows = (synthetic_run / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,train_loss,lr,grad_norm,tokens_per_s,valid_nats_per_sequence")
    train_rows = [r.split(",") for r in rows[1:] if r.split(",")[1]]
    assert [int(r[0]) for r in train_rows] == list(range(20, 401, 20))
    assert float(train_rows[-1][1]) < float(train_rows[0][1])
    assert (synthetic_run / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    splits = json.loads((synthetic_run / "splits.json").read_text())
    assert len(splits["train"]) + len(splits["valid"]) + len(splits["test"]) == 4000
    assert not set(splits["train"]) & set(splits["test"])


def _quick_args(fasta, out, steps):
    return [
        "train",
        "--fasta",
        fasta,
        "--out",
        out,
        "--max-steps",
        steps,
        "--device",
        "cpu",
        "model.n_layers=1",
        "model.hidden_size=32",
        "model.n_heads=2",
        "model.cond_dim=16",
        "data.dedupe=false",
        "trainer.batch_size=8",
        "trainer.warmup_steps=2",
        "trainer.log_every=1",
        "trainer.val_every=2",
        "trainer.val_sequences=4",
        "trainer.checkpoint_every=3",
    ]


def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(tmp_path):
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=200)
    assert run_cli(_quick_args(fasta, tmp_path / "whole", 6))[0] == 0
    assert run_cli(_quick_args(fasta, tmp_path / "split", 3))[0] == 0
    assert run_cli(["train", "--out", tmp_path / "split", "--resume", "--max-steps", "6"])[0] == 0
    whole = load_file(tmp_path / "whole" / "checkpoint" / "model.safetensors")
    split = load_file(tmp_path / "split" / "checkpoint" / "model.safetensors")
    assert whole.keys() == split.keys()
    for name in whole:
        assert torch.equal(whole[name], split[name]), name

    # the training log continues without gaps or repeats (the resumed leg also validated at its last step)
    def train_rows(run):
        rows = [line.split(",") for line in (tmp_path / run / "metrics.csv").read_text().splitlines()[1:]]
        return [(r[0], r[1]) for r in rows if r[1]]

    assert train_rows("split") == train_rows("whole")


@pytest.mark.parametrize(
    "overrides",
    [
        ["graph=uniform", "noise=geometric", "model.time_conditioning=true"],
        ["model.time_conditioning=true"],
    ],
)
def test_other_graphs_and_parametrisations_train_and_evaluate(tmp_path, overrides, capsys):
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=200)
    assert run_cli(_quick_args(fasta, tmp_path / "run", 4) + overrides)[0] == 0
    out = tmp_path / "e.json"
    code, _, err = run_cli(
        ["evaluate", "--checkpoint", tmp_path / "run", "--split", "test", "--t-samples", "4", "--json", out],
        capsys,
    )
    assert code == 0, err
    report = json.loads(out.read_text())
    assert 0 < report["nats_per_sequence"] < 8 * 3.5  # finite, and not absurd for 8 residues of 21 letters


def _fails(capsys, args, *words, code=2):
    capsys.readouterr()  # drop what earlier set-up commands printed
    rc, out, err = run_cli(args, capsys)
    assert rc == code, (rc, out, err)
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word in lines[0], lines[0]
    assert "Traceback" not in err + out
    return lines[0]


def test_the_log_counts_the_records_dropped_by_length_and_as_duplicates(tmp_path, capsys):
    rng = random.Random(1)
    distinct = ["".join(rng.choice("ACDEFGHIKLMNPQRSTVWY") for _ in range(30)) for _ in range(8)]
    records = [*distinct, distinct[0], distinct[1], "M" * 200, "W" * 129, "G" * 128]
    fasta = tmp_path / "mixed.fa"
    fasta.write_text("".join(f">r{i}\n{s}\n" for i, s in enumerate(records)))
    args = ["train", "--fasta", fasta, "--out", tmp_path / "run", "--max-steps", "1", "--device", "cpu"]
    code, _, err = run_cli([*args, "model=tiny", "model.max_length=128", "trainer.batch_size=2"], capsys)
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("data: ")]
    assert lines == [  # fragments: records shorter than half the median length (30), none here
        "data: fasta, 13 records, 2 outside lengths 15-128 dropped (model.max_length=128), "
        "2 duplicates dropped; 0 fragments (shorter than 0.5 x the median length 30) dropped; unweighted"
    ]


def test_train_user_mistakes(tmp_path, capsys):
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=100)
    out = tmp_path / "run"
    _fails(capsys, ["train", "--fasta", fasta, "--out", out, "trainer.nope=1"], "trainer.nope")
    _fails(capsys, ["train", "--fasta", fasta, "--out", out, "model=huge"], "model/huge", "tiny")
    _fails(capsys, ["train", "--fasta", fasta, "--out", out, "--max-steps", "0"], "--max-steps")
    _fails(capsys, ["train", "--fasta", fasta, "--out", out, "--device", "tpu"], "--device 'tpu'")
    _fails(capsys, ["train", "--fasta", fasta, "--out", out, "--max-steps", "x"], "--max-steps")
    _fails(capsys, ["train", "--fasta", tmp_path / "missing.fa", "--out", out], "missing.fa", "no such file")
    _fails(capsys, ["train", "--dataset", "pfam", "--out", out], "pfam", "acyp")
    _fails(capsys, ["train", "--fasta", fasta, "--out", out, "graph=uniform"], "time_conditioning=true")
    _fails(capsys, ["train", "--fasta", fasta, "--out", out, "trainer.lr=-1"], "trainer.lr")
    bad = tmp_path / "bad.fa"
    bad.write_text(">ok\nMKV\n>seq7\nMKVLAGHEAWT1QR\n")
    _fails(capsys, ["train", "--fasta", bad, "--out", out], "record 'seq7'", "'1' at position 12")
    _fails(capsys, ["train", "--out", out, "--resume"], "config.yaml not found", "run directory")
    assert not out.exists()  # nothing was half-written


def test_an_existing_run_is_never_overwritten(tmp_path, capsys):
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=100)
    out = tmp_path / "run"
    assert run_cli(_quick_args(fasta, out, 2))[0] == 0
    before = (out / "checkpoint" / "model.safetensors").read_bytes()
    _fails(capsys, _quick_args(fasta, out, 2), "already holds a run", "--resume")
    _fails(capsys, ["train", "--out", out, "--resume", "model=small"], "key=value overrides only")
    _fails(capsys, ["train", "--out", out, "--resume", "trainer.nope=1"], "nope")
    assert (out / "checkpoint" / "model.safetensors").read_bytes() == before


class _WritesAFile:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_malicious_trainer_state_is_refused(tmp_path, capsys):
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=100)
    out = tmp_path / "run"
    assert run_cli(_quick_args(fasta, out, 2))[0] == 0
    witness = tmp_path / "pwned"
    with open(out / "checkpoint" / "trainer_state.pt", "wb") as handle:
        pickle.dump({"step": _WritesAFile(str(witness))}, handle, protocol=2)
    _fails(capsys, ["train", "--out", out, "--resume", "--max-steps", "4"], "trainer_state.pt", "refused")
    assert not witness.exists()


def test_weights_that_do_not_match_the_config_are_refused(tmp_path, capsys):
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=100)
    out = tmp_path / "run"
    assert run_cli(_quick_args(fasta, out, 2))[0] == 0
    config_path = out / "checkpoint" / "config.yaml"
    config = OmegaConf.load(config_path)
    config.model.hidden_size = 64
    OmegaConf.save(config, config_path)
    _fails(capsys, ["evaluate", "--checkpoint", out, "--split", "test"], "do not match config.yaml", "shape")


def test_evaluate_user_mistakes(tmp_path, capsys, quick_run):
    _fails(capsys, ["evaluate", "--checkpoint", tmp_path / "nope", "--split", "test"], "no such checkpoint")
    _fails(capsys, ["evaluate", "--checkpoint", tmp_path, "--split", "test"], "not a protein-sedd checkpoint")
    _fails(capsys, ["evaluate", "--checkpoint", quick_run, "--split", "dev"], "--split 'dev'")
    _fails(capsys, ["evaluate", "--checkpoint", quick_run, "--t-samples", "0"], "--t-samples")
    _fails(
        capsys,
        ["evaluate", "--checkpoint", quick_run, "--json", tmp_path / "no" / "x.json"],
        "does not exist",
    )
    long = tmp_path / "long.fa"
    long.write_text(">fine\nMKV\n>huge\n" + "A" * 129 + "\n")
    _fails(capsys, ["evaluate", "--checkpoint", quick_run, "--fasta", long], "'huge'", "129 residues", "128")


@pytest.mark.slow
def test_evaluate_a_fasta_file(synthetic_run, tmp_path, capsys):
    fasta = tmp_path / "two.fa"
    fasta.write_text(f">likely\n{SYNTHETIC_SEQUENCES[0]}\n>unlikely\n{SYNTHETIC_SEQUENCES[-1]}\n")
    out = tmp_path / "e.json"
    assert (
        run_cli(["evaluate", "--checkpoint", synthetic_run, "--fasta", fasta, "--json", out], capsys)[0] == 0
    )
    per_sequence = {row["id"]: row["nats"] for row in json.loads(out.read_text())["per_sequence"]}
    # p = 0.3 vs 0.02: the bound must rank them, near -log 0.3 = 1.2 and -log 0.02 = 3.9
    assert per_sequence["likely"] < per_sequence["unlikely"]
    assert per_sequence["likely"] == pytest.approx(1.20, abs=0.3)
    assert per_sequence["unlikely"] == pytest.approx(3.91, abs=0.8)


def test_help_describes_every_command_with_defaults(capsys):
    for command in ["train", "evaluate"]:
        code, out, _ = run_cli([command, "--help"], capsys)
        assert code == 0
        assert "[default:" in out and "--device" in out
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0 and "train" in out and "evaluate" in out


def test_run_dir_can_be_copied_and_evaluated_elsewhere(quick_run, tmp_path, capsys):
    copy = tmp_path / "moved"
    shutil.copytree(quick_run / "checkpoint", copy)
    code, _, err = run_cli(["evaluate", "--checkpoint", copy, "--split", "test", "--t-samples", "2"], capsys)
    assert code == 0, err
