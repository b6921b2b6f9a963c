"""Alignment input (A2M, A3M, Stockholm, aligned FASTA), redundancy weights and the fragment filter."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from protein_sedd.data.batches import BatchStream
from protein_sedd.data.family.weights import identity_weights, kmer_weights
from protein_sedd.data.prepare import prepare_splits
from protein_sedd.errors import UserError
from protein_sedd.io.alignment import GAP_CODE, read_sequences
from protein_sedd.io.fasta import read_fasta
from tests.conftest import REPO, run_cli

# (id, match columns, {column index: insertion after it}): the focus first, then homologs
ROWS = [
    ("focus", "MKVLAGHEWR", {}),
    ("r2", "MKVLSGHEWR", {3: "gg"}),
    ("r3", "MRVLQGHDWR", {7: "p"}),
    ("frag", "----AGHE--", {}),  # covers 4 of 10 focus columns: a fragment at min_coverage 0.5
    ("part", "--VLAGHEW-", {5: "k"}),  # covers 7 of 10: trains, but is not full-length (0.9)
]
COVERAGE = {"focus": 1.0, "r2": 1.0, "r3": 1.0, "frag": 0.4, "part": 0.7}


def _a3m(rows=ROWS) -> str:
    return "".join(
        f">{i}\n" + "".join(c + ins.get(k, "") for k, c in enumerate(m)) + "\n" for i, m, ins in rows
    )


def _a2m_rows(rows=ROWS) -> list[tuple[str, str]]:
    """Insert columns padded with '.': every row one width."""
    width = {k: max(len(ins.get(k, "")) for _, _, ins in rows) for k in range(len(rows[0][1]))}
    return [
        (i, "".join(c + ins.get(k, "").ljust(width[k], ".") for k, c in enumerate(m))) for i, m, ins in rows
    ]


def _write_forms(folder: Path, rows=ROWS) -> dict[str, Path]:
    a2m = _a2m_rows(rows)
    forms = {
        "a3m": _a3m(rows),
        "a2m": "".join(f">{i}\n{row}\n" for i, row in a2m),
        "afa": "".join(f">{i}\n{row.upper().replace('.', '-')}\n" for i, row in a2m),
        "sto": "# STOCKHOLM 1.0\n" + "".join(f"{i:8s}{row}\n" for i, row in a2m) + "//\n",
    }
    paths = {}
    for suffix, text in forms.items():
        paths[suffix] = folder / f"family.{suffix}"
        paths[suffix].write_text(text)
    return paths


def _data_cfg(path: Path, **keys):
    base = {
        "name": "fasta", "fasta": str(path), "dedupe": True, "valid_fraction": 0.0, "test_fraction": 0.0,
        "split_seed": 0, "min_length": 1, "weights": "auto", "weight_identity": 0.8, "min_coverage": "auto",
        "length_prior": "auto", "focus": None,
    }  # fmt: skip
    return OmegaConf.create({**base, **keys})


def test_a3m_a2m_stockholm_and_aligned_fasta_give_identical_training_records(tmp_path):
    expected = {i: (m + "".join(ins.values())) for i, m, ins in ROWS}  # letters only; order checked below
    forms = _write_forms(tmp_path)
    forms["a3m.gz"] = tmp_path / "family.a3m.gz"
    forms["a3m.gz"].write_bytes(gzip.compress(forms["a3m"].read_bytes()))
    results = {form: read_sequences(path) for form, path in forms.items()}
    first = results["a3m"]
    assert first.aligned and first.focus_id == "focus" and first.columns.shape == (5, 10)
    for form, data in results.items():
        assert data.format == {"sto": "stockholm", "a3m.gz": "a3m"}.get(form, form)
        assert [r.id for r in data.records] == [i for i, _, _ in ROWS], form
        assert [r.sequence for r in data.records] == [r.sequence for r in first.records], form
        assert np.array_equal(data.columns, first.columns), form
        assert data.focus_index == 0 and data.focus_positions.tolist() == list(range(10)), form
        # focused on r2, whose two inserted residues follow column 4: its residues 4 and 5 have no column,
        # except in aligned FASTA, which writes insertions in upper case: there every residue is a column
        other = read_sequences(forms[form], focus="r2")
        positions = list(range(12)) if form == "afa" else [0, 1, 2, 3, 6, 7, 8, 9, 10, 11]
        assert other.focus_index == 1 and other.focus_positions.tolist() == positions, form
    for record in first.records:  # every letter of the row, upper-cased, gaps dropped
        assert sorted(record.sequence) == sorted(expected[record.id].replace("-", "").upper())
    assert first.records[1].sequence == "MKVLGGSGHEWR"
    assert (first.columns[3] == GAP_CODE).sum() == 6


def test_a_planted_fragment_is_filtered_and_design_lengths_skip_partial_members(tmp_path):
    path = _write_forms(tmp_path)["a3m"]
    prepared = prepare_splits(_data_cfg(path), max_length=100)
    family, stats = prepared.family, prepared.splits.stats
    train = prepared.splits.train
    assert [r.id for r in train] == ["focus", "r2", "r3", "part"]
    assert stats["n_fragments_filtered"] == 1 and stats["min_coverage"] == 0.5
    assert family.coverage[train.indices].tolist() == [COVERAGE[r.id] for r in train]
    members = family.length_members(train.indices)
    assert [family.store.record_id(int(i)) for i in members] == ["focus", "r2", "r3"]
    assert family.length_source(train.indices) == "3 full-length training sequences (coverage >= 0.9) of 4"
    partial_only = train.indices[3:]  # no full-length member: every length rather than none
    assert family.length_members(partial_only).tolist() == partial_only.tolist()
    # at min_coverage 0.3 the fragment trains; at 0.75 the partial member is a fragment too
    loose = prepare_splits(_data_cfg(path, min_coverage=0.3), max_length=100)
    assert len(loose.splits.train) == 5 and loose.splits.stats["n_fragments_filtered"] == 0
    strict = prepare_splits(_data_cfg(path, min_coverage=0.75), max_length=100)
    assert [r.id for r in strict.splits.train] == ["focus", "r2", "r3"]


def test_a_config_without_the_new_keys_trains_as_before(tmp_path):
    """Runs from before alignment input: unweighted, unfiltered, lengths from every training record."""
    path = _write_forms(tmp_path)["a2m"]
    legacy = OmegaConf.create(
        {k: v for k, v in _data_cfg(path).items() if k not in ("weights", "min_coverage", "length_prior")}
    )
    prepared = prepare_splits(legacy, max_length=100)
    assert [r.sequence for r in prepared.splits.train] == [r.sequence for r in read_fasta(path)]
    assert prepared.family.weights is None and "neff" not in prepared.splits.stats
    assert len(prepared.family.length_members(prepared.splits.train.indices)) == 5


def _cluster_alignment(length: int, seed: int = 0) -> np.ndarray:
    """Rows 0-3: one sequence and three copies with 2 substitutions each (>= 98% identical to each other);
    rows 4-7: unrelated random sequences (about 5% identical to anything)."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 20, size=(8, length))
    for copy in (1, 2, 3):
        rows[copy] = rows[0]
        rows[copy, rng.choice(length, 2, replace=False)] = (rows[0, 0] + 1) % 20
    return rows.astype(np.uint8)


def _brute_force_counts(columns: np.ndarray, threshold: float) -> np.ndarray:
    identity = (columns[:, None, :] == columns[None, :, :]).mean(axis=2)
    return (identity >= threshold).sum(axis=1)


@pytest.mark.parametrize("length,block", [(50, 2048), (300, 3)])  # 300: two exact column chunks
def test_near_duplicates_share_the_weight_of_one_sequence(length, block):
    columns = _cluster_alignment(length)
    weights = identity_weights(columns, 0.8, block=block)
    assert weights[:4].tolist() == [0.25] * 4 and weights[4:].tolist() == [1.0] * 4
    assert weights[:4].sum() == 1.0 and weights.sum() == 5.0  # Neff: the cluster counts once
    assert np.array_equal(1 / weights, _brute_force_counts(columns, 0.8))
    # identity counts a shared gap as a match (EVmutation/plmc): two gap-only rows are identical
    gapped = np.full((2, length), GAP_CODE, dtype=np.uint8)
    assert identity_weights(gapped, 0.8).tolist() == [0.5, 0.5]


@pytest.mark.parametrize("length", [10, 300])
def test_a_pair_at_exactly_the_threshold_counts_as_neighbours(length):
    """id >= theta, not >: a pair identical at exactly 80% of the columns shares one weight; at one match
    fewer it does not."""
    pair = np.zeros((2, length), dtype=np.uint8)
    differ = length // 5  # 20% of the columns
    pair[1, :differ] = 1
    assert identity_weights(pair, 0.8).tolist() == [0.5, 0.5]
    pair[1, differ] = 1  # one match fewer: below 80%
    assert identity_weights(pair, 0.8).tolist() == [1.0, 1.0]


@pytest.mark.parametrize("block", [1024, 3])  # 3: pairs of blocks, each counted for both
def test_kmer_weights_find_the_same_cluster_without_an_alignment(block):
    letters = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    sequences = ["".join(letters[row]) for row in _cluster_alignment(300)]
    weights = kmer_weights(sequences, 0.8, block=block)
    assert weights[:4].tolist() == [0.25] * 4 and weights[4:].tolist() == [1.0] * 4


def test_pten_neff_matches_the_reference():
    """The data README's reference: Neff 146.0 at 80% identity over the 387 match columns."""
    path = Path(os.environ.get("PROTEIN_SEDD_DATA", "")) / "dms" / "PTEN_HUMAN" / "PTEN_HUMAN_b1.0.a2m"
    if not path.is_file():
        pytest.skip("needs $PROTEIN_SEDD_DATA/dms/PTEN_HUMAN/PTEN_HUMAN_b1.0.a2m")
    data = read_sequences(path)
    assert data.format == "a2m" and data.focus_id == "PTEN_HUMAN/1-403"
    assert data.columns.shape == (1197, 387) and len(data.records[0].sequence) == 403
    weights = identity_weights(data.columns, 0.8)
    assert weights.sum() == pytest.approx(146.0, abs=0.05)  # the reference, given to one decimal
    assert np.array_equal(weights, 1 / _brute_force_counts(data.columns, 0.8))  # every count exact
    # the focus columns sit on the wild type's residues: 3,904 of the scan's 4,112 variants fall in them
    wildtype = data.records[data.focus_index].sequence
    letters = np.array(list("ACDEFGHIKLMNPQRSTVWYX"))
    assert "".join(letters[data.columns[data.focus_index]]) == "".join(
        np.array(list(wildtype))[data.focus_positions]
    )
    scan = pd.read_csv(path.parent / "PTEN_HUMAN_Matreyek_2018.csv")
    positions = scan["mutant"].str[1:-1].astype(int) - 1
    assert len(scan) == 4112 and positions.isin(data.focus_positions).sum() == 3904


def test_weighted_batches_follow_seed_and_epoch_and_resume_exactly():
    tokens = [torch.tensor([i % 20] * (1 + i % 3)) for i in range(10)]
    weights = np.array([0.0, 0.0] + [1.0] * 8)  # weight 0 (a filtered record) is never drawn

    def stream():
        return BatchStream(tokens, 4, seed=7, pad_index=21, weights=weights)

    whole = stream()
    batches = [next(whole)[0] for _ in range(8)]  # 32 draws: past the end of three epochs of 10
    again = stream()
    assert all(torch.equal(b, next(again)[0]) for b in batches)
    resumed = stream()
    partial = stream()
    for _ in range(3):
        next(partial)
    resumed.load_state_dict(partial.state_dict())
    assert all(torch.equal(b, next(resumed)[0]) for b in batches[3:])
    drawn = torch.cat([b[:, 0] for b in batches])
    assert not ((drawn == 0) | (drawn == 1)).any()


def test_focus_by_id_and_its_mistakes(tmp_path):
    path = _write_forms(tmp_path)["a2m"]
    numbered = tmp_path / "numbered.a3m"  # ColabFold names its query 101: an int on the command line
    numbered.write_text(_a3m().replace(">r2", ">101"))
    assert prepare_splits(_data_cfg(numbered, focus=101), max_length=100).splits.stats["focus"] == "101"
    data = read_sequences(path, focus="part")
    assert data.focus_id == "part" and data.columns.shape == (5, 7)  # its 7 residues in match columns
    with pytest.raises(UserError, match=r"data.focus=nope: no record with that id .* first record is focus"):
        read_sequences(path, focus="nope")


def _one_line_error(capsys, args) -> str:
    capsys.readouterr()
    code, out, err = run_cli(args, capsys)
    lines = [line for line in err.strip().splitlines() if line]
    assert code == 2 and len(lines) == 1 and "Traceback" not in out + err, (code, err)
    return lines[0]


def test_malformed_alignments_exit_2_naming_file_and_line(tmp_path, capsys):
    bad_a2m = tmp_path / "bad.a2m"
    bad_a2m.write_text(">focus\nMKVLAGHEWR\n>r2\nMKVLSGHEW\n")  # one match column short
    line = _one_line_error(capsys, ["train", "--fasta", bad_a2m, "--out", tmp_path / "run"])
    assert f"{bad_a2m}: line 3, record 'r2': 9 match columns" in line and "expected 10" in line
    bad_residue = tmp_path / "bad.a3m"
    bad_residue.write_text(">focus\nMKVLAGHEWR\n\n>r2\nMKV1AGHEWR\n")
    line = _one_line_error(capsys, ["train", "--fasta", bad_residue, "--out", tmp_path / "run"])
    assert f"{bad_residue}: line 4, record 'r2': invalid residue '1' at position 4" in line
    bad_sto = tmp_path / "bad.sto"
    bad_sto.write_text("# STOCKHOLM 1.0\nfocus  MKVLAGHEWR\nr2\n//\n")
    line = _one_line_error(capsys, ["train", "--fasta", bad_sto, "--out", tmp_path / "run"])
    assert f"{bad_sto}: line 3: not a valid Stockholm alignment" in line
    bad_sto.write_text("# STOCKHOLM 1.0\n#=GF ID x\nfocus  MKVLAGHEWR\nr2     MKV1AGHEWR\n//\n")
    line = _one_line_error(capsys, ["train", "--fasta", bad_sto, "--out", tmp_path / "run"])
    assert f"{bad_sto}: line 4, record 'r2': invalid residue '1' at position 4" in line
    # two blocks of 10 columns each, cut after the first: no closing '//' (Biopython reads 10 columns)
    bad_sto.write_text("# STOCKHOLM 1.0\nfocus  MKVLAGHEWR\nr2     MKVLSGHEWR\n\n")
    line = _one_line_error(capsys, ["train", "--fasta", bad_sto, "--out", tmp_path / "run"])
    assert line == (
        f"error: {bad_sto}: ends at line 4 without the closing '//' line; the file is cut short "
        "(a truncated download or copy): fetch it again"
    )
    assert not (tmp_path / "run").exists()  # no partial outputs


def test_bad_alignment_keys_exit_2(tmp_path, capsys):
    path = _write_forms(tmp_path)["a3m"]
    for override, words in [
        ("data.weights=yes", "data.weights='yes': choose auto, identity, none"),
        ("data.min_coverage=1.5", "data.min_coverage=1.5: expected auto or a number in [0, 1]"),
        ("data.weight_identity=0", "data.weight_identity=0: expected a number in (0, 1]"),
        ("data.length_prior=some", "data.length_prior='some': choose auto, full_length, all"),
    ]:
        line = _one_line_error(capsys, ["train", "--fasta", path, "--out", tmp_path / "run", override])
        assert words in line, line


def _small_family(path: Path) -> Path:
    """An A2M of 33 rows over 30 focus columns: the focus, 24 full-length homologs (every fourth with a
    two-residue insertion) and 8 short rows: 4 fragments (coverage 0.2-0.4), 4 partial (0.6-0.8)."""
    rng = np.random.default_rng(1)
    letters = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    focus = "".join(rng.choice(letters, 30))
    rows = [("focus", focus, {})]
    for k in range(24):  # full-length homologs: 3 substitutions each
        match = list(focus)
        for c in rng.choice(30, 3, replace=False):
            match[c] = rng.choice(letters)
        rows.append((f"h{k}", "".join(match), {10: "aa"} if k % 4 == 0 else {}))
    for k in range(8):  # fragments (coverage 0.2-0.4) and partial members (0.6-0.8)
        start, stop = (0, 6 + 2 * (k % 4)) if k < 4 else (0, 18 + 2 * (k % 4))
        rows.append((f"f{k}", "-" * start + focus[start:stop] + "-" * (30 - stop), {}))
    path.write_text("".join(f">{i}\n{row}\n" for i, row in _a2m_rows(rows)))
    return path


def _quick_train(path: Path, run: Path, steps: int) -> list:
    return ["train", "--fasta", path, "--out", run, "--max-steps", steps, "--device", "cpu",
            "model.n_layers=1", "model.hidden_size=32", "model.n_heads=2", "model.cond_dim=16",
            "trainer.batch_size=8", "trainer.val_sequences=2", "trainer.checkpoint_every=2"]  # fmt: skip


def test_a_row_of_gaps_only_is_dropped_as_a_fragment_and_counted(tmp_path, capsys):
    path = _small_family(tmp_path / "small.a2m")
    path.write_text(path.read_text() + ">empty\n" + "-" * 30 + "\n")
    code, _, err = run_cli(_quick_train(path, tmp_path / "run", 2), capsys)
    assert code == 0, err
    assert "29 records" in err and "5 fragments (coverage < 0.5) dropped" in err  # 34 rows read
    code, _, err = run_cli([*_quick_train(path, tmp_path / "off", 2), "data.min_coverage=0"], capsys)
    assert code == 0, err
    assert "1 row with no residue dropped" in err
    assert OmegaConf.load(tmp_path / "off" / "config.yaml").dataset.n_fragments_filtered == 1
    unaligned = tmp_path / "plain.fa"
    unaligned.write_text(">a\nMKV\n>b\n\n")  # unaligned FASTA: an empty record is still a mistake
    code, _, err = run_cli(_quick_train(unaligned, tmp_path / "plain", 2), capsys)
    assert code == 2 and "record 'b': empty sequence" in err, err


def test_train_on_an_alignment_records_neff_and_designs_full_lengths(tmp_path, capsys):
    path = _small_family(tmp_path / "small.a2m")
    run = tmp_path / "run"
    code, _, err = run_cli(_quick_train(path, run, 2), capsys)
    assert code == 0, err
    assert "Neff" in err and "4 fragments (coverage < 0.5) dropped" in err
    config = OmegaConf.load(run / "config.yaml")
    dataset = config.dataset
    assert dataset.format == "a2m" and dataset.weights == "identity" and dataset.n_fragments_filtered == 4
    assert dataset.min_coverage == 0.5
    # Neff: the weights of the 29 rows kept (fragments dropped first), counted by brute force
    data = read_sequences(path)
    kept = data.columns[(data.columns != GAP_CODE).mean(1) >= 0.5]
    assert len(kept) == 29 and dataset.neff == round(float((1 / _brute_force_counts(kept, 0.8)).sum()), 3)
    # design lengths: the full-length training members, each counted with its weight (the weighted family)
    covered = (data.columns != GAP_CODE).mean(1)
    rows = [i for i, c in enumerate(covered) if c >= 0.5]
    weight = dict(zip([data.records[i].id for i in rows], 1 / _brute_force_counts(kept, 0.8), strict=True))
    expected = {}
    for record_id in json.loads((run / "splits.json").read_text())["train"]:
        index = next(i for i, r in enumerate(data.records) if r.id == record_id)
        if covered[index] >= 0.9:
            length = len(data.records[index].sequence)
            expected[length] = expected.get(length, 0.0) + weight[record_id]
    histogram = {length: count for length, count in config.lengths.histogram}
    assert config.lengths.weighted and histogram == pytest.approx(expected, abs=1e-6)
    assert "weighted by redundancy" in config.lengths.source
    lengths = {length for length, _ in config.lengths.histogram}
    assert lengths <= {30, 32} and "full-length" in config.lengths.source
    designs = tmp_path / "d.fa"
    code, _, err = run_cli(["design", "--checkpoint", run, "--n", 40, "--steps", 2, "--out", designs], capsys)
    assert code == 0, err
    assert "lengths: drawn from the training length distribution of" in err and "full-length" in err
    assert {len(r.sequence) for r in read_fasta(designs)} <= {30, 32}


def test_a_weighted_run_resumes_to_the_same_weights(tmp_path):
    path = _small_family(tmp_path / "small.a2m")
    assert run_cli(_quick_train(path, tmp_path / "whole", 4))[0] == 0
    assert run_cli(_quick_train(path, tmp_path / "split", 2))[0] == 0
    assert run_cli(["train", "--out", tmp_path / "split", "--resume", "--max-steps", "4"])[0] == 0
    whole = load_file(tmp_path / "whole" / "checkpoint" / "model.safetensors")
    split = load_file(tmp_path / "split" / "checkpoint" / "model.safetensors")
    assert all(torch.equal(whole[name], split[name]) for name in whole)


def test_weights_are_cached_per_file_and_choice_and_a_damaged_cache_is_recomputed(tmp_path, monkeypatch):
    import protein_sedd.data.family.training_set as family_module

    path = _write_forms(tmp_path)["a2m"]
    first = prepare_splits(_data_cfg(path, min_coverage=0.3), max_length=100).family.weights
    assert first.tolist() == [0.5, 0.5, 1.0, 1.0, 1.0]  # focus and r2 are 90% identical, the rest <= 70%

    def refuse(*args, **kwargs):
        raise AssertionError("weights recomputed despite the cache")

    monkeypatch.setattr(family_module, "identity_weights", refuse)
    again = prepare_splits(_data_cfg(path, min_coverage=0.3), max_length=100).family.weights
    assert again.tolist() == first.tolist()
    for cached in (Path(os.environ["XDG_CACHE_HOME"]) / "protein-sedd" / "weights").glob("*.npy"):
        np.save(cached, np.ones(2))  # damaged: the wrong shape
    monkeypatch.undo()
    assert (
        prepare_splits(_data_cfg(path, min_coverage=0.3), max_length=100).family.weights.tolist()
        == first.tolist()
    )


def test_unaligned_fasta_drops_fragments_by_default_in_new_runs_and_as_before_in_old_ones(tmp_path):
    path = tmp_path / "family.fa"
    full = ["MKVLAGHEWRTSPLQNDCYI", "MKVLSGHEWRTSPLQNDCYV", "PKVLAGHEWRTAPLQNDCYI", "MKVLAGHEWRTSPLQ"]
    path.write_text("".join(f">s{k}\n{s}\n" for k, s in enumerate([*full, "GHEWRT"])))
    old = prepare_splits(_data_cfg(path), max_length=100)  # a config from before data.auto_version
    assert len(old.splits.train) == 5 and old.family.weights is None
    assert old.splits.stats["format"] == "fasta" and old.splits.stats["n_fragments_filtered"] == 0
    assert old.family.policy.length_prior == "all"
    new = prepare_splits(_data_cfg(path, auto_version=2), max_length=100)  # configs/data/*.yaml today
    assert [r.id for r in new.splits.train] == ["s0", "s1", "s2", "s3"] and new.family.weights is None
    assert new.splits.stats["n_fragments_filtered"] == 1 and new.family.policy.length_prior == "full_length"
    assert (OmegaConf.load(REPO / "configs" / "data" / "fasta.yaml").auto_version
            == OmegaConf.load(REPO / "configs" / "data" / "acyp.yaml").auto_version == 2)  # fmt: skip
    # coverage is length / the median length (20): 6 residues is 0.3, 15 residues 0.75
    strict = prepare_splits(_data_cfg(path, min_coverage=0.5, weights="identity"), max_length=100)
    assert [r.id for r in strict.splits.train] == ["s0", "s1", "s2", "s3"]
    assert strict.splits.stats["n_fragments_filtered"] == 1 and strict.splits.stats["weights"] == "identity"
    members = strict.family.length_members(strict.splits.train.indices)
    assert [strict.family.store.record_id(int(i)) for i in members] == ["s0", "s1", "s2"]
    # 3-mer containment >= 0.8^3: s2 holds 9 of its 18 3-mers in s3 (0.5, not a neighbour) while s3 holds
    # 9 of its 13 in s2 (0.69); every other pair is within it
    assert strict.family.weights[:4].tolist() == [0.25, 0.25, 1 / 3, 0.25]
    assert strict.splits.stats["neff"] == 1.083


def test_weighted_epochs_draw_records_in_proportion_to_their_weights():
    from protein_sedd.data.batches import epoch_order

    weights = torch.tensor([0.0, 1.0, 3.0, 0.0, 4.0], dtype=torch.float64)
    draws = torch.cat([epoch_order(5, 0, epoch, weights) for epoch in range(20_000)])  # 100,000 draws
    frequencies = torch.bincount(draws, minlength=5).double() / len(draws)
    # expected 0, 1/8, 3/8, 0, 1/2; the binomial standard error is at most 0.0016
    assert frequencies[[0, 3]].tolist() == [0.0, 0.0]
    assert torch.allclose(frequencies, weights / weights.sum(), atol=0.008)
    assert torch.equal(epoch_order(5, 0, 3, weights), epoch_order(5, 0, 3, weights))  # (seed, epoch) decides
