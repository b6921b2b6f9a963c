"""Design: the samplers' maths, their output distribution, infilling, caching and the command's errors."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.design.request import masked_starts
from protein_sedd.diffusion import sampling
from protein_sedd.diffusion.categorical import sample_categorical, uniforms
from protein_sedd.diffusion.graph import build_graph
from protein_sedd.diffusion.noise import GeometricNoise, LogLinearNoise
from protein_sedd.diffusion.sampling import sample
from protein_sedd.diffusion.transitions import absorbing_step_weights, uniform_step_weights
from protein_sedd.io.fasta import read_fasta

from .conftest import SYNTHETIC_PROBS, SYNTHETIC_SEQUENCES, run_cli

N = ALPHABET.n_residues
MASK = ALPHABET.mask_index
ABSORBING = build_graph("absorbing", ALPHABET)
UNIFORM = build_graph("uniform", ALPHABET)
TRUE = dict(zip(SYNTHETIC_SEQUENCES, SYNTHETIC_PROBS, strict=True))


@pytest.fixture(autouse=True)
def _one_thread():
    """Two cores shared by several test runs: OpenMP threads spinning against each other cost 10x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def total_variation(sequences: list[str]) -> float:
    """TV distance to the synthetic distribution; sequences outside it count as mass on 'other'."""
    counts = Counter(sequences)
    other = sum(v for s, v in counts.items() if s not in TRUE) / len(sequences)
    return 0.5 * (sum(abs(counts[s] / len(sequences) - p) for s, p in TRUE.items()) + other)


# ---------------------------------------------------------------- oracle networks (exact scores)


@dataclass
class _Config:
    time_conditioning: bool
    max_length: int = 8


class AbsorbingOracle(torch.nn.Module):
    """p(x_i | unmasked positions) of the synthetic distribution, as a time-independent network would give."""

    def __init__(self):
        super().__init__()
        self.config = _Config(time_conditioning=False)
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the sampler a device
        self.seqs = torch.stack([ALPHABET.encode(s) for s in SYNTHETIC_SEQUENCES])  # [S, L]
        self.probs = torch.tensor(SYNTHETIC_PROBS, dtype=torch.float64)

    def forward(self, tokens, sigma_bar, lengths):
        seqs, t = self.seqs[:, : tokens.shape[1]], tokens[:, None, :]  # shorter rows: prefixes
        agrees = (t == MASK) | (t == ALPHABET.pad_index) | (t == seqs[None])  # [B, S, L]
        weight = agrees.all(-1).double() * self.probs  # [B, S]
        letters = torch.nn.functional.one_hot(seqs, ALPHABET.size).double()  # [S, L, V]
        conditional = torch.einsum("bs,slv->blv", weight, letters)
        return torch.log(conditional / conditional.sum(-1, keepdim=True) + 1e-30).float()


class UniformOracle(torch.nn.Module):
    """The exact uniform-graph scores p_t(x with y at i) / p_t(x) of the synthetic distribution."""

    def __init__(self):
        super().__init__()
        self.config = _Config(time_conditioning=True)
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.seqs = torch.stack([ALPHABET.encode(s) for s in SYNTHETIC_SEQUENCES])
        self.probs = torch.tensor(SYNTHETIC_PROBS, dtype=torch.float64)

    def forward(self, tokens, sigma_bar, lengths):
        beta = torch.exp(-sigma_bar.double())[:, None, None]  # [B, 1, 1]
        same = (tokens[:, None, :] == self.seqs[None]).double()  # [B, S, L]
        factor = beta * same + (1 - beta) / N  # p_t(x_i | s_i)
        whole = factor.prod(-1) * self.probs  # [B, S]
        letters = torch.nn.functional.one_hot(self.seqs, N).double()  # [S, L, N]
        swapped = beta[..., None] * letters[None] + (1 - beta[..., None]) / N  # p_t(y | s_i), [B, S, L, N]
        numerator = torch.einsum("bs,bsl,bsln->bln", whole, 1 / factor, swapped)
        score = numerator / whole.sum(-1)[:, None, None]
        return torch.cat([score.log(), torch.zeros(*score.shape[:2], 2, dtype=score.dtype)], -1).float()


# ---------------------------------------------------------------- transition maths by hand


def test_absorbing_analytic_step_weights_by_hand():
    # sigma_bar(t) = log 2 (expm1 = 1) and d = log 1.5 (expm1 = 0.5): p(y) = 0.5 * score[y]
    score = torch.zeros(N, dtype=torch.float64)
    score[:3] = torch.tensor([0.5, 0.3, 0.2])
    weights = absorbing_step_weights(score, math.log(1.5), "analytic")
    expected = torch.zeros(N + 1, dtype=torch.float64)
    expected[:3] = torch.tensor([0.25, 0.15, 0.10])
    expected[N] = 0.5
    torch.testing.assert_close(weights, expected)
    euler = absorbing_step_weights(score, 0.4, "euler")
    torch.testing.assert_close(euler[:3], torch.tensor([0.2, 0.12, 0.08], dtype=torch.float64))
    torch.testing.assert_close(euler[N], torch.tensor(0.6, dtype=torch.float64))
    # scores summing above 1 / expm1(d): the stay weight is clamped at 0, never negative
    assert absorbing_step_weights(score * 10, math.log(1.5), "analytic")[N] == 0


def test_tau_leaping_step_draws_the_hand_computed_probabilities():
    rows = 200_000
    x = torch.full((rows, 2), MASK)
    x[:, 1] = 4  # an unmasked position: it must never change
    score = torch.zeros(rows, 2, N, dtype=torch.float64)
    score[..., :3] = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    u = uniforms(x.shape, generator, "cpu")
    new = ABSORBING.step(x, None, score, math.log(1.5), "analytic", u)
    assert bool((new[:, 1] == 4).all())
    frequencies = torch.bincount(new[:, 0], minlength=ALPHABET.size).double() / rows
    expected = {0: 0.25, 1: 0.15, 2: 0.10, MASK: 0.5}
    for token, p in expected.items():
        assert abs(frequencies[token] - p) < 4 * math.sqrt(p * (1 - p) / rows), token
    assert frequencies[3:MASK].sum() == 0


def test_uniform_analytic_step_matches_the_matrix_exponential():
    d, x = 0.7, 5
    score = torch.rand(N, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 3
    q = torch.ones(N, N, dtype=torch.float64) / N - torch.eye(N, dtype=torch.float64)
    s = score.clone()
    s[x] = 1.0
    expected = (torch.linalg.matrix_exp(-d * q) @ s) * torch.linalg.matrix_exp(d * q)[x]
    weights = uniform_step_weights(score, torch.tensor(x), d, "analytic")
    torch.testing.assert_close(weights, expected.clamp(min=0))
    euler = uniform_step_weights(score, torch.tensor(x), 0.01, "euler")
    torch.testing.assert_close(euler.sum(), torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(euler[x + 1], 0.01 * score[x + 1] / N)


# ---------------------------------------------------------------- float64 categorical draws


def test_categorical_draws_resolve_masses_float32_cannot():
    # cumulative weights 1 and 1 + 1e-12: identical in float32, distinct in float64
    weights = torch.tensor([1.0, 1e-12], dtype=torch.float64)
    assert int(sample_categorical(weights, torch.tensor(1 - 1e-13, dtype=torch.float64))) == 1
    assert int(sample_categorical(weights, torch.tensor(1 - 1e-11, dtype=torch.float64))) == 0
    assert torch.tensor(1 - 1e-13, dtype=torch.float32) == 1.0  # float32 could not even ask the question
    with pytest.raises(TypeError, match="float64"):
        sample_categorical(weights.float(), torch.tensor(0.5))


def test_uniforms_are_float64_with_finer_than_float32_resolution():
    u = uniforms((100_000,), torch.Generator().manual_seed(0), "cpu")
    assert u.dtype == torch.float64
    assert bool((u.float().double() != u).float().mean() > 0.99)  # float32 would round almost all
    draws = sample_categorical(torch.tensor([0.2, 0.0, 0.8], dtype=torch.float64).expand(100_000, 3), u)
    assert int((draws == 1).sum()) == 0
    assert abs(float((draws == 0).double().mean()) - 0.2) < 0.006


# ---------------------------------------------------------------- samplers on exact scores


@pytest.mark.parametrize("predictor", ["analytic", "euler"])
def test_absorbing_sampler_reproduces_the_distribution_from_exact_scores(predictor):
    result = sample(
        AbsorbingOracle(),
        ABSORBING,
        LogLinearNoise(),
        masked_starts([8] * 4000),
        steps=64,
        seed=0,
        predictor=predictor,
        batch_size=4000,
    )
    assert total_variation(result.sequences) < 0.04


def test_uniform_sampler_reproduces_the_distribution_from_exact_scores():
    result = sample(
        UniformOracle(),
        UNIFORM,
        GeometricNoise(),
        masked_starts([8] * 3000),
        steps=128,
        seed=0,
        batch_size=3000,
    )
    assert not result.cached
    assert total_variation(result.sequences) < 0.05


def test_euler_steps_are_the_rate_times_the_step():
    loglinear = LogLinearNoise()
    euler = sampling.step_sizes(loglinear, 16, "euler")
    analytic = sampling.step_sizes(loglinear, 16, "analytic")
    # log-linear: sigma(t) dt = (1 - eps) dt / (1 - (1 - eps) t) = expm1(sigma_bar(t) - sigma_bar(t - dt))
    assert euler == pytest.approx([math.expm1(d) for d in analytic], rel=1e-12)
    dt = (1 - loglinear.eps) / 16
    assert euler[0] == pytest.approx((1 - loglinear.eps) / loglinear.eps * dt, rel=1e-12)  # sigma(1) dt
    geometric = GeometricNoise()
    t = 1 - 1 / 4  # the second of 4 steps, from t = 3/4 to 1/2
    expected = geometric.sigma_min ** (1 - t) * geometric.sigma_max**t * geometric.log_ratio / 4
    assert sampling.step_sizes(geometric, 4, "euler")[1] == pytest.approx(expected, rel=1e-12)


class FlatNetwork(torch.nn.Module):
    """A time-independent network that predicts every real residue alike, whatever the tokens."""

    def __init__(self):
        super().__init__()
        self.config = _Config(time_conditioning=False)
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, tokens, sigma_bar, lengths):
        return torch.zeros(*tokens.shape, ALPHABET.size)


@pytest.mark.parametrize("steps", [4, 16])
def test_masks_left_for_the_final_denoise_match_the_exact_step(monkeypatch, steps):
    # A masked position survives the step t -> s with probability s / t (log-linear noise), so eps of the
    # positions reach the final denoise whatever the step count; euler, with the rate times the step, too.
    left = Counter()

    denoise = type(ABSORBING).denoise

    def counting_denoise(graph, x, free, score, sigma_end, u):
        left[predictor] += int((x == MASK).sum())
        return denoise(graph, x, free, score, sigma_end, u)

    monkeypatch.setattr(type(ABSORBING), "denoise", counting_denoise)
    network, noise, starts = FlatNetwork(), LogLinearNoise(), masked_starts([8] * 20_000)
    for predictor in ("analytic", "euler"):
        sample(
            network, ABSORBING, noise, starts, steps=steps, seed=0, predictor=predictor, batch_size=5000,
            sampler="steps",
        )  # fmt: skip
    expected = noise.eps * len(starts) * 8  # 160 positions
    for predictor, count in left.items():
        assert abs(count - expected) < 4 * math.sqrt(expected), (predictor, count)
    assert abs(left["euler"] - left["analytic"]) <= 2  # same draws, same probabilities up to rounding


def test_infilling_samples_the_conditional_distribution():
    template = ALPHABET.encode("MKVLAGHE")
    template[[1, 7]] = MASK  # M_VLAGH_: matches MKVLAGHE (0.3) and MRVLAGHD (0.15)
    result = sample(
        AbsorbingOracle(),
        ABSORBING,
        LogLinearNoise(),
        [template] * 3000,
        steps=32,
        seed=0,
        batch_size=1000,
    )
    counts = Counter(result.sequences)
    assert set(counts) <= {"MKVLAGHE", "MRVLAGHD", "MKVLAGHD", "MRVLAGHE"}
    assert abs(counts["MKVLAGHE"] / 3000 - 2 / 3) < 0.04


def test_cache_gives_identical_draws_with_fewer_network_passes():
    def run(cache):
        return sample(
            AbsorbingOracle(),
            ABSORBING,
            LogLinearNoise(),
            masked_starts([8] * 500 + [6] * 300),
            steps=128,
            seed=3,
            sampler="steps",
            cache=cache,
            batch_size=256,
        )

    cached, uncached = run(True), run(False)
    assert cached.sequences == uncached.sequences
    assert cached.cached and not uncached.cached
    assert uncached.network_rows == 800 * 129
    assert cached.network_rows < uncached.network_rows / 5


# ---------------------------------------------------------------- the command


def _design(tmp_path: Path, run_dir: Path, *args, name="designs.fasta", capsys=None):
    out = tmp_path / name
    code, _, err = run_cli(
        ["design", "--checkpoint", run_dir, "--out", out, "--device", "cpu", *args], capsys
    )
    return code, out, err


def exact_process_probabilities(network, sequences: list[str]) -> list[float]:
    """P(x) under the exact reverse process of a time-independent absorbing network (steps="exact"): the
    positions unmask in a uniformly random order, each drawn from the network's p(x_i | revealed). With
    g(S) the sum over orders of revealing the set S of the products so far, g(S + i) += g(S) p(x_i | x_S),
    and P(x) = g(all) / L!: one network pass per subset (2^L), exact for the model, whatever it learnt."""
    length = len(sequences[0])
    revealed = ((torch.arange(2**length)[:, None] >> torch.arange(length)) & 1).bool()  # [2^L, L]
    probabilities = []
    for sequence in sequences:
        x = ALPHABET.encode(sequence)
        rows = torch.where(revealed, x, torch.full_like(x, MASK))
        with torch.no_grad():
            logits = network(rows, torch.ones(len(rows)), torch.full((len(rows),), length))
        p = torch.softmax(logits[..., :N].double(), -1)[:, torch.arange(length), x]  # p(x_i | x_S) [2^L, L]
        g = [0.0] * 2**length
        g[0] = 1.0
        for subset in range(2**length):
            for i in range(length):
                if not subset >> i & 1:
                    g[subset | 1 << i] += g[subset] * float(p[subset, i])
        probabilities.append(g[-1] / math.factorial(length))
    return probabilities


def null_tv_quantile(q: np.ndarray, n: int, level: float) -> float:
    """The `level` quantile of the TV distance between n exact draws from q and q itself."""
    draws = np.random.default_rng(0).multinomial(n, q, size=4000) / n
    return float(np.quantile(0.5 * np.abs(draws - q).sum(-1), level))


@pytest.mark.slow
@pytest.mark.parametrize(
    "steps, predictor, precision",
    [("exact", "analytic", "fp32"), ("exact", "analytic", "bf16"), (1024, "analytic", "fp32"),
     (1024, "euler", "bf16")],
)  # fmt: skip
def test_designs_are_draws_from_the_models_own_distribution(synthetic_run, tmp_path, capsys, steps, predictor,
                                                            precision):  # fmt: skip
    """The known answer is the trained model's own distribution over the eight family sequences (its error
    against the family is its own, about 0.04 in TV): computed exactly, the designs must match it within
    the sampling noise of 3,000 draws (the 99.9% quantile of the TV distance). 1,024 steps draw 5% of the
    positions jointly here, below that noise; 64 steps (48%) measure 0.034, against a 99.9% quantile of
    0.040."""
    import protein_sedd

    code, out, err = _design(
        tmp_path, synthetic_run, "--n", 3000, "--steps", steps, "--length", 8, "--batch-size", 3000,
        "--predictor", predictor, "--precision", precision, capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    records = read_fasta(out)
    assert len(records) == 3000
    own = exact_process_probabilities(protein_sedd.load(synthetic_run, "cpu").network, list(TRUE))
    q = np.array([*own, 1 - sum(own)])  # the eight sequences, and everything else
    counts = Counter(r.sequence if r.sequence in TRUE else "other" for r in records)
    frequencies = np.array([counts[s] for s in [*TRUE, "other"]]) / len(records)
    assert 0.5 * np.abs(frequencies - q).sum() < null_tv_quantile(q, len(records), 0.999)
    sampler = "events" if predictor == "analytic" else "steps"  # euler falls back to the step loop
    assert re.fullmatch(
        rf"design_0001 length=8 steps={steps} seed=0 predictor={predictor} checkpoint=run sampler={sampler} "
        rf"precision={precision}",
        records[0].description,
    )


@pytest.mark.slow
def test_cached_and_uncached_commands_write_the_same_fasta(synthetic_run, tmp_path, capsys):
    args = ["--n", 200, "--steps", 48, "--seed", 5, "--batch-size", 64, "--sampler", "steps"]
    code, cached, err_cached = _design(tmp_path, synthetic_run, *args, name="cached.fa", capsys=capsys)
    assert code == 0, err_cached
    code, uncached, err_uncached = _design(
        tmp_path, synthetic_run, *args, "--no-cache", name="uncached.fa", capsys=capsys
    )
    assert code == 0, err_uncached
    assert cached.read_text() == uncached.read_text()

    def passes(err):
        return int(re.search(r"network evaluations: (\d+)", err).group(1))

    assert "cache on" in err_cached and "cache off" in err_uncached
    assert passes(err_uncached) == 200 * 49
    assert passes(err_cached) < passes(err_uncached) / 3


@pytest.mark.slow
def test_seeds_repeat_and_differ(synthetic_run, tmp_path):
    args = ["--n", 40, "--steps", 16, "--length-range", "5:8"]
    texts = [
        _design(tmp_path, synthetic_run, *args, "--seed", s, name=f"{i}.fa")[1].read_text()
        for i, s in enumerate([1, 1, 2])
    ]
    assert texts[0] == texts[1]
    assert texts[0] != texts[2]
    lengths = {len(r.sequence) for r in read_fasta(tmp_path / "0.fa")}
    assert lengths <= {5, 6, 7, 8} and len(lengths) > 1


@pytest.mark.slow
def test_template_and_redesign_keep_every_fixed_residue(synthetic_run, tmp_path):
    code, out, _ = _design(tmp_path, synthetic_run, "--n", 30, "--steps", 16, "--template", "mk__aG_e")
    assert code == 0
    for record in read_fasta(out):
        assert re.fullmatch(r"MK..AG.E", record.sequence), record.sequence
        assert "designed=3" in record.description

    source = tmp_path / "source.fa"
    source.write_text(">wt\nWWWWWWWW\n")
    code, out, _ = _design(
        tmp_path, synthetic_run, "--n", 30, "--steps", 16, "--fix", source, "--redesign", "2-3,6"
    )
    assert code == 0
    for record in read_fasta(out):
        assert re.fullmatch(r"W..WW.WW", record.sequence), record.sequence
        assert "source=wt redesign=2-3,6-6 designed=3" in record.description


@pytest.mark.slow
def test_default_lengths_follow_the_training_histogram(synthetic_run, tmp_path):
    code, out, _ = _design(tmp_path, synthetic_run, "--n", 10, "--steps", 8)
    assert code == 0
    assert {len(r.sequence) for r in read_fasta(out)} == {8}


BAD_INPUTS = [
    (["--n", 0], ["--n", "must be in 1..10_000_000"]),
    (["--steps", -3], ["--steps", "must be in 1..100_000"]),
    (["--predictor", "heun"], ["--predictor", "analytic", "euler"]),
    (["--batch-size", 0], ["--batch-size"]),
    (["--template", "MK_B*_Q"], ["--template", "'*'", "position 5"]),
    (["--template", "MK1__"], ["--template", "'1'", "position 3"]),
    (["--template", "MKVL"], ["--template", "'_'"]),
    (["--template", "M_K", "--length", 3], ["--length", "--template"]),
    (["--length", 3, "--length-range", "2:4"], ["--length", "--length-range"]),
    (["--length-range", "9:4"], ["--length-range"]),
    (["--length-range", "abc"], ["--length-range", "A:B"]),
    (["--length", 0], ["--length", ">= 1"]),
    (["--length", 500], ["--length", "maximum length"]),
    (["--redesign", "2-3"], ["--redesign", "--fix"]),
    (["--fix", "{source}"], ["--fix", "--redesign"]),
    (["--fix", "{source}", "--redesign", "5-12"], ["--redesign", "5-12", "8 residues"]),
    (["--fix", "{source}", "--redesign", "3-x"], ["--redesign", "3-x"]),
    (["--fix", "{source}", "--redesign", "0-2"], ["--redesign", "1-based"]),
    (["--fix", "{missing}", "--redesign", "1-2"], ["missing.fa", "no such file"]),
    (["--device", "tpu"], ["--device"]),
]


@pytest.mark.slow
@pytest.mark.parametrize("args, words", BAD_INPUTS, ids=[" ".join(map(str, a)) for a, _ in BAD_INPUTS])
def test_bad_input_exits_2_with_one_line_and_no_output(synthetic_run, tmp_path, capsys, args, words):
    source = tmp_path / "source.fa"
    source.write_text(">wt\nMKVLAGHE\n")
    args = [str(a).format(source=source, missing=tmp_path / "missing.fa") for a in args]
    code, out, err = _design(tmp_path, synthetic_run, *args, capsys=capsys)
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("error:") and len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in line, (word, line)
    assert not out.exists() and not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_bad_checkpoint_and_out_paths_exit_2(tmp_path, capsys):
    not_a_run = tmp_path / "empty_run"
    not_a_run.mkdir()
    cases = [
        (
            ["design", "--checkpoint", not_a_run, "--out", tmp_path / "a.fa"],
            ["not a protein-sedd checkpoint"],
        ),
        (["design", "--checkpoint", tmp_path / "nope", "--out", tmp_path / "a.fa"], ["no such checkpoint"]),
        (
            ["design", "--checkpoint", not_a_run, "--out", tmp_path / "no_dir" / "a.fa"],
            ["no_dir", "does not exist"],
        ),
        (["design", "--checkpoint", not_a_run, "--out", not_a_run], ["--out", "is a directory"]),
    ]
    for args, words in cases:
        code, _, err = run_cli(args, capsys)
        assert code == 2, args
        assert err.startswith("error:") and len(err.strip().splitlines()) == 1, err
        for word in words:
            assert word in err, (word, err)
    assert not (tmp_path / "a.fa").exists()
