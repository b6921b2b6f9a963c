"""The ELBO estimator against exact answers: for a product distribution the exact scores are known."""

import math
from types import SimpleNamespace

import pytest
import torch

from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.diffusion.graph import build_graph
from protein_sedd.diffusion.likelihood import dataset_negative_elbo, negative_elbo

N, L = ALPHABET.n_residues, 6


def _product_distribution(seed=0):
    torch.manual_seed(seed)
    return torch.distributions.Dirichlet(torch.full((N,), 0.3)).sample((L,)).clamp(min=1e-6)  # peaky


class OracleAbsorbing(torch.nn.Module):
    """Exact conditional of a product distribution: each position's marginal, whatever the context."""

    def __init__(self, probs, time_conditioning):
        super().__init__()
        self.config = SimpleNamespace(time_conditioning=time_conditioning)
        self.log_p = torch.nn.Parameter(probs.log(), requires_grad=False)

    def forward(self, tokens, sigma_bar, lengths=None):
        logits = torch.zeros(*tokens.shape, ALPHABET.size)
        logits[..., :N] = self.log_p[: tokens.shape[1]] + (
            math.log(N) if self.config.time_conditioning else 0.0
        )
        return logits


class OracleUniform(torch.nn.Module):
    """Exact uniform-graph scores of a product distribution: ratios of the noised marginals."""

    def __init__(self, probs):
        super().__init__()
        self.config = SimpleNamespace(time_conditioning=True)
        self.p = torch.nn.Parameter(probs, requires_grad=False)

    def forward(self, tokens, sigma_bar, lengths=None):
        beta = torch.exp(-sigma_bar)[:, None, None]
        marginal = beta * self.p[: tokens.shape[1]] + (1 - beta) / N  # [B, L, N]
        current = marginal.gather(-1, tokens.clamp(max=N - 1)[..., None])
        logits = torch.zeros(*tokens.shape, ALPHABET.size)
        logits[..., :N] = marginal.log() - current.log()
        return logits


def _sample(probs, n, seed=1):
    return torch.multinomial(probs, n, replacement=True, generator=torch.Generator().manual_seed(seed)).T


def _exact_nll(probs, x):
    return -probs.log().gather(1, x.T).sum(0)


@pytest.mark.parametrize("time_conditioning", [False, True])
def test_absorbing_bound_is_exact_for_the_true_model(time_conditioning):
    probs = _product_distribution()
    x = _sample(probs, 64)
    model = OracleAbsorbing(probs, time_conditioning)
    estimate = negative_elbo(
        model,
        build_graph("absorbing", ALPHABET),
        x,
        torch.full((64,), L),
        64,
        torch.Generator().manual_seed(0),
    )
    exact = _exact_nll(probs, x).double()
    # each draw is unbiased and bounded; the batch mean is within a fraction of a percent
    assert estimate.mean().item() == pytest.approx(exact.mean().item(), rel=0.01)
    assert torch.corrcoef(torch.stack([estimate, exact]))[0, 1] > 0.95


def test_uniform_bound_is_exact_for_the_true_model():
    probs = _product_distribution(seed=2)
    x = _sample(probs, 256, seed=3)
    model = OracleUniform(probs)
    estimate = negative_elbo(
        model,
        build_graph("uniform", ALPHABET),
        x,
        torch.full((256,), L),
        64,
        torch.Generator().manual_seed(0),
    )
    exact = _exact_nll(probs, x).double()
    assert estimate.mean().item() == pytest.approx(exact.mean().item(), rel=0.03)


def test_bound_is_above_the_true_nll_for_a_wrong_model():
    probs = _product_distribution()
    x = _sample(probs, 64)
    wrong = OracleAbsorbing(torch.full((L, N), 1.0 / N), time_conditioning=False)
    estimate = negative_elbo(
        wrong,
        build_graph("absorbing", ALPHABET),
        x,
        torch.full((64,), L),
        16,
        torch.Generator().manual_seed(0),
    )
    assert estimate.mean().item() == pytest.approx(L * math.log(N), rel=1e-6)
    assert estimate.mean() > _exact_nll(probs, x).double().mean()


def test_dataset_estimate_is_repeatable_for_a_seed_and_handles_mixed_lengths():
    probs = _product_distribution()
    model = OracleAbsorbing(probs, time_conditioning=False)
    graph = build_graph("absorbing", ALPHABET)
    generator = torch.Generator().manual_seed(5)
    tokens = [torch.multinomial(probs[:n], 1, generator=generator)[:, 0] for n in (2, 6, 3, 6, 1, 5)]
    first = dataset_negative_elbo(model, graph, tokens, t_samples=8, batch_size=4, seed=0)
    again = dataset_negative_elbo(model, graph, tokens, t_samples=8, batch_size=4, seed=0)
    other = dataset_negative_elbo(model, graph, tokens, t_samples=8, batch_size=4, seed=1)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    # a single-residue sequence has one term: exactly -log p_0(x_0)
    assert first[4].item() == pytest.approx(-probs[0, tokens[4][0]].log().item(), rel=1e-5)
