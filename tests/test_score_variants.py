"""Zero-shot variant scoring against known answers: parsing, the masked marginal by hand, exact AR ratios,
Spearman and its bootstrap, the command's files, and the neighbour-rule family (slow)."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

import protein_sedd
from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.errors import UserError
from protein_sedd.evaluation.variants import (
    measured_scores,
    parse_mutant,
    read_variants,
    roc_auc,
    spearman,
    spearman_interval,
)

from .conftest import REPO, _train_synthetic, run_cli

WILD_TYPE = "MSTLKRVRFTVSGRVQGVFFRAFTAQEAKKLGLTGWVRNLPDGSVEVVAEGDE"  # an ACYP sequence


@pytest.fixture(scope="module")
def model():
    return protein_sedd.load("acyp-tiny", "cpu")


@pytest.fixture
def wildtype_fasta(tmp_path):
    path = tmp_path / "wt.fasta"
    path.write_text(f">wt some description\n{WILD_TYPE}\n")
    return path


def write_csv(path, text: str):
    path.write_text(text)
    return path


# -- parsing ----------------------------------------------------------------------------------------------
def test_mutants_parse_to_positions_and_residues():
    variant = parse_mutant("A2V:M1K", "MAG")
    assert variant.positions == (0, 1) and variant.wild == "MA" and variant.new == "KV"
    assert variant.apply("MAG") == "KVG"
    assert parse_mutant(" G3G ", "MAG").apply("MAG") == "MAG"  # synonymous: the wild type itself


BAD_ROWS = [
    ("A2V", "position 2 of the wild type is 'S', not 'A'"),
    ("S2V:M99A", "position 99 is beyond the wild type (53 residues)"),
    ("S2B", "unknown residue 'B'"),
    ("S2*", "stop codon '*'"),
    ("M0A", "position 0: positions are 1-based"),
    ("S2A:S2V", "position 2 is mutated twice"),
    ("S2", "'S2' is not a mutation like A23V"),
    ("", "empty mutant"),
]


@pytest.mark.parametrize("mutant, message", BAD_ROWS, ids=[m or "empty" for m, _ in BAD_ROWS])
def test_a_bad_mutant_names_its_line_exits_2_and_writes_nothing(
    tmp_path, capsys, wildtype_fasta, mutant, message
):
    variants = write_csv(tmp_path / "v.csv", f"mutant,DMS_score\nM1A,0.5\nT3A,1\n{mutant},2\n")
    out = tmp_path / "scores.csv"
    args = ["score-variants", "--wildtype", wildtype_fasta, "--variants", variants, "--out", out]
    code, stdout, err = run_cli(args, capsys)
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"error: {variants} line 4 (mutant {mutant!r}): ")
    assert message in err
    assert set(tmp_path.iterdir()) == {wildtype_fasta, variants}  # no output, not even a partial one


@pytest.mark.parametrize(
    "text, message",
    [
        ("mutant,DMS_score\nM1A,high\n", "line 2 (mutant 'M1A'): DMS_score 'high' is not a number"),
        ("mutant,DMS_score\nM1A,1_000\n", "line 2 (mutant 'M1A'): DMS_score '1_000' is not a number"),
        ("mutant,DMS_score\nM1A,\uff11\uff12\n", "DMS_score '\uff11\uff12' is not a number"),  # full-width
        ("mutant,DMS_score\nM1A,inf\n", "DMS_score 'inf' is not a number"),
        (
            "mutant,mutated_sequence\nM1A,MSTL\n",
            "line 2 (mutant 'M1A'): mutated_sequence is not the wild type",
        ),
        ("variant,DMS_score\nM1A,1\n", "no 'mutant' column (columns: 'variant', 'DMS_score')"),
        ("mutant,score\nM1A,1\n", "has a column 'score', which the output adds"),
        ("mutant\n", "no variants (only a header line)"),
        ("", "empty file"),
    ],
    ids=[
        "dms-score",
        "underscores",
        "full-width",
        "inf",
        "mutated-sequence",
        "no-mutant-column",
        "score-column",
        "header-only",
        "empty",
    ],  # fmt: skip
)
def test_bad_tables_exit_2_with_one_line(tmp_path, capsys, wildtype_fasta, text, message):
    variants = write_csv(tmp_path / "v.csv", text)
    out = tmp_path / "scores.csv"
    args = ["score-variants", "--wildtype", wildtype_fasta, "--variants", variants, "--out", out]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not out.exists() and not (tmp_path / "scores.summary.json").exists()


def test_bad_options_name_the_option(tmp_path, capsys, wildtype_fasta):
    variants = write_csv(tmp_path / "v.csv", "mutant\nM1A\n")
    common = ["score-variants", "--wildtype", wildtype_fasta, "--variants", variants]
    for extra, message in [
        (["--method", "esm"], "--method 'esm': choose masked-marginal or elbo"),
        (["--t-samples", "1"], "--t-samples 1: must be in 2..10_000"),
        (["--batch-size", "0"], "--batch-size 0: must be in 1..65_536"),
    ]:
        code, _, err = run_cli([*common, "--out", tmp_path / "s.csv", *extra], capsys)
        assert code == 2 and message in err, err
    code, _, err = run_cli([*common, "--out", variants, "--overwrite"], capsys)
    assert code == 2 and "is the input" in err
    assert variants.read_text() == "mutant\nM1A\n"


# -- scores with known answers ---------------------------------------------------------------------------
def test_masked_marginal_equals_the_networks_conditional_by_hand(model):
    frame = model.score_variants(WILD_TYPE, ["S2A", "S2A:T3G", "T3G:S2A", "S2S", "K5R"])
    tokens = ALPHABET.encode(WILD_TYPE)
    index = ALPHABET.residues.index

    def conditional(masked: list[int]) -> torch.Tensor:
        x = tokens.clone()
        x[masked] = ALPHABET.mask_index
        with torch.no_grad():
            logits = model.network(x[None], torch.zeros(1), torch.tensor([len(WILD_TYPE)]))
        return torch.log_softmax(logits[0, :, : ALPHABET.n_residues].double(), dim=-1)

    one, two = conditional([1]), conditional([1, 2])
    single = float(one[1, index("A")] - one[1, index("S")])
    double = float(two[1, index("A")] - two[1, index("S")] + two[2, index("G")] - two[2, index("T")])
    four = conditional([4])
    assert frame["mutant"].tolist() == ["S2A", "S2A:T3G", "T3G:S2A", "S2S", "K5R"]
    assert frame["score"].tolist() == pytest.approx(
        [single, double, double, 0.0, float(four[4, index("R")] - four[4, index("K")])], abs=1e-5
    )
    assert list(frame.columns) == ["mutant", "score"]
    assert frame.attrs["network_passes"] == 3  # {2}, {2, 3}, {5}: one pass per distinct set of positions


def test_elbo_difference_is_the_difference_of_scores_with_a_paired_error(model):
    mutants = ["S2A", "R6W:V7P", "S2S"]
    frame = model.score_variants(WILD_TYPE, mutants, "elbo", t_samples=6, seed=4, batch_size=5)
    sequences = [WILD_TYPE, "MATLKRVRFTVSGRVQGVFFRAFTAQEAKKLGLTGWVRNLPDGSVEVVAEGDE"]
    sequences.append(WILD_TYPE[:5] + "WP" + WILD_TYPE[7:])
    alone = [float(model.score([s], t_samples=6, seed=4, batch_size=1)["nats"][0]) for s in sequences]
    # each bound is the one `score` gives the sequence scored alone; the score is their difference
    expected = [alone[0] - alone[1], alone[0] - alone[2], 0.0]
    assert frame["score"].tolist() == pytest.approx(expected, abs=1e-4)
    errors = frame["standard_error"].tolist()
    assert errors[2] == 0.0  # the wild type against itself: every paired draw cancels
    # the error of a mean of K = 6 paired differences: their standard deviation over sqrt(K)
    from protein_sedd.diffusion.likelihood import shared_draws_negative_elbo

    tokens = torch.stack([ALPHABET.encode(s) for s in sequences])
    draws = shared_draws_negative_elbo(model.network, model.graph, tokens, t_samples=6, seed=4,
                                       batch_size=5).numpy()  # fmt: skip
    paired = draws[0][None] - draws[1:]
    assert errors[:2] == pytest.approx(paired.std(axis=1, ddof=1) / math.sqrt(6), rel=1e-6)
    assert 0 < errors[0] < paired.std(axis=1, ddof=1)[0] / 2  # not the spread of one draw
    assert frame.attrs["network_passes"] == 3 * 6  # wild type and two mutants, six draws each


def _quick_model(tmp_path_factory, name: str, *overrides: str):
    """A model of the synthetic family trained two steps through the CLI (seconds): any weights will do."""
    root = tmp_path_factory.mktemp(name)
    quick = ["trainer.val_sequences=16", "trainer.val_t_samples=1"]
    return protein_sedd.load(_train_synthetic(root, 2, *quick, *overrides), "cpu")


def test_the_autoregressive_baseline_gives_exact_ratios(tmp_path_factory, capsys):
    ar = _quick_model(tmp_path_factory, "ar", "model=ar")
    frame = ar.score_variants("MKVLAGHE", ["M1P", "K2R:E8D"], "elbo")
    nats = ar.score(["MKVLAGHE", "PKVLAGHE", "MRVLAGHD"])["nats"].tolist()
    assert frame["score"].tolist() == pytest.approx([nats[0] - nats[1], nats[0] - nats[2]], abs=1e-9)
    assert frame["standard_error"].tolist() == [0.0, 0.0]
    with pytest.raises(UserError, match="model=ar. has no masked marginal; use method 'elbo'"):
        ar.score_variants("MKVLAGHE", ["M1P"])


def test_time_conditioned_and_uniform_models(tmp_path_factory, capsys):
    timed = _quick_model(tmp_path_factory, "timed", "model.time_conditioning=true")
    frame = timed.score_variants("MKVLAGHE", ["K2R", "K2R:E8D"])
    assert frame.attrs["note"].startswith("masked marginal at sigma_bar = -log(1 - |P|/L)")
    x = ALPHABET.encode("MKVLAGHE")
    x[[1, 7]] = ALPHABET.mask_index
    sigma = torch.tensor([-math.log(1 - 2 / 8)])  # two of eight positions masked
    with torch.no_grad():
        logits = timed.network(x[None], sigma, torch.tensor([8]))[0, :, : ALPHABET.n_residues]
    log_p = torch.log_softmax(logits.double(), dim=-1)
    index = ALPHABET.residues.index
    by_hand = log_p[1, index("R")] - log_p[1, index("K")] + log_p[7, index("D")] - log_p[7, index("E")]
    assert frame["score"][1] == pytest.approx(float(by_hand), abs=1e-5)

    uniform = _quick_model(tmp_path_factory, "uniform", "graph=uniform", "model.time_conditioning=true")
    capsys.readouterr()
    with pytest.raises(UserError, match="needs an absorbing-graph model .* use method 'elbo'"):
        uniform.score_variants("MKVLAGHE", ["K2R"])
    elbo = uniform.score_variants("MKVLAGHE", ["K2R", "K2K"], "elbo", t_samples=4, seed=1)
    alone = [
        float(uniform.score([s], t_samples=4, seed=1, batch_size=1)["nats"][0])
        for s in ["MKVLAGHE", "MRVLAGHE"]
    ]
    assert elbo["score"].tolist() == pytest.approx([alone[0] - alone[1], 0.0], abs=1e-4)


@pytest.mark.parametrize(
    "text, message",
    [(None, "no such file"), ("", "empty file"), (">wt\nMK1V\n", "invalid residue '1' at position 3")],
    ids=["missing", "empty", "bad-residue"],
)
def test_bad_wildtype_files_exit_2_naming_the_file(tmp_path, capsys, text, message):
    wildtype = tmp_path / "wt.fasta"
    if text is not None:
        wildtype.write_text(text)
    variants = write_csv(tmp_path / "v.csv", "mutant\nM1A\n")
    out = tmp_path / "s.csv"
    code, _, err = run_cli(
        ["score-variants", "--wildtype", wildtype, "--variants", variants, "--out", out], capsys
    )
    assert code == 2 and err.count("\n") == 1 and str(wildtype) in err and message in err, err
    assert not out.exists()
    long = write_csv(tmp_path / "long.fasta", f">long\n{'A' * 200}\n")
    variants = write_csv(tmp_path / "v.csv", "mutant\nA1V\n")
    code, _, err = run_cli(
        ["score-variants", "--wildtype", long, "--variants", variants, "--out", out], capsys
    )
    assert code == 2 and f"--wildtype {long}: record 'long' has 200 residues, longer than the model" in err


def test_api_mistakes_raise_user_errors(model):
    with pytest.raises(UserError, match=r"mutants\[1\] \(mutant 'A2V'\): position 2 of the wild type is 'S'"):
        model.score_variants(WILD_TYPE, ["M1A", "A2V"])
    with pytest.raises(UserError, match="longer than the model context"):
        model.score_variants("A" * 500, ["A1V"])
    with pytest.raises(UserError, match="method 'esm'"):
        model.score_variants(WILD_TYPE, ["M1A"], "esm")
    with pytest.raises(UserError, match="not one string"):
        model.score_variants(WILD_TYPE, "M1A")


def test_the_site_independent_baseline_on_a_hand_count():
    from protein_sedd.baselines.site_independent import column_log_frequencies, site_independent_scores

    profile = column_log_frequencies(
        ["AC", "AD", "ACC"], 2, pseudocount=0.5
    )  # ACC: not the wild type's length
    assert math.exp(profile[0, 0]) == pytest.approx(2.5 / 12)  # (2 + 0.5) / (2 + 20 * 0.5)
    variants = [parse_mutant(m, "AC") for m in ["A1C", "C2D", "A1C:C2D"]]
    expected = [math.log(0.5 / 2.5), math.log(1.5 / 1.5), math.log(0.5 / 2.5)]
    assert site_independent_scores(profile, variants).tolist() == pytest.approx(expected)
    with pytest.raises(UserError, match="no sequence has the wild type's length"):
        column_log_frequencies(["ACC"], 2)


# -- Spearman, its bootstrap, AUC --------------------------------------------------------------------------
def test_spearman_on_hand_examples():
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(1 - 6 * 4 / (5 * 24))  # 0.8
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(3 / math.sqrt(10))  # ties: average ranks
    assert spearman([10, 20, 30], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    exact = spearman_interval([1, 2, 3, 4, 5, 6], [2, 4, 6, 8, 10, 12], resamples=200)
    assert (exact.rho, exact.low, exact.high, exact.n) == (1.0, 1.0, 1.0, 6)
    missing = spearman_interval([1, 2, np.nan, 4], [1, 2, 3, np.inf])
    assert missing.n == 2 and math.isnan(missing.rho)


def test_bootstrap_interval_covers_the_population_rho_about_95_percent_of_the_time():
    # bivariate normal with correlation 0.5: Spearman's population rho is (6 / pi) arcsin(0.5 / 2)
    truth = 6 / math.pi * math.asin(0.25)
    rng = np.random.default_rng(0)
    covered, repeats = 0, 200
    for repeat in range(repeats):
        x = rng.standard_normal(200)
        y = 0.5 * x + math.sqrt(0.75) * rng.standard_normal(200)
        result = spearman_interval(x, y, resamples=400, seed=repeat)
        assert result.low <= result.rho <= result.high
        covered += result.low <= truth <= result.high
    assert 0.89 <= covered / repeats <= 0.99


def test_large_tables_take_fishers_interval_which_agrees_with_the_bootstrap_where_they_meet():
    from protein_sedd.evaluation.variants import BOOTSTRAP_MAX_PAIRS

    truth = 6 / math.pi * math.asin(0.25)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(BOOTSTRAP_MAX_PAIRS + 1)
    y = 0.5 * x + math.sqrt(0.75) * rng.standard_normal(len(x))
    fisher = spearman_interval(x, y, resamples=1000)
    assert (fisher.interval, fisher.resamples) == ("fisher-z", 0)
    half = 1.959963984540054 * math.sqrt(1.06 / (len(x) - 3))
    assert fisher.low == pytest.approx(math.tanh(math.atanh(fisher.rho) - half), abs=1e-12)
    assert fisher.high == pytest.approx(math.tanh(math.atanh(fisher.rho) + half), abs=1e-12)
    assert fisher.low <= truth <= fisher.high
    bootstrap = spearman_interval(x[:-1], y[:-1], resamples=300)  # one pair fewer: the bootstrap
    assert bootstrap.interval == "bootstrap"
    assert abs(bootstrap.low - fisher.low) < 2e-3 and abs(bootstrap.high - fisher.high) < 2e-3


def test_auc_counts_ties_as_half():
    assert roc_auc([3, 4], [1, 2]) == 1.0
    assert roc_auc([1, 2], [3, 4]) == 0.0
    assert roc_auc([1, 3], [2, 2]) == 0.5
    assert roc_auc([2], [2]) == 0.5


@pytest.mark.parametrize("unmeasured", ["", "NA", "N/A", "nan", "NaN", "None", "null", " NA "])
def test_every_spelling_of_unmeasured_is_left_out_of_rho(tmp_path, capsys, wildtype_fasta, unmeasured):
    variants = write_csv(
        tmp_path / "v.csv", f"mutant,DMS_score\nM1A,0.5\nS2A,{unmeasured}\nT3G,-1.0\nK5R,2\nF9W,1.5\n"
    )
    out = tmp_path / "scores.csv"
    args = ["score-variants", "--wildtype", wildtype_fasta, "--variants", variants, "--out", out]
    code, stdout, err = run_cli([*args, "--device", "cpu"], capsys)
    assert code == 0, err
    assert "Spearman rho vs DMS_score (n=4)" in stdout
    written = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert written["DMS_score"].tolist()[1] == unmeasured  # carried through as written


def test_unmeasured_scores_from_python_in_any_dtype(model):
    wildtype = WILD_TYPE
    for measured in ([0.5, None, -1.0, 2.0], [0.5, float("nan"), -1.0, 2.0], ["0.5", "NA", "-1", "2"]):
        table = pd.DataFrame({"mutant": ["M1A", "S2A", "T3G", "K5R"], "DMS_score": measured})
        scored = model.score_variants(wildtype, table)
        assert len(scored) == 4 and scored["score"].notna().all()
        assert measured_scores(table)[[0, 2, 3]].tolist() == [0.5, -1.0, 2.0]
        assert math.isnan(measured_scores(table)[1])


# -- the command -------------------------------------------------------------------------------------------
def test_command_carries_columns_equals_the_api_and_reports_spearman(tmp_path, capsys, model, wildtype_fasta):
    variants = write_csv(
        tmp_path / "v.csv",
        'mutant,DMS_score,assay note\nM1A,0.5,first\nS2A:T3G,-1.25,\nK5R,,unmeasured\nF9W,2.0,"a, b"\n',
    )
    out = tmp_path / "scores.csv"
    args = ["score-variants", "--wildtype", wildtype_fasta, "--variants", variants, "--out", out]
    code, stdout, err = run_cli([*args, "--device", "cpu"], capsys)
    assert code == 0, err
    assert "Spearman rho vs DMS_score (n=3)" in stdout
    written = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(written.columns) == ["mutant", "score", "DMS_score", "assay note"]
    assert written["DMS_score"].tolist() == ["0.5", "-1.25", "", "2.0"]  # carried through as written
    assert written["assay note"].tolist() == ["first", "", "unmeasured", "a, b"]
    api = model.score_variants(WILD_TYPE, read_variants(variants))
    assert out.read_text() == api.to_csv(index=False)  # the command writes what the API returns
    listed = model.score_variants(wildtype_fasta, ["M1A", "S2A:T3G", "K5R", "F9W"])
    assert listed["score"].tolist() == api["score"].tolist()
    summary = json.loads((tmp_path / "scores.summary.json").read_text())
    scores = api["score"].to_numpy()
    assert summary["spearman_vs_DMS_score"]["rho"] == pytest.approx(
        spearman(scores[[0, 1, 3]], [0.5, -1.25, 2.0])
    )
    assert summary["spearman_vs_DMS_score"]["n"] == 3
    assert summary["n_variants"] == 4 and summary["n_multi_mutants"] == 1
    assert summary["network_passes"] == 4 and summary["method"] == "masked-marginal"
    expected = {"file": str(wildtype_fasta), "id": "wt", "length": len(WILD_TYPE), "first": 1}
    assert summary["wildtype"] == {**expected, "focus_region": None}


def test_outputs_are_replaced_only_when_they_are_the_commands_own(tmp_path, capsys, wildtype_fasta):
    variants = write_csv(tmp_path / "v.csv", "mutant\nM1A\nT3A\n")
    out = tmp_path / "scores.csv"
    args = ["score-variants", "--wildtype", wildtype_fasta, "--variants", variants, "--out", out]
    out.write_text("mutant,score\nmine,1\n")
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "exists and was not written by `protein-sedd score-variants`" in err
    assert out.read_text() == "mutant,score\nmine,1\n"
    out.unlink()
    summary = tmp_path / "scores.summary.json"
    summary.write_text('{"mine": true}\n')
    code, _, err = run_cli(args, capsys)
    assert code == 2 and f"summary of --out {summary}: exists and was not written" in err
    assert not out.exists()
    summary.unlink()
    assert run_cli(args, capsys)[0] == 0
    first = out.read_text()
    assert run_cli(args, capsys)[0] == 0  # its own earlier output: replaced without --overwrite
    assert out.read_text() == first
    out.write_text(first + "M1A,0,edited\n")  # edited since: no longer recognised as its own
    assert run_cli(args, capsys)[0] == 2
    assert run_cli([*args, "--overwrite"], capsys)[0] == 0
    assert out.read_text() == first


# -- the neighbour-rule family (the benchmark's data) --------------------------------------------------------
def _benchmark_module():
    path = REPO / "workflows" / "benchmarks" / "variant_baselines.py"
    spec = importlib.util.spec_from_file_location("variant_baselines", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_mutations_that_break_the_neighbour_rule_score_far_below_those_that_keep_it(tmp_path, capsys):
    """A model trained 300 steps on the family ranks rule-breaking single mutants below rule-keeping ones."""
    bench = _benchmark_module()
    family = bench.NeighbourRule
    fasta = tmp_path / "family.fa"
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(family.sample(4000))))
    run = bench.train(fasta, tmp_path / "run", 300, 1)
    wildtype = tmp_path / "wt.fasta"
    wildtype.write_text(f">wt\n{family.wildtype()}\n")
    singles = family.single_mutants().rename(columns={"fitness": "DMS_score"})
    singles.to_csv(tmp_path / "singles.csv", index=False)
    out = tmp_path / "scores.csv"
    args = [
        "score-variants",
        "--checkpoint",
        run,
        "--wildtype",
        wildtype,
        "--variants",
        tmp_path / "singles.csv",
    ]
    code, _, err = run_cli([*args, "--out", out, "--device", "cpu"], capsys)
    assert code == 0, err
    scored = pd.read_csv(out)
    breaks = scored["breaks"].to_numpy()
    masked = scored["score"].to_numpy()
    assert roc_auc(masked[~breaks], masked[breaks]) > 0.95
    assert np.median(masked[breaks]) < np.median(masked[~breaks]) - 3  # far below: nats, not a hair
    summary = json.loads((tmp_path / "scores.summary.json").read_text())
    correlation = summary["spearman_vs_DMS_score"]
    assert correlation["rho"] > 0.6 and correlation["low"] <= correlation["rho"] <= correlation["high"]

    model = protein_sedd.load(run, "cpu")
    elbo = model.score_variants(family.wildtype(), singles, "elbo", t_samples=32)
    assert (elbo["standard_error"] > 0).all()
    assert roc_auc(elbo["score"][~breaks], elbo["score"][breaks]) > 0.9  # an estimate: noisier than masked
    clear = (elbo["score"].abs() > 3 * elbo["standard_error"]).to_numpy() & (np.abs(masked) > 1)
    assert clear.sum() > len(singles) / 2
    assert (np.sign(elbo["score"].to_numpy()[clear]) == np.sign(masked[clear])).all()


def test_the_weighted_site_independent_baseline_on_an_alignment_hand_count():
    """Weighted column counts over focus columns; a wild-type position without a column scores NaN."""
    from protein_sedd.baselines.site_independent import alignment_log_frequencies, site_independent_scores

    gap = 21
    columns = np.array([[0, 1], [0, 2], [4, gap]])  # rows over 2 focus columns: AC, AD, F-
    weights = np.array([1.0, 0.5, 2.0])
    # focus columns sit on wild-type positions 0 and 2; position 1 (an insertion) has none
    table = alignment_log_frequencies(columns, [0, 2], 3, weights, pseudocount=0.5)
    total = 1.0 + 0.5 + 2.0 + 20 * 0.5
    assert math.exp(table[0, 0]) == pytest.approx((1.5 + 0.5) / total)  # A: weights 1 + 0.5
    assert math.exp(table[0, 4]) == pytest.approx((2.0 + 0.5) / total)  # F: weight 2
    gapped_total = 1.5 + 20 * 0.5  # the gap of row 3 does not count
    assert math.exp(table[2, 1]) == pytest.approx((1.0 + 0.5) / gapped_total)
    assert np.isnan(table[1]).all()
    variants = [parse_mutant(m, "AKC") for m in ["A1F", "K2A", "C3D"]]
    scores = site_independent_scores(table, variants)
    assert scores[0] == pytest.approx(math.log(2.5 / 2.0))
    assert np.isnan(scores[1])
    assert scores[2] == pytest.approx(math.log(1.0 / 1.5))


def test_the_site_independent_baseline_reproduces_the_pten_reference():
    """The data README's reference rho (weighted 0.367, unweighted 0.385, on 3,904 variants)."""
    import os
    from pathlib import Path

    from protein_sedd.baselines.site_independent import alignment_log_frequencies, site_independent_scores
    from protein_sedd.data.family.weights import identity_weights
    from protein_sedd.evaluation.variants import parse_variants, read_variants, spearman
    from protein_sedd.io.alignment import read_sequences

    folder = Path(os.environ.get("PROTEIN_SEDD_DATA", "")) / "dms" / "PTEN_HUMAN"
    if not (folder / "PTEN_HUMAN_b1.0.a2m").is_file():
        pytest.skip("needs $PROTEIN_SEDD_DATA/dms/PTEN_HUMAN/")
    family = read_sequences(folder / "PTEN_HUMAN_b1.0.a2m")
    wildtype = family.records[family.focus_index].sequence
    scan = read_variants(folder / "PTEN_HUMAN_Matreyek_2018.csv")
    parsed = parse_variants(wildtype, scan, lambda row: f"row {row}")
    weights = identity_weights(family.columns, 0.8)
    rhos = []
    for w in (weights, None):
        table = alignment_log_frequencies(family.columns, family.focus_positions, len(wildtype), w, 0.5)
        scores = site_independent_scores(table, parsed)
        scored = np.isfinite(scores)
        assert scored.sum() == 3904
        rhos.append(spearman(scores[scored], scan["DMS_score"].to_numpy()[scored]))
    assert rhos == pytest.approx([0.367, 0.385], abs=0.001)


# -- scans: every single mutant, the heatmap and the tolerance profile -------------------------------------
def test_a_scan_lists_every_substitution_and_positions_parse_as_ranges():
    from protein_sedd.evaluation.variant_maps import RESIDUE_ORDER, parse_positions, scan_mutants

    table = scan_mutants("MKXA", [1, 3, 4])  # X: nothing to name, skipped
    assert len(table) == 38 and table["mutant"][:3].tolist() == ["M1A", "M1V", "M1I"]
    assert table["mutant"][19:22].tolist() == ["A4V", "A4I", "A4L"]
    assert set(table["residue"][:19]) == set(RESIDUE_ORDER) - {"M"}
    assert scan_mutants("MKA", [10], first=10)["mutant"][0] == "M10A"
    assert parse_positions("5-6,2", 1, 10) == [2, 5, 6] and parse_positions(None, 3, 5) == [3, 4, 5]
    with pytest.raises(UserError, match=r"^positions 0-3: outside the wild type's residues 1-10"):
        parse_positions("0-3", 1, 10)
    with pytest.raises(UserError, match=r"^positions 'a-b': expected ranges of residue numbers"):
        parse_positions("a-b", 1, 10)


def test_the_scan_command_writes_the_table_the_heatmap_and_the_profile(tmp_path, capsys, model):
    from matplotlib.image import imread

    wildtype = tmp_path / "wt.fasta"
    wildtype.write_text(f">wt\n{WILD_TYPE[:30]}\n")
    out = tmp_path / "scan.csv"
    args = ["score-variants", "--wildtype", wildtype, "--scan", "--out", out, "--device", "cpu"]
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    scan = pd.read_csv(out)
    assert len(scan) == 19 * 30 and scan["score"].notna().all()
    assert list(scan.columns) == ["mutant", "score", "position", "wild_type", "residue"]
    from_python = model.scan_variants(WILD_TYPE[:30])
    assert from_python["mutant"].tolist() == scan["mutant"].tolist()
    np.testing.assert_allclose(from_python["score"], scan["score"], rtol=1e-6)  # the CSV's 16 digits
    alone = model.score_variants(WILD_TYPE[:30], scan["mutant"][:40].tolist())
    np.testing.assert_allclose(scan["score"][:40], alone["score"], atol=1e-5)  # other batches: float32 sums
    profile = pd.read_csv(tmp_path / "scan.positions.csv")
    by_position = scan.groupby("position")["score"]
    np.testing.assert_allclose(profile["mean_score"], by_position.mean().to_numpy(), rtol=1e-9)
    assert profile["n_tolerated"].tolist() == by_position.apply(lambda s: int((s > -1).sum())).tolist()
    assert profile["wild_type"].str.cat() == WILD_TYPE[:30] and (profile["n_scored"] == 19).all()
    image = imread(tmp_path / "scan.heatmap.png")
    assert image.shape[0] > 300 and image[..., :3].std() > 0.1  # drawn, not blank
    summary = json.loads((tmp_path / "scan.summary.json").read_text())
    assert list(summary["files"]) == ["scan.heatmap.png", "scan.positions.csv"] and summary[
        "variants"
    ].startswith("--scan")
    assert run_cli([*args, "--positions", "3-5"], capsys)[0] == 0  # its own files: replaced
    assert len(pd.read_csv(out)) == 57
    (tmp_path / "scan.heatmap.png").unlink()
    (tmp_path / "scan.heatmap.png").write_text("mine")
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "heatmap of --out" in err and (tmp_path / "scan.heatmap.png").read_text() == "mine"
    for extra, message in [
        ([], "give --variants FILE (a scan's table) or --scan"),
        (["--scan", "--variants", wildtype], "give --variants FILE (a scan's table) or --scan"),
        (["--variants", wildtype, "--positions", "1-3"], "--positions chooses what --scan scans"),
        (["--scan", "--positions", "20-40"], "--positions 20-40: outside the wild type's residues 1-30"),
    ]:
        code, _, err = run_cli(["score-variants", "--wildtype", wildtype, "--out", tmp_path / "o.csv",
                                "--device", "cpu", *extra], capsys)  # fmt: skip
        assert code == 2 and err.count("\n") == 1 and message in err, err


def test_a_scan_with_measured_scores_draws_predicted_against_measured(tmp_path, capsys, wildtype_fasta):
    from matplotlib.image import imread

    variants = write_csv(
        tmp_path / "dms.csv", "mutant,DMS_score\nS2A,0.1\nT3A,0.4\nL4P,-2\nK5E,0.3\nR6W,-1\n"
    )
    out = tmp_path / "scores.csv"
    args = [
        "score-variants",
        "--wildtype",
        wildtype_fasta,
        "--variants",
        variants,
        "--out",
        out,
        "--device",
        "cpu",
    ]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "scores.summary.json").read_text())
    assert list(summary["files"]) == ["scores.scatter.png"] and summary["spearman_vs_DMS_score"]["n"] == 5
    assert imread(tmp_path / "scores.scatter.png")[..., :3].std() > 0.05
