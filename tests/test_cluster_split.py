"""data.split=cluster: valid and test hold whole clusters of distant family members, the focus's in train."""

from __future__ import annotations

import json

import numpy as np
import pytest

from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.data.family.clusters import identity_clusters
from protein_sedd.data.splits import split_records
from protein_sedd.errors import UserError
from protein_sedd.io.alignment import GAP_CODE
from protein_sedd.io.fasta import FastaRecord

from .conftest import run_cli
from .test_alignment import _one_line_error, _quick_train


def codes(rows: list[str]) -> np.ndarray:
    table = {letter: code for code, letter in enumerate(ALPHABET.residues)} | {"-": GAP_CODE}
    return np.array([[table[letter] for letter in row] for row in rows], dtype=np.uint8)


def test_clusters_gather_rows_at_the_identity_over_shared_residues_with_the_focus_first():
    rows = [
        "YYYYYYYYYY",  # 0: nothing like the focus: founds cluster 1 (the focus founds 0)
        "MKVLAGHEWR",  # 1: the focus
        "MKVLAGHEWC",  # 2: 9/10 identical to the focus
        "MKVLA-----",  # 3: 5/5 over the shared residues: a gap is not a mismatch
        "MKVLSTPQYW",  # 4: 4/10 to the focus
        "MK--------",  # 5: identical where it has residues, but shares 2 < 0.3 x 10 columns: alone
        "MKVLAYYYYY",  # 6: 5/10 to the focus and 5/10 to row 0
    ]
    # the focus founds 0 and takes 2, 3 and 6 (5/10 reaches 0.5); row 0 founds 1, then 4 and 5 their own
    assert identity_clusters(codes(rows), 0.5, focus=1).tolist() == [1, 0, 0, 0, 2, 3, 0]
    # at 0.6 row 6 joins neither the focus nor row 0 and founds a cluster when its turn comes
    assert identity_clusters(codes(rows), 0.6, focus=1).tolist() == [1, 0, 0, 0, 2, 3, 4]


def _records(n_near: int, far: list[int]) -> tuple[list[FastaRecord], np.ndarray]:
    """`n_near` records in the focus's cluster (0), then clusters 1, 2, ... of the sizes in `far`."""
    labels = [0] * n_near + [label for label, size in enumerate(far, start=1) for _ in range(size)]
    return [FastaRecord(f"r{i}", f"r{i}", "M" + "A" * i) for i in range(len(labels))], np.array(labels)


def test_valid_and_test_hold_whole_clusters_and_the_focus_cluster_trains():
    records, labels = _records(20, [3, 4, 2, 5])
    splits = split_records(records, valid_fraction=0.2, test_fraction=0.1, method="cluster", clusters=labels)
    index = {r.id: i for i, r in enumerate(records)}
    held = {name: {int(labels[index[r.id]]) for r in splits[name]} for name in ("valid", "test")}
    assert 0 not in held["valid"] | held["test"] and not held["valid"] & held["test"]
    for name in ("valid", "test"):  # whole clusters: every member of a held-out cluster is there
        assert sorted(r.id for r in splits[name]) == sorted(
            records[i].id for i in np.flatnonzero(np.isin(labels, list(held[name])))
        )
    assert len(splits.test) >= 3 and len(splits.valid) >= 7  # round(0.1 x 34), round(0.2 x 34)
    assert len(splits.train) + len(splits.valid) + len(splits.test) == 34
    again = split_records(records, valid_fraction=0.2, test_fraction=0.1, method="cluster", clusters=labels)
    assert again.ids() == splits.ids()  # a function of the records, labels and seed


def test_too_few_rows_outside_the_focus_cluster_is_refused_with_what_to_change():
    records, labels = _records(30, [2])
    with pytest.raises(UserError) as error:
        split_records(records, valid_fraction=0.2, test_fraction=0.0, method="cluster", clusters=labels)
    assert "only 2 of 32 sequences lie outside the focus's cluster" in str(error.value)
    assert "raise data.split_identity" in str(error.value)


FAMILY = {  # the focus's neighbourhood and a distant group, 12 focus columns
    "focus": "MKVLAGHEWRST",
    "n1": "MKVLAGHEWRSA",
    "n2": "MKVLSGHEWRST",
    "n3": "MKILAGHEWRST",
    "n4": "MKVLAGHDWRST",
    "n5": "MRVLAGHEWRST",
    "d1": "WPYCNDTQFIGM",
    "d2": "WPYCNDTQFIGA",
}


def test_train_holds_out_the_distant_group_and_evaluates_on_it(tmp_path, capsys):
    path = tmp_path / "family.a2m"
    path.write_text("".join(f">{name}\n{row}\n" for name, row in FAMILY.items()))
    run = tmp_path / "run"
    split = ["data.split=cluster", "data.valid_fraction=0.2", "data.test_fraction=0", "model.max_length=12"]
    code, _, err = run_cli([*_quick_train(path, run, 2), *split], capsys)
    assert code == 0, err
    recorded = json.loads((run / "splits.json").read_text())
    assert recorded["split"] == "cluster" and sorted(recorded["valid"]) == ["d1", "d2"]
    assert recorded["test"] == [] and "focus" in recorded["train"]
    # identity 0.95: every row its own cluster, so valid is two (of 8, round(0.2 x 8)) of them
    code, _, err = run_cli(
        [*_quick_train(path, tmp_path / "fine", 2), *split, "data.split_identity=0.95"], capsys
    )
    assert code == 0, err
    assert len(json.loads((tmp_path / "fine" / "splits.json").read_text())["valid"]) == 2


def test_cluster_split_mistakes_exit_2_with_one_line(tmp_path, capsys):
    fasta = tmp_path / "plain.fa"
    fasta.write_text("".join(f">{name}\n{row}\n" for name, row in FAMILY.items()) + ">long\nMKVLAGHEWRSTAA\n")
    run = tmp_path / "run"
    line = _one_line_error(capsys, [*_quick_train(fasta, run, 2), "data.split=cluster"])
    assert "data.split=cluster holds out whole clusters" in line and str(fasta) in line
    path = tmp_path / "family.a2m"
    path.write_text("".join(f">{name}\n{row}\n" for name, row in FAMILY.items()))
    line = _one_line_error(
        capsys, [*_quick_train(path, run, 2), "data.split=cluster", "data.split_identity=2"]
    )
    assert "data.split_identity=2: expected a number in (0, 1]" in line
    line = _one_line_error(
        capsys, [*_quick_train(path, run, 2), "data.split=cluster", "data.valid_fraction=0.5"]
    )
    assert "only 2 of 8 sequences lie outside the focus's cluster" in line
    assert not run.exists()  # no partial outputs
