import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from protein_sedd.data import datasets
from protein_sedd.data.datasets import load_manifest, resolve_dataset_path
from protein_sedd.data.prepare import recorded_data_config
from protein_sedd.errors import UserError
from protein_sedd.model.sources import bundled_checkpoint

from .conftest import acyp_available, data_dir, run_cli

ACYP_SHA = "9ebd5dfc4633f115b21b61be36b2bf5bdbd82cd862d6ba7bc241869ae0bf087c"


def test_acyp_manifest():
    manifest = load_manifest("acyp")
    assert manifest.sha256 == ACYP_SHA
    assert manifest.filename == "hypf.fa"
    assert manifest.url.endswith("/hypf.fa")
    assert (manifest.n_sequences, manifest.min_length, manifest.max_length) == (26856, 64, 127)


def test_unknown_dataset():
    with pytest.raises(UserError, match="unknown dataset 'pfam'.*acyp"):
        load_manifest("pfam")


@pytest.mark.skipif(not acyp_available(), reason="needs $PROTEIN_SEDD_DATA/acyp/hypf.fa")
def test_resolves_from_protein_sedd_data(monkeypatch, tmp_path):
    # the variable is what finds the file: a folder elsewhere holding acyp/hypf.fa (a link) is the one used
    (tmp_path / "acyp").mkdir()
    (tmp_path / "acyp" / "hypf.fa").symlink_to(data_dir() / "acyp" / "hypf.fa")
    monkeypatch.setenv("PROTEIN_SEDD_DATA", str(tmp_path))
    assert resolve_dataset_path("acyp") == tmp_path / "acyp" / "hypf.fa"


def _fake_manifest(monkeypatch, tmp_path, content: bytes, url: str):
    manifest = datasets.Manifest(
        name="toy", filename="toy.fa", url=url, sha256=hashlib.sha256(content).hexdigest()
    )
    monkeypatch.setattr(datasets, "load_manifest", lambda name: manifest)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PROTEIN_SEDD_DATA", str(tmp_path / "data"))
    return manifest


def test_explicit_path_wins_and_is_checksummed(monkeypatch, tmp_path):
    content = b">a\nMKV\n"
    _fake_manifest(monkeypatch, tmp_path, content, "http://127.0.0.1:9/toy.fa")
    good, bad = tmp_path / "good.fa", tmp_path / "bad.fa"
    good.write_bytes(content)
    bad.write_bytes(b">a\nMKW\n")
    assert resolve_dataset_path("toy", good) == good
    with pytest.raises(UserError, match="does not match the toy manifest"):
        resolve_dataset_path("toy", bad)


def test_data_dir_then_cache(monkeypatch, tmp_path):
    content = b">a\nMKV\n"
    _fake_manifest(monkeypatch, tmp_path, content, "http://127.0.0.1:9/toy.fa")
    cached = tmp_path / "cache" / "protein-sedd" / "toy" / "toy.fa"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(content)
    assert resolve_dataset_path("toy") == cached
    in_data = tmp_path / "data" / "toy" / "toy.fa"
    in_data.parent.mkdir(parents=True)
    in_data.write_bytes(content)
    assert resolve_dataset_path("toy") == in_data


def test_download_verifies_checksum_into_cache(monkeypatch, tmp_path):
    content = b">a\nMKV\n"
    source = tmp_path / "remote.fa"
    source.write_bytes(content)
    _fake_manifest(monkeypatch, tmp_path, content, source.as_uri())
    monkeypatch.delenv("PROTEIN_SEDD_OFFLINE", raising=False)
    path = resolve_dataset_path("toy")
    assert path == tmp_path / "cache" / "protein-sedd" / "toy" / "toy.fa"
    assert path.read_bytes() == content


def test_corrupt_download_is_discarded(monkeypatch, tmp_path):
    source = tmp_path / "remote.fa"
    source.write_bytes(b">a\nMKW\n")
    _fake_manifest(monkeypatch, tmp_path, b">a\nMKV\n", source.as_uri())
    monkeypatch.delenv("PROTEIN_SEDD_OFFLINE", raising=False)
    with pytest.raises(UserError, match="does not match"):
        resolve_dataset_path("toy")
    assert not list((tmp_path / "cache").rglob("toy.fa*"))


def test_no_network_says_where_to_put_the_file(monkeypatch, tmp_path):
    _fake_manifest(monkeypatch, tmp_path, b">a\nMKV\n", "http://127.0.0.1:9/toy.fa")
    monkeypatch.delenv("PROTEIN_SEDD_OFFLINE", raising=False)
    with pytest.raises(UserError) as info:
        resolve_dataset_path("toy")
    message = str(info.value)
    assert "download failed" in message and "http://127.0.0.1:9/toy.fa" in message
    assert str(tmp_path / "data" / "toy" / "toy.fa") in message and "--fasta" in message


def test_offline_mode_never_downloads(monkeypatch, tmp_path):
    _fake_manifest(monkeypatch, tmp_path, b">a\nMKV\n", "http://127.0.0.1:9/toy.fa")
    monkeypatch.setenv("PROTEIN_SEDD_OFFLINE", "1")
    with pytest.raises(UserError, match="PROTEIN_SEDD_OFFLINE"):
        resolve_dataset_path("toy")


def _missing_acyp(monkeypatch, tmp_path):
    """No ACYP anywhere: an empty PROTEIN_SEDD_DATA and cache, offline."""
    monkeypatch.setenv("PROTEIN_SEDD_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PROTEIN_SEDD_OFFLINE", "1")


def test_not_found_names_the_option_of_the_command_and_protein_sedd_data(monkeypatch, tmp_path, capsys):
    _missing_acyp(monkeypatch, tmp_path)
    designs = tmp_path / "designs.fasta"
    designs.write_text(">d\nMKV\n")
    commands = [
        (["train", "--dataset", "acyp", "--out", tmp_path / "run", "--max-steps", "1"], "--fasta PATH"),
        (["seq-eval", designs, "--reference", "acyp", "--out-dir", tmp_path / "seq"], "--reference PATH"),
    ]
    for args, option in commands:
        code, _, err = run_cli(args, capsys)
        assert code == 2 and "dataset 'acyp' not found" in err, err
        assert "set PROTEIN_SEDD_DATA to a folder holding acyp/hypf.fa" in err
        assert f"or pass {option}" in err and err.count("--") == 1, err  # no other command's option
    with pytest.raises(UserError) as info:
        resolve_dataset_path("acyp", option=None)  # evaluate: its --fasta is not a copy of the dataset
    assert str(info.value).endswith("holding acyp/hypf.fa)")


def _bundled_copy(tmp_path, source: Path) -> Path:
    """The bundled model's checkpoint with `source` as its recorded data file and a small test split."""
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(bundled_checkpoint(), checkpoint)
    config = OmegaConf.load(checkpoint / "config.yaml")
    config.dataset.source = str(source)
    config.data.test_fraction = 0.001  # 23 test sequences: seconds, not minutes
    OmegaConf.save(config, checkpoint / "config.yaml")
    return checkpoint


@pytest.mark.skipif(not acyp_available(), reason="needs $PROTEIN_SEDD_DATA/acyp/hypf.fa")
def test_evaluate_uses_the_data_file_recorded_in_the_checkpoint(monkeypatch, tmp_path, capsys):
    copy = tmp_path / "elsewhere" / "hypf.fa"
    copy.parent.mkdir()
    shutil.copyfile(Path(os.environ["PROTEIN_SEDD_DATA"]) / "acyp" / "hypf.fa", copy)
    _missing_acyp(monkeypatch, tmp_path)
    checkpoint = _bundled_copy(tmp_path, copy)
    args = ["evaluate", "--checkpoint", checkpoint, "--t-samples", "1", "--device", "cpu"]
    code, out, err = run_cli([*args, "--json", tmp_path / "report.json"], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["source"] == "acyp:test" and report["n_sequences"] == 23  # 0.1% of the deduplicated set

    copy.write_text(">changed\nMKV\n")  # the recorded file changed: it is not used, and nothing else is found
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "dataset 'acyp' not found" in err and "PROTEIN_SEDD_DATA" in err
    assert "--fasta" not in err  # evaluate's --fasta scores a whole file, not this split


def test_recorded_data_config_falls_back_to_the_lookup_by_name(tmp_path):
    gone = str(tmp_path / "gone.fa")
    config = OmegaConf.create(
        {"data": {"name": "acyp", "fasta": gone}, "dataset": {"source": gone, "sha256": "0"}}
    )
    assert recorded_data_config(config).fasta is None  # the given copy was removed: look acyp up again
    fasta_run = OmegaConf.create({"data": {"name": "fasta", "fasta": "my.fa"}, "dataset": {"source": "x.fa"}})
    assert recorded_data_config(fasta_run).fasta == "my.fa"  # a FASTA run always names its own file
