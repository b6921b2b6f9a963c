"""Label-guided design: the labels reader, the guide's files, the guided rates against brute force, and
(slow) a synthetic family whose label is a motif: guided designs carry it far more often."""

from __future__ import annotations

import importlib.util
import json
import math
import random
import re
from collections import Counter

import numpy as np
import pytest
import torch

import protein_sedd
from protein_sedd.data.alphabet import ALPHABET, AMINO_ACIDS
from protein_sedd.errors import UserError
from protein_sedd.guidance.guide import Guide, load_guide
from protein_sedd.guidance.labels import read_labels, task_of
from protein_sedd.guidance.network import GuideConfig, GuideNet
from protein_sedd.guidance.reweighting import GuidedRates, exact_log_ratios, tag_log_ratios
from protein_sedd.io.fasta import read_fasta

from .conftest import REPO, SYNTHETIC_PROBS, SYNTHETIC_SEQUENCES, _train_synthetic, run_cli

N = ALPHABET.n_residues
V = ALPHABET.size
MASK = ALPHABET.mask_index


def labelled_csv(path, n: int = 40, seed: int = 0):
    """`sequence,label`: label 1 when the sequence holds the motif WCW."""
    rng = random.Random(seed)
    rows = ["sequence,label"]
    for i in range(n):
        sequence = "".join(rng.choice("ACDEFGHIKLMNPQRSTVY") for _ in range(14))
        if i % 2:
            sequence = sequence[:5] + "WCW" + sequence[8:]
        rows.append(f"{sequence},{i % 2}")
    path.write_text("\n".join(rows) + "\n")
    return path


# -- the labels reader -------------------------------------------------------------------------------------
def test_labels_are_read_by_sequence_or_by_id_from_a_fasta(tmp_path):
    by_sequence = read_labels(labelled_csv(tmp_path / "l.csv", n=10))
    assert len(by_sequence.sequences) == 10 and by_sequence.labels[:3] == [0.0, 1.0, 0.0]
    assert "WCW" in by_sequence.sequences[1] and by_sequence.where[1] == f"{tmp_path / 'l.csv'} line 3"
    fasta = tmp_path / "s.fa"
    fasta.write_text("".join(f">s{i}\n{s.lower()}\n" for i, s in enumerate(by_sequence.sequences)))
    ids = tmp_path / "ids.csv"
    ids.write_text("id,label\n" + "".join(f"s{i},{2.5 * i}\n" for i in reversed(range(10))))
    by_id = read_labels(ids, fasta)
    assert by_id.sequences == by_sequence.sequences[::-1]  # upper-cased, in the table's order
    assert by_id.labels == [2.5 * i for i in reversed(range(10))]


def test_the_task_follows_the_labels():
    assert task_of([0, 1, 1, 0]) == "classify"
    assert task_of([0, 1, 2, 3]) == "classify"
    assert task_of([0.5, 1.0, 2.25]) == "regress"
    assert task_of([float(i) for i in range(11)]) == "regress"  # more than 10 values: a measurement
    assert task_of([0, 1, 0], "regress") == "regress"
    with pytest.raises(UserError, match="labels must be whole numbers"):
        task_of([0.5, 1.0], "classify")
    with pytest.raises(UserError, match="every label is 1; a classifier needs two classes"):
        task_of([1, 1, 1])


SEQ = "ACDEFGHIKL"
BAD_LABELS = [
    ("label\n1\n", None, "expected columns sequence,label (or id,label with --fasta), found 'label'"),
    ("sequence,label\n", None, "no labelled sequences (only a header line)"),
    ("", None, "empty file"),
    (f"sequence,label\n{SEQ},1\n{SEQ},high\n", None, "line 3: label 'high' is not a number"),
    (f"sequence,label\n{SEQ},1\n{SEQ},nan\n", None, "line 3: label is missing ('nan'); give every sequence"),
    (
        f"sequence,label\n{SEQ},1\n{SEQ},\n",
        None,
        "line 3: label is missing (''); give every sequence a label",
    ),
    (f"sequence,label\n{SEQ},1\n{SEQ},1_000\n", None, "line 3: label '1_000' is not a number"),
    (
        f"sequence,label\n{SEQ},1\n{SEQ},1e300\n",
        None,
        "line 3: label '1e300' is larger than 1e+15 in magnitude",
    ),
    (f"sequence,label\n{SEQ},1\nAC1D,0\n", None, "line 3: invalid residue '1' at position 3"),
    ("id,label\ns0,1\nnope,0\n", "fasta", "line 3: id 'nope' is not a record of"),
    ("id,label\ns0,1\n", None, "names sequences by 'id'; pass the FASTA that holds them with --fasta"),
    (f"sequence,label\n{SEQ},1\n", "fasta", "has a 'sequence' column, so --fasta"),
    (f"sequence,label\n{SEQ},1\n{SEQ},0\n", None, "2 labelled sequences; a guide needs 8 at least"),
    ("sequence,label\n" + f"{SEQ},1\n" * 9, None, "every label is 1; a classifier needs two classes"),
    (
        "sequence,label\n" + f"{SEQ},1\n{SEQ},0\n" * 4 + "A" * 129 + ",0\n",
        None,
        "line 10: 129 residues, longer than the model context (128)",
    ),
]


@pytest.mark.parametrize("text, fasta, message", BAD_LABELS, ids=[str(i) for i in range(len(BAD_LABELS))])
def test_bad_labels_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, text, fasta, message):
    labels = tmp_path / "labels.csv"
    labels.write_text(text)
    args = ["train-guide", "--labels", labels, "--out", tmp_path / "guide", "--device", "cpu"]
    if fasta:
        (tmp_path / "s.fa").write_text(f">s0\n{SEQ}\n")
        args += ["--fasta", tmp_path / "s.fa"]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert message in err, err
    assert not (tmp_path / "guide").exists()


def test_bad_guide_options_name_the_option(tmp_path, capsys):
    labels = labelled_csv(tmp_path / "l.csv")
    common = ["train-guide", "--labels", labels, "--out", tmp_path / "g", "--device", "cpu"]
    for extra, message in [
        (["--steps", "0"], "--steps 0: must be in 1.."),
        (["--lr", "-1"], "--lr -1.0: must be a learning rate in (0, 1]"),
        (["--valid-fraction", "0.9"], "--valid-fraction 0.9: must be in 0..0.5"),
        (["--task", "rank"], "--task 'rank': choose auto, classify, regress"),
        (["--task", "classify", "--labels", tmp_path / "missing.csv"], "missing.csv: no such file"),
    ]:
        code, _, err = run_cli([*common, *extra], capsys)
        assert code == 2 and message in err, err
    assert not (tmp_path / "g").exists()


# -- the command and the guide's files ----------------------------------------------------------------------
def test_train_guide_writes_a_guide_that_loads_and_keeps_foreign_files(tmp_path, capsys, quick_run):
    labels = labelled_csv(tmp_path / "labels.csv")
    out = tmp_path / "guide"
    args = ["train-guide", "--labels", labels, "--checkpoint", quick_run, "--out", out, "--steps", "30"]
    code, stdout, err = run_cli([*args, "--device", "cpu", "--batch-size", "16"], capsys)
    assert code == 0, err
    assert "held out: accuracy at mask 0" in stdout and f"wrote {out}" in stdout
    assert sorted(p.name for p in out.iterdir()) == [".protein-sedd", "guide.json", "guide.safetensors"]
    record = json.loads((out / "guide.json").read_text())
    assert record["task"] == "classify" and record["classes"] == [0.0, 1.0]
    assert record["checkpoint"] == str(quick_run / "checkpoint") and record["graph"] == "absorbing"
    assert record["training"]["n_train"] == 32 and record["training"]["valid"]["n"] == 8
    assert set(record["training"]["valid"]) == {"n", "majority_class_share", "accuracy_at_mask_0",
                                                "accuracy_at_mask_0.5", "accuracy_at_mask_0.9"}  # fmt: skip

    guide = protein_sedd.load_guide(out, "cpu")
    assert guide.task == "classify" and guide.classes == [0.0, 1.0] and guide.name == "guide"
    weights = {k: v for k, v in guide.network.state_dict().items()}
    assert run_cli([*args, "--device", "cpu", "--batch-size", "16"], capsys)[0] == 0  # its own: replaced
    again = load_guide(out)
    assert all(torch.equal(weights[k], v) for k, v in again.network.state_dict().items())  # same seed

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    code, _, err = run_cli([*args[:5], "--out", foreign, "--steps", "2", "--device", "cpu"], capsys)
    assert code == 2 and "folder is not empty and holds no train-guide output" in err
    code, _, err = run_cli(
        [*args[:5], "--out", foreign, "--steps", "2", "--device", "cpu", "--overwrite"], capsys
    )
    assert code == 0, err
    assert (foreign / "notes.txt").read_text() == "mine" and (foreign / "guide.json").is_file()


def test_a_uniform_graph_model_cannot_be_guided(tmp_path, capsys):
    uniform = ["graph=uniform", "model.time_conditioning=true"]
    run = _train_synthetic(tmp_path, 2, *uniform, "trainer.val_sequences=16", "trainer.val_t_samples=1")
    capsys.readouterr()  # the training run's lines
    out = tmp_path / "g"
    args = ["train-guide", "--labels", labelled_csv(tmp_path / "l.csv"), "--checkpoint", run, "--out", out]
    code, _, err = run_cli([*args, "--device", "cpu"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "guidance needs an absorbing-graph model (this one is uniform)" in err
    assert not out.exists()


def test_load_guide_refuses_what_is_not_a_guide(tmp_path):
    with pytest.raises(UserError, match="no such folder"):
        load_guide(tmp_path / "missing")
    with pytest.raises(UserError, match="not a guide"):
        load_guide(tmp_path)


@pytest.mark.parametrize(
    "sequences, labels, message",
    [
        (
            [SEQ] * 10,
            [0, 1] * 4 + [float("nan"), 1],
            "labels row 8: label is missing (''); give every sequence",
        ),
        ([SEQ] * 10, [0, 1] * 4 + [None, 1], "labels row 8: label is missing ('')"),
        ([SEQ] * 3 + [None] + [SEQ] * 6, [0, 1] * 5, "labels row 3: empty sequence"),
        ([SEQ] * 10, [1e300, -1e300] * 5, "labels row 0: label '1e+300' is larger than 1e+15 in magnitude"),
    ],
)
def test_missing_cells_of_a_dataframe_are_named_in_any_dtype(sequences, labels, message):
    import pandas as pd

    model = protein_sedd.load("acyp-tiny", "cpu")
    with pytest.raises(UserError) as refused:
        model.train_guide(pd.DataFrame({"sequence": sequences, "label": labels}), steps=2)
    assert str(refused.value).startswith(message), str(refused.value)


def test_a_regressor_gives_the_gaussian_likelihood_in_label_units():
    net = GuideNet(GuideConfig(n_outputs=2))
    guide = Guide(net, "regress", label_mean=10.0, label_std=2.0)
    outputs = torch.tensor([[0.5, math.log(0.25)]])  # z-mean 0.5 (label 11), z-variance 0.25 (label sd 1)
    expected = -0.5 * ((12.0 - 11.0) ** 2 / 1.0 + math.log(2 * math.pi))  # N(12; 11, 1)
    assert guide.gaussian_log_likelihood(outputs, torch.tensor([12.0])).item() == pytest.approx(expected)


def test_a_regressor_learns_a_count_on_clean_sequences_and_less_under_heavy_masking():
    """Label = the number of W residues (0..6): known from the clean sequence, hidden when most is masked."""
    from protein_sedd.diffusion.graph import build_graph
    from protein_sedd.diffusion.noise import LogLinearNoise
    from protein_sedd.guidance.labels import Labelled
    from protein_sedd.guidance.training import fit_guide

    rng = random.Random(1)
    sequences = []
    for _ in range(300):
        residues = [rng.choice("ACDEFGHIKL") for _ in range(16)]
        for position in rng.sample(range(16), rng.randint(0, 6)):
            residues[position] = "W"
        sequences.append("".join(residues))
    labels = [float(s.count("W")) for s in sequences]
    labelled = Labelled(sequences, labels, [f"row {i}" for i in range(300)])
    graph = build_graph("absorbing", ALPHABET)
    small = GuideConfig(hidden_size=32, n_layers=2)  # seconds on one CPU thread
    guide = fit_guide(labelled, "regress", graph, LogLinearNoise(), steps=150, batch_size=32, config=small)
    valid = guide.record["training"]["valid"]
    assert valid["n"] == 60 and guide.label_mean == pytest.approx(sum(labels) / 300)
    assert valid["rmse_at_mask_0"] < 0.35 * valid["label_std"]  # counted, not guessed
    # the more is masked, the less is known: at m = 0.9 about as little as the labels' spread
    assert valid["rmse_at_mask_0"] < valid["rmse_at_mask_0.5"] < valid["rmse_at_mask_0.9"]


def test_the_held_out_report_counts_the_majority_class_and_the_accuracy_by_hand():
    from protein_sedd.diffusion.graph import build_graph
    from protein_sedd.guidance.training import held_out_report

    torch.manual_seed(0)
    guide = Guide(GuideNet(GuideConfig(vocab_size=V, n_outputs=3)).eval(), "classify", [0.0, 1.0, 2.0])
    sequences = ["ACDEFGHIKL", "MNPQRSTVWY", "ACACACACAC", "WWWWWWWW", "KLKLKLKLKL", "DEDEDE", "GGGGGGGGG",
                 "PQPQPQPQ"]  # fmt: skip
    tokens = [ALPHABET.encode(s) for s in sequences]
    labels = torch.tensor([2.0, 2.0, 2.0, 0.0, 1.0, 1.0, 0.0, 2.0])
    report = held_out_report(guide, tokens, labels, build_graph("absorbing", ALPHABET), 0, "cpu")
    assert report["n"] == 8 and report["majority_class_share"] == 0.5  # four of eight are class 2
    with torch.no_grad():
        predicted = [int(guide.network(torch.nn.functional.one_hot(t[None], V).float(), torch.zeros(1),
                                       torch.tensor([len(t)])).argmax()) for t in tokens]  # fmt: skip
    assert (
        report["accuracy_at_mask_0"] == sum(p == int(y) for p, y in zip(predicted, labels, strict=True)) / 8
    )


def test_the_log_likelihood_of_each_target_is_its_own_class():
    """log p(y | x) of a classifier: the log-softmax entry of the target's class, so the classes' likelihoods
    sum to 1; a regressor's is the Gaussian density of the target in label units."""
    torch.manual_seed(1)
    guide = Guide(GuideNet(GuideConfig(vocab_size=V, n_outputs=3)).eval(), "classify", [0.0, 1.0, 5.0])
    onehot = torch.nn.functional.one_hot(torch.tensor([[1, 4, MASK, 7], [2, MASK, MASK, 3]]), V).float()
    noise, lengths = torch.tensor([0.25, 0.5]), torch.tensor([4, 4])
    with torch.no_grad():
        log_softmax = torch.log_softmax(guide.network(onehot, noise, lengths), -1)
        each = [guide.log_likelihood(onehot, noise, lengths, c) for c in (0, 1, 5)]
    for index, value in enumerate(each):
        assert torch.allclose(value, log_softmax[:, index])
    assert torch.allclose(torch.stack(each).exp().sum(0), torch.ones(2))
    assert (each[0] - each[2]).abs().min() > 1e-4  # the classes differ: the target is read


def test_the_guide_reads_the_noise_level_of_each_step_and_each_event(monkeypatch):
    """The guide's noise input is the mask fraction 1 - exp(-sigma_bar) at the step's start (the step loop)
    or at the unmasking event's time (the event sampler), never another step's."""
    from protein_sedd.design.request import masked_starts
    from protein_sedd.diffusion import event_sampling
    from protein_sedd.diffusion.graph import build_graph
    from protein_sedd.diffusion.noise import LogLinearNoise
    from protein_sedd.diffusion.sampling import sample, sigma_grid

    from .test_design import AbsorbingOracle

    class Recording(LinearGuide):
        def log_likelihood(self, onehot, mask_fraction, lengths, target):
            seen.append(mask_fraction.clone())
            return super().log_likelihood(onehot, mask_fraction, lengths, target)

    graph, noise = build_graph("absorbing", ALPHABET), LogLinearNoise()
    guide = Recording(0.1 * torch.randn(1, 8, V))
    seen = []
    sample(AbsorbingOracle(), graph, noise, masked_starts([8] * 50), steps=4, seed=0, sampler="steps",
           guide=GuidedRates(guide, 1.0, 1.0, "taylor"))  # fmt: skip
    grid = [-math.expm1(-s) for s in sigma_grid(noise, 4)]
    assert len(seen) >= 4 and all(
        torch.allclose(m, torch.full_like(m, g)) for m, g in zip(seen, grid[: len(seen)], strict=True)
    )
    drawn = []
    original = event_sampling.ExactSchedule.draw

    def recording(self, masked, generator):
        steps, sigmas = original(self, masked, generator)
        drawn.extend(sigmas)
        return steps, sigmas

    monkeypatch.setattr(event_sampling.ExactSchedule, "draw", recording)
    seen.clear()
    sample(AbsorbingOracle(), graph, noise, masked_starts([8] * 20), steps="exact", seed=0,
           guide=GuidedRates(guide, 1.0, 1.0, "exact"))  # fmt: skip
    events = sorted(-math.expm1(-s) for s in drawn)
    bases = sorted(float(m) for call in seen for m in call if len(call) <= 20)  # each round's rows
    assert len(events) == 160 and bases == pytest.approx(events, rel=1e-5)


# -- the guided rates against brute force ------------------------------------------------------------------
class LinearGuide:
    """A stand-in guide whose log p(y | x) is linear in the one-hot input: TAG is exact for it."""

    def __init__(self, weights: torch.Tensor, bias_per_noise: float = 0.3):
        self.weights, self.bias = weights, bias_per_noise
        self.network = GuideNet(GuideConfig(vocab_size=V))  # only its config (vocab_size) is read

    def log_likelihood(self, onehot, mask_fraction, lengths, target):
        return (onehot * self.weights).sum((1, 2)) * target + self.bias * mask_fraction


class QuadraticGuide(LinearGuide):
    """log p(y | x) with interactions between positions: TAG is only a first-order approximation."""

    def log_likelihood(self, onehot, mask_fraction, lengths, target):
        linear = (onehot * self.weights).sum(-1)  # [B, L]
        return linear.sum(-1) + 0.5 * (linear[:, :-1] * linear[:, 1:]).sum(-1)


class SaturatingGuide(LinearGuide):
    """log p(y | x) saturating in each position's one-hot and coupling neighbours: no first-order form."""

    def log_likelihood(self, onehot, mask_fraction, lengths, target):
        linear = torch.tanh(3 * (onehot * self.weights[:, : onehot.shape[1]]).sum(-1))  # [B, L]
        return linear.sum(-1) + (linear[:, :-1] * linear[:, 1:]).sum(-1) + mask_fraction


def brute_force_log_ratios(guide, x, sigma_bar, lengths, target=1.0):
    """log p(y | x with i set to j) - log p(y | x), one guide evaluation per (row, position, token)."""
    m = torch.full((1,), -math.expm1(-sigma_bar))
    out = torch.zeros(*x.shape, N, dtype=torch.float64)
    for row in range(x.shape[0]):
        here = guide.log_likelihood(torch.nn.functional.one_hot(x[row : row + 1], V).float(), m,
                                    lengths[row : row + 1], target)  # fmt: skip
        for i in range(x.shape[1]):
            for j in range(N):
                changed = x[row : row + 1].clone()
                changed[0, i] = j
                there = guide.log_likelihood(torch.nn.functional.one_hot(changed, V).float(), m,
                                             lengths[row : row + 1], target)  # fmt: skip
                out[row, i, j] = float(there - here)
    return out


def small_example():
    torch.manual_seed(0)
    x = torch.tensor([[MASK, 3, MASK, 7], [1, MASK, MASK, MASK], [2, 4, 6, 8]])
    return x, torch.tensor([4, 4, 4]), torch.rand(3, 4, N, dtype=torch.float64)


def test_tag_ratios_equal_brute_force_for_a_guide_linear_in_the_one_hot():
    x, lengths, _ = small_example()
    guide = LinearGuide(torch.randn(1, 4, V))
    tag, passes = tag_log_ratios(guide, 2.0, x, 0.7, lengths, N)
    exact = brute_force_log_ratios(guide, x, 0.7, lengths, target=2.0)
    assert torch.allclose(tag, exact, atol=1e-5) and passes == 3  # one forward + backward pass a row


def test_tag_ratios_are_the_first_order_expansion_for_a_nonlinear_guide():
    x, lengths, _ = small_example()
    weights = 0.05 * torch.randn(1, 4, V)  # small interactions: first order dominates
    guide = QuadraticGuide(weights)
    tag, _ = tag_log_ratios(guide, 1.0, x, 0.7, lengths, N)
    exact = brute_force_log_ratios(guide, x, 0.7, lengths)
    # the error is the second-order term: the product of the changes at neighbouring positions
    assert (tag - exact).abs().max() < 0.01 < exact.abs().max()
    assert torch.corrcoef(torch.stack([tag.flatten(), exact.flatten()]))[0, 1] > 0.99


def test_exact_ratios_equal_brute_force_at_every_masked_position_for_a_nonlinear_guide():
    x, lengths, _ = small_example()
    guide = SaturatingGuide(torch.randn(1, 4, V))
    exact, passes = exact_log_ratios(guide, 1.0, x, 0.7, lengths, N)
    brute = brute_force_log_ratios(guide, x, 0.7, lengths)
    masked = x == MASK
    assert torch.allclose(exact[masked], brute[masked], atol=1e-5)
    assert torch.equal(exact[~masked], torch.zeros_like(exact[~masked]))  # unmasked positions never jump
    assert passes == 3 + 5 * N  # a pass per row, and one per masked position and residue
    tag, _ = tag_log_ratios(guide, 1.0, x, 0.7, lengths, N)
    assert (tag[masked] - brute[masked]).abs().max() > 0.5  # the first order misses what exact catches


def test_exact_ratios_read_each_row_at_its_own_length():
    x, lengths, _ = small_example()
    guide = SaturatingGuide(torch.randn(1, 4, V))
    short = torch.tensor([2, 4, 4])  # row 0 holds 2 residues: its masked position 2 is padding
    exact, _ = exact_log_ratios(guide, 1.0, x, 0.7, short, N)
    assert torch.equal(exact[0, 2], torch.zeros(N, dtype=torch.float64))
    brute = brute_force_log_ratios(guide, x[:1, :2], 0.7, short[:1])
    assert torch.allclose(exact[0, 0], brute[0, 0], atol=1e-5)


def test_event_reweighting_is_the_denoising_distribution_times_r_to_the_gamma():
    """At each unmasking event the residue is drawn from p(j | x) r_j^gamma, normalised, r_j the guide's
    likelihood ratio of setting that position to j, at the row's own noise level."""
    x, lengths, _ = small_example()
    guide = SaturatingGuide(torch.randn(1, 4, V))
    rows, events, cols = [0, 1], np.array([0, 0, 1]), np.array([0, 2, 1])  # row 0 has two events
    probs = torch.softmax(torch.randn(3, N, dtype=torch.float64), -1)
    rates = GuidedRates(guide, 1.0, 1.5, "exact")
    drawn = rates.reweight_events(probs, x[rows], lengths[rows], [0.7, 0.2], events, cols)
    expected = []
    for event, col in zip(events, cols, strict=True):
        sigma = [0.7, 0.2][event]
        log_r = brute_force_log_ratios(guide, x[rows][event : event + 1], sigma, lengths[:1])[0, col]
        expected.append(probs[len(expected)] * (1.5 * log_r).exp())
    expected = torch.stack(expected)
    assert torch.allclose(drawn, expected / expected.sum(-1, keepdim=True), rtol=1e-5)
    assert rates.rows_run == 2 + 3 * N
    with pytest.raises(ValueError, match="Taylor guidance runs in the step loop"):
        GuidedRates(guide, 1.0, 1.5).reweight_events(probs, x[rows], lengths[rows], [0.7, 0.2], events, cols)


def test_guided_scores_are_the_rates_times_the_likelihood_ratio_to_the_power_gamma():
    x, lengths, score = small_example()
    guide = LinearGuide(torch.randn(1, 4, V))
    rates = GuidedRates(guide, 1.0, 1.5)
    active = (x == MASK).any(-1)
    with torch.inference_mode():  # as in the sampler
        guided = rates(score, x, 0.7, lengths, active)
    expected = score * (1.5 * brute_force_log_ratios(guide, x, 0.7, lengths)).exp()
    assert torch.allclose(guided[:2], expected[:2], rtol=1e-5)
    assert torch.equal(guided[2], score[2])  # nothing masked: no guide pass, score as it was
    assert rates.rows_run == 2
    with pytest.raises(ValueError, match="guide=None"):
        GuidedRates(guide, 1.0, 0.0)


# -- exact guidance against the true conditional (a known distribution, exact scores, an exact guide) -------
LABELLED = ("MRVLAGHD", "WKVLAGHC", "MKVLAYHE")  # label 1: 22% of the synthetic family


class OracleGuide:
    """The true p(y | x_t) of the synthetic family for label 1 = one of LABELLED: under absorbing noise the
    masks are independent of the clean sequence, so p(y | x_t) is the labelled share of the family members
    that agree with x_t's residues (at any noise level). Multilinear in the one-hot input, so Taylor
    guidance can read its gradient."""

    name = "oracle"

    def __init__(self):
        self.network = GuideNet(GuideConfig(vocab_size=V))  # only its config (vocab_size) is read
        members = torch.stack([ALPHABET.encode(s) for s in SYNTHETIC_SEQUENCES])
        self.letters = torch.nn.functional.one_hot(members, V).float()
        self.letters[..., MASK] = 1  # a masked position agrees with every member
        self.probs = torch.tensor(SYNTHETIC_PROBS, dtype=torch.float64)
        self.label = torch.tensor([s in LABELLED for s in SYNTHETIC_SEQUENCES], dtype=torch.float64)

    def log_likelihood(self, onehot, mask_fraction, lengths, target):
        agree = torch.einsum("blv,slv->bsl", onehot, self.letters[:, : onehot.shape[1]]).double()
        weight = agree.prod(-1) * self.probs  # p(member) where it agrees with x_t, else 0
        label = self.label if target == 1 else 1 - self.label
        return torch.log(((weight * label).sum(-1) + 1e-30) / (weight.sum(-1) + 1e-30))


def conditional_tv(sequences: list[str]) -> tuple[float, float]:
    """(TV distance of the designs to the family conditioned on label 1, the share carrying the label)."""
    true = dict(zip(SYNTHETIC_SEQUENCES, SYNTHETIC_PROBS, strict=True))
    total = sum(true[s] for s in LABELLED)
    counts, n = Counter(sequences), len(sequences)
    outside = sum(c for s, c in counts.items() if s not in LABELLED) / n
    tv = 0.5 * (sum(abs(counts[s] / n - true[s] / total) for s in LABELLED) + outside)
    return tv, 1 - outside


def null_tv_quantile(n: int, level: float) -> float:
    """The `level` quantile of the TV distance between n exact draws of the conditional and itself."""
    true = dict(zip(SYNTHETIC_SEQUENCES, SYNTHETIC_PROBS, strict=True))
    q = np.array([true[s] for s in LABELLED]) / sum(true[s] for s in LABELLED)
    draws = np.random.default_rng(0).multinomial(n, q, size=4000) / n
    return float(np.quantile(0.5 * np.abs(draws - q).sum(-1), level))


def _guided_sample(method: str, scale: float, steps, n: int, sampler: str = "events", seed: int = 0):
    from protein_sedd.design.request import masked_starts
    from protein_sedd.diffusion.graph import build_graph
    from protein_sedd.diffusion.noise import LogLinearNoise
    from protein_sedd.diffusion.sampling import sample

    from .test_design import AbsorbingOracle

    rates = GuidedRates(OracleGuide(), 1, scale, method)
    result = sample(AbsorbingOracle(), build_graph("absorbing", ALPHABET), LogLinearNoise(),
                    masked_starts([8] * n), steps=steps, seed=seed, batch_size=n, sampler=sampler,
                    guide=rates)  # fmt: skip
    return result, rates


def test_exact_guidance_at_scale_1_draws_the_true_conditional_and_taylor_falls_short():
    """Exact scores and the exact guide: with exact ratios and one position per event, scale 1 gives exact
    draws of the family conditioned on the label, so the TV distance is the sampling noise of 2,000 draws
    (below its 99.9% quantile; a wrong noise level, target class or ratio breaks this). Taylor ratios at
    scale 1 carry the label in about half the designs (0.48-0.50 over seeds), where the family has 22%."""
    n = 2000
    exact, rates = _guided_sample("exact", 1.0, "exact", n)
    tv, label_rate = conditional_tv(exact.sequences)
    assert exact.sampler == "events" and label_rate == 1.0
    assert tv < null_tv_quantile(n, 0.999), tv
    assert exact.network_rows == 8 * n  # one network pass per position
    assert rates.rows_run == 8 * n * (1 + N)  # per event: the row, and one candidate per residue
    taylor, _ = _guided_sample("taylor", 1.0, 64, n)
    assert taylor.sampler == "steps"  # Taylor ratios change when positions unmask
    assert 0.4 < conditional_tv(taylor.sequences)[1] < 0.6
    grid, _ = _guided_sample("exact", 1.0, 64, n, sampler="steps")  # the step loop's exact rates
    tv_grid, rate_grid = conditional_tv(grid.sequences)
    assert rate_grid > 0.97 and tv_grid < 0.05  # near: 64 steps draw some positions jointly


def test_exact_guidance_toward_the_other_class_draws_its_conditional():
    result, _ = _guided_sample("exact", 1.0, "exact", 1000)
    assert set(result.sequences) <= set(LABELLED)
    rates = GuidedRates(OracleGuide(), 0, 1.0, "exact")
    from protein_sedd.design.request import masked_starts
    from protein_sedd.diffusion.graph import build_graph
    from protein_sedd.diffusion.noise import LogLinearNoise
    from protein_sedd.diffusion.sampling import sample

    from .test_design import AbsorbingOracle

    starts = masked_starts([8] * 1000)
    other = sample(AbsorbingOracle(), build_graph("absorbing", ALPHABET), LogLinearNoise(), starts,
                   steps="exact", batch_size=1000, seed=0, guide=rates)  # fmt: skip
    assert not set(other.sequences) & set(LABELLED)
    assert set(other.sequences) <= set(SYNTHETIC_SEQUENCES)


# -- design --guide ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def quick_guide(tmp_path_factory, quick_run):
    """A guide trained for a few steps against the quick run: for options and plumbing, not for quality."""
    root = tmp_path_factory.mktemp("guide")
    labels = labelled_csv(root / "labels.csv")
    args = ["train-guide", "--labels", labels, "--checkpoint", quick_run, "--out", root / "guide"]
    assert run_cli([*args, "--steps", "5", "--device", "cpu"])[0] == 0
    return root / "guide"


def test_guide_scale_0_gives_the_unguided_designs_byte_for_byte(tmp_path, capsys, quick_run, quick_guide):
    common = ["design", "--checkpoint", quick_run, "--n", "6", "--steps", "8", "--device", "cpu"]
    outs = {name: tmp_path / f"{name}.fasta" for name in ("plain", "scale0", "guided")}
    assert run_cli([*common, "--out", outs["plain"]], capsys)[0] == 0
    guide = ["--guide", quick_guide, "--target", "1"]
    assert run_cli([*common, "--out", outs["scale0"], *guide, "--guide-scale", "0"], capsys)[0] == 0
    assert outs["scale0"].read_bytes() == outs["plain"].read_bytes()
    code, _, err = run_cli([*common, "--out", outs["guided"], *guide, "--guide-scale", "2"], capsys)
    assert code == 0, err
    headers = [line for line in outs["guided"].read_text().splitlines() if line.startswith(">")]
    assert len(headers) == 6
    assert all(" sampler=steps" in h and h.endswith(" guide=guide target=1 guide_scale=2") for h in headers)
    assert "guide passes" in err


def test_the_python_api_designs_with_a_guide_as_the_command_does(tmp_path, capsys, quick_run, quick_guide):
    model = protein_sedd.load(quick_run, "cpu")
    plain = [d.sequence for d in model.design(5, steps=8, progress=False)]
    guide = protein_sedd.load_guide(quick_guide, "cpu")
    assert [d.sequence for d in model.design(5, steps=8, guide=guide, target=1, guide_scale=0.0,
                                             progress=False)] == plain  # fmt: skip
    guided = model.design(5, steps=8, guide=quick_guide, target=1, guide_scale=2.0, progress=False)
    out = tmp_path / "cli.fasta"
    args = ["design", "--checkpoint", quick_run, "--n", "5", "--steps", "8", "--device", "cpu", "--out", out]
    assert run_cli([*args, "--guide", quick_guide, "--target", "1", "--guide-scale", "2"], capsys)[0] == 0
    assert [r for r in out.read_text().splitlines() if not r.startswith(">")] == [d.sequence for d in guided]
    assert guided.guide_passes > 0
    with pytest.raises(UserError, match="target 3: not a class of the guide guide"):
        model.design(5, steps=8, guide=guide, target=3, progress=False)


def test_exact_guidance_runs_in_the_event_sampler_from_the_command_and_the_api(tmp_path, capsys, quick_run,
                                                                              quick_guide):  # fmt: skip
    out = tmp_path / "exact.fasta"
    args = ["design", "--checkpoint", quick_run, "--n", "4", "--length", "12", "--device", "cpu", "--out",
            out, "--guide", quick_guide, "--target", "1", "--guide-scale", "2"]  # fmt: skip
    code, _, err = run_cli([*args, "--guidance", "exact", "--steps", "exact"], capsys)
    assert code == 0, err
    assert "sampler events" in err and "(exact ratios: events: 22 guide passes per unmasking event" in err
    assert "guide passes (exact): 1056" in err  # 4 x 12 events, each: its row and 21 candidates
    records = read_fasta(out)
    assert all(r.description.endswith("guide=guide target=1 guide_scale=2 guidance=exact") for r in records)
    assert all(" steps=exact " in r.description and " sampler=events " in r.description for r in records)
    model = protein_sedd.load(quick_run, "cpu")
    designs = model.design(4, steps="exact", length=12, guide=quick_guide, target=1, guide_scale=2.0,
                           guidance="exact", progress=False)  # fmt: skip
    assert [d.sequence for d in designs] == [r.sequence for r in records] and designs.guide_passes == 1056
    for extra, message in [
        (["--guidance", "fancy"], "--guidance 'fancy': choose taylor or exact"),
        (["--steps", "exact"], "(a guide with Taylor ratios reweights the unmasking rates)"),
    ]:
        code, _, err = run_cli([*args, *extra], capsys)
        assert code == 2 and err.count("\n") == 1 and message in err, err
    with pytest.raises(UserError, match="^guidance 'fancy': choose taylor or exact"):
        model.design(2, guide=quick_guide, target=1, guidance="fancy", progress=False)


def test_the_target_rate_search_picks_the_smallest_scale_that_reaches_it():
    from protein_sedd.guidance.target_rate import MAX_SCALE, choose_scale

    def rate(scale):  # a label rate rising with the scale: 0.9 is reached at ln 7 = 1.946
        return 1 - 0.7 * math.exp(-scale)

    search = choose_scale(0.9, rate)
    assert [s for s, _ in search.tried] == pytest.approx([0, 1, 2, 2**0.5, 2**0.75, 2**0.875])
    assert search.scale == 2 and search.reached
    assert (
        "guide scale 2 chosen for target rate 0.9" in search.note()
        and "0 -> 0.30, 1 -> 0.74" in search.note()
    )
    easy = choose_scale(0.2, rate)  # the unguided designs already reach it
    assert easy.scale == 0 and easy.tried == [(0.0, pytest.approx(0.3))]
    near = choose_scale(0.5, rate)  # scale 1 reaches it: bisect down toward 1/8
    assert near.scale == pytest.approx(2**-1.5) and all(r >= 0.5 for s, r in near.tried if s == near.scale)
    never = choose_scale(0.9, lambda scale: 0.5)
    assert never.scale == MAX_SCALE and not never.reached and "no scale up to 64 reached it" in never.note()


def test_design_with_a_target_rate_from_the_command_and_the_api(tmp_path, capsys, quick_run, quick_guide):
    out = tmp_path / "rate.fasta"
    args = ["design", "--checkpoint", quick_run, "--n", "6", "--length", "12", "--steps", "8", "--device",
            "cpu", "--out", out, "--guide", quick_guide, "--target", "1"]  # fmt: skip
    code, _, err = run_cli([*args, "--target-rate", "0.6"], capsys)
    assert code == 0, err
    chosen = re.search(r"guide scale (\S+) chosen for target rate 0.6; pilot label rates", err)
    assert chosen, err
    headers = [r.description for r in read_fasta(out)]
    assert all(h.endswith(f"guide_scale={chosen[1]} target_rate=0.6") for h in headers), headers[0]
    model = protein_sedd.load(quick_run, "cpu")
    designs = model.design(
        6, length=12, steps=8, guide=quick_guide, target=1, target_rate=0.6, progress=False
    )
    assert [d.sequence for d in designs] == [r.sequence for r in read_fasta(out)]
    for extra, message in [
        (["--target-rate", "1.5"], "--target-rate 1.5: must be a number between 0 and 1"),
        (["--target-rate", "0.9", "--guide-scale", "2"], "give --guide-scale or --target-rate, not both"),
    ]:
        code, _, err = run_cli([*args, *extra], capsys)
        assert code == 2 and err.count("\n") == 1 and message in err, err
    with pytest.raises(UserError, match="^target_rate needs a guide"):
        model.design(2, target_rate=0.5, progress=False)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--guide", "GUIDE"], "a guide needs --target: one of its classes"),
        (["--guide", "GUIDE", "--target", "3"], "--target 3: not a class of the guide guide (classes: 0, 1)"),
        (
            ["--guide", "GUIDE", "--target", "1", "--guide-scale", "-1"],
            "--guide-scale -1.0: must be a finite",
        ),
        (["--target", "1"], "--target 1: a target needs a guide (--guide)"),
        (["--guide", "MISSING", "--target", "1"], "no such folder"),
    ],
    ids=["no-target", "not-a-class", "negative-scale", "no-guide", "missing-guide"],
)
def test_bad_guide_options_of_design_exit_2_and_write_nothing(tmp_path, capsys, quick_run, quick_guide, extra,
                                                              message):  # fmt: skip
    extra = [str(quick_guide) if e == "GUIDE" else str(tmp_path / "missing") if e == "MISSING" else e
             for e in extra]  # fmt: skip
    out = tmp_path / "designs.fasta"
    args = ["design", "--checkpoint", quick_run, "--n", "2", "--steps", "4", "--device", "cpu", "--out", out]
    code, _, err = run_cli([*args, *extra], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not out.exists()


# -- the known-answer test: a motif-labelled family (slow) ---------------------------------------------------
def _benchmark_module():
    path = REPO / "workflows" / "benchmarks" / "guided_design.py"
    spec = importlib.util.spec_from_file_location("guided_design", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_motif_and_rule_checks_of_the_benchmark_family():
    bench = _benchmark_module()
    assert bench.has_motif("AAA" + bench.MOTIF + "A" * 7) and not bench.has_motif("A" * 12)
    family = bench.family()
    sample = family.sample(200, seed=3)
    assert sum(map(bench.obeys_rule, sample)) / 200 > 0.85  # the rule breaks with probability 0.02 per pair
    assert 0.1 < sum(map(bench.has_motif, sample)) / 200 < 0.4  # the motif: present, not common
    assert all(set(s) <= set(AMINO_ACIDS) for s in sample)


@pytest.mark.slow
def test_guided_designs_carry_the_motif_far_more_often_and_still_obey_the_rule(tmp_path):
    """A tiny model (300 steps) and a guide on 400 labelled sequences: target 1 at scale 2 raises the
    motif's share well above the unguided one, the rule holds as in the unguided designs, and scale 0
    writes the unguided FASTA byte for byte."""
    bench = _benchmark_module()
    report = bench.benchmark(tmp_path, train_steps=300, n=200, steps=64, scales=[0.0, 2.0], threads=1)
    unguided, scale_0, guided = report["designs"]
    assert report["scale_0_identical_to_unguided"]
    assert scale_0["motif"] == unguided["motif"]
    assert unguided["motif"]["rate"] < 0.4  # about the family's quarter
    assert guided["motif"]["rate"] > max(0.7, 2 * unguided["motif"]["rate"])
    assert guided["motif"]["ci95"][0] > unguided["motif"]["ci95"][1]  # the intervals do not overlap
    assert guided["rule"]["rate"] > 0.8 and unguided["rule"]["rate"] > 0.8  # the family's: about 0.92
    assert guided["unique"] > 0.9


def test_a_diverged_guide_is_refused_and_nothing_is_written(tmp_path, capsys, monkeypatch):
    from protein_sedd.guidance import training

    real = training._loss
    monkeypatch.setattr(
        training, "_loss", lambda guide, outputs, targets: real(guide, outputs, targets) * math.inf
    )
    labels = tmp_path / "labels.csv"
    labels.write_text("sequence,label\n" + "".join(f"{SEQ},{i % 2}\n" for i in range(10)))
    out = tmp_path / "guide"
    code, _, err = run_cli(
        ["train-guide", "--labels", labels, "--out", out, "--steps", 3, "--device", "cpu"], capsys
    )
    last = err.strip().splitlines()[-1]  # after the run's own log lines
    assert code == 2 and "Traceback" not in err, err
    assert last == (
        "error: train-guide: training diverged (the loss or the guide's weights are not finite); "
        "lower --lr (now 0.002) or rescale the labels; nothing was written"
    )
    assert not out.exists()


EDITED_GUIDES = [
    ({"network": {"hidden_size": -1}}, "network.hidden_size -1 is outside 1..4096"),
    ({"network": {"hidden_size": 10**7, "n_layers": 100}}, "network.hidden_size 10000000 is outside 1..4096"),
    ({"network": {"n_layers": 2.5}}, "network.n_layers 2.5 is not a whole number"),
    ({"network": {"kernel_size": 4}}, "network.kernel_size 4 is even"),
    ({"network": {"vocab_size": 30}}, "network.vocab_size 30 is not this alphabet's 23"),
    ({"network": [1, 2]}, "network [1, 2] is not a table of settings"),
    ({"classes": 5}, "classes 5 are not a list of numbers"),
    ({"classes": ["a", "b"]}, "classes ['a', 'b'] are not a list of numbers"),
    ({"classes": [0.0, 1.0, 2.0]}, "network.n_outputs 2 is not the 3 classes"),
    ({"classes": [1.0, 1.0]}, "classes [1.0, 1.0]: a classifier has 2 to 10 distinct classes"),
    ({"label_std": "x"}, "label_std 'x' is not a finite number"),
    ({"task": "regress", "label_std": 0}, "label_std 0 is not positive"),
    ({"task": "regress", "label_std": float("nan")}, "label_std nan is not a finite number"),
]


@pytest.mark.parametrize("edit, message", EDITED_GUIDES, ids=[m for _, m in EDITED_GUIDES])
def test_an_edited_guide_is_refused_before_its_network_is_built(tmp_path, quick_guide, edit, message):
    import shutil

    folder = tmp_path / "guide"
    shutil.copytree(quick_guide, folder)
    record = json.loads((folder / "guide.json").read_text())
    if isinstance(edit.get("network"), dict):
        edit = {**edit, "network": {**record["network"], **edit["network"]}}
    (folder / "guide.json").write_text(json.dumps({**record, **edit}))
    with pytest.raises(UserError) as refused:
        protein_sedd.load_guide(folder, "cpu")
    assert str(refused.value).startswith(f"guide {folder}: guide.json: {message}"), str(refused.value)
    assert str(refused.value).endswith("the file was edited or damaged: train the guide again")


def test_a_guide_of_another_model_is_noted_and_of_another_noise_schedule_refused(
    tmp_path, capsys, quick_run, quick_guide
):
    import shutil

    folder = tmp_path / "guide"
    shutil.copytree(quick_guide, folder)
    record = json.loads((folder / "guide.json").read_text())
    out = tmp_path / "d.fasta"
    args = ["design", "--checkpoint", quick_run, "--guide", folder, "--target", "1", "--n", "2"]
    args += ["--steps", "4", "--device", "cpu", "--out", out]
    code, _, err = run_cli(args, capsys)
    assert code == 0 and "note: the guide was trained against" not in err, err  # its own model: no note
    (folder / "guide.json").write_text(json.dumps({**record, "model": "pten-family"}))
    code, _, err = run_cli([*args, "--overwrite"], capsys)
    assert code == 0, err
    assert "note: the guide was trained against model 'pten-family'" in err
    untested = (
        "not 'run': what its labels mean for this model's sequences is untested; train-guide --checkpoint"
    )
    assert f"{untested} {quick_run}" in err
    noise = {**record["noise"], "type": "geometric"}
    (folder / "guide.json").write_text(json.dumps({**record, "noise": noise}))
    out.unlink()
    code, _, err = run_cli(args, capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(
        f"error: --guide {folder}: trained against a model with noise {noise!r}, but {quick_run}"
    )
    assert not out.exists()
