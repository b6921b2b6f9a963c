"""Errors speak the caller's language: the same mistake names the Python parameter from the API and the
flag from the command line (library code raises `UserError(field=...)`; cli.py maps fields to flags)."""

import pytest

import protein_sedd
from protein_sedd.cli import flag
from protein_sedd.errors import UserError

from .conftest import run_cli, write_synthetic_fasta

# (API keywords, the message from Python, the command's flags, the message from the shell)
MISTAKES = [
    (
        {"length": 5, "length_range": "1:9"},
        "give one of length or length_range, not both",
        ["--length", 5, "--length-range", "1:9"],
        "give one of --length or --length-range, not both",
    ),
    (
        {"batch_size": 0},
        "batch_size 0: must be in 1..65_536",
        ["--batch-size", 0],
        "--batch-size 0: must be in",
    ),
    ({"top_p": 1.5}, "top_p 1.5: must be in (0, 1]", ["--top-p", 1.5], "--top-p 1.5: must be in (0, 1]"),
    (
        {"sampler": "fast"},
        "sampler 'fast': choose events or steps",
        ["--sampler", "fast"],
        "--sampler 'fast'",
    ),
    (
        {"redesign": "3-4"},
        "redesign needs fix SEQ.fasta",
        ["--redesign", "3-4"],
        "--redesign needs --fix SEQ.fasta",
    ),
    ({"template": "MKV"}, "template has no '_'", ["--template", "MKV"], "--template has no '_'"),
    (
        {"precision": "half"},
        "precision 'half': choose auto (bf16 where the device computes it natively), bf16 or fp32",
        ["--precision", "half"],
        "--precision 'half': choose auto",
    ),
    (
        {"target": 1},
        "target 1: a target needs a guide (guide)",
        ["--target", 1],
        "--target 1: a target needs a guide (--guide)",
    ),
]


@pytest.fixture(scope="module")
def model():
    return protein_sedd.load("acyp-tiny", "cpu")


@pytest.mark.parametrize("keywords, python, flags, shell", MISTAKES, ids=[m[0].__repr__() for m in MISTAKES])
def test_one_mistake_in_two_languages(model, tmp_path, capsys, keywords, python, flags, shell):
    with pytest.raises(UserError) as error:
        model.design(2, steps=2, progress=False, **keywords)
    assert str(error.value).startswith(python), str(error.value)
    assert "--" not in str(error.value)
    assert error.value.field in keywords
    out = tmp_path / "designs.fasta"
    code, _, err = run_cli(
        ["design", "--n", 2, "--steps", 2, "--out", out, "--device", "cpu", *flags], capsys
    )
    assert code == 2
    assert err.startswith(f"error: {shell}"), err
    assert err.count("\n") == 1 and not out.exists()


def test_fields_map_to_flags_and_other_braces_stay():
    assert flag("batch_size") == "--batch-size" and flag("mutants") == "--variants"
    assert flag("source") == "--checkpoint"  # load(source) is the commands' --checkpoint
    err = UserError("{n} {3}: see {'a': 1} and {other}", field="n")
    assert str(err) == "n {3}: see {'a': 1} and {other}"
    assert err.message(flag) == "--n {3}: see {'a': 1} and {other}"
    assert UserError("plain {n}").message(flag) == "plain {n}"  # no field: the text as written


# -- training from Python: protein_sedd.train is the command's run, and its mistakes name parameters --------
TRAIN_MISTAKES = [
    ({"resume": True}, "resume needs out RUN_DIR (the run to continue)"),
    ({"resume": True, "overwrite": True, "out": "r"}, "resume continues the run in out and overwrite starts"),
    ({"overrides": "model=small"}, "overrides: give a list of Hydra overrides"),
    ({"max_steps": 0}, "max_steps 0: must be in 1.."),
    ({"dataset": "nope"}, "dataset 'nope': unknown dataset; known: acyp (or pass fasta PATH)"),
    ({"resume": "yes", "out": "r"}, "resume 'yes': must be True or False"),
    ({"device": 0}, "device: expected 'auto', 'cpu' or 'cuda', got int"),
]


@pytest.mark.parametrize("keywords, message", TRAIN_MISTAKES, ids=[repr(k) for k, _ in TRAIN_MISTAKES])
def test_train_mistakes_name_the_parameter(tmp_path, monkeypatch, keywords, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as error:
        protein_sedd.train(**keywords)
    assert str(error.value).startswith(message), str(error.value)
    assert "--" not in str(error.value) and not list(tmp_path.iterdir())  # nothing written


def test_a_refused_output_folder_names_the_parameter_or_the_flag(tmp_path, capsys):
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=200)
    taken = tmp_path / "mine"
    taken.mkdir()
    (taken / "notes.txt").write_text("a user's file\n")
    with pytest.raises(UserError) as error:
        protein_sedd.train(fasta, out=taken, max_steps=1, device="cpu")
    assert str(error.value).startswith(f"out {taken}: folder is not empty and holds no train output")
    assert "pass overwrite to write train's files" in str(error.value) and "--" not in str(error.value)
    code, _, err = run_cli(["train", "--fasta", fasta, "--out", taken, "--max-steps", 1], capsys)
    assert code == 2 and err.startswith(f"error: --out {taken}: folder is not empty")
    assert "pass --overwrite to write train's files" in err
    assert sorted(p.name for p in taken.iterdir()) == ["notes.txt"]


def test_training_from_python_is_the_commands_run(tmp_path, capsys):
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=300)
    settings = ["trainer.batch_size=16", "trainer.val_sequences=8", "trainer.val_t_samples=1"]
    model = protein_sedd.train(fasta, overrides=settings, out=tmp_path / "py", max_steps=3, device="cpu")
    assert isinstance(model, protein_sedd.ProteinSEDD) and model.config.step == 3
    assert model.path == tmp_path / "py" / "checkpoint"
    args = ["train", "--fasta", fasta, "--out", tmp_path / "cli", "--max-steps", 3, "--device", "cpu"]
    assert run_cli([*args, *settings], capsys)[0] == 0
    for name in ("checkpoint/model.safetensors", "splits.json"):
        assert (tmp_path / "py" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name
    resumed = protein_sedd.train(out=tmp_path / "py", resume=True, max_steps=5, device="cpu")
    assert resumed.config.step == 5


# Wrong types from Python: each one line naming the parameter, before any work (no folder left behind)
TYPE_MISTAKES = [
    (
        lambda m, d: protein_sedd.load(123),
        "source: expected a bundled name, a folder (str or Path) or a Hub id, got int",
    ),
    (
        lambda m, d: protein_sedd.load("acyp-tiny", "cpu", revision=5),
        "revision: expected a branch, tag or commit (str), got int",
    ),
    (lambda m, d: protein_sedd.load_guide(123), "folder: expected a guide folder (str or Path), got int"),
    (lambda m, d: protein_sedd.load_guide(None), "folder: give the folder train-guide wrote"),
    (lambda m, d: m.score(["MKVL"], seed=2**70), "seed 1180591620717411303424: must be in 0..4_294_967_295"),
    (lambda m, d: m.score(["MKVL"], seed=1.5), "seed 1.5: must be a whole number in 0..4_294_967_295"),
    (lambda m, d: m.save_pretrained(123), "folder: expected a folder (str or Path), got int"),
    (
        lambda m, d: m.save_pretrained(d / "saved", provenance=["a"]),
        "provenance: expected a dict of JSON values, got list",
    ),
    (
        lambda m, d: m.save_pretrained(d / "saved", provenance={"x": object()}),
        "provenance: Object of type object is not JSON serializable; give text, numbers, lists and dicts",
    ),
    (lambda m, d: m.save_pretrained(d / "saved", provenance={1: "a"}), "provenance: keys must be text"),
    (
        lambda m, d: m.score_variants("MKVL", None),
        "mutants: give a list of mutants such as ['A23V'], or a DataFrame",
    ),
    (lambda m, d: m.score_variants("MKVL", 5), "mutants: expected a list of mutants or a DataFrame, got int"),
    (lambda m, d: m.design(2, steps=2, progress="x"), "progress 'x': must be True or False"),
    (lambda m, d: m.design(2, steps=2, precision=None, progress=False), "precision None: choose auto"),
]


@pytest.mark.parametrize("call, message", TYPE_MISTAKES, ids=[m for _, m in TYPE_MISTAKES])
def test_wrong_types_from_python_are_one_user_error(model, tmp_path, call, message):
    with pytest.raises(UserError) as error:
        call(model, tmp_path)
    assert str(error.value).startswith(message), str(error.value)
    assert "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []  # nothing written, not even an empty folder
