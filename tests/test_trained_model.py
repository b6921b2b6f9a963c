"""One loaded model (model/trained.py) and its representation adapter (data/representation.py): the API's
evaluate is the command's, the adapters answer each question by known values, mistakes name the parameter."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import protein_sedd
from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.data.focus_columns import FocusMapping
from protein_sedd.data.representation import REPRESENTATIONS, FocusColumns, Sequences, representation_for
from protein_sedd.errors import UserError
from protein_sedd.io.fasta import FastaRecord
from protein_sedd.model.trained import TrainedModel

from .conftest import run_cli

SEQUENCES = ["MSTLKRVRFTVSGRVQGVFFRAFTAQEAKKLG", "MKVLAAGIVGAVLLAMKVLAEEGHKLPW", "GSGSGSGSGS"]


@pytest.fixture(scope="module")
def model():
    return protein_sedd.load("acyp-tiny", "cpu")


def test_the_api_is_a_trained_model_built_once(model):
    assert isinstance(model, TrainedModel)
    assert model.graph.name == model.config.graph.name == "absorbing"
    assert isinstance(model.representation, Sequences) and model.focus is None
    assert model.length_prior is model.length_prior  # built once
    assert model.max_length == int(model.config.model.max_length)


def test_evaluate_from_python_equals_the_command(model, tmp_path, capsys):
    fasta = tmp_path / "s.fa"
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(SEQUENCES)))
    out = tmp_path / "e.json"
    args = ["evaluate", "--checkpoint", "acyp-tiny", "--fasta", fasta, "--t-samples", "3", "--seed", "4"]
    code, _, err = run_cli([*args, "--batch-size", "2", "--json", out, "--device", "cpu"], capsys)
    assert code == 0, err
    command = json.loads(out.read_text())
    report = model.evaluate(fasta, t_samples=3, seed=4, batch_size=2)
    assert json.loads(json.dumps(report)) == command  # the same numbers, the same keys

    listed = model.evaluate([FastaRecord(f"s{i}", "", s) for i, s in enumerate(SEQUENCES)], t_samples=3,
                            seed=4, batch_size=2)  # fmt: skip
    assert listed["source"] == "sequences" and listed["per_sequence"] == report["per_sequence"]
    nats = [row["nats"] for row in report["per_sequence"]]
    residues = sum(map(len, SEQUENCES))
    assert report["nats_per_sequence"] == pytest.approx(sum(nats) / 3, rel=1e-12)
    assert report["bits_per_residue"] == pytest.approx(sum(nats) / residues / math.log(2), rel=1e-12)
    scored = model.score(SEQUENCES, t_samples=3, seed=4, batch_size=2)
    assert scored["nats"].tolist() == pytest.approx(nats, rel=1e-12)  # the estimator `score` uses


@pytest.mark.parametrize(
    "call, message",
    [
        (
            dict(sequences=SEQUENCES, dataset="acyp"),
            "give one of dataset NAME (with split) or sequences PATH",
        ),
        (dict(split="dev"), "split 'dev': choose train, valid or test"),
        (dict(sequences="MKV"), "sequences: give a FASTA file as a Path, or a list of sequences"),
        (dict(dataset=3), "dataset: expected a dataset name, got int"),
        (dict(sequences=SEQUENCES, t_samples=0), "t_samples 0: must be in 1.."),
        (dict(sequences=5), "give a list of sequences, not int"),
        (
            dict(dataset="fasta"),
            "dataset fasta: this checkpoint was not trained on a FASTA file; use sequences",
        ),
    ],
)
def test_evaluate_mistakes_name_the_parameter(model, call, message):
    sequences = call.pop("sequences", None)
    with pytest.raises(UserError) as caught:
        model.evaluate(sequences, **call)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_the_command_names_its_flags_for_the_same_mistakes(tmp_path, capsys):
    fasta = tmp_path / "s.fa"
    fasta.write_text(f">a\n{SEQUENCES[0]}\n")
    code, _, err = run_cli(
        ["evaluate", "--checkpoint", "acyp-tiny", "--dataset", "acyp", "--fasta", fasta], capsys
    )
    assert code == 2
    assert err.strip() == "error: give one of --dataset NAME (with --split) or --fasta PATH, not both"
    code, _, err = run_cli(["evaluate", "--checkpoint", "acyp-tiny", "--dataset", "fasta"], capsys)
    assert (
        code == 2 and "--dataset fasta: this checkpoint was not trained on a FASTA file; use --fasta" in err
    )


# -- the representation adapters, by known values ----------------------------------------------------------
FOCUS = FocusMapping("MKVLGGSGHEWR", np.array([0, 1, 2, 3, 6, 7, 8, 9, 10, 11]))


def test_sequences_read_proteins_as_they_are():
    rows = Sequences()
    assert rows.wildtype_row("MKV", 3) == "MKV"
    with pytest.raises(
        UserError, match=r"^the wild type has 4 residues, longer than the model context \(3\)$"
    ):
        rows.wildtype_row("MKVL", 3)
    assert rows.columns((0, 5)) == (0, 5)
    assert rows.protein("MKXV") == "MKXV" and rows.row_note("MKV") == "" and rows.design_note() is None
    rows.check_rows([("s", 10_000)])  # any length is a row
    rows.check_starts(["M" * 7])


def test_focus_columns_map_the_wild_type_and_designs_onto_the_columns():
    rows = FocusColumns(FOCUS)
    assert rows.wildtype_row("MKVLGGSGHEWR", 10) == "MKVLSGHEWR"  # residues 5 and 6 have no column
    assert rows.columns((0, 6)) == (0, 4) and rows.columns((4,)) is None
    assert rows.unscored_reason == "a mutated position outside the 10 focus columns"
    assert rows.protein("MKXLSGXEWR") == "MKLSGEWR" and rows.row_note("MKXLSGXEWR") == " aligned_length=10"
    assert "row over the 10 focus columns" in rows.design_note()
    assert rows.scored_note("MKVLSGHEWR") == ", scored on its 10 focus columns"
    with pytest.raises(UserError, match=r"design 2: 9 letters, .* give no length \(or length 10\)"):
        rows.check_starts(["M" * 10, "M" * 9])
    assert rows.wildtype_row("MKVLGGSGHEWA", 10) == "MKVLSGHEWA"  # a strain placed with its differences
    with pytest.raises(UserError, match=r"the wild type: 11 residues, the focus has 12"):
        rows.wildtype_row("MKVLGGSGHEW", 10)
    from protein_sedd.evaluation.wildtype import place

    with pytest.raises(UserError, match=r"residue 12 is 'A' where the focus has 'R'"):
        place("MKVLGGSGHEWA", rows.focus_sequence)


def test_the_config_chooses_the_adapter_from_the_registry():
    assert set(REPRESENTATIONS) == {"sequence", "focus_columns"}
    plain = OmegaConf.create({"data": {"representation": "sequence"}})
    assert isinstance(representation_for(plain), Sequences)
    columns = OmegaConf.create(
        {
            "data": {"representation": "focus_columns"},
            "dataset": {"focus_sequence": "MKVLGGSGHEWR", "focus_residues": "1-4,7-12"},
        }
    )
    adapter = representation_for(columns)
    assert isinstance(adapter, FocusColumns) and adapter.focus.row == "MKVLSGHEWR"
    damaged = OmegaConf.merge(columns, {"dataset": {"focus_residues": "1-4,7-13"}})
    with pytest.raises(UserError, match=r"^run: dataset.focus_residues='1-4,7-13' reaches beyond"):
        representation_for(damaged, "run: ")


def test_a_trained_model_is_built_from_a_network_and_its_config(model):
    rebuilt = TrainedModel(model.network, model.config, Path("elsewhere"))
    tokens = [ALPHABET.encode(s) for s in SEQUENCES]
    ours, _ = rebuilt.nats(tokens, t_samples=2, batch_size=3, seed=1)
    theirs, _ = model.nats(tokens, t_samples=2, batch_size=3, seed=1)
    assert ours.tolist() == theirs.tolist()
    bound, _ = rebuilt.bound(tokens, t_samples=2, batch_size=3, seed=1)
    lengths = np.array([len(s) for s in SEQUENCES])
    length_term = -model.length_prior.log_prob(torch.tensor(lengths)).numpy()
    assert (ours.numpy() - bound.numpy()) == pytest.approx(length_term, rel=1e-6)
