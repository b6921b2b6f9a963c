"""The event-driven sampler and the sampling controls: known unmasking probabilities, the step loop's
distribution at equal steps, network passes, temperature and top-p in every sampler, and their errors."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.design.request import masked_starts
from protein_sedd.diffusion import event_sampling
from protein_sedd.diffusion.event_sampling import (
    ExactSchedule,
    draw_unmask_steps,
    unmask_step_probabilities,
)
from protein_sedd.diffusion.noise import GeometricNoise, LogLinearNoise
from protein_sedd.diffusion.sampling import event_sampler_applies, sample, sigma_grid
from protein_sedd.diffusion.sampling_controls import SamplingControls, check_sampling_controls
from protein_sedd.errors import UserError
from protein_sedd.io.fasta import read_fasta
from protein_sedd.runtime.precision import resolve_precision

from .conftest import run_cli
from .test_design import (  # noqa: F401  (_one_thread: the autouse fixture applies here too)
    ABSORBING,
    MASK,
    TRUE,
    UNIFORM,
    AbsorbingOracle,
    UniformOracle,
    _Config,
    _one_thread,
)

AUTO = resolve_precision("auto", torch.device("cpu"))  # what designs compute in here: bf16 or fp32


def support_frequencies(sequences: list[str]) -> dict[str, float]:
    """Frequencies of the eight synthetic sequences and of everything else ('other')."""
    counts = Counter(s if s in TRUE else "other" for s in sequences)
    return {s: counts[s] / len(sequences) for s in [*TRUE, "other"]}


def tv(p: dict[str, float], q: dict[str, float]) -> float:
    return 0.5 * sum(abs(p[k] - q[k]) for k in p)


# ---------------------------------------------------------------- when each position unmasks


def test_unmask_step_probabilities_of_log_linear_noise_are_the_time_steps():
    # 1 - exp(-sigma_bar(t)) = (1 - eps) t, so P(step k) = t_k - t_k+1 = (1 - eps) / K, and eps is left
    # for the final denoise
    noise = LogLinearNoise()
    probabilities = unmask_step_probabilities(sigma_grid(noise, 4))
    expected = [(1 - noise.eps) / 4] * 4 + [noise.eps]
    assert probabilities.tolist() == pytest.approx(expected, rel=1e-9)


def test_unmask_step_probabilities_are_the_step_loops_stay_probabilities():
    # geometric noise: staying masked through a step t -> s is (1 - e^-sigma(s)) / (1 - e^-sigma(t))
    sigmas = sigma_grid(GeometricNoise(), 3)
    stay = [-math.expm1(-s) / -math.expm1(-t) for t, s in zip(sigmas[:-1], sigmas[1:], strict=True)]
    expected = [1 - stay[0], stay[0] * (1 - stay[1]), stay[0] * stay[1] * (1 - stay[2])]
    expected.append(stay[0] * stay[1] * stay[2])
    assert unmask_step_probabilities(sigmas).tolist() == pytest.approx(expected, rel=1e-9)


def test_drawn_unmask_steps_follow_the_probabilities_and_skip_fixed_positions():
    probabilities = torch.tensor([0.5, 0.0, 0.3, 0.2], dtype=torch.float64)
    masked = torch.ones(100_000, 2, dtype=torch.bool)
    masked[:, 1] = False
    steps = draw_unmask_steps(masked, probabilities, torch.Generator().manual_seed(0))
    assert bool((steps[:, 1] == -1).all())
    frequencies = torch.bincount(steps[:, 0], minlength=4).double() / len(steps)
    assert frequencies[1] == 0  # a step with no probability is never drawn
    for k, p in enumerate(probabilities.tolist()):
        assert abs(frequencies[k] - p) <= 4 * math.sqrt(p * (1 - p) / len(steps)), k


# ---------------------------------------------------------------- the step loop's distribution


@pytest.mark.parametrize("loop_predictor", ["analytic", "euler"])
def test_event_sampler_matches_the_step_loop_at_equal_coarse_steps(loop_predictor):
    # At 4 steps the step loop is far from the data (positions unmasked together are drawn independently),
    # so matching its distribution, not the data's, is what shows the event sampler runs the same chain.
    # Log-linear noise makes euler unmask like analytic on the absorbing graph: both loops are compared.
    def designs(sampler, predictor, seed):
        result = sample(
            AbsorbingOracle(), ABSORBING, LogLinearNoise(), masked_starts([8] * 10_000), steps=4, seed=seed,
            predictor=predictor, sampler=sampler, batch_size=5000,
        )  # fmt: skip
        assert result.sampler == ("events" if sampler == "events" and predictor == "analytic" else "steps")
        return support_frequencies(result.sequences)

    events, loop = designs("events", "analytic", 1), designs("steps", loop_predictor, 2)
    assert tv(loop, {**TRUE, "other": 0.0}) > 0.1  # the coarse chain's own distribution
    assert tv(events, loop) < 0.04


@pytest.mark.parametrize("sampler", ["events", "steps"])
def test_both_samplers_reproduce_the_distribution_at_64_steps(sampler):
    result = sample(
        AbsorbingOracle(), ABSORBING, LogLinearNoise(), masked_starts([8] * 4000), steps=64, seed=0,
        sampler=sampler, batch_size=4000,
    )  # fmt: skip
    assert result.sampler == sampler
    assert tv(support_frequencies(result.sequences), {**TRUE, "other": 0.0}) < 0.04


class CountingOracle(AbsorbingOracle):
    def __init__(self):
        super().__init__()
        self.rows = 0

    def forward(self, tokens, sigma_bar, lengths):
        self.rows += tokens.shape[0]
        return super().forward(tokens, sigma_bar, lengths)


def test_network_passes_equal_the_distinct_unmasking_steps_of_each_sequence(monkeypatch):
    drawn = []

    def recording(masked, probabilities, generator):
        steps = draw_unmask_steps(masked, probabilities, generator)
        drawn.append(steps)
        return steps

    monkeypatch.setattr(event_sampling, "draw_unmask_steps", recording)
    template = ALPHABET.encode("MKVLAGHE")
    template[[1, 4, 7]] = MASK  # infilling: only the three masked positions unmask
    starts = masked_starts([8] * 50 + [5] * 30 + [3] * 20) + [template] * 40
    network = CountingOracle()
    result = sample(network, ABSORBING, LogLinearNoise(), starts, steps=6, seed=4, batch_size=32)
    distinct = sum(len(set(row[row >= 0].tolist())) for steps in drawn for row in steps)
    assert result.network_rows == distinct == network.rows
    assert len(drawn) == 5  # 140 starts in batches of 32
    assert sum(int((steps >= 0).sum()) for steps in drawn) == 50 * 8 + 30 * 5 + 20 * 3 + 40 * 3
    assert all(s[0] == "M" and s[2:4] == "VL" and s[5:7] == "GH" for s in result.sequences[100:])


def test_the_event_sampler_applies_only_where_unmasking_ignores_the_network():
    time_conditioned = AbsorbingOracle()
    time_conditioned.config = _Config(time_conditioning=True)
    assert event_sampler_applies(AbsorbingOracle(), ABSORBING, "analytic")
    assert not event_sampler_applies(AbsorbingOracle(), ABSORBING, "euler")
    assert not event_sampler_applies(time_conditioned, ABSORBING, "analytic")
    assert not event_sampler_applies(UniformOracle(), UNIFORM, "analytic")


# ---------------------------------------------------------------- temperature and top-p


def test_controls_reshape_a_distribution_by_hand():
    p = torch.zeros(ALPHABET.n_residues, dtype=torch.float64)
    p[:3] = torch.tensor([0.5, 0.3, 0.2])
    cold = SamplingControls(temperature=0.5).apply(p)  # p^2 / sum p^2
    torch.testing.assert_close(cold[:3], torch.tensor([0.25, 0.09, 0.04], dtype=torch.float64) / 0.38)
    assert cold[3:].sum() == 0  # impossible residues stay impossible
    nucleus = SamplingControls(top_p=0.6).apply(p)  # 0.5 < 0.6, so 0.5 + 0.3 is the smallest set
    torch.testing.assert_close(nucleus[:3], torch.tensor([0.625, 0.375, 0.0], dtype=torch.float64))
    torch.testing.assert_close(
        SamplingControls(top_p=0.5).apply(p)[0], torch.tensor(1.0, dtype=torch.float64)
    )
    greedy = SamplingControls(temperature=1e-6).apply(p)
    assert greedy[0] == 1.0 and greedy[1:].sum() == 0
    assert SamplingControls().apply(p) is p
    assert SamplingControls(temperature=0.8, top_p=0.9).note() == " temperature=0.8 top_p=0.9"


class FixedDistribution(torch.nn.Module):
    """Every position's denoising distribution is 0.5 / 0.3 / 0.2 on residues 0 / 1 / 2, whatever the tokens.

    Time-conditioned, it returns the log score directly (log p + log N, less nothing: graph.log_score
    subtracts log expm1(sigma_bar) and log N), so both parametrisations mean the same distribution.
    """

    def __init__(self, time_conditioning: bool):
        super().__init__()
        self.config = _Config(time_conditioning=time_conditioning)
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        logits = torch.full((ALPHABET.size,), -1e4)
        logits[:3] = torch.tensor([0.5, 0.3, 0.2]).log()
        if time_conditioning:
            logits[:3] += math.log(ALPHABET.n_residues)
        self.logits = logits

    def forward(self, tokens, sigma_bar, lengths):
        return self.logits.expand(*tokens.shape, ALPHABET.size)


@pytest.mark.parametrize(
    "time_conditioning, sampler", [(False, "events"), (False, "steps"), (True, "steps")], ids=str
)
@pytest.mark.parametrize(
    "controls, expected",
    [
        (SamplingControls(temperature=0.5), [0.25 / 0.38, 0.09 / 0.38, 0.04 / 0.38]),
        (SamplingControls(top_p=0.6), [0.625, 0.375, 0.0]),
    ],
    ids=["T0.5", "top-p0.6"],
)
def test_every_sampler_draws_residues_from_the_reshaped_distribution(
    time_conditioning, sampler, controls, expected
):
    network = FixedDistribution(time_conditioning)
    result = sample(
        network, ABSORBING, LogLinearNoise(), masked_starts([10] * 2000), steps=16, seed=0, sampler=sampler,
        controls=controls, batch_size=1000,
    )  # fmt: skip
    residues = "".join(result.sequences)
    for letter, p in zip(ALPHABET.decode(torch.arange(3)), expected, strict=True):
        frequency = residues.count(letter) / len(residues)
        assert abs(frequency - p) <= 4 * math.sqrt(max(p * (1 - p), 1e-12) / len(residues)) + 1e-12, letter


def test_controls_are_checked_and_refused_on_the_uniform_graph():
    for temperature, top_p, words in [
        (0, 1.0, ["temperature 0", "> 0"]),
        (-1.5, 1.0, ["temperature -1.5"]),
        (float("nan"), 1.0, ["temperature", "finite"]),
        (1.0, 0.0, ["top_p 0", "(0, 1]"]),
        (1.0, 1.5, ["top_p 1.5"]),
    ]:
        with pytest.raises(UserError) as error:
            check_sampling_controls(temperature, top_p)
        assert all(word in str(error.value) for word in words), str(error.value)
        assert str(error.value).startswith(words[0]) and error.value.field in ("temperature", "top_p")
        cli_words = error.value.message(lambda field: "--" + field.replace("_", "-"))
        assert cli_words.startswith("--" + words[0].replace("top_p", "top-p")), cli_words
    with pytest.raises(ValueError, match="absorbing graph"):  # DesignSettings refuses it for users
        sample(
            UniformOracle(), UNIFORM, GeometricNoise(), masked_starts([8]), steps=2, seed=0,
            controls=SamplingControls(temperature=0.5),
        )  # fmt: skip


@pytest.mark.parametrize(
    "args, words",
    [
        (["--temperature", "0"], ["--temperature 0", "> 0"]),
        (["--top-p", "1.2"], ["--top-p 1.2", "(0, 1]"]),
        (["--sampler", "leap"], ["--sampler 'leap'", "events or steps"]),
    ],
)
def test_design_refuses_bad_sampling_options_in_one_line(tmp_path, capsys, args, words):
    out = tmp_path / "designs.fasta"
    code, _, err = run_cli(["design", "--n", "2", "--out", out, "--device", "cpu", *args], capsys)
    assert code == 2
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1, err
    assert all(word in err for word in words), err
    assert not out.exists()


def test_design_headers_record_the_sampler_and_controls(tmp_path, capsys):
    out = tmp_path / "designs.fasta"
    args = ["design", "--n", "3", "--steps", "8", "--length", "20", "--out", out, "--device", "cpu"]
    code, _, err = run_cli([*args, "--temperature", "0.8", "--top-p", "0.95"], capsys)
    assert code == 0, err
    assert "sampler events temperature=0.8 top_p=0.95" in err
    for record in read_fasta(out):
        assert record.description.endswith(f"sampler=events precision={AUTO} temperature=0.8 top_p=0.95")
    code, _, err = run_cli([*args, "--sampler", "steps"], capsys)  # replaces its own earlier designs
    assert code == 0, err
    assert "sampler steps, cache on" in err
    assert all(r.description.endswith(f"acyp-tiny sampler=steps precision={AUTO}") for r in read_fasta(out))


def test_the_python_api_names_its_own_arguments_and_records_the_sampler(monkeypatch):
    import protein_sedd

    model = protein_sedd.load("acyp-tiny", "cpu")
    with pytest.raises(UserError, match=r"^temperature 0: must be > 0"):
        model.design(2, temperature=0, progress=False)
    with pytest.raises(UserError, match=r"^sampler 'leap': choose events or steps"):
        model.design(2, sampler="leap", progress=False)
    drawn = []

    def recording(masked, probabilities, generator):
        drawn.append(draw_unmask_steps(masked, probabilities, generator))
        return drawn[-1]

    monkeypatch.setattr(event_sampling, "draw_unmask_steps", recording)
    designs = model.design(2, steps=8, length=12, top_p=0.9, progress=False)
    assert designs[0].header.endswith(f"checkpoint=acyp-tiny sampler=events precision={AUTO} top_p=0.9")
    # one pass per sequence and distinct unmasking step (12 positions over 8 steps and the denoise)
    (steps,) = drawn
    assert designs.network_passes == sum(len(set(row.tolist())) for row in steps)


# ---------------------------------------------------------------- steps="exact": one position per event
def test_the_exact_schedule_unmasks_one_position_at_a_time_in_a_uniform_order():
    noise = LogLinearNoise()
    masked = torch.ones(6000, 4, dtype=torch.bool)
    masked[:, 2] = False  # a fixed position never unmasks
    steps, sigmas = ExactSchedule(noise, 4).draw(masked, torch.Generator().manual_seed(0))
    assert torch.equal(steps[:, 2], torch.full((6000,), -1))
    drawn = steps[masked]
    assert sorted(drawn.tolist()) == list(range(6000 * 3))  # every event its own step
    assert all(a >= b for a, b in zip(sigmas, sigmas[1:], strict=False))  # visited from t = 1 down
    # the order of the three positions within a row: each of the 3! orders equally likely
    orders = Counter(tuple(np.argsort(row[[0, 1, 3]].numpy())) for row in steps)
    assert len(orders) == 6 and all(abs(c / 6000 - 1 / 6) < 4 * math.sqrt(1 / 6 * 5 / 6 / 6000) for c in
                                    orders.values()), orders  # fmt: skip
    # each event's mask probability 1 - e^-sigma_bar is uniform on (0, 1 - e^-sigma_bar(1)]
    top = -math.expm1(-float(noise.total(torch.tensor(1.0, dtype=torch.float64))))
    fractions = -np.expm1(-np.array(sigmas))
    assert 0 < fractions.min() and fractions.max() <= top
    assert abs(fractions.mean() - top / 2) < 4 * top / math.sqrt(12 * len(fractions))


def null_tv_quantile(q: np.ndarray, n: int, level: float) -> float:
    """The `level` quantile of the TV distance between n exact draws from q and q itself."""
    draws = np.random.default_rng(0).multinomial(n, q, size=4000) / n
    return float(np.quantile(0.5 * np.abs(draws - q).sum(-1), level))


def test_exact_steps_draw_the_distribution_with_no_residue_drawn_jointly():
    """With exact scores, one position per event draws exactly from the distribution: nothing outside the
    eight sequences, and the TV distance no larger than 4,000 exact draws would give; 4 steps draw most
    positions jointly and leave the support."""
    n = 4000
    exact = sample(AbsorbingOracle(), ABSORBING, LogLinearNoise(), masked_starts([8] * n), steps="exact",
                   seed=0, batch_size=n)  # fmt: skip
    frequencies = support_frequencies(exact.sequences)
    assert exact.sampler == "events" and frequencies["other"] == 0
    q = np.array(list(TRUE.values()))
    assert tv(frequencies, {**TRUE, "other": 0.0}) < null_tv_quantile(q, n, 0.999)
    assert exact.network_rows == 8 * n  # one pass per position
    coarse = sample(AbsorbingOracle(), ABSORBING, LogLinearNoise(), masked_starts([8] * n), steps=4, seed=0,
                    batch_size=n)  # fmt: skip
    assert support_frequencies(coarse.sequences)["other"] > 0.1
    with pytest.raises(ValueError, match="event sampler's limit"):
        sample(AbsorbingOracle(), ABSORBING, LogLinearNoise(), masked_starts([8]), steps="exact", seed=0,
               sampler="steps")  # fmt: skip


def test_design_steps_exact_from_the_command_and_the_api(tmp_path, capsys):
    import protein_sedd

    out = tmp_path / "designs.fasta"
    args = ["design", "--n", "3", "--length", "20", "--out", out, "--device", "cpu", "--steps"]
    code, _, err = run_cli([*args, "exact"], capsys)
    assert code == 0, err
    assert "design: 3 designs, exact steps" in err and "60 sequence passes (one per designed position)" in err
    records = read_fasta(out)
    assert [r.description.split()[2] for r in records] == ["steps=exact"] * 3
    model = protein_sedd.load("acyp-tiny", "cpu")
    designs = model.design(3, steps="exact", length=20, progress=False)
    assert [d.sequence for d in designs] == [r.sequence for r in records]
    assert designs.network_passes == 60
    for extra, message in [
        (["abc"], "--steps 'abc': give a number of steps (1..100_000) or 'exact'"),
        (["exact", "--sampler", "steps"], "--steps exact: one position per event needs the event sampler, "
         "which does not run here (--sampler steps); give a number of steps"),
        (["exact", "--predictor", "euler"], "(euler predictor)"),
    ]:  # fmt: skip
        code, _, err = run_cli([*args, *extra], capsys)
        assert code == 2 and err.count("\n") == 1 and message in err, err
    with pytest.raises(UserError, match="^steps 'many': give a number of steps"):
        model.design(2, steps="many", progress=False)
