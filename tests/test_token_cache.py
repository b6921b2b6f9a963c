"""The token cache (a FASTA file tokenised once, memory-mapped), its checks, and splits by id hash."""

import gzip
import json
import os
import random

import numpy as np
import pytest
import torch

from protein_sedd.data.alphabet import ALPHABET, InvalidResidue
from protein_sedd.data.batches import BatchStream, encode_all
from protein_sedd.data.cache import tokens as cache_module
from protein_sedd.data.cache.store import TokenStore, first_occurrences
from protein_sedd.data.cache.tokens import token_cache, token_cache_root
from protein_sedd.data.length_prior import LengthPrior
from protein_sedd.data.splits import split_store
from protein_sedd.errors import UserError
from protein_sedd.io.fasta import FastaRecord, read_fasta, read_fasta_hashed

from .conftest import run_cli, write_synthetic_fasta
from .test_train import _quick_args


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _random_fasta(path, n=300, seed=0, opener=open):
    """Mixed case, gaps, U/B residues, trailing stops, wrapped lines, CRLF: the alphabet's whole policy."""
    rng = random.Random(seed)
    with opener(path, "wt", newline="") as handle:
        for i in range(n):
            seq = "".join(rng.choice("ACDEFGHIKLMNPQRSTVWYacdxub-.") for _ in range(rng.randint(1, 150)))
            lines = [seq[k : k + 60] for k in range(0, len(seq), 60)]
            handle.write(f">r{i} some description {i}\r\n" + "\r\n".join(lines) + "*\r\n")
    return path


@pytest.mark.parametrize("opener", [open, gzip.open], ids=["plain", "gzip"])
def test_cache_holds_exactly_what_read_fasta_reads(tmp_path, opener):
    fasta = _random_fasta(tmp_path / "r.fa", opener=opener)
    records, sha256 = read_fasta_hashed(fasta)
    store, cached_sha256 = token_cache(fasta)
    assert cached_sha256 == sha256 and len(store) == len(records) == 300
    assert [store.record(i) for i in range(len(store))] == records
    assert np.array_equal(store.lengths, [len(r.sequence) for r in records])
    expected = encode_all([r.sequence for r in records])
    assert all(torch.equal(store.token_tensor(i), expected[i]) for i in range(len(store)))
    assert isinstance(store.tokens, np.memmap)
    manifest = json.loads(next(token_cache_root().glob("*-v1/manifest.json")).read_text())
    assert manifest["source_sha256"] == sha256 and manifest["n_records"] == 300
    assert manifest["n_residues"] == sum(len(r.sequence) for r in records)


def test_second_use_reads_the_cache_without_rebuilding(tmp_path, monkeypatch):
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=50)
    first, _ = token_cache(fasta)

    def no_build(*args):
        raise AssertionError("rebuilt an intact cache")

    monkeypatch.setattr(cache_module, "build_cache", no_build)
    again, _ = token_cache(fasta)
    assert [again.record(i) for i in range(50)] == [first.record(i) for i in range(50)]
    assert isinstance(again.tokens, np.memmap) and isinstance(again.offsets, np.memmap)
    assert len(list(token_cache_root().iterdir())) == 1


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda f: _flip_byte(f / "tokens.bin"), "tokens.bin checksum mismatch"),
        (lambda f: _truncate(f / "offsets.npy"), "offsets.npy has"),
        (lambda f: (f / "id_hash.npy").unlink(), "id_hash.npy missing"),
        (lambda f: _edit_manifest(f, format=0), "format 0, expected 1"),
        (lambda f: _edit_manifest(f, source_sha256="0" * 64), "made from another file"),
        (lambda f: (f / "manifest.json").write_text("{not json"), "manifest.json unreadable"),
    ],
    ids=["flipped-byte", "truncated", "missing-file", "old-format", "other-source", "bad-manifest"],
)
def test_a_damaged_cache_is_reported_and_rebuilt_never_used(tmp_path, damage, reason):
    fasta = _random_fasta(tmp_path / "r.fa", n=40)
    token_cache(fasta)
    folder = next(token_cache_root().glob("*-v1"))
    damage(folder)
    heard = []
    store, _ = token_cache(fasta, report=heard.append)
    assert len(heard) == 1 and reason in heard[0] and "rebuilding" in heard[0]
    assert [store.record(i) for i in range(len(store))] == read_fasta(fasta)
    assert cache_module.cache_problem(folder, read_fasta_hashed(fasta)[1]) is None
    assert sorted(p.name for p in token_cache_root().iterdir()) == [folder.name]  # nothing left aside


def _flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def _truncate(path):
    path.write_bytes(path.read_bytes()[:-8])


def _edit_manifest(folder, **changes):
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(changes)
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "text, message",
    [
        (">a\nMKV\n>b\nMK1V\n", "record 'b': invalid residue '1' at position 3"),
        (">a\nMKV\n>b\nMKL\n>a\nMKW\n", "duplicate record id 'a' (record 3)"),
        (">a\nMKV\n>b\n--\n", "record 'b': empty sequence"),
        ("MKV\n", "does not start with '>'"),
    ],
)
def test_bad_fasta_is_one_error_and_leaves_no_cache(tmp_path, text, message):
    fasta = tmp_path / "bad.fa"
    fasta.write_text(text)
    with pytest.raises(UserError) as caught:
        token_cache(fasta)
    assert message in str(caught.value)
    with pytest.raises(UserError) as same:  # the in-memory reader says the same
        read_fasta(fasta)
    assert str(same.value) == str(caught.value)
    assert not token_cache_root().exists() or not any(token_cache_root().iterdir())


def test_a_named_pipe_is_read_once_into_the_cache(tmp_path):
    import hashlib
    import threading

    pipe = tmp_path / "pipe.fa"
    os.mkfifo(pipe)
    writer = threading.Thread(target=lambda: pipe.write_text(">x\nMKV\n>y\nWWC\n"))
    writer.start()
    store, sha256 = token_cache(pipe)
    writer.join()
    assert [store.sequence(i) for i in range(len(store))] == ["MKV", "WWC"]
    assert sha256 == hashlib.sha256(b">x\nMKV\n>y\nWWC\n").hexdigest()


@pytest.mark.parametrize(
    "raw, normalised",
    [
        ("mkv-l.ub*", "MKVLCX"),
        (" ACD\t", "ACD"),
        ("MKV\x1c", "MKV"),  # str.strip's whitespace, which the byte path leaves to `normalise`
        ("\u0131K", "IK"),  # dotless i upper-cases to I
        ("zjo", "XXK"),
        ("", ""),
        ("---", ""),
    ],
)
def test_token_bytes_apply_the_normalisation_policy(raw, normalised):
    assert ALPHABET.normalise(raw) == normalised
    assert ALPHABET.token_bytes(raw) == bytes(ALPHABET.residues.index(r) for r in normalised)


@pytest.mark.parametrize(
    "raw, message",
    [
        ("AC*D", "stop codon '*' inside the sequence: '*' at position 3"),
        ("MKV**", "stop codon '*' inside the sequence: '*' at position 4"),
        ("A1", "invalid residue '1' at position 2"),
        ("a\u00e9", "invalid residue '\u00c9' at position 2"),
    ],
)
def test_token_bytes_name_a_bad_residue_as_normalise_does(raw, message):
    with pytest.raises(InvalidResidue) as caught:
        ALPHABET.token_bytes(raw)
    assert str(caught.value) == message


def test_length_prior_from_lengths_matches_from_records(tmp_path):
    records = read_fasta(_random_fasta(tmp_path / "r.fa", n=200))
    lengths = TokenStore.from_records(records).lengths
    assert LengthPrior.from_lengths(lengths, 100) == LengthPrior.from_records(records, 100)


def test_batches_from_the_store_equal_batches_from_tensors(tmp_path):
    records = read_fasta(_random_fasta(tmp_path / "r.fa", n=100))
    store, _ = token_cache(tmp_path / "r.fa")
    view = store.view(np.arange(len(store)))
    stream = BatchStream(view.tokens(), 8, seed=3, pad_index=ALPHABET.pad_index)
    reference = BatchStream(
        encode_all([r.sequence for r in records]), 8, seed=3, pad_index=ALPHABET.pad_index
    )
    for _ in range(20):  # across epochs (100 records, 8 a batch)
        (a, la), (b, lb) = next(stream), next(reference)
        assert torch.equal(a, b) and torch.equal(la, lb)


# splits by a hash of each record's id


def _store(n, seed=0, duplicate_every=0):
    rng = random.Random(seed)
    records = []
    for i in range(n):
        seq = "".join(rng.choice("ACDEFGHIKLMNPQRSTVWY") for _ in range(rng.randint(20, 60)))
        if duplicate_every and i % duplicate_every == 1:
            seq = records[i - 1].sequence
        records.append(_record(f"id{i}", seq))
    return records


def _record(record_id, sequence):
    return FastaRecord(record_id, f"{record_id} x", sequence)


def _id_split(records, **options):
    options = {"valid_fraction": 0.1, "test_fraction": 0.2, "seed": 0, "method": "id_hash", **options}
    splits = split_store(TokenStore.from_records(records), **options)
    return {name: [r.id for r in splits[name]] for name in ("train", "valid", "test")}, splits


def test_id_hash_split_sizes_follow_the_fractions():
    ids, splits = _id_split(_store(20_000), dedupe=False)
    # binomial(20000, p): within 4 standard deviations of the mean
    assert abs(len(ids["test"]) - 4000) < 4 * (20_000 * 0.2 * 0.8) ** 0.5
    assert abs(len(ids["valid"]) - 2000) < 4 * (20_000 * 0.1 * 0.9) ** 0.5
    assert sorted(sum(ids.values(), [])) == sorted(f"id{i}" for i in range(20_000))
    assert splits.stats["n_train"] == len(ids["train"])


def test_id_hash_split_is_stable_when_records_are_added_or_reordered():
    records = _store(3000)
    before, _ = _id_split(records)
    more = _store(4000, seed=1)
    more = [_record(f"new{i}", r.sequence + "W") for i, r in enumerate(more)]
    shuffled = records + more
    random.Random(5).shuffle(shuffled)
    after, _ = _id_split(shuffled)
    for name in before:  # every old record keeps its split
        assert set(before[name]) <= set(after[name])
    other_seed, _ = _id_split(records, seed=1)
    assert other_seed["test"] != before["test"]


def test_id_hash_split_dedupes_on_the_sequence_before_splitting():
    records = _store(2000, duplicate_every=2)  # records 1, 3, 5, ... repeat the record before them
    ids, splits = _id_split(records)
    assert splits.stats["n_duplicates_removed"] == 1000
    kept = set(sum(ids.values(), []))
    assert kept == {f"id{i}" for i in range(0, 2000, 2)}  # the first of each pair
    sequences = {name: {r.sequence for r in splits[name]} for name in ids}
    assert not sequences["train"] & sequences["test"] and not sequences["train"] & sequences["valid"]


def test_id_hash_split_applies_the_length_filter():
    ids, splits = _id_split(_store(500), min_length=30, max_length=50, dedupe=False)
    assert all(30 <= len(r.sequence) <= 50 for name in ids for r in splits[name])
    kept = sum(1 for r in _store(500) if 30 <= len(r.sequence) <= 50)
    assert splits.stats["n_length_filtered"] == 500 - kept


def test_an_unknown_split_method_is_refused(tmp_path, capsys):
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=50)
    code, _, err = run_cli(
        ["train", "--fasta", fasta, "--out", tmp_path / "run", "data.split=by_magic"], capsys
    )
    assert code == 2
    expected = "error: data.split='by_magic': choose sequence_hash, id_hash or cluster"
    assert err.strip().splitlines() == [expected]
    assert not (tmp_path / "run").exists()


def test_sequence_hash_split_reproduces_the_bundled_models_split():
    """The bundled model records no data.split: its test split must be the one it was evaluated on."""
    from omegaconf import OmegaConf

    from protein_sedd.data.prepare import prepare_splits, recorded_data_config
    from protein_sedd.model.sources import resolve_checkpoint_dir

    from .conftest import acyp_available

    if not acyp_available():
        pytest.skip("ACYP data not found: set PROTEIN_SEDD_DATA")
    config = OmegaConf.load(resolve_checkpoint_dir("acyp-tiny") / "config.yaml")
    assert "split" not in config.data
    prepared = prepare_splits(recorded_data_config(config), int(config.model.max_length))
    for key in ("n_records", "n_duplicates_removed", "n_train", "n_valid", "n_test"):
        assert prepared.splits.stats[key] == config.dataset[key]
    assert prepared.sha256 == config.dataset.sha256


def test_cache_root_unwritable_is_one_error(tmp_path, monkeypatch):
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=10)
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    with pytest.raises(UserError, match="set XDG_CACHE_HOME to a writable folder"):
        token_cache(fasta)


def test_first_occurrences_compare_all_128_bits():
    head = bytes(8)
    rows = [
        head + bytes([1] * 8),
        head + bytes([2] * 8),
        head + bytes([1] * 8),
        bytes([9] * 16),
        bytes([9] * 16),
    ]
    digests = np.frombuffer(b"".join(rows), np.uint8).reshape(-1, 16)
    assert first_occurrences(digests).tolist() == [0, 1, 3]  # rows 0 and 1 share only their first 64 bits


def test_prepare_data_builds_the_cache_that_train_then_reads(tmp_path, capsys, monkeypatch):
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=120)
    code, out, err = run_cli(["prepare-data", "--fasta", fasta], capsys)
    assert code == 0, err
    sha256 = read_fasta_hashed(fasta)[1]
    folder = token_cache_root() / f"{sha256}-v1"
    head = f"{fasta}: 120 records, 960 residues (sha256 {sha256[:12]}...)"
    assert out.splitlines() == [head, f"token cache built: {folder}"]
    assert cache_module.cache_problem(folder, sha256) is None
    code, out, err = run_cli(["prepare-data", "--fasta", fasta], capsys)
    assert (code, out.splitlines()) == (
        0,
        [head, f"token cache reused (checked by file size and time; --verify hashes every file): {folder}"],
    )
    code, out, err = run_cli(["prepare-data", "--fasta", fasta, "--verify"], capsys)
    assert (code, out.splitlines()) == (0, [head, f"token cache verified (every file hashed): {folder}"])

    def no_build(*args):
        raise AssertionError("train tokenised the file again")

    monkeypatch.setattr(cache_module, "build_cache", no_build)
    args = [*_quick_args(fasta, tmp_path / "run", 2), "data.split=id_hash"]
    assert run_cli(args, capsys)[0] == 0


def test_prepare_data_on_a_bad_file_is_one_line_and_no_cache(tmp_path, capsys):
    fasta = tmp_path / "bad.fa"
    fasta.write_text(">a\nMKV\n>b\nMK!V\n")
    code, out, err = run_cli(["prepare-data", "--fasta", fasta], capsys)
    assert code == 2 and out == ""
    assert err.splitlines() == [f"error: {fasta}: record 'b': invalid residue '!' at position 3"]
    assert not any(token_cache_root().iterdir())


def test_resume_under_id_hash_checks_the_training_records_by_digest(tmp_path, capsys):
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=200)
    run = tmp_path / "run"
    assert run_cli([*_quick_args(fasta, run, 2), "data.split=id_hash"], capsys)[0] == 0
    recorded = json.loads((run / "splits.json").read_text())
    assert recorded["split"] == "id_hash" and not {"train", "valid", "test"} & recorded.keys()
    assert recorded["n_train"] + recorded["n_valid"] + recorded["n_test"] == 200
    assert len(recorded["train_digest"]) == 64
    code, _, err = run_cli(["train", "--out", run, "--resume", "--max-steps", "3"], capsys)
    assert code == 0, err
    report = tmp_path / "test.json"  # evaluate recomputes the id_hash split from the run's config
    code, _, err = run_cli(["evaluate", "--checkpoint", run, "--t-samples", "1", "--json", report], capsys)
    assert code == 0, err
    assert json.loads(report.read_text())["n_sequences"] == recorded["n_test"]
    (run / "splits.json").write_text(json.dumps({**recorded, "train_digest": "0" * 64}))
    code, _, err = run_cli(["train", "--out", run, "--resume", "--max-steps", "4"], capsys)
    assert code == 2
    assert err.splitlines() == [
        f"error: --resume: the dataset differs from the one {run} was trained on ({fasta})"
    ]


def test_id_hash_split_with_nothing_left_names_the_length_filter():
    with pytest.raises(UserError, match=r"no sequences left after the length filter \[1, 5\]"):
        _id_split(_store(50), max_length=5)


def test_a_cache_edited_consistently_with_its_manifest_is_refused_when_read(tmp_path):
    import hashlib

    fasta = _random_fasta(tmp_path / "r.fa", n=40)
    token_cache(fasta)
    folder = next(token_cache_root().glob("*-v1"))
    data = bytearray((folder / "tokens.bin").read_bytes())
    data[5] = 200  # no residue has this token
    (folder / "tokens.bin").write_bytes(bytes(data))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["tokens.bin"]["sha256"] = hashlib.sha256(data).hexdigest()  # checksums pass
    (folder / "manifest.json").write_text(json.dumps(manifest))
    heard = []
    store, _ = token_cache(fasta, report=heard.append, verify=True)
    assert heard == [] or all("rebuilding" not in h for h in heard)  # nothing to see in the checksums
    with pytest.raises(UserError) as refused:
        [store.record(i) for i in range(len(store))]
    assert str(refused.value) == (
        f"{folder / 'tokens.bin'}: record 0 holds token 200, outside the alphabet's 21 residues; the cache "
        f"was edited or damaged: delete {folder} and the next run builds it again"
    )
