"""Errors speak the caller's language: the same mistake names the Python parameter from the API and the
flag from the command line (library code raises `UserError(field=...)`; cli.py maps fields to flags)."""

import pytest

import protein_sedd
from protein_sedd.cli import flag
from protein_sedd.errors import UserError

from .conftest import run_cli

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
