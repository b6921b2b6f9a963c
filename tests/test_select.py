"""`select` against picks known in advance: filters, ranking, near-duplicates, missing rows."""

from __future__ import annotations

import json
import random

import pandas as pd
import pytest

from .conftest import run_cli

BASE = "MSTLKRVRFTVSGRVQGVFFRAFTAQEAKKLGLTGWVRNLPDGSVEVVAEGDE"


def _mutant(sequence: str, n: int, seed: int) -> str:
    rng = random.Random(seed)
    letters = list(sequence)
    for i in rng.sample(range(len(letters)), n):
        letters[i] = rng.choice([a for a in "ACDEFGHIKLMNPQRSTVWY" if a != letters[i]])
    return "".join(letters)


@pytest.fixture
def run_folder(tmp_path):
    """Six designs and hand-made evaluations whose right picks are known."""
    designs = {
        "best": BASE,
        "best_twin": _mutant(BASE, 2, 1),  # 96% identical to `best`: never picked beside it
        "good": _mutant(BASE, 25, 2),
        "no_family": _mutant(BASE, 30, 3),  # fails the family-bits filter
        "repeats": _mutant(BASE, 28, 4),  # flagged low-complexity
        "copy": _mutant(BASE, 27, 5),  # too close to a natural sequence
    }
    fasta = tmp_path / "designs.fasta"
    fasta.write_text("".join(f">{i} length={len(s)} steps=8\n{s}\n" for i, s in designs.items()))
    seq = tmp_path / "seq"
    seq.mkdir()
    pd.DataFrame(
        {
            "id": list(designs),
            "family_bits": [110.0, 108.0, 90.0, 5.0, 95.0, 100.0],
            "nearest_identity": [0.6, 0.6, 0.5, 0.4, 0.5, 0.97],
            "nearest_id": ["n1"] * 6,
            "low_complexity": [False, False, False, False, True, False],
        }
    ).to_csv(seq / "results.csv", index=False)
    fold = tmp_path / "fold"
    fold.mkdir()
    pd.DataFrame(
        {"id": list(designs), "mean_plddt": [91.0, 95.0, 80.0, 99.0, 98.0, 97.0], "ptm": [0.8] * 6}
    ).to_csv(fold / "results.csv", index=False)
    return fasta, seq, fold, designs


def test_picks_pass_every_filter_and_skip_near_duplicates(tmp_path, capsys, run_folder):
    fasta, seq, fold, designs = run_folder
    out = tmp_path / "picks"
    args = ["select", fasta, "--n", "3", "--seq-eval", seq, "--fold-eval", fold, "--out", out]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    # ranked by pLDDT: best_twin (95) > best (91) > good (80); best is 96% identical to best_twin: skipped
    picks = [line[1:].split()[0] for line in (out / "picks.fasta").read_text().splitlines() if line[0] == ">"]
    assert picks == ["best_twin", "good"]
    assert "only 2 designs" in err and "asked for 3" in err
    table = pd.read_csv(out / "picks.csv", dtype={"id": str}).set_index("id")
    assert not table.loc["no_family", "pass_family bits >= 25"] and not table.loc["no_family", "picked"]
    assert not table.loc["repeats", "pass_not low-complexity"] and not table.loc["copy", "eligible"]
    summary = json.loads((out / "summary.json").read_text())
    assert [(s["stage"], s["left"]) for s in summary["funnel"]] == [
        ("designs", 6), ("plddt >= 70", 6), ("family bits >= 25", 5), ("nearest identity <= 0.9", 4),
        ("not low-complexity", 3), ("pair identity <= 0.8", 2), ("picked", 2),
    ]  # fmt: skip
    assert (out / "funnel.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "picks.fasta").read_text().startswith(">best_twin length=")  # headers kept whole


def test_rank_key_and_the_lower_is_better_bound(tmp_path, capsys, run_folder):
    fasta, seq, fold, designs = run_folder
    scores = tmp_path / "scores.csv"
    nats = [200.0, 150.0, 120.0, 300.0, 100.0, 90.0]
    pd.DataFrame(
        {"id": list(designs), "nats": nats, "bits_per_residue": [n / 53 / 0.693 for n in nats],
         "standard_error_nats": [1.0] * 6}
    ).to_csv(scores, index=False)  # fmt: skip
    out = tmp_path / "by_bound"
    args = ["select", fasta, "--n", "2", "--seq-eval", seq, "--scores", scores, "--out", out]
    assert run_cli([*args, "--rank-by", "bits_per_residue"], capsys)[0] == 0
    picks = [line[1:].split()[0] for line in (out / "picks.fasta").read_text().splitlines() if line[0] == ">"]
    assert picks == ["good", "best_twin"]  # lowest bound first; `repeats` and `copy` are filtered out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--rank-by", "plddt"], "--rank-by plddt needs the fold-eval table"),
        (["--rank-by", "taste"], "--rank-by 'taste'"),
        (["--max-pair-identity", "1.5"], "--max-pair-identity 1.5"),
        ([], "no row for 1 design(s): 'extra'"),
        (
            ["--min-plddt", "50"],
            "error: --min-plddt filters on the fold-eval table: give --fold-eval DIR too, or leave "
            "--min-plddt out",
        ),
        (["--min-plddt", "70"], "--min-plddt filters on the fold-eval table"),  # the default, said aloud
    ],
)
def test_mistakes_exit_2_with_one_line_and_no_output(tmp_path, capsys, run_folder, extra, message):
    fasta, seq, fold, designs = run_folder
    if not extra:  # a design the tables have never seen
        fasta.write_text(fasta.read_text() + f">extra\n{BASE}\n")
    out = tmp_path / "picks"
    code, _, err = run_cli(["select", fasta, "--seq-eval", seq, "--out", out, *extra], capsys)
    assert code == 2
    assert err.startswith("error: ") and "\n" not in err.strip() and message in err
    assert not out.exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--min-plddt", "99.5"],
            "no design passes the filters: 'plddt >= 99.5' left none of 6 (the best mean pLDDT is 99); "
            "loosen --min-plddt",
        ),
        (
            ["--min-family-bits", "200"],
            "no design passes the filters: 'family bits >= 200' left none of 6 "
            "(the best family score is 110); loosen --min-family-bits",
        ),
        (
            ["--max-nearest-identity", "0.3"],
            "no design passes the filters: 'nearest identity <= 0.3' left none of 5 "
            "(the best nearest identity is 0.5); loosen --max-nearest-identity",
        ),
    ],
)
def test_when_no_design_passes_the_filter_that_left_none_is_named_and_nothing_is_written(
    tmp_path, capsys, run_folder, extra, message
):
    fasta, seq, fold, designs = run_folder
    out = tmp_path / "picks"
    args = ["select", fasta, "--seq-eval", seq, "--fold-eval", fold, "--out", out, *extra]
    code, _, err = run_cli(args, capsys)
    assert (code, err.strip()) == (2, f"error: {message}")
    assert not out.exists()


def test_every_design_low_complexity_says_to_keep_them(tmp_path, capsys, run_folder):
    fasta, seq, fold, designs = run_folder
    table = pd.read_csv(seq / "results.csv").assign(low_complexity=True)
    table.to_csv(seq / "results.csv", index=False)
    out = tmp_path / "picks"
    code, _, err = run_cli(["select", fasta, "--seq-eval", seq, "--out", out], capsys)
    assert (code, err.strip()) == (
        2,
        "error: no design passes the filters: 'not low-complexity' left none of 4; "
        "pass --keep-low-complexity to keep them",
    )


def test_a_toy_esmfold_ranking_is_called_a_plumbing_check(tmp_path, capsys, run_folder):
    from protein_sedd.testing.tiny_esmfold import PLUMBING_NOTE

    fasta, seq, fold, designs = run_folder
    (fold / "summary.json").write_text(json.dumps({"n": 6, "note": PLUMBING_NOTE}))
    out = tmp_path / "picks"
    code, _, err = run_cli(["select", fasta, "--fold-eval", fold, "--out", out, "--n", "2"], capsys)
    assert code == 0, err
    assert (
        f"warning: --fold-eval {fold}: {PLUMBING_NOTE}; its pLDDT filter and ranking show the plumbing only"
        in (err.splitlines())
    )
    assert json.loads((out / "summary.json").read_text())["note"] == PLUMBING_NOTE
    (fold / "summary.json").write_text(json.dumps({"n": 6}))  # real weights: no note, no warning
    code, _, err = run_cli(
        ["select", fasta, "--fold-eval", fold, "--out", out, "--n", "2", "--overwrite"], capsys
    )
    assert code == 0 and "warning" not in err and "note" not in json.loads((out / "summary.json").read_text())
    (fold / "summary.json").write_text("{not json")
    code, _, err = run_cli(["select", fasta, "--fold-eval", fold, "--out", tmp_path / "p2"], capsys)
    assert (code, err.strip()) == (
        2,
        f"error: --fold-eval: {fold / 'summary.json'} is not fold-eval's summary (unreadable JSON); "
        "rerun fold-eval",
    )


def test_a_filter_on_a_table_not_given_is_refused_and_recorded_as_not_applied(tmp_path, capsys, run_folder):
    fasta, seq, fold, designs = run_folder
    args = ["select", fasta, "--n", "2", "--fold-eval", fold]
    for flag, value in (
        ("--min-family-bits", "30"),
        ("--max-nearest-identity", "0.5"),
        ("--keep-low-complexity", None),
    ):
        out = tmp_path / flag.strip("-")
        code, _, err = run_cli([*args, "--out", out, flag, *([value] if value else [])], capsys)
        assert code == 2 and err.startswith(
            f"error: {flag} filters on the seq-eval table: give --seq-eval DIR"
        )
        assert not out.exists()
    out = tmp_path / "fold_only"
    assert run_cli([*args, "--out", out], capsys)[0] == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["min_plddt"] == 70.0 and summary["max_pair_identity"] == 0.8  # what filtered
    assert summary["min_family_bits"] is None and summary["max_nearest_identity"] is None  # what did not
    assert summary["keep_low_complexity"] is None


@pytest.mark.parametrize(
    "table, column, cell, message",
    [
        ("seq", "family_bits", "", "family_bits is missing ('')"),
        ("seq", "family_bits", "nan", "family_bits is missing ('nan')"),
        ("seq", "family_bits", "high", "family_bits 'high' is not a number"),
        ("seq", "nearest_identity", "1_0", "nearest_identity '1_0' is not a number"),
        ("fold", "mean_plddt", "NA", "mean_plddt is missing ('NA')"),
        ("scores", "bits_per_residue", "NA", "bits_per_residue is missing ('NA')"),
    ],
)
def test_a_bad_or_missing_number_names_its_file_row_and_column(
    tmp_path, capsys, run_folder, table, column, cell, message
):
    fasta, seq, fold, designs = run_folder
    scores = tmp_path / "scores.csv"
    columns = {"nats": [100.0] * 6, "bits_per_residue": [2.0] * 6, "standard_error_nats": [""] * 6}
    pd.DataFrame({"id": list(designs), **columns}).to_csv(scores, index=False)
    path = {"seq": seq / "results.csv", "fold": fold / "results.csv", "scores": scores}[table]
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[2, column] = cell
    frame.to_csv(path, index=False)
    flag = {"seq": "--seq-eval", "fold": "--fold-eval", "scores": "--scores"}[table]
    out = tmp_path / "picks"
    args = ["select", fasta, "--seq-eval", seq, "--fold-eval", fold, "--scores", scores, "--out", out]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and err.count("\n") == 1, err
    rerun = {"seq": "seq-eval", "fold": "fold-eval", "scores": "scores"}[table]
    assert err == f"error: {flag}: {path} row 4: {message}; rerun {rerun} on these designs\n"
    assert not out.exists()


def test_two_disagreeing_rows_for_one_design_are_refused(tmp_path, capsys, run_folder):
    fasta, seq, fold, designs = run_folder
    frame = pd.read_csv(seq / "results.csv", dtype=str, keep_default_na=False)
    twice = pd.concat([frame, frame.iloc[[0]]])  # the same row again is one row
    twice.to_csv(seq / "results.csv", index=False)
    assert run_cli(["select", fasta, "--seq-eval", seq, "--out", tmp_path / "ok"], capsys)[0] == 0
    disagree = frame.iloc[[0]].assign(family_bits="3.0")
    pd.concat([frame, disagree]).to_csv(seq / "results.csv", index=False)
    out = tmp_path / "picks"
    code, _, err = run_cli(["select", fasta, "--seq-eval", seq, "--out", out], capsys)
    assert code == 2
    assert (
        err == "error: seq-eval table: 2 rows for design(s) 'best' that disagree; keep one row per design\n"
    )
    assert not out.exists()
