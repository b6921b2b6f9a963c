"""Bounded and validated inputs: hostile configs, damaged run files, huge numbers, gzip bombs and pipes.

Each mistake ends with exit code 2 and one line naming the file or key; nothing is written or lost.
"""

import gzip
import hashlib
import os
import shutil
import threading

import pytest
import torch
from omegaconf import OmegaConf

from protein_sedd.errors import UserError
from protein_sedd.io.fasta import read_fasta, read_fasta_hashed
from protein_sedd.model.sources import bundled_checkpoint

from .conftest import run_cli, write_synthetic_fasta
from .test_train import _quick_args

LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b]\n"


def _one_line_failure(capsys, args, *expected):
    capsys.readouterr()
    code, out, err = run_cli(args, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (args, code, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, err)
    for word in expected:
        assert word in lines[0], (args, lines[0])
    assert "Traceback" not in out + err
    return lines[0]


def _edited(config: dict, key: str, value):
    """A copy of `config` with the dotted `key` set to `value` (or deleted when value is ...)."""
    config = OmegaConf.to_container(OmegaConf.create(config))
    *parents, last = key.split(".")
    node = config
    for part in parents:
        node = node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return config


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("model.hidden_size", ..., "model.hidden_size: missing"),
        ("model.n_heads", 0, "model.n_heads=0"),
        ("model.n_heads", 3, "divisible by model.n_heads"),
        ("model.hidden_size", 10**9, "model.hidden_size=1000000000"),
        ("model.dropout", 5.0, "model.dropout=5.0"),
        ("graph.name", "spiral", "graph.name='spiral'"),
        ("noise.type", "cubic", "noise.type='cubic'"),
        ("noise.eps", float("nan"), "noise.eps=nan"),
        ("model.cond_dim", "${oc.env:HOME}", "model.cond_dim is an interpolation"),
        ("lengths.histogram", [["eight", 3]], "lengths.histogram"),
        ("lengths.histogram", [[80, 3], [80, 1]], "lengths.histogram: each length may appear once"),
        ("model", ..., "model: missing section"),
    ],
)
def test_corrupt_checkpoint_configs_are_refused(key, value, expected, tmp_path, capsys):
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(bundled_checkpoint(), checkpoint)
    config = OmegaConf.to_container(OmegaConf.load(checkpoint / "config.yaml"))
    OmegaConf.save(OmegaConf.create(_edited(config, key, value)), checkpoint / "config.yaml")
    out = tmp_path / "d.fa"
    args = ["design", "--checkpoint", checkpoint, "--n", "1", "--steps", "1", "--device", "cpu", "--out", out]
    line = _one_line_failure(capsys, args, expected)
    assert line.startswith(f"error: {checkpoint / 'config.yaml'}: ")
    assert not out.exists()


def test_yaml_bombs_and_huge_configs_are_refused_before_parsing(tmp_path, capsys):
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(bundled_checkpoint(), checkpoint)
    config = checkpoint / "config.yaml"
    config.write_text(LAUGHS)
    args = ["evaluate", "--checkpoint", checkpoint, "--device", "cpu"]
    _one_line_failure(capsys, args, str(config), "anchors and aliases")
    config.write_text("model:\n" + "  # padding\n" * 500_000)
    _one_line_failure(capsys, args, str(config), "larger than 4 MiB")


def test_damaged_run_files_stop_a_resume_with_one_line(tmp_path, capsys):
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=100)
    run = tmp_path / "run"
    assert run_cli(_quick_args(fasta, run, 2))[0] == 0
    state = run / "checkpoint" / "trainer_state.pt"
    good = {name: (run / name).read_bytes() for name in ["config.yaml", "splits.json", "metrics.csv"]}
    good_state = torch.load(state, weights_only=True)
    weights = (run / "checkpoint" / "model.safetensors").read_bytes()
    resume = ["train", "--out", run, "--resume", "--max-steps", "4"]
    damages = [
        ("config.yaml", LAUGHS, "anchors and aliases"),
        ("config.yaml", good["config.yaml"].decode().replace("n_heads: 2", "n_heads: 0"), "model.n_heads=0"),
        ("splits.json", "{not json", "splits.json: unreadable"),
        ("splits.json", "[]", "splits.json: malformed"),
        ("metrics.csv", "step,train_loss\nthree,1.0\n", "metrics.csv: malformed line 2"),
    ]
    for name, text, expected in damages:
        (run / name).write_text(text)
        _one_line_failure(capsys, resume, expected)
        (run / name).write_bytes(good[name])
    for broken, expected in [
        ({**good_state, "step": "two"}, "'step' is a str"),
        ({k: v for k, v in good_state.items() if k != "optimizer"}, "'optimizer' missing"),
        ({**good_state, "batches": {"epoch": -1, "offset": 0}}, "'batches'"),
    ]:
        torch.save(broken, state)
        _one_line_failure(capsys, resume, str(state), "malformed trainer state", expected)
    assert (run / "checkpoint" / "model.safetensors").read_bytes() == weights


@pytest.mark.parametrize(
    "override, expected",
    [
        ("model.n_heads=0", "model.n_heads=0"),
        ("model.n_layers=-1", "model.n_layers=-1"),
        ("model.dropout=5", "model.dropout=5"),
        ("model.hidden_size=1000000000", "model.hidden_size"),
        ("trainer.betas=abc", "trainer.betas"),
        ("trainer.val_every=0", "trainer.val_every=0"),
        ("trainer.lr=inf", "trainer.lr=inf: must be a finite number"),
        ("trainer.grad_clip=nan", "trainer.grad_clip=nan"),
        ("seed=abc", "seed='abc'"),
        ("~model", "model: missing section"),
        ("trainer.lr=${oc.env:PROTEIN_SEDD_UNSET_VARIABLE}", "PROTEIN_SEDD_UNSET_VARIABLE"),
    ],
)
def test_bad_overrides_name_their_key(override, expected, tmp_path, capsys):
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=20)
    _one_line_failure(capsys, ["train", "--fasta", fasta, "--out", tmp_path / "run", override], expected)
    assert not (tmp_path / "run").exists()


def test_numbers_that_cannot_be_served_are_refused(tmp_path, capsys):
    designs = tmp_path / "d.fa"
    designs.write_text(">d1\nMKVLAGHE\n")
    checkpoint = bundled_checkpoint()
    design = ["design", "--out", tmp_path / "out.fa"]
    evaluate = ["evaluate", "--checkpoint", checkpoint]
    cases = [
        (design + ["--n", str(10**20)], "--n 100000000000000000000: must be in 1..10_000_000"),
        (design + ["--n", "1e20"], "Invalid value for '--n'"),  # typer refuses it already
        (design + ["--steps", str(10**10)], "--steps"),
        (design + ["--seed", str(2**63)], "--seed"),
        (design + ["--batch-size", str(10**9)], "--batch-size"),
        (evaluate + ["--t-samples", str(10**9)], "--t-samples"),
        (evaluate + ["--batch-size", str(10**9)], "--batch-size"),
        (evaluate + ["--seed", str(2**40)], "--seed"),
        (["fold-eval", designs, "--max-tokens-per-batch", str(10**12)], "--max-tokens-per-batch"),
        (["train", "--fasta", designs, "--out", tmp_path / "r", "--max-steps", str(10**10)], "--max-steps"),
    ]
    for args, expected in cases:
        _one_line_failure(capsys, args, expected)
    assert not (tmp_path / "out.fa").exists() and not (tmp_path / "r").exists()


def test_a_gzip_bomb_stops_at_the_size_limit(tmp_path, capsys, monkeypatch):
    bomb = tmp_path / "bomb.fa.gz"
    bomb.write_bytes(gzip.compress(b">big\n" + b"ACDEFGHIKL" * 2_000_000))  # 20 MB of text, 20 kB on disk
    monkeypatch.setenv("PROTEIN_SEDD_MAX_FASTA_BYTES", "1000000")
    _one_line_failure(
        capsys,
        ["train", "--fasta", bomb, "--out", tmp_path / "run"],
        str(bomb),
        "more than 1,000,000 bytes of FASTA text",
        "PROTEIN_SEDD_MAX_FASTA_BYTES",
    )
    monkeypatch.setenv("PROTEIN_SEDD_MAX_FASTA_BYTES", "lots")
    with pytest.raises(UserError, match="PROTEIN_SEDD_MAX_FASTA_BYTES='lots'"):
        read_fasta(bomb)


def test_a_named_pipe_is_read_once_and_stdin_is_refused(tmp_path, capsys):
    content = gzip.compress(b">p1\nMKVLAGHE\n>p2\nMKVLSGHE\n")
    pipe = tmp_path / "designs.fa"
    os.mkfifo(pipe)
    writer = threading.Thread(target=lambda: pipe.write_bytes(content))
    writer.start()
    records, sha256 = read_fasta_hashed(pipe)
    writer.join(timeout=10)
    assert [(r.id, r.sequence) for r in records] == [("p1", "MKVLAGHE"), ("p2", "MKVLSGHE")]
    assert sha256 == hashlib.sha256(content).hexdigest()
    _one_line_failure(
        capsys, ["evaluate", "--checkpoint", bundled_checkpoint(), "--fasta", "-"], "standard input"
    )
