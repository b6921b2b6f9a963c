"""The model shipped inside the package: it loads, its record parses, and `design` uses it by default."""

import json

import pytest
from omegaconf import OmegaConf
from safetensors.torch import load_file

from protein_sedd.errors import UserError
from protein_sedd.io.fasta import read_fasta
from protein_sedd.model.sources import bundled_checkpoint, load_checkpoint

from .conftest import run_cli


def test_bundled_checkpoint_record_and_weights():
    path = bundled_checkpoint()
    config = OmegaConf.load(path / "config.yaml")
    weights = load_file(path / "model.safetensors")
    assert weights["embedding.weight"].shape == (23, config.model.hidden_size)
    assert (path / "model.safetensors").stat().st_size <= 20 * 1024 * 1024
    provenance = json.loads((path / "provenance.json").read_text())
    assert provenance["data"]["sha256"] == config.dataset.sha256
    assert provenance["steps"] == config.step > 0
    assert provenance["command"].startswith("protein-sedd train")
    test = next(e for e in provenance["evaluations"] if e["source"] == "acyp:test")
    assert 0 < test["bits_per_residue"] < 4.39  # better than uniform over 21 letters
    checkpoint = load_checkpoint(path)
    assert checkpoint.model.num_parameters() == provenance["parameters"]


def test_design_without_checkpoint_uses_the_bundled_model(tmp_path, capsys):
    out = tmp_path / "designs.fasta"
    code, _, err = run_cli(["design", "--n", "4", "--steps", "16", "--out", out, "--device", "cpu"], capsys)
    assert code == 0, err
    records = read_fasta(out)
    assert len(records) == 4
    lengths = OmegaConf.load(bundled_checkpoint() / "config.yaml").lengths.histogram
    allowed = {int(length) for length, _ in lengths}
    assert all(len(r.sequence) in allowed for r in records)
    assert all(f"checkpoint={bundled_checkpoint().name}" in r.description for r in records)


@pytest.fixture(autouse=True)
def _needs_bundled_model():
    try:
        bundled_checkpoint()
    except Exception:
        pytest.fail("the package must ship its bundled model (protein_sedd/pretrained/acyp-tiny)")


def test_a_bundled_model_is_found_by_name_unless_a_file_of_that_name_exists(tmp_path, monkeypatch):
    from protein_sedd.model.sources import bundled_names, resolve_checkpoint_dir

    assert "acyp-tiny" in bundled_names()
    monkeypatch.chdir(tmp_path)
    assert resolve_checkpoint_dir("acyp-tiny") == bundled_checkpoint("acyp-tiny")
    assert load_checkpoint(None).path == bundled_checkpoint()  # the default model
    (tmp_path / "acyp-tiny").mkdir()  # a folder of that name here wins, and is not a checkpoint
    with pytest.raises(UserError, match="not a protein-sedd checkpoint"):
        resolve_checkpoint_dir("acyp-tiny")
    with pytest.raises(UserError, match="bundled models: acyp-tiny"):
        resolve_checkpoint_dir("no-such-model")
