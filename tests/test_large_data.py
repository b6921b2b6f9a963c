"""Training data at scale: int32 indices and orders, whole-file passes that read the cache's files rather
than its memory maps, the stat memos that make a cache hit cheap, and the cleanup of dead builds."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from protein_sedd.data.batches import BatchStream, epoch_order
from protein_sedd.data.cache import hash_memo
from protein_sedd.data.cache import tokens as cache_module
from protein_sedd.data.cache.build_owner import build_owner
from protein_sedd.data.cache.store import MAX_RECORDS, TokenStore, check_record_count
from protein_sedd.data.cache.tokens import token_cache, token_cache_root
from protein_sedd.data.datasets import sha256_of
from protein_sedd.data.family.training_set import FamilyPolicy, _unaligned_family
from protein_sedd.data.length_prior import median_of_counts
from protein_sedd.data.splits import split_store
from protein_sedd.errors import UserError
from protein_sedd.io.fasta import read_fasta

from .conftest import run_cli


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _fasta(path, n=300, seed=0):
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"ACDEFGHIKLMNPQRSTVWY", np.uint8)
    with open(path, "w") as handle:
        for i in range(n):
            sequence = letters[rng.integers(0, 20, size=int(rng.integers(5, 90)))].tobytes().decode()
            handle.write(f">r{i} x\n{sequence}\n")
    return path


# flat memory


@pytest.mark.parametrize("n", [1, 7, 1000, 70_000])
def test_epoch_order_is_int32_and_the_order_earlier_versions_drew(n):
    order = epoch_order(n, seed=3, epoch=2)
    legacy = torch.randperm(n, generator=torch.Generator().manual_seed(3 * 1_000_003 + 2))  # int64
    assert order.dtype == torch.int32 and torch.equal(order.long(), legacy)
    weights = torch.rand(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    weights[::3] = 0.0
    generator = torch.Generator().manual_seed(3 * 1_000_003 + 2)
    cumulative = torch.cumsum(weights, 0)  # the earlier whole-epoch draw
    draws = torch.rand(n, generator=generator, dtype=torch.float64) * cumulative[-1]
    legacy = torch.searchsorted(cumulative, draws, right=True).clamp_(max=n - 1)
    weighted = epoch_order(n, 3, 2, weights)
    assert weighted.dtype == torch.int32 and torch.equal(weighted.long(), legacy)


def test_a_file_of_more_records_than_int32_indexes_is_refused():
    check_record_count(MAX_RECORDS)
    with pytest.raises(UserError, match="holds 2,147,483,648 records, more than the 2,147,483,647 a run"):
        check_record_count(MAX_RECORDS + 1)


class _NoMapReads:
    """Stands in for a memory-mapped array: its shape and dtype, but no reading through the map."""

    def __init__(self, array):
        self.shape, self.dtype = array.shape, array.dtype

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, item):
        raise AssertionError("read through the memory map")


@pytest.mark.parametrize("span", [1 << 20, 7], ids=["one-range", "many-ranges"])
def test_whole_file_passes_and_batches_read_the_files_not_the_maps(tmp_path, monkeypatch, span):
    """Splitting, length histograms, digests and batches read the cache with pread: nothing pages the
    memory maps into the process (the known answer: the same results as the store held in memory)."""
    from protein_sedd.data.cache import store as token_store

    monkeypatch.setattr(token_store, "SPAN", span)  # a sparse block read as many ranges
    fasta = _fasta(tmp_path / "r.fa", n=500)
    records = read_fasta(fasta)
    store, _ = token_cache(fasta)
    for name in ("tokens", "offsets", "id_hash", "first_copy"):
        setattr(store, name if name != "first_copy" else "_first_copy", _NoMapReads(getattr(store, name)))
    memory = TokenStore.from_records(records)
    options = dict(valid_fraction=0.1, test_fraction=0.2, seed=4, method="id_hash", max_length=80)
    splits, expected = split_store(store, **options), split_store(memory, **options)
    for name in ("train", "valid", "test"):
        assert splits[name].indices.dtype == np.int32
        assert np.array_equal(splits[name].indices, expected[name].indices)
    assert splits.train.ids_digest() == expected.train.ids_digest()
    lengths = np.array([len(r.sequence) for r in records])
    assert np.array_equal(splits.train.length_counts(), np.bincount(lengths[expected.train.indices]))
    assert np.array_equal(store.length_counts(), np.bincount(lengths))
    stream = BatchStream(splits.train.tokens(), 8, seed=1, pad_index=22)
    reference = BatchStream(expected.train.tokens(), 8, seed=1, pad_index=22)
    for _ in range(5):
        assert torch.equal(next(stream)[0], next(reference)[0])


def test_unaligned_coverage_comes_from_the_length_histogram(tmp_path):
    """Typical length (the median), the fragment count and the full-length members, with no per-record
    coverage array: the answers np.median and a length ratio give."""
    fasta = _fasta(tmp_path / "r.fa", n=400, seed=2)
    store, sha256 = token_cache(fasta)
    lengths = np.diff(np.asarray(store.offsets))
    config = {"min_length": 10, "min_coverage": 0.5, "length_prior": "full_length", "weights": "none"}
    family = _unaligned_family(store, FamilyPolicy.resolve(config, False), _Config(config), sha256)
    typical = float(np.median(lengths))
    assert family.coverage is None and family.stats["typical_length"] == typical
    floor = max(10, int(np.ceil(0.5 * typical - 1e-9)))
    assert family.stats["n_fragments_filtered"] == int(((lengths < floor) & (lengths >= 10)).sum())
    every = np.arange(len(store), dtype=np.int32)
    assert np.array_equal(family.length_members(every), np.flatnonzero(lengths / typical >= 0.9))


class _Config(dict):
    def __getattr__(self, key):
        return self[key]


@pytest.mark.parametrize("counts", [[0, 1], [0, 2, 0, 1], [0, 0, 1, 1], [3, 0, 0, 0, 0, 5]])
def test_median_of_counts_is_numpys_median(counts):
    lengths = np.repeat(np.arange(len(counts)), counts)
    assert median_of_counts(np.array(counts)) == float(np.median(lengths))


# a cache hit without reading whole files


def test_a_cache_hit_reads_neither_the_fasta_nor_the_cache_files(tmp_path, monkeypatch):
    fasta = _fasta(tmp_path / "r.fa")
    first, sha256 = token_cache(fasta)

    def no_hashing(path):
        raise AssertionError(f"hashed {path} whole")

    monkeypatch.setattr(hash_memo, "sha256_of", no_hashing)
    monkeypatch.setattr(cache_module, "sha256_of", no_hashing)
    again, same = token_cache(fasta)
    assert same == sha256 and [again.record(i) for i in range(len(again))] == read_fasta(fasta)


def test_a_fasta_edited_in_place_is_hashed_again_and_gets_a_new_cache(tmp_path):
    fasta = _fasta(tmp_path / "r.fa", n=50)
    old, old_sha256 = token_cache(fasta)
    before = os.stat(fasta)
    text = fasta.read_text()
    edited = text.replace("\nA", "\nC", 1) if "\nA" in text else text.replace("\nC", "\nA", 1)
    assert edited != text and len(edited) == len(text)
    fasta.write_text(edited)
    os.utime(fasta, ns=(before.st_atime_ns, before.st_mtime_ns))  # same size, same mtime: only ctime moved
    store, sha256 = token_cache(fasta)
    assert sha256 == sha256_of(fasta) != old_sha256
    assert [store.record(i) for i in range(len(store))] == read_fasta(fasta)
    assert len(list(token_cache_root().glob("*-v1"))) == 2


def test_damage_the_stat_memo_cannot_see_is_found_by_verify(tmp_path, capsys):
    """Bit rot keeps a file's stat key: ordinary uses trust the memo, `prepare-data --verify` hashes and
    rebuilds (the rot is simulated by damaging the file and recording its new key as checked)."""
    fasta = _fasta(tmp_path / "r.fa", n=60)
    token_cache(fasta)
    folder = next(token_cache_root().glob("*-v1"))
    tokens = folder / "tokens.bin"
    data = bytearray(tokens.read_bytes())
    data[len(data) // 2] ^= 1
    tokens.write_bytes(bytes(data))
    checked = json.loads((folder / "verified.json").read_text())
    (folder / "verified.json").write_text(json.dumps({**checked, "tokens.bin": hash_memo.stat_key(tokens)}))
    assert cache_module.cache_problem(folder, sha256_of(fasta)) is None  # the memo is trusted
    code, out, err = run_cli(["prepare-data", "--fasta", fasta, "--verify"], capsys)
    assert code == 0
    assert out.splitlines()[-1] == f"token cache rebuilt (it was damaged): {folder}"
    assert err.splitlines() == [
        f"warning: token cache {folder} is damaged (tokens.bin checksum mismatch); rebuilding it"
    ]
    assert cache_module.cache_problem(folder, sha256_of(fasta), full=True) is None
    store, _ = token_cache(fasta)
    assert [store.record(i) for i in range(len(store))] == read_fasta(fasta)


# leftovers of builds killed outright


def _leftover(name, **owner):
    folder = token_cache_root() / name
    folder.mkdir(parents=True)
    (folder / "tokens.bin").write_bytes(b"\0" * 10)
    if owner:
        (folder / "owner.json").write_text(json.dumps({**build_owner(), **owner}))
    return folder


def test_a_build_removes_dead_builds_leftovers_and_never_a_live_ones(tmp_path):
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # a pid that no longer runs
    day_ago = build_owner()["started"] - 2 * 24 * 3600
    dead = _leftover(f".building-{finished.pid}-aaaaaaaa", pid=finished.pid)
    live = _leftover(f".building-{os.getpid()}-bbbbbbbb", pid=os.getpid())
    other_host = _leftover(".building-12-cccccccc", host="another-node", pid=12)
    old_other_host = _leftover(".building-13-dddddddd", host="another-node", pid=13, started=day_ago)
    young_unowned = _leftover(".building-14-eeeeeeee")  # killed before its owner.json, or still writing it
    old_unowned = _leftover(".building-15-ffffffff")
    os.utime(old_unowned, (day_ago, day_ago))
    aside = _leftover(f".stale-{finished.pid}-abababab", pid=finished.pid)
    token_cache(_fasta(tmp_path / "r.fa", n=20))
    left = {p.name for p in token_cache_root().iterdir() if p.name.startswith(".")}
    assert left == {live.name, other_host.name, young_unowned.name}
    assert not {dead.name, old_other_host.name, old_unowned.name, aside.name} & left


# the text bound of in-memory readers


def test_the_token_cache_streams_past_the_in_memory_text_bound(tmp_path, monkeypatch):
    """The 2 GiB default (made 2 kB here) bounds readers that hold the file in memory; the token cache
    writes to disk and is bounded only when PROTEIN_SEDD_MAX_FASTA_BYTES says so."""
    from protein_sedd.io import fasta as fasta_module

    fasta, other = _fasta(tmp_path / "r.fa", n=100), _fasta(tmp_path / "other.fa", n=100, seed=1)
    size = other.stat().st_size
    monkeypatch.setattr(fasta_module, "DEFAULT_MAX_FASTA_BYTES", 2000)
    monkeypatch.setattr(fasta_module.max_fasta_bytes, "__defaults__", (2000,))
    with pytest.raises(UserError, match="more than 2,000 bytes of FASTA text"):
        read_fasta(fasta)
    store, _ = token_cache(fasta)
    assert len(store) == 100
    monkeypatch.setenv("PROTEIN_SEDD_MAX_FASTA_BYTES", str(size - 1))
    with pytest.raises(UserError, match=f"more than {size - 1:,} bytes of FASTA text"):
        token_cache(other)
    assert not any(token_cache_root().glob(".building-*"))  # nothing half-built left


# building the cache in bounded memory


@pytest.mark.parametrize("bucket_rows", [1 << 20, 7], ids=["one-sort", "buckets"])
def test_the_build_finds_repeats_bucket_by_bucket_as_one_sort_does(tmp_path, monkeypatch, bucket_rows):
    """The columns written to disk and the repeats found over many buckets (7 rows each here): the cache
    holds exactly what read_fasta reads, dedupe keeps each sequence's first record, and a repeated id is
    named by its first repeat."""
    from protein_sedd.data.cache import record_columns

    monkeypatch.setattr(record_columns, "BUCKET_ROWS", bucket_rows)
    monkeypatch.setattr(record_columns, "BLOCK", 16)  # many blocks too
    rng = np.random.default_rng(5)
    pool = ["MKV", "WWCAL", "PPGY", "ACDEFGHIK", "LLLL"]
    lines = [f">s{i} d{i}\n{pool[rng.integers(0, 5)] if i % 3 else 'M' * (1 + i)}\n" for i in range(120)]
    fasta = tmp_path / "r.fa"
    fasta.write_text("".join(lines))
    store, _ = token_cache(fasta)
    records = read_fasta(fasta)
    assert [store.record(i) for i in range(len(store))] == records
    first = {}
    for i, r in enumerate(records):
        first.setdefault(r.sequence, i)
    assert np.flatnonzero(store.first_copy).tolist() == sorted(first.values())
    assert np.array_equal(store.offsets, np.concatenate([[0], np.cumsum([len(r.sequence) for r in records])]))
    assert not [p.name for p in next(token_cache_root().glob("*-v1")).iterdir() if p.name.startswith(".")]
    fasta.write_text("".join(lines[:50] + [">s17 again\nMKV\n"] + lines[50:] + [">s3 x\nMKV\n"]))
    with pytest.raises(UserError, match=r"duplicate record id 's17' \(record 51\)"):
        token_cache(fasta)


def test_a_cache_file_truncated_while_in_use_is_a_user_error(tmp_path):
    """The stat memos skip re-hashing on open; a file cut short after that fails the read, in one line."""
    path = _fasta(tmp_path / "seqs.fa", n=50)
    store, sha256 = token_cache(path)
    assert store.sequence(49) == read_fasta(path)[49].sequence  # read through pread
    tokens = cache_module.cache_folder(sha256) / "tokens.bin"
    os.truncate(tokens, tokens.stat().st_size - 5)
    with pytest.raises(
        UserError, match="tokens.bin: shorter than its manifest says; rebuild it with prepare-data"
    ):
        store.token_array(49)
