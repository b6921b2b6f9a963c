import random

import pytest

from protein_sedd.data.splits import split_records
from protein_sedd.errors import UserError
from protein_sedd.io.fasta import FastaRecord


def _records(n=400, seed=0, duplicates=0):
    rng = random.Random(seed)
    seqs = ["".join(rng.choice("ACDEFGHIKLMNPQRSTVWY") for _ in range(rng.randint(5, 40))) for _ in range(n)]
    seqs += seqs[:duplicates]
    return [FastaRecord(f"r{i}", f"r{i}", s) for i, s in enumerate(seqs)]


def test_split_is_deterministic_and_sized():
    records = _records()
    a = split_records(records, valid_fraction=0.1, test_fraction=0.2, seed=3)
    b = split_records(records, valid_fraction=0.1, test_fraction=0.2, seed=3)
    assert a.ids() == b.ids()
    assert (len(a.train), len(a.valid), len(a.test)) == (280, 40, 80)
    c = split_records(records, valid_fraction=0.1, test_fraction=0.2, seed=4)
    assert c.ids()["test"] != a.ids()["test"]


def test_dedupe_keeps_test_sequences_out_of_train_whatever_the_file_order():
    records = _records(duplicates=150)
    splits = split_records(records, valid_fraction=0.1, test_fraction=0.2, seed=0, dedupe=True)
    train = {r.sequence for r in splits.train}
    assert not train & {r.sequence for r in splits.test}
    assert not train & {r.sequence for r in splits.valid}
    assert splits.stats["n_duplicates_removed"] == 150
    shuffled = records[:]
    random.Random(1).shuffle(shuffled)
    again = split_records(shuffled, valid_fraction=0.1, test_fraction=0.2, seed=0, dedupe=True)
    assert {r.sequence for r in again.test} == {r.sequence for r in splits.test}


def test_without_dedupe_duplicates_stay():
    records = _records(n=100, duplicates=100)
    splits = split_records(records, valid_fraction=0.1, test_fraction=0.1, seed=0, dedupe=False)
    assert len(splits.train) + len(splits.valid) + len(splits.test) == 200


def test_length_filter():
    records = _records()
    splits = split_records(records, valid_fraction=0.1, test_fraction=0.1, min_length=10, max_length=30)
    kept = splits.train + splits.valid + splits.test
    assert all(10 <= len(r.sequence) <= 30 for r in kept)
    assert splits.stats["n_length_filtered"] == sum(not 10 <= len(r.sequence) <= 30 for r in records)


def test_bad_fractions_and_empty_results():
    with pytest.raises(UserError, match="valid_fraction"):
        split_records(_records(), valid_fraction=0.6, test_fraction=0.5)
    with pytest.raises(UserError, match="no sequences left"):
        split_records(_records(), valid_fraction=0.1, test_fraction=0.1, max_length=2)


@pytest.mark.parametrize("method", ["sequence_hash", "id_hash"])
def test_when_no_record_fits_the_message_says_the_longest_and_what_to_set(method):
    records = [FastaRecord(f"r{i}", "", "A" * n) for i, n in enumerate([40, 127, 90])]
    options = dict(valid_fraction=0.1, test_fraction=0.1, method=method)
    with pytest.raises(UserError) as caught:
        split_records(records, max_length=30, **options)
    assert str(caught.value) == (
        "no sequences left after the length filter [1, 30]; the longest record has 127 residues: "
        "set model.max_length=127 to keep it"
    )
    with pytest.raises(UserError) as caught:
        split_records(records, min_length=128, max_length=200, **options)
    assert str(caught.value) == (
        "no sequences left after the length filter [128, 200]; the longest record has 127 residues, "
        "under the minimum 128; check the file"
    )
    with pytest.raises(UserError, match="too few"):
        split_records(_records(n=2), valid_fraction=0.1, test_fraction=0.1)
