"""The Python API against known answers: CLI-equal designs, scores, embeddings, saved folders, the Hub."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import protein_sedd
from protein_sedd.errors import UserError
from protein_sedd.model.sources import bundled_checkpoint

from .conftest import REPO, acyp_available, run_cli, write_synthetic_fasta

WILD_TYPE = "MSTLKRVRFTVSGRVQGVFFRAFTAQEAKKLGLTGWVRNLPDGSVEVVAEGDE"


@pytest.fixture(scope="module")
def model():
    return protein_sedd.load("acyp-tiny", "cpu")


def test_public_names():
    assert set(protein_sedd.__all__) >= {"load", "ProteinSEDD", "Design", "Designs", "UserError"}
    assert protein_sedd.UserError is UserError


@pytest.mark.parametrize(
    "cli, api",
    [
        (["--length-range", "20:40"], {"length_range": "20:40"}),
        ([], {}),
        (["--template", "MKV____GHE__"], {"template": "MKV____GHE__"}),
        (["--fix", "{wt}", "--redesign", "5-12,30-33"], {"fix": "{wt}", "redesign": "5-12,30-33"}),
    ],
    ids=["length-range", "training-lengths", "template", "fix"],
)
def test_api_designs_equal_cli_designs(tmp_path, capsys, model, cli, api):
    wild_type = tmp_path / "wt.fasta"
    wild_type.write_text(f">wt\n{WILD_TYPE}\n")
    cli = [str(wild_type) if a == "{wt}" else a for a in cli]
    api = {k: (wild_type if v == "{wt}" else v) for k, v in api.items()}
    common = ["--n", "5", "--steps", "16", "--seed", "3", "--batch-size", "2", "--device", "cpu"]
    code, _, err = run_cli(["design", *common, *cli, "--out", tmp_path / "cli.fasta"], capsys)
    assert code == 0, err
    designs = model.design(5, steps=16, seed=3, batch_size=2, progress=False, **api)
    designs.write_fasta(tmp_path / "api.fasta")
    assert (tmp_path / "api.fasta").read_text() == (tmp_path / "cli.fasta").read_text()
    assert [d.id for d in designs] == [f"design_{i:04d}" for i in range(1, 6)]
    assert all(d.length == len(d.sequence) and d.checkpoint == "acyp-tiny" for d in designs)


def test_design_options_as_python_values(model):
    designs = model.design(3, steps=8, seed=1, lengths=[12, 30, 7], progress=False)
    assert [d.length for d in designs] == [12, 30, 7]
    fixed = model.design(4, steps=8, fix=WILD_TYPE, redesign="3-6", progress=False)
    for design in fixed:  # a sequence string as `fix`: only positions 3-6 change
        assert design.sequence[:2] == WILD_TYPE[:2] and design.sequence[6:] == WILD_TYPE[6:]
        assert design.note == " redesign=3-6 designed=4"
    with pytest.raises(UserError, match="give one per design"):
        model.design(2, lengths=[10])
    with pytest.raises(UserError, match="predictor 'heun'"):
        model.design(2, predictor="heun")
    with pytest.raises(UserError, match="n 0: must be in 1"):
        model.design(0)


def test_scores_carry_the_ids_of_designs_and_records(model):
    from Bio.Seq import Seq
    from Bio.SeqRecord import SeqRecord

    designs = model.design(2, steps=4, seed=1, length=20, progress=False)
    assert model.score(designs, t_samples=2)["id"].tolist() == ["design_0001", "design_0002"]
    records = [SeqRecord(Seq(WILD_TYPE), id="wt"), WILD_TYPE[:30]]
    frame = model.score(records, t_samples=2)
    assert frame["id"].tolist() == ["wt", "seq_2"] and frame["sequence"][0] == WILD_TYPE


def test_score_matches_evaluate_and_its_errors_shrink_with_more_draws(tmp_path, capsys, model):
    sequences = [WILD_TYPE, WILD_TYPE[::-1], "MKVLAAGIVGAVLLAMKVLAEEGHKLPW"]
    frame = model.score(sequences, t_samples=4, seed=2, batch_size=2)
    assert list(frame.columns) == [
        "id",
        "sequence",
        "length",
        "nats",
        "bits_per_residue",
        "standard_error_nats",
    ]
    assert frame["id"].tolist() == ["seq_1", "seq_2", "seq_3"]
    assert (
        frame["bits_per_residue"] * frame["length"] * 0.6931471805599453 - frame["nats"]
    ).abs().max() < 1e-9
    assert (frame["standard_error_nats"] > 0).all()

    fasta = tmp_path / "s.fa"
    fasta.write_text("".join(f">{i}\n{s}\n" for i, s in zip(frame["id"], sequences, strict=True)))
    report = tmp_path / "report.json"
    args = ["evaluate", "--checkpoint", "acyp-tiny", "--fasta", fasta, "--t-samples", "4", "--seed", "2"]
    table = tmp_path / "scores.csv"
    args += ["--batch-size", "2", "--json", report, "--csv", table, "--device", "cpu"]
    assert run_cli(args, capsys)[0] == 0
    import json

    import pandas as pd

    evaluated = {row["id"]: row["nats"] for row in json.loads(report.read_text())["per_sequence"]}
    assert frame.set_index("id")["nats"].to_dict() == pytest.approx(evaluated, abs=1e-9)
    written = pd.read_csv(table, dtype={"id": str})  # `evaluate --csv` writes the same table
    assert list(written.columns) == ["id", "length", "nats", "bits_per_residue", "standard_error_nats"]
    for column in ("length", "nats", "bits_per_residue", "standard_error_nats"):
        assert written[column].to_numpy() == pytest.approx(frame[column].to_numpy(), rel=1e-12)
    assert run_cli(args, capsys)[0] == 0  # its own earlier outputs: replaced

    more = model.score(sequences, t_samples=64, seed=2)
    assert (more["standard_error_nats"] < frame["standard_error_nats"]).all()


@pytest.mark.skipif(not acyp_available(), reason="the ACYP dataset is not in PROTEIN_SEDD_DATA")
def test_score_ranks_natural_test_sequences_above_their_shuffles(model):
    from protein_sedd.data.prepare import prepare_splits, recorded_data_config

    config = model.config
    test = prepare_splits(recorded_data_config(config), int(config.model.max_length)).splits.test[:24]
    naturals = [r.sequence for r in test]
    rng = random.Random(0)
    shuffles = ["".join(rng.sample(s, len(s))) for s in naturals]
    natural = model.score(naturals, t_samples=4)["nats"].to_numpy()
    shuffled = model.score(shuffles, t_samples=4)["nats"].to_numpy()
    assert (natural < shuffled).all()  # same composition and length: only the family's order differs
    assert (shuffled - natural).mean() > 50


def test_embeddings_have_the_stated_shapes_and_ignore_padding(model):
    short, long = "MKVLAAGIVG", WILD_TYPE
    alone = model.embed([short], pool=None)[0]
    batched = model.embed([short, long], pool=None)
    assert alone.shape == (len(short), model.config.model.hidden_size)
    assert batched[1].shape == (len(long), model.config.model.hidden_size)
    assert torch.allclose(alone, batched[0], atol=1e-5)
    pooled = model.embed([short, long])
    assert pooled.shape == (2, model.config.model.hidden_size)
    assert torch.allclose(pooled[0], alone.mean(0), atol=1e-6)
    with pytest.raises(UserError, match="pool='max'"):
        model.embed([short], pool="max")
    with pytest.raises(UserError, match="invalid residue|not a residue|unknown"):
        model.embed(["MKV1"])


def test_save_pretrained_then_load_gives_the_same_model(tmp_path, model):
    folder = model.save_pretrained(tmp_path / "my-model")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "config.yaml", "model.safetensors", "provenance.json"
    ]  # fmt: skip
    before, after = (
        load_file(bundled_checkpoint() / "model.safetensors"),
        load_file(folder / "model.safetensors"),
    )
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: protein-sedd\n") and "sha256 9ebd5dfc" in card
    assert "held-out bound: 2.2291 bits per residue" in card
    again = protein_sedd.load(folder, "cpu")
    assert again.name == "my-model"
    first = model.design(4, steps=8, seed=5, progress=False)
    second = again.design(4, steps=8, seed=5, progress=False)
    assert [d.sequence for d in first] == [d.sequence for d in second]
    model.save_pretrained(folder)  # an earlier saved model: replaced without asking

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not a saved protein-sedd model"):
        model.save_pretrained(busy)
    model.save_pretrained(busy, overwrite=True)
    assert (busy / "notes.txt").read_text() == "mine"
    with pytest.raises(UserError, match="inside the checkpoint"):
        model.save_pretrained(bundled_checkpoint() / "copy")
    with pytest.raises(UserError, match="own folder"):
        model.save_pretrained(bundled_checkpoint())


def test_the_bundled_model_is_a_saved_model_folder():
    from protein_sedd.model.hub import is_saved_model

    assert is_saved_model(bundled_checkpoint())


def test_a_hub_id_offline_with_nothing_cached_names_the_fix(tmp_path, monkeypatch):
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as caught:
        protein_sedd.load("someone/acyp-sedd", "cpu")
    message = str(caught.value)
    assert message.startswith("someone/acyp-sedd: ") and "hf download someone/acyp-sedd" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "source, reason",
    [
        ("some--user/repo", "Cannot have -- or .. in repo_id"),
        ("nouser/..", "Repo id must use alphanumeric chars"),
        ("u/" + "a" * 200, "Repo id must use alphanumeric chars"),  # the Hub's 96-character limit
    ],
)
def test_an_id_of_hub_shape_the_hub_refuses_is_one_line(tmp_path, monkeypatch, capsys, source, reason):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    start = f"{source}: no local folder of that name, and not a valid Hub model id ({reason}"
    with pytest.raises(UserError) as caught:
        protein_sedd.load(source, "cpu")
    assert str(caught.value).startswith(start) and "\n" not in str(caught.value)
    write_synthetic_fasta(tmp_path / "x.fa")
    for args, prefix in (
        (["design", "--checkpoint", source, "--n", 2], ""),
        (["train", "--fasta", "x.fa", "--init-from", source], "--init-from: "),
    ):
        code, _, err = run_cli(args, capsys)
        assert code == 2 and err.startswith(f"error: {prefix}{start}") and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.fa"]  # no run folder claimed


def test_a_hub_id_loads_from_the_hub_cache(tmp_path, monkeypatch, model):
    import huggingface_hub

    snapshot = tmp_path / "models--someone--acyp-sedd" / "snapshots" / "0123abcd"
    model.save_pretrained(snapshot)
    asked = []

    def cached_snapshot(repo_id, revision=None, allow_patterns=None):
        asked.append((repo_id, revision))
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", cached_snapshot)
    monkeypatch.chdir(tmp_path)
    loaded = protein_sedd.load("someone/acyp-sedd", "cpu", revision="v1")
    assert asked == [("someone/acyp-sedd", "v1")]
    assert loaded.name == "someone/acyp-sedd"
    assert loaded.design(2, steps=4, progress=False)[0].checkpoint == "someone/acyp-sedd"


def test_the_readme_python_block_runs(tmp_path, monkeypatch):
    """The README's Python section, executed as written: it can never drift from the API."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert Path("designs.fasta").read_text().count(">design_") == 10
    assert (Path("my-model") / "README.md").is_file()


def test_the_autoregressive_baseline_refuses_to_design():
    ar = protein_sedd.load("acyp-tiny", "cpu")
    ar.config.model.causal = True  # what a model=ar checkpoint's config says
    with pytest.raises(UserError, match=r"autoregressive baseline \(model=ar\) cannot design"):
        ar.design(2, steps=4, progress=False)
