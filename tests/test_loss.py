import math

import pytest
import torch

from protein_sedd.diffusion.graph import AbsorbingGraph, UniformGraph, log_expm1
from protein_sedd.diffusion.noise import GeometricNoise, LogLinearNoise

N, PAD, MASK = 3, 3, 4


def test_absorbing_score_entropy_by_hand():
    graph = AbsorbingGraph(N, MASK, PAD)
    s = [math.log(0.5), math.log(0.2), 0.0]
    sigma = 0.5
    a = 1 / math.expm1(sigma)
    expected = (0.5 + 0.2 + 1.0) - a * s[1] + a * (math.log(a) - 1)
    log_score = torch.tensor([[s, s, s]])
    x_t = torch.tensor([[MASK, 1, PAD]])  # masked, unmasked, pad
    x0 = torch.tensor([[1, 1, PAD]])
    value = graph.score_entropy(log_score, torch.tensor([sigma]), x_t, x0)
    assert value[0, 0].item() == pytest.approx(expected, rel=1e-5)
    assert value[0, 1].item() == 0 and value[0, 2].item() == 0


def test_absorbing_time_independent_score_entropy_is_scaled_cross_entropy():
    graph = AbsorbingGraph(N, MASK, PAD)
    logits = torch.tensor([[[2.0, -1.0, 0.5, 9.0, 9.0]]])  # pad and mask columns are ignored
    for sigma in (1e-4, 0.3, 4.0, 15.0):
        sb = torch.tensor([sigma])
        log_score = graph.log_score(logits, sb, time_conditioning=False)
        value = graph.score_entropy(log_score, sb, torch.tensor([[MASK]]), torch.tensor([[2]]))
        log_p = torch.log_softmax(logits[..., :N], -1)[0, 0, 2].item()
        assert value.item() == pytest.approx(-log_p / math.expm1(sigma), rel=1e-4)


def test_absorbing_time_conditioned_scale_by_sigma():
    graph = AbsorbingGraph(N, MASK, PAD)
    logits = torch.tensor([[[0.2, 0.1, -0.3, 0.0, 0.0]]])
    sigma = torch.tensor([0.8])
    expected = logits[..., :N] - math.log(math.expm1(0.8)) - math.log(N)
    torch.testing.assert_close(graph.log_score(logits, sigma, time_conditioning=True), expected)


def _uniform_by_hand(s, sigma, x_t, x0):
    beta = math.exp(-sigma)
    p = [beta * (y == x0) + (1 - beta) / N for y in range(N)]
    total = 0.0
    for y in range(N):
        if y == x_t:
            continue
        r = p[y] / p[x_t]
        total += math.exp(s[y]) - r * s[y] + r * (math.log(r) - 1)
    return total / N


@pytest.mark.parametrize("x_t, x0", [(2, 0), (0, 0), (1, 2)])
def test_uniform_score_entropy_by_hand(x_t, x0):
    graph = UniformGraph(N, MASK, PAD)
    s = [0.3, -0.4, 1.1]
    sigma = 0.7
    value = graph.score_entropy(
        torch.tensor([[s]]), torch.tensor([sigma]), torch.tensor([[x_t]]), torch.tensor([[x0]])
    )
    assert value.item() == pytest.approx(_uniform_by_hand(s, sigma, x_t, x0), rel=1e-5)


def test_uniform_score_entropy_is_minimal_at_the_true_ratios():
    graph = UniformGraph(N, MASK, PAD)
    sigma, x_t, x0 = torch.tensor([0.9]), torch.tensor([[1]]), torch.tensor([[0]])
    best = graph.ratios(sigma, x_t, x0).log().requires_grad_(True)
    value = graph.score_entropy(best, sigma, x_t, x0).sum()
    (grad,) = torch.autograd.grad(value, best)
    grad[0, 0, 1] = 0  # the current token's entry is not part of the loss
    assert grad.abs().max() < 1e-6
    assert value.item() == pytest.approx(0.0, abs=1e-6)
    worse = graph.score_entropy(best.detach() + torch.tensor([0.2, 0.0, -0.3]), sigma, x_t, x0).sum()
    assert worse > value


def test_absorbing_perturb_masks_with_the_right_probability():
    graph = AbsorbingGraph(N, MASK, PAD)
    x0 = torch.zeros(4000, 50, dtype=torch.long)
    x0[:, 40:] = PAD
    sigma = torch.full((4000,), 0.5)
    x_t = graph.perturb(x0, sigma, torch.Generator().manual_seed(0))
    assert (x_t[:, 40:] == PAD).all()
    assert (x_t[:, :40] == MASK).float().mean().item() == pytest.approx(1 - math.exp(-0.5), abs=0.005)


def test_uniform_perturb_marginal():
    graph = UniformGraph(N, MASK, PAD)
    x0 = torch.zeros(20000, 20, dtype=torch.long)
    x_t = graph.perturb(x0, torch.full((20000,), 1.2), torch.Generator().manual_seed(0))
    beta = math.exp(-1.2)
    assert (x_t == 0).float().mean().item() == pytest.approx(beta + (1 - beta) / N, abs=0.005)
    assert (x_t == 2).float().mean().item() == pytest.approx((1 - beta) / N, abs=0.005)


@pytest.mark.parametrize("x", [1e-8, 1e-3, 0.5, 10.0, 30.0, 60.0])
def test_log_expm1_is_stable(x):
    expected = math.log(math.expm1(x))
    assert log_expm1(torch.tensor([x], dtype=torch.float64)).item() == pytest.approx(
        expected, rel=1e-9, abs=1e-9
    )


def test_noise_schedules_and_their_rates():
    loglinear, geometric = LogLinearNoise(1e-3), GeometricNoise(1e-4, 20.0)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(loglinear.total(t), torch.tensor([0.0, -math.log(1e-3)], dtype=torch.float64))
    torch.testing.assert_close(geometric.total(t), torch.tensor([1e-4, 20.0], dtype=torch.float64))
    mask_probability = 1 - torch.exp(-loglinear.total(torch.tensor([0.25], dtype=torch.float64)))
    assert mask_probability.item() == pytest.approx(0.25 * (1 - 1e-3))
    grid = torch.linspace(0.05, 0.95, 7, dtype=torch.float64)
    h = 1e-6
    for noise in (loglinear, geometric):
        numeric = (noise.total(grid + h) - noise.total(grid - h)) / (2 * h)
        torch.testing.assert_close(noise.rate(grid), numeric, rtol=1e-6, atol=1e-8)
