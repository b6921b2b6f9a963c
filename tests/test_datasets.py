import hashlib

import pytest

from protein_sedd.data import datasets
from protein_sedd.data.datasets import load_manifest, resolve_dataset_path
from protein_sedd.errors import UserError

from .conftest import SHARED_DATA, acyp_available

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


@pytest.mark.skipif(not acyp_available(), reason="needs ../shared/data/acyp/hypf.fa")
def test_resolves_from_protein_sedd_data(monkeypatch):
    monkeypatch.setenv("PROTEIN_SEDD_DATA", str(SHARED_DATA))
    assert resolve_dataset_path("acyp") == SHARED_DATA / "acyp" / "hypf.fa"


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
