"""Fine-tuning (`train --init-from`) and early stopping (`trainer.patience`), with known answers."""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

import protein_sedd
from protein_sedd.model.sources import BUNDLED_DIR
from protein_sedd.training import step as trainer_step

from .conftest import SYNTHETIC_ENTROPY, SYNTHETIC_PROBS, SYNTHETIC_SEQUENCES, run_cli, write_synthetic_fasta

# the related distribution: the same eight sequences with the probabilities reversed. Its entropy is the
# original's; a model of the original pays the cross-entropy (2.87 nats) until it is fine-tuned.
SHIFTED_PROBS = SYNTHETIC_PROBS[::-1]
CROSS_ENTROPY = -sum(q * math.log(p) for q, p in zip(SHIFTED_PROBS, SYNTHETIC_PROBS, strict=True))

SMALL = ["model.n_layers=1", "model.hidden_size=32", "model.n_heads=2", "model.cond_dim=16"]
QUICK = [
    "data.dedupe=false",
    "trainer.batch_size=8",
    "trainer.warmup_steps=2",
    "trainer.log_every=1",
    "trainer.val_sequences=4",
    "trainer.val_t_samples=1",
]


def write_shifted_fasta(path, n: int, seed: int):
    draws = random.Random(seed).choices(SYNTHETIC_SEQUENCES, SHIFTED_PROBS, k=n)
    path.write_text("".join(f">r{i}\n{s}\n" for i, s in enumerate(draws)))
    return path


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fails(capsys, args, *words):
    capsys.readouterr()
    code, out, err = run_cli(args, capsys)
    assert code == 2, (code, out, err)
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_synthetic_fasta(tmp_path_factory.mktemp("data") / "s.fa", n=200)


@pytest.fixture(scope="module")
def parent(tmp_path_factory, data):
    """A small model trained for 2 steps: a parent whose architecture differs from the default tiny one."""
    run = tmp_path_factory.mktemp("parent") / "run"
    args = ["train", "--fasta", data, "--out", run, "--max-steps", 2, "--device", "cpu", *SMALL, *QUICK]
    assert run_cli(args)[0] == 0
    return run


def _train(data, out, steps, *extra):
    args = ["train", "--fasta", data, "--out", out, "--max-steps", steps, "--device", "cpu", *QUICK, *extra]
    return run_cli(args)[0]


@pytest.mark.slow
def test_finetuning_beats_the_same_steps_from_scratch(synthetic_run, tmp_path, capsys):
    """Known answer: pre-trained on the synthetic distribution (synthetic_run, 400 steps), 30 steps on 100
    draws of the shifted one reach near its entropy (1.86 nats); 30 steps from scratch do not."""
    finetune = write_shifted_fasta(tmp_path / "finetune.fa", 100, seed=1)
    held_out = write_shifted_fasta(tmp_path / "held_out.fa", 500, seed=2)
    common = ["--fasta", finetune, "--max-steps", 30, "--device", "cpu", "data.dedupe=false",
              "data.valid_fraction=0", "data.test_fraction=0", "trainer.batch_size=100"]  # fmt: skip
    runs = {
        "finetuned": ["--init-from", synthetic_run, "trainer=finetune", "trainer.patience=0"],
        "scratch": ["trainer.warmup_steps=20"],
    }
    for name, extra in runs.items():
        assert run_cli(["train", "--out", tmp_path / name, *common, *extra])[0] == 0
    bound = {}
    for name, checkpoint in [("parent", synthetic_run), *((n, tmp_path / n) for n in runs)]:
        report = tmp_path / f"{name}.json"
        args = [
            "evaluate",
            "--checkpoint",
            checkpoint,
            "--fasta",
            held_out,
            "--t-samples",
            8,
            "--json",
            report,
        ]
        code, _, err = run_cli(args, capsys)
        assert code == 0, err
        bound[name] = json.loads(report.read_text())["nats_per_sequence"]
    print(f"held-out bound, nats/sequence (entropy {SYNTHETIC_ENTROPY:.3f}): {bound}")
    # measured: parent 2.97 (its cross-entropy is 2.87), fine-tuned 2.04, scratch 5.68
    assert bound["parent"] > CROSS_ENTROPY * 0.97
    assert bound["finetuned"] < SYNTHETIC_ENTROPY * 1.2
    assert bound["finetuned"] < bound["scratch"] - 1.5
    assert bound["finetuned"] < bound["parent"] - 0.5


def test_a_finetuning_run_starts_from_its_parent_and_records_it(parent, data, tmp_path, capsys):
    # a learning rate of 1e-12 leaves the weights where they start: the parent's (the EMA's too)
    tiny_steps = ["trainer.lr=1e-12", "trainer.warmup_steps=0"]
    code, _, err = run_cli(
        ["train", "--fasta", data, "--out", tmp_path / "ft", "--max-steps", 1, "--device", "cpu",
         "--init-from", parent, *QUICK, *tiny_steps],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    said = " ".join(err.split())  # rich wraps long lines
    assert f"fine-tuning {parent} (step 2, sha256" in said and "optimiser, step and EMA start fresh" in said
    parent_weights = parent / "checkpoint" / "model.safetensors"
    expected = {"source": str(parent), "path": str((parent / "checkpoint").resolve()),
                "sha256": sha256(parent_weights), "step": 2}  # fmt: skip
    for config_file in (tmp_path / "ft" / "config.yaml", tmp_path / "ft" / "checkpoint" / "config.yaml"):
        config = OmegaConf.load(config_file)
        assert OmegaConf.to_container(config.init_from) == expected
    # no model override was given: the architecture is the parent's (hidden size 32), not the default 128
    assert config.model == OmegaConf.load(parent / "config.yaml").model and config.model.hidden_size == 32
    assert config.step == 1
    start, weights = (
        load_file(parent_weights),
        load_file(tmp_path / "ft" / "checkpoint" / "model.safetensors"),
    )
    state = torch.load(tmp_path / "ft" / "checkpoint" / "trainer_state.pt", weights_only=True)
    assert state["step"] == 1  # the step starts fresh, at 0
    for name, tensor in start.items():
        assert torch.allclose(weights[name], tensor, atol=1e-8), name
        assert torch.allclose(state["model"][name], tensor, atol=1e-8), name
    # the same run from scratch stays at the random start, which the parent's 2 steps moved away from
    assert _train(data, tmp_path / "scratch", 1, *SMALL, *tiny_steps) == 0
    scratch = load_file(tmp_path / "scratch" / "checkpoint" / "model.safetensors")
    assert max(float((scratch[name] - tensor).abs().max()) for name, tensor in start.items()) > 1e-4


def test_init_from_bundled_and_the_saved_provenance(data, tmp_path, capsys):
    out = tmp_path / "ft"
    code, _, err = run_cli(["train", "--fasta", data, "--out", out, "--max-steps", 1, "--device", "cpu",
                            "--init-from", "bundled", *QUICK], capsys)  # fmt: skip
    assert code == 0, err
    bundled = BUNDLED_DIR / "acyp-tiny"
    record = OmegaConf.to_container(OmegaConf.load(out / "config.yaml").init_from)
    assert record == {"source": "acyp-tiny", "path": str(bundled.resolve()),
                      "sha256": sha256(bundled / "model.safetensors"), "step": 4044}  # fmt: skip
    saved = protein_sedd.load(out, device="cpu").save_pretrained(tmp_path / "saved")
    provenance = json.loads((saved / "provenance.json").read_text())
    assert provenance["init_from"] == record
    assert (
        f"fine-tuned from: acyp-tiny (step 4044, sha256 {record['sha256']})"
        in (saved / "README.md").read_text()
    )


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["model.hidden_size=64"], "model.hidden_size from the parent's 32 to 64"),
        (["model=tiny"], "model.hidden_size from the parent's 32 to 128"),
        (["model.n_layers=2"], "model.n_layers"),
        (["graph=uniform", "model.time_conditioning=true"], "graph.name"),
        (["noise=geometric"], "noise.type"),
        (["noise.eps=0.01"], "noise.eps"),
    ],
)
def test_overrides_that_change_the_architecture_are_refused(parent, data, tmp_path, capsys, overrides, key):
    out = tmp_path / "ft"
    args = ["train", "--fasta", data, "--out", out, "--init-from", parent, "--device", "cpu", *overrides]
    _fails(capsys, args, "--init-from", key, "drop the override")
    assert not out.exists()


def test_overrides_that_keep_the_architecture_are_accepted(parent, data, tmp_path):
    # restating the parent's values is no change; dropout is regularisation, not architecture
    extra = ["--init-from", parent, "model.hidden_size=32", "model.n_layers=1", "model.dropout=0.1"]
    assert _train(data, tmp_path / "ft", 1, *extra, "trainer.lr=3e-4", "data.split_seed=3") == 0
    config = OmegaConf.load(tmp_path / "ft" / "config.yaml")
    assert config.model.dropout == 0.1 and config.model.cond_dim == 16
    assert config.trainer.lr == 3e-4 and config.data.split_seed == 3
    # a dropout not given is the parent's, not the default config's 0.0
    assert _train(data, tmp_path / "grandchild", 1, "--init-from", tmp_path / "ft") == 0
    assert OmegaConf.load(tmp_path / "grandchild" / "config.yaml").model.dropout == 0.1


def test_finetuning_mistakes(parent, data, tmp_path, capsys):
    out = tmp_path / "ft"
    _fails(
        capsys,
        ["train", "--fasta", data, "--out", out, "--init-from", tmp_path / "nope"],
        "--init-from",
        "nope",
    )
    _fails(
        capsys,
        ["train", "--fasta", data, "--out", out, "--init-from", data],
        "--init-from",
        "not a directory",
    )
    _fails(
        capsys, ["train", "--out", parent, "--resume", "--init-from", parent], "--resume", "drop --init-from"
    )
    no_valid = ["--init-from", parent, "trainer=finetune", "data.valid_fraction=0"]
    _fails(
        capsys, ["train", "--fasta", data, "--out", out, *no_valid], "trainer.patience=5", "valid_fraction"
    )
    _fails(capsys, ["train", "--fasta", data, "--out", out, "trainer.patience=-1"], "trainer.patience")
    assert not out.exists()


def test_the_finetune_preset(tmp_path):
    from protein_sedd.config.compose import compose_config

    default, finetune = compose_config([]).trainer, compose_config(["trainer=finetune"]).trainer
    assert default.patience == 0 and finetune.patience > 0
    assert finetune.lr < default.lr and finetune.warmup_steps < default.warmup_steps
    assert finetune.val_every < default.val_every and finetune.batch_size == default.batch_size


def test_resuming_a_finetuning_run_is_exact_and_needs_no_parent(parent, data, tmp_path):
    own_parent = tmp_path / "parent"
    shutil.copytree(parent, own_parent)
    extra = ["--init-from", own_parent, "trainer.checkpoint_every=3", "trainer.val_every=2"]
    assert _train(data, tmp_path / "whole", 6, *extra) == 0
    assert _train(data, tmp_path / "split", 3, *extra) == 0
    shutil.rmtree(own_parent)  # the resumed run continues from its own checkpoint
    assert run_cli(["train", "--out", tmp_path / "split", "--resume", "--max-steps", "6"])[0] == 0
    whole = load_file(tmp_path / "whole" / "checkpoint" / "model.safetensors")
    split = load_file(tmp_path / "split" / "checkpoint" / "model.safetensors")
    for name in whole:
        assert torch.equal(whole[name], split[name]), name
    assert OmegaConf.load(tmp_path / "split" / "checkpoint" / "config.yaml").init_from.step == 2


# early stopping: the validation bound is replaced by a hand-made sequence of values, by step
VALID_BITS = {2: 3.0, 4: 2.5, 6: 2.6, 8: 2.4, 10: 2.45, 12: 2.5, 14: 1.0, 16: 0.9, 18: 0.8, 20: 0.7}
# with trainer.patience=2: 4 improves, 6 does not (1), 8 improves, 10 and 12 do not (2): stop at 12


@pytest.fixture
def fixed_validation(monkeypatch):
    def validate(self, progress=None):
        bits = VALID_BITS.get(self.state.step, 99.0)  # off-schedule validations (a run's last step) get 99
        return bits * 8 * math.log(2), bits

    monkeypatch.setattr(trainer_step.Run, "validate", validate)


def _metric_steps(run) -> list[int]:
    return [int(line.split(",")[0]) for line in (run / "metrics.csv").read_text().splitlines()[1:]]


def _early_stopping(run) -> dict:
    return torch.load(run / "checkpoint" / "trainer_state.pt", weights_only=True)["early_stopping"]


def test_early_stopping_stops_at_the_expected_step(fixed_validation, data, tmp_path, capsys):
    run, patience = (
        tmp_path / "run",
        ["trainer.val_every=2", "trainer.patience=2", "trainer.checkpoint_every=5"],
    )
    code, _, err = run_cli(["train", "--fasta", data, "--out", run, "--max-steps", 20, "--device", "cpu",
                            *SMALL, *QUICK, *patience], capsys)  # fmt: skip
    assert code == 0, err
    said = " ".join(err.split())  # rich wraps long lines
    assert "early stop at step 12: 2 validations without a lower bound (trainer.patience=2)" in said
    assert "best 2.4000 bits/residue at step 8" in said
    assert OmegaConf.load(run / "checkpoint" / "config.yaml").step == 12
    assert _metric_steps(run)[-1] == 12
    assert _early_stopping(run) == {"best": 2.4, "best_step": 8, "bad_checks": 2}
    # a stopped run stays stopped on --resume; a longer patience lets it go on (14 improves on 2.4)
    assert run_cli(["train", "--out", run, "--resume", "--max-steps", 20])[0] == 0
    assert OmegaConf.load(run / "checkpoint" / "config.yaml").step == 12 and _metric_steps(run)[-1] == 12
    assert run_cli(["train", "--out", run, "--resume", "--max-steps", 20, "trainer.patience=3"])[0] == 0
    assert OmegaConf.load(run / "checkpoint" / "config.yaml").step == 20
    assert _early_stopping(run) == {"best": 0.7, "best_step": 20, "bad_checks": 0}


def test_resume_keeps_the_patience_count(fixed_validation, data, tmp_path):
    """A run stopped at step 9 (whose last-step validation, 99, is not a scheduled check) and resumed
    stops where the uninterrupted run stops, with the same weights."""
    extra = [*SMALL, "trainer.val_every=2", "trainer.patience=2", "trainer.checkpoint_every=5"]
    assert _train(data, tmp_path / "whole", 20, *extra) == 0
    assert _train(data, tmp_path / "split", 9, *extra) == 0
    assert _early_stopping(tmp_path / "split") == {"best": 2.4, "best_step": 8, "bad_checks": 0}
    assert run_cli(["train", "--out", tmp_path / "split", "--resume", "--max-steps", 20])[0] == 0
    whole = load_file(tmp_path / "whole" / "checkpoint" / "model.safetensors")
    split = load_file(tmp_path / "split" / "checkpoint" / "model.safetensors")
    assert OmegaConf.load(tmp_path / "split" / "checkpoint" / "config.yaml").step == 12
    for name in whole:
        assert torch.equal(whole[name], split[name]), name


def _weights(folder) -> dict:
    return load_file(folder / "model.safetensors")


def test_best_holds_the_weights_of_the_lowest_bound(fixed_validation, data, tmp_path, capsys):
    """The run stopped at 12 (VALID_BITS, patience 2) keeps step 8's EMA weights in best/: exactly those of
    the same run trained to 8 steps; resumed with a longer patience, best/ follows the new lowest bound."""
    extra = [*SMALL, "trainer.val_every=2", "trainer.patience=2", "trainer.checkpoint_every=5"]
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "--fasta", data, "--out", run, "--max-steps", 20, "--device", "cpu",
                            *QUICK, *extra], capsys)  # fmt: skip
    assert code == 0, err
    assert f"best 2.4000 bits/residue at step 8 (its weights: {run / 'best'})" in " ".join(err.split())
    assert _train(data, tmp_path / "eight", 8, *extra) == 0
    best, eight = _weights(run / "best"), _weights(tmp_path / "eight" / "checkpoint")
    last = _weights(run / "checkpoint")
    assert best.keys() == eight.keys()
    assert all(torch.equal(best[name], eight[name]) for name in best)
    assert not all(torch.equal(best[name], last[name]) for name in best)  # step 12's are others
    recorded = OmegaConf.load(run / "best" / "config.yaml")
    assert (recorded.step, recorded.valid_bits_per_residue) == (8, 2.4)
    assert sorted(p.name for p in (run / "best").iterdir()) == ["config.yaml", "model.safetensors"]
    loaded = protein_sedd.load(run / "best", device="cpu")
    assert all(torch.equal(loaded.network.state_dict()[name], best[name]) for name in best)
    # resumed: 14 improves on 2.4 and so on to 20 (0.7); best/ follows, the trainer state agrees
    assert run_cli(["train", "--out", run, "--resume", "--max-steps", 20, "trainer.patience=3"])[0] == 0
    recorded = OmegaConf.load(run / "best" / "config.yaml")
    assert (
        (recorded.step, recorded.valid_bits_per_residue)
        == (20, 0.7)
        == tuple(_early_stopping(run)[key] for key in ("best_step", "best"))
    )
    assert all(torch.equal(_weights(run / "best")[n], _weights(run / "checkpoint")[n]) for n in best)


def test_keep_best_off_writes_no_best_folder(fixed_validation, data, tmp_path, capsys):
    extra = [*SMALL, "trainer.val_every=2", "trainer.keep_best=false"]
    assert _train(data, tmp_path / "run", 4, *extra) == 0
    assert not (tmp_path / "run" / "best").exists() and (tmp_path / "run" / "checkpoint").is_dir()
    _fails(capsys, ["train", "--fasta", data, "--out", tmp_path / "bad", "trainer.keep_best=3"], "keep_best")
    assert not (tmp_path / "bad").exists()


def test_damaged_finetuning_records_are_refused(parent, data, tmp_path, capsys):
    run = tmp_path / "ft"
    assert _train(data, run, 2, "--init-from", parent) == 0
    state_path = run / "checkpoint" / "trainer_state.pt"
    state = torch.load(state_path, weights_only=True)
    state["early_stopping"] = {"best": "low", "best_step": 0, "bad_checks": 0}
    torch.save(state, state_path)
    _fails(capsys, ["train", "--out", run, "--resume", "--max-steps", 4], "early_stopping", "'best'")
    config = OmegaConf.load(run / "config.yaml")
    config.init_from.sha256 = "not-a-hash"
    OmegaConf.save(config, run / "config.yaml")
    _fails(capsys, ["train", "--out", run, "--resume", "--max-steps", 4], "init_from.sha256")


def test_a_run_from_before_trainer_patience_and_keep_best_resumes(parent, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(parent, run)
    config = OmegaConf.load(run / "config.yaml")
    del config.trainer["patience"]
    del config.trainer["keep_best"]
    OmegaConf.save(config, run / "config.yaml")
    state = torch.load(run / "checkpoint" / "trainer_state.pt", weights_only=True)
    del state["early_stopping"]
    torch.save(state, run / "checkpoint" / "trainer_state.pt")
    assert run_cli(["train", "--out", run, "--resume", "--max-steps", 3, "trainer.val_every=3"])[0] == 0
    assert _early_stopping(run)["best_step"] == 3  # step 3 is a scheduled validation, a new best
    assert not (run / "best").exists()  # a run from before trainer.keep_best writes no best/ it did not


@pytest.mark.parametrize("damage", ["truncated", "nan", "mismatched", "pickled"])
def test_a_damaged_parent_is_refused_before_the_run_folder_is_claimed(parent, data, tmp_path, capsys, damage):
    import shutil

    from safetensors.torch import load_file, save_file

    copy = tmp_path / "parent"
    shutil.copytree(parent / "checkpoint", copy)
    weights = copy / "model.safetensors"
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:1000])
        expected = "unreadable safetensors file"
    elif damage == "pickled":
        torch.save({k: v.clone() for k, v in load_file(weights).items()}, weights)  # not memory-mapped
        expected = "unreadable safetensors file"
    else:
        tensors = {k: v.clone() for k, v in load_file(weights).items()}  # not mapped from the file rewritten
        if damage == "nan":
            tensors["embedding.weight"][0, 0] = float("nan")
            expected = "weight 'embedding.weight' holds NaN or infinite values"
        else:
            tensors["embedding.weight"] = tensors["embedding.weight"][:, :8].contiguous()
            expected = "weights do not match config.yaml: 'embedding.weight' has shape"
        save_file(tensors, str(weights))
    out = tmp_path / "ft"
    code, _, err = run_cli(["train", "--fasta", data, "--out", out, "--init-from", copy], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: --init-from: {weights}: ") and expected in err, err
    assert not out.exists()  # no config.yaml, splits.json or .protein-sedd/ left behind
