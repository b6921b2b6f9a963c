"""The focus_columns representation (`data.representation=focus_columns`): records are alignment rows over
the focus columns (X at gaps, insertions dropped); the run records its focus, which maps a wild type and its
variants onto the columns; designs are rows with their X removed."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

import protein_sedd
from protein_sedd.data.focus_columns import design_sequence, parse_residue_ranges, residue_ranges
from protein_sedd.data.prepare import prepare_splits
from protein_sedd.errors import UserError
from protein_sedd.evaluation.variants import (
    Variant,
    VariantSet,
    elbo_difference_scores,
    masked_marginal_scores,
)
from protein_sedd.io.fasta import read_fasta

from .conftest import run_cli
from .test_alignment import _data_cfg, _one_line_error, _quick_train, _write_forms

# (id, match columns, {column index: insertion after it}): the focus itself has an insertion ('gg' after
# its 4th column), so its residues 5 and 6 (1-based) have no column
ROWS = [
    ("focus", "MKVLSGHEWR", {3: "gg"}),
    ("h1", "MKVLAGHEWR", {}),
    ("h2", "MRV-QGHDWR", {7: "p"}),
    ("h3", "--VLAGHEW-", {}),
    ("h4", "MKILSGWEWR", {5: "k"}),
]
FOCUS_SEQUENCE = "MKVLGGSGHEWR"  # every letter of the focus row
FOCUS_ROW = "MKVLSGHEWR"  # its residues at the 10 focus columns
RECORDS = {"focus": FOCUS_ROW, "h1": "MKVLAGHEWR", "h2": "MRVXQGHDWR", "h3": "XXVLAGHEWX", "h4": "MKILSGWEWR"}


def test_a_design_row_loses_its_x_unless_nothing_would_be_left():
    assert design_sequence("XMKXVX") == "MKV"
    assert design_sequence("XXXX") == "XXXX"  # not an empty, unreadable FASTA record


def test_residue_ranges_round_trip_and_refuse_malformed_text():
    assert residue_ranges(np.array([0, 1, 2, 5, 7, 8])) == "1-3,6,8-9"
    assert parse_residue_ranges("1-3,6,8-9").tolist() == [0, 1, 2, 5, 7, 8]
    for bad in ("0-3", "3-1", "1-3,2-5", "a-b", ""):
        with pytest.raises(ValueError):
            parse_residue_ranges(bad)


@pytest.mark.parametrize("form", ["a2m", "a3m", "sto"])
def test_records_are_rows_over_the_focus_columns(tmp_path, form):
    path = _write_forms(tmp_path, ROWS)[form]
    prepared = prepare_splits(_data_cfg(path, representation="focus_columns"), max_length=10)
    train = prepared.splits.train
    assert {r.id: r.sequence for r in train} == RECORDS  # X at gaps, insertions (gg, p, k) dropped
    stats = prepared.splits.stats
    assert stats["representation"] == "focus_columns" and stats["focus_sequence"] == FOCUS_SEQUENCE
    assert stats["focus_residues"] == "1-4,7-12"
    # coverage and weights are those of the columns, as for sequence records
    sequence = prepare_splits(_data_cfg(path), max_length=100)
    assert prepared.family.coverage.tolist() == sequence.family.coverage.tolist() == [1, 1, 0.9, 0.7, 1]
    assert prepared.family.weights.tolist() == sequence.family.weights.tolist()
    assert [r.sequence for r in sequence.splits.train][0] == FOCUS_SEQUENCE  # the default: real sequences


def test_dedupe_works_on_the_column_rows(tmp_path):
    """Two rows that differ only in an insertion are one record over the columns."""
    path = tmp_path / "dup.a3m"
    path.write_text(">focus\nMKVLSGHEWR\n>copy\nMKVLaaSGHEWR\n>other\nMKVLAGHEWR\n")
    prepared = prepare_splits(_data_cfg(path, representation="focus_columns"), max_length=10)
    assert [r.id for r in prepared.splits.train] == ["focus", "other"]
    assert prepared.splits.stats["n_duplicates_removed"] == 1


def test_config_mistakes_exit_2_with_one_line(tmp_path, capsys):
    path = _write_forms(tmp_path, ROWS)["a2m"]
    run = tmp_path / "run"
    line = _one_line_error(capsys, ["train", "--fasta", path, "--out", run, "data.representation=rows"])
    assert "data.representation='rows': choose sequence or focus_columns" in line
    fasta = tmp_path / "plain.fa"
    fasta.write_text(">a\nMKVLSGHEWR\n>b\nMKVLAGHEWR\n")
    line = _one_line_error(
        capsys, ["train", "--fasta", fasta, "--out", run, "data.representation=focus_columns"]
    )
    assert "data.representation=focus_columns needs an alignment" in line and str(fasta) in line
    line = _one_line_error(
        capsys,
        ["train", "--fasta", path, "--out", run, "data.representation=focus_columns", "model.max_length=8"],
    )
    assert "model.max_length=8 is shorter than the 10 focus columns" in line
    assert "set model.max_length=10 or more" in line
    assert not run.exists()  # no partial outputs


@pytest.fixture(scope="module")
def columns_run(tmp_path_factory) -> Path:
    """A focus_columns run of the family above, two steps (seconds): any weights will do."""
    root = tmp_path_factory.mktemp("columns")
    path = _write_forms(root, ROWS)["a2m"]
    args = [*_quick_train(path, root / "run", 2), "data.representation=focus_columns", "model.max_length=10"]
    assert run_cli(args)[0] == 0
    return root / "run"


def test_the_focus_mapping_survives_load_save_resume_and_init_from(columns_run, tmp_path, capsys):
    model = protein_sedd.load(columns_run, "cpu")
    assert model.focus.sequence == FOCUS_SEQUENCE and model.focus.row == FOCUS_ROW
    assert model.focus.positions.tolist() == [0, 1, 2, 3, 6, 7, 8, 9, 10, 11]
    saved = protein_sedd.load(model.save_pretrained(tmp_path / "saved"), "cpu")
    assert saved.focus.sequence == FOCUS_SEQUENCE and saved.focus.row == FOCUS_ROW
    run = tmp_path / "run"
    shutil.copytree(columns_run, run)
    code, _, err = run_cli(["train", "--out", run, "--resume", "--max-steps", 4], capsys)
    assert code == 0, err
    assert "records: rows over the focus columns (X = gap, insertions dropped)" in err  # the log says so
    resumed = protein_sedd.load(run, "cpu")
    assert resumed.config.step == 4 and resumed.focus.row == FOCUS_ROW
    path = Path(OmegaConf.load(columns_run / "config.yaml").dataset.source)
    child = tmp_path / "child"
    args = [*_quick_train(path, child, 2), "--init-from", columns_run, "data.representation=focus_columns"]
    assert run_cli([*args, "model.max_length=10"])[0] == 0
    assert protein_sedd.load(child, "cpu").focus.row == FOCUS_ROW


def test_a_damaged_focus_record_is_refused_naming_the_key(columns_run, tmp_path):
    folder = tmp_path / "damaged"
    shutil.copytree(columns_run / "checkpoint", folder)
    config = OmegaConf.load(folder / "config.yaml")
    config.dataset.focus_residues = "1-4,7-30"  # beyond the 12-residue focus
    OmegaConf.save(config, folder / "config.yaml")
    with pytest.raises(UserError, match=r"dataset.focus_residues='1-4,7-30' reaches beyond"):
        protein_sedd.load(folder, "cpu")
    del config.dataset.focus_sequence
    OmegaConf.save(config, folder / "config.yaml")
    with pytest.raises(UserError, match=r"needs dataset.focus_sequence and dataset.focus_residues"):
        protein_sedd.load(folder, "cpu")


MUTANTS = ["M1A", "S7A", "G5A", "M1A:S7W", "K2R:G6A", "E10D"]
# their positions on the focus's columns (G5 and G6 are the focus's insertion: no column)
ON_COLUMNS = {"M1A": (0,), "S7A": (4,), "M1A:S7W": (0, 4), "E10D": (7,)}


def _expected(scores) -> list[float]:
    by_mutant = dict(zip(ON_COLUMNS, scores, strict=True))
    return [by_mutant.get(m, math.nan) for m in MUTANTS]


def _column_variants() -> list[Variant]:
    wild = {"M1A": "M", "S7A": "S", "M1A:S7W": "MS", "E10D": "E"}
    new = {"M1A": "A", "S7A": "A", "M1A:S7W": "AW", "E10D": "D"}
    return [Variant(m, ON_COLUMNS[m], wild[m], new[m]) for m in ON_COLUMNS]


def test_variants_are_scored_on_the_focus_row_at_their_columns(columns_run):
    model = protein_sedd.load(columns_run, "cpu")
    frame = model.score_variants(FOCUS_SEQUENCE, MUTANTS)
    direct = masked_marginal_scores(model.network, model.graph, FOCUS_ROW, _column_variants(), batch_size=8)
    assert frame["score"].tolist() == pytest.approx(_expected(direct.score), abs=1e-9, nan_ok=True)
    assert frame.attrs["n_unscored"] == 2 and "outside the 10 focus columns" in frame.attrs["unscored_reason"]
    assert frame.attrs["network_passes"] == 4  # {0}, {4}, {0, 4}, {7}: the unscored take none
    elbo = model.score_variants(FOCUS_SEQUENCE, MUTANTS, "elbo", t_samples=4, seed=3)
    expected = elbo_difference_scores(
        model, FOCUS_ROW, _column_variants(), t_samples=4, seed=3, batch_size=64,
    )  # fmt: skip
    assert elbo["score"].tolist() == pytest.approx(_expected(expected.score), abs=1e-9, nan_ok=True)
    assert elbo["standard_error"].isna().tolist() == [False, False, True, False, True, False]


def test_a_wild_type_without_the_focus_or_a_strain_of_it_is_refused_unless_allowed(columns_run):
    model = protein_sedd.load(columns_run, "cpu")
    with pytest.raises(UserError, match=r"the wild type \(10 residues\) does not contain the focus sequence "
                                        r"this model was trained on \(12 residues"):  # fmt: skip
        model.score_variants(FOCUS_ROW, ["M1A"])
    strain = FOCUS_SEQUENCE[:-1] + "A"
    with pytest.raises(UserError, match=r"residue 12 is 'A' where the focus has 'R' \(1 difference in the "
                                        r"focus region\); pass allow_differences"):  # fmt: skip
        model.score_variants(strain, ["M1A"])
    # allowed: the strain's own residues are scored (its residue 12 sits on the last focus column)
    scored = model.score_variants(strain, ["M1A", "A12R"], allow_differences=True)
    assert scored["score"].notna().all()
    table = pd.DataFrame({"mutant": ["M1A"]})
    job = VariantSet.parse(strain, table, str).job(model, method="masked-marginal", t_samples=1, seed=0,
                                                    batch_size=4, allow_differences=True)  # fmt: skip
    assert job.plan.sequence == FOCUS_ROW[:-1] + "A" and job.plan.placement.differences == (11,)


FULL_LENGTH = "MSTQ" + FOCUS_SEQUENCE + "LLPK"  # the focus is residues 5-16 of this protein


def test_a_sequence_model_of_an_alignment_scores_a_full_length_wild_type_on_its_focus(tmp_path):
    """A sequence model trained on an alignment records the focus's sequence and scores a longer wild type
    on that region (what it learnt), exactly as the focus itself; a run without the record scores the wild
    type as given."""
    path = _write_forms(tmp_path, ROWS)["a2m"]
    assert run_cli(_quick_train(path, tmp_path / "run", 2))[0] == 0
    config = OmegaConf.load(tmp_path / "run" / "config.yaml")
    assert config.dataset.focus_sequence == FOCUS_SEQUENCE and config.data.representation == "sequence"
    model = protein_sedd.load(tmp_path / "run", "cpu")
    on_focus = model.score_variants(FOCUS_SEQUENCE, ["M1A", "G5A", "R12K"])
    full = model.score_variants(FULL_LENGTH, ["M5A", "G9A", "R16K", "T3A"])
    np.testing.assert_array_equal(full["score"][:3], on_focus["score"])  # every residue has its place
    assert np.isnan(full["score"][3]) and full.attrs["n_unscored"] == 1
    old = tmp_path / "old"
    shutil.copytree(tmp_path / "run", old)
    for saved in old.rglob("config.yaml"):  # the run's and its checkpoint's: a run from before the record
        edited = OmegaConf.load(saved)
        del edited.dataset.focus_sequence
        OmegaConf.save(edited, saved)
    as_given = protein_sedd.load(old, "cpu").score_variants(FULL_LENGTH, ["M5A", "T3A"])
    assert as_given["score"].notna().all()


def test_a_full_length_wild_type_is_scored_on_its_focus_region_numbered_as_given(columns_run, tmp_path,
                                                                                 capsys):  # fmt: skip
    """Mutants numbered on the full protein score exactly as the same mutants numbered on the focus; those
    outside the region go unscored; the region is found, placed by focus_start, or read from an id."""
    model = protein_sedd.load(columns_run, "cpu")
    on_focus = model.score_variants(FOCUS_SEQUENCE, ["M1A", "S7A", "K2R:G6A"])
    full = model.score_variants(FULL_LENGTH, ["M5A", "S11A", "K6R:G10A", "T3A", "K20A"])
    np.testing.assert_array_equal(full["score"][:3], on_focus["score"])  # K2R:G6A: no column in both
    assert full["score"][3:].isna().all() and full.attrs["n_unscored"] == 3
    assert full.attrs["unscored_reason"] == (
        "2 with a mutated position outside the focus region (residues 5-16); 1 with a mutated position "
        "outside the 10 focus columns"
    )
    placed = model.score_variants(FULL_LENGTH, ["M5A"], focus_start=5)
    assert placed["score"][0] == on_focus["score"][0]
    with pytest.raises(UserError, match="residue 4 is 'Q' where the focus has 'M'"):
        model.score_variants(FULL_LENGTH, ["M5A"], focus_start=4)
    with pytest.raises(UserError, match=r"focus_start 10: the focus \(12 residues\) would span residues "
                                        r"10-21, but the wild type holds residues 1-20"):  # fmt: skip
        model.score_variants(FULL_LENGTH, ["M5A"], focus_start=10)
    with pytest.raises(UserError, match="occurs at residues 1 and 13; give focus_start"):
        model.score_variants(FOCUS_SEQUENCE * 2, ["M1A"])
    # the command: a /start-end id numbers the focus record from its start
    record = tmp_path / "focus.fasta"
    record.write_text(f">focus/24-35\n{FOCUS_SEQUENCE}\n")
    variants = tmp_path / "dms.csv"
    variants.write_text("mutant,DMS_score\nM24A,1\nS30A,2\nK25R:G29A,3\n")
    out = tmp_path / "scores.csv"
    args = ["score-variants", "--checkpoint", columns_run, "--wildtype", record, "--variants", variants,
            "--out", out, "--device", "cpu"]  # fmt: skip
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    assert "wild type on the model's focus (12 residues): the focus itself" in err
    np.testing.assert_allclose(pd.read_csv(out)["score"], on_focus["score"], rtol=1e-6)  # CSV digits
    summary = json.loads((tmp_path / "scores.summary.json").read_text())
    assert summary["wildtype"]["first"] == 24 and summary["wildtype"]["focus_region"] == "24-35"
    full_fasta = tmp_path / "full.fasta"
    full_fasta.write_text(f">P12345\n{FULL_LENGTH}\n")
    variants.write_text("mutant\nM5A\nT3A\n")
    code, _, err = run_cli([*args[:4], full_fasta, *args[5:], "--overwrite"], capsys)
    assert code == 0, err
    assert "found once, at residues 5-16" in err and "1 of 2 variants not scored" in err
    record.write_text(f">focus/24-30\n{FOCUS_SEQUENCE}\n")
    code, _, err = run_cli([*args, "--overwrite"], capsys)
    assert code == 2 and "its id says residues 24-30 (7), but it holds 12" in err, err


def test_the_command_leaves_unscored_variants_empty_and_counts_them(columns_run, tmp_path, capsys):
    wildtype = tmp_path / "wt.fasta"
    wildtype.write_text(f">focus\n{FOCUS_SEQUENCE}\n")
    variants = tmp_path / "dms.csv"
    measured = [0.1, 0.5, 0.2, 0.9, 0.4, 0.3]
    rows = zip(MUTANTS, measured, strict=True)
    variants.write_text("mutant,DMS_score\n" + "".join(f"{m},{d}\n" for m, d in rows))
    out = tmp_path / "scores.csv"
    args = ["score-variants", "--checkpoint", columns_run, "--wildtype", wildtype, "--variants", variants]
    code, _, err = run_cli([*args, "--out", out, "--device", "cpu"], capsys)
    assert code == 0, err
    assert "2 of 6 variants not scored (empty score): a mutated position outside the 10 focus" in err
    assert "scored variants better" not in err  # the hint is for sequence models
    lines = out.read_text().splitlines()
    assert lines[3].startswith("G5A,,") and lines[5].startswith("K2R:G6A,,")  # empty, not 'nan'
    summary = json.loads((tmp_path / "scores.summary.json").read_text())
    assert summary["n_not_scored"] == 2 and "focus columns" in summary["not_scored_reason"]
    scores = pd.read_csv(out)["score"].to_numpy()
    scored = ~np.isnan(scores)
    from protein_sedd.evaluation.variants import spearman

    rho = summary["spearman_vs_DMS_score"]
    assert rho["n"] == 4 and rho["rho"] == pytest.approx(spearman(scores[scored], np.array(measured)[scored]))
    wildtype.write_text(f">raw\n{FOCUS_ROW}\n")  # the focus's column row is not the wild type
    variants.write_text("mutant\nM1A\n")  # a mutant that fits it
    line = _one_line_error(capsys, [*args, "--out", tmp_path / "other.csv", "--device", "cpu"])
    assert f"--wildtype {wildtype}: record 'raw' (10 residues) does not contain the focus sequence" in line
    assert "--focus-start (the wild-type residue where the focus begins" in line
    assert not (tmp_path / "other.csv").exists()


def test_designs_are_column_rows_with_their_x_removed(columns_run, tmp_path, capsys):
    out = tmp_path / "designs.fasta"
    args = ["design", "--checkpoint", columns_run, "--n", 24, "--steps", 2, "--out", out, "--seed", 1]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    assert "each design is a row over the 10 focus columns, written with its X (deletions) removed" in err
    designs = read_fasta(out)
    assert all("aligned_length=10" in r.description for r in designs)
    assert all("X" not in r.sequence and 0 < len(r.sequence) <= 10 for r in designs)
    # the template fixes four X (deletions): each design is its six designed letters without their X
    model = protein_sedd.load(columns_run, "cpu")
    templated = model.design(8, steps=2, seed=0, template="XXVLXX____", progress=False)
    for design in templated:
        assert design.sequence.startswith("VL") and "X" not in design.sequence and design.length <= 6
        assert design.header.endswith(" aligned_length=10")


def test_raw_sequences_are_refused_where_the_model_reads_column_rows(columns_run, tmp_path, capsys):
    """score, embed, evaluate --fasta, design --length and train-guide take rows over the 10 columns;
    the focus's raw sequence (12 letters) would be read as columns it does not fill."""
    model = protein_sedd.load(columns_run, "cpu")
    row_error = "12 letters, but this focus_columns model reads rows over its 10 focus columns"
    for call in (lambda: model.score([FOCUS_SEQUENCE]), lambda: model.embed([FOCUS_SEQUENCE])):
        with pytest.raises(UserError, match=f"sequence 'seq_1': {row_error}"):
            call()
    assert len(model.score([FOCUS_ROW, RECORDS["h3"]], t_samples=2)) == 2  # rows are scored
    with pytest.raises(UserError, match="design 1: 8 letters.*give no length \\(or length 10\\)"):
        model.design(2, steps=2, length=8, progress=False)
    rows = [*RECORDS.values(), "MKVLSGHEWX", "MKVLSGHEXX"]
    labels = pd.DataFrame({"sequence": [*rows, FOCUS_SEQUENCE], "label": [0, 1] * 4})
    with pytest.raises(UserError, match=row_error):
        model.train_guide(labels, steps=1)
    raw = tmp_path / "raw.fasta"
    raw.write_text(f">raw\n{FOCUS_SEQUENCE}\n")
    out = tmp_path / "scores.csv"
    args = ["evaluate", "--checkpoint", columns_run, "--fasta", raw, "--csv", out, "--device", "cpu"]
    line = _one_line_error(capsys, args)
    assert f"{raw}: record 'raw': {row_error}" in line and not out.exists()


def test_score_variants_points_a_sequence_model_of_an_alignment_to_focus_columns(tmp_path, capsys):
    path = _write_forms(tmp_path, ROWS)["a2m"]
    assert run_cli([*_quick_train(path, tmp_path / "run", 2), "model.max_length=12"])[0] == 0
    wildtype = tmp_path / "wt.fasta"
    wildtype.write_text(f">focus\n{FOCUS_SEQUENCE}\n")
    variants = tmp_path / "dms.csv"
    variants.write_text("mutant\nK2R\nG5A\n")
    args = [
        "score-variants",
        "--checkpoint",
        tmp_path / "run",
        "--wildtype",
        wildtype,
        "--variants",
        variants,
    ]
    code, _, err = run_cli([*args, "--out", tmp_path / "scores.csv", "--device", "cpu"], capsys)
    assert code == 0, err
    assert "a model trained with data.representation=focus_columns scored variants better" in err
    assert (
        pd.read_csv(tmp_path / "scores.csv")["score"].notna().all()
    )  # a sequence model scores every position


def test_a_scan_of_a_full_length_wild_type_covers_the_models_focus_region(columns_run, tmp_path, capsys):
    wildtype = tmp_path / "full.fasta"
    wildtype.write_text(f">P12345\n{FULL_LENGTH}\n")
    out = tmp_path / "scan.csv"
    args = ["score-variants", "--checkpoint", columns_run, "--wildtype", wildtype, "--scan", "--out", out,
            "--device", "cpu"]  # fmt: skip
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    scan = pd.read_csv(out)
    assert sorted(set(scan["position"])) == list(range(5, 17)) and len(scan) == 12 * 19
    assert set(scan.loc[scan["score"].isna(), "position"]) == {9, 10}  # the focus's residues 5-6: no column
    profile = pd.read_csv(tmp_path / "scan.positions.csv")
    assert profile["position"].tolist() == [5, 6, 7, 8, *range(11, 17)]
    assert "38 of 228 variants not scored" in err


def test_score_variants_with_the_potts_baseline_of_an_alignment(tmp_path, capsys):
    """--potts fits the baseline on the alignment and scores like a focus_columns model: the wild type
    placed on the focus, each variant's change in the Hamiltonian, positions without a column empty."""
    from protein_sedd.baselines.potts import PottsModel, potts_scores, potts_symbols
    from protein_sedd.evaluation.variants import parse_mutant
    from protein_sedd.io.alignment import read_sequences

    path = _write_forms(tmp_path, ROWS)["a2m"]
    wildtype = tmp_path / "full.fasta"
    wildtype.write_text(f">P12345\n{FULL_LENGTH}\n")
    variants = tmp_path / "dms.csv"
    variants.write_text("mutant,DMS_score\nM5A,1\nS11A,2\nK6R,3\nG9A,0\n")
    out = tmp_path / "potts.csv"
    args = [
        "score-variants",
        "--potts",
        path,
        "--wildtype",
        wildtype,
        "--variants",
        variants,
        "--out",
        out,
        "--threads",
        1,
    ]  # the fit by hand below uses one thread too: L-BFGS's sums depend on the count
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    assert "found once, at residues 5-16" in err and "1 of 4 variants not scored" in err
    scores = pd.read_csv(out)["score"].to_numpy()
    # by hand: the same fit, the focus row's symbols, the variants on the focus numbered from 1
    model = PottsModel.fit(path, threads=1)
    data = read_sequences(path)
    on_focus = [parse_mutant(m, FOCUS_SEQUENCE) for m in ["M1A", "S7A", "K2R"]]
    expected = potts_scores(model.potts, potts_symbols(data.columns[data.focus_index]), data.focus_positions,
                            on_focus)  # fmt: skip
    np.testing.assert_allclose(scores[:3], expected, rtol=1e-5)
    assert np.isnan(scores[3])  # the focus's residue 5: an insertion, no column
    summary = json.loads((tmp_path / "potts.summary.json").read_text())
    assert (
        summary["method"] == "potts" and summary["network_passes"] == 0 and "Potts model" in summary["note"]
    )
    code, _, err = run_cli([*args, "--checkpoint", tmp_path, "--overwrite"], capsys)
    assert code == 2 and "give --checkpoint (a SEDD model) or --potts ALIGNMENT" in err
