"""A seeded, unbiased estimate of the negative ELBO: an upper bound on -log p(x | length).

The bound integrates score entropy over all noise levels, sigma_bar in [0, inf), so it includes the
pieces the training loss leaves out (below sigma_bar(t=0) and above sigma_bar(1)). Substituting
u = 1 - exp(-sigma_bar), the fraction of noised positions, the bound is

    -ELBO = int_0^1 du / (1 - u) * E_{S ~ Bernoulli(u)^L} [ sum_i SE_i(x_t, sigma_bar(u)) ].

Sampling u uniformly has infinite variance (the 1/u weight meets rare noised positions), so we draw
the number of noised positions m first, then u from its posterior, and reweight exactly:

- absorbing: m uniform on {1..L}, u ~ Beta(m, L - m + 1), S a uniform m-subset,
  estimate = (L / m) * expm1(sigma_bar) * sum_{i in S} SE_i. With a time-independent network this is
  the any-order autoregressive bound sum_m E[(1/m) sum_{i in S} -log p(x_i | rest)], bounded per draw.
- uniform: m uniform on {0..L}, u ~ Beta(m + 1, L - m + 1), S a uniform m-subset redrawn uniformly,
  estimate = sum_i SE_i / (1 - u).

Both are unbiased. The absorbing estimate has low variance; the uniform one is heavy-tailed, because
its weight 1 / (1 - u) is unbounded as u -> 1: single draws spread over ~130 nats around a ~10-nat
value in a toy case, so give it many draws and read the standard error.

m is stratified over the K draws of each sequence. Beta draws are order statistics of uniforms, so
one torch.Generator makes the whole estimate repeatable.
"""

from __future__ import annotations

import math

import torch

from protein_sedd.data.batches import batches_in_order


def order_statistic(
    lengths: torch.Tensor, rank: torch.Tensor, extra: int, generator, width: int
) -> torch.Tensor:
    """The rank-th smallest (1-based) of lengths + extra uniforms per row, float64."""
    draws = torch.rand(len(lengths), width + extra, generator=generator, dtype=torch.float64)
    valid = torch.arange(width + extra)[None, :] < (lengths + extra)[:, None]
    draws = draws.masked_fill(~valid, 2.0).sort(dim=-1).values
    return draws.gather(1, (rank - 1)[:, None])[:, 0]


def random_subset(lengths: torch.Tensor, size: torch.Tensor, generator, width: int) -> torch.Tensor:
    """A boolean [B, width] mask choosing `size` real positions uniformly at random in each row."""
    keys = torch.rand(len(lengths), width, generator=generator)
    keys = keys.masked_fill(torch.arange(width)[None, :] >= lengths[:, None], 2.0)
    ranks = keys.argsort(dim=-1).argsort(dim=-1)
    return ranks < size[:, None]


@torch.no_grad()
def negative_elbo(model, graph, x0, lengths, t_samples: int, generator) -> torch.Tensor:
    """Per-sequence -ELBO in nats, [B]: the mean of `t_samples` stratified draws."""
    return negative_elbo_with_error(model, graph, x0, lengths, t_samples, generator)[0]


@torch.no_grad()
def negative_elbo_with_error(
    model, graph, x0, lengths, t_samples: int, generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(-ELBO, its Monte Carlo standard error), both [B] in nats.

    The error is the spread of the `t_samples` draws over sqrt(t_samples); the draws are stratified, which
    only lowers the true error, so this estimate errs on the safe side. NaN with a single draw.
    """
    device = next(model.parameters()).device
    offsets = torch.rand(len(lengths), generator=generator, dtype=torch.float64)
    total = torch.zeros(len(lengths), dtype=torch.float64)
    squares = torch.zeros(len(lengths), dtype=torch.float64)
    for k in range(t_samples):
        stratum = (k + offsets) / t_samples
        m, u, x_t = graph.elbo_draw(x0, lengths, stratum, generator)
        sigma_bar = -torch.log1p(-u)
        sigma_dev = sigma_bar.float().to(device)
        x_t_dev, x0_dev = x_t.to(device), x0.to(device)
        logits = model(x_t_dev, sigma_dev, lengths.to(device))
        log_score = graph.log_score(logits, sigma_dev, model.config.time_conditioning)
        se = graph.score_entropy(log_score, sigma_dev, x_t_dev, x0_dev).double().sum(-1).cpu()
        draw = graph.elbo_weight(lengths, m, u, sigma_bar, se)
        total += draw
        squares += draw * draw
    mean = total / t_samples
    if t_samples < 2:
        return mean, torch.full_like(mean, float("nan"))
    variance = ((squares - total * mean) / (t_samples - 1)).clamp(min=0)
    return mean, (variance / t_samples).sqrt()


def dataset_negative_elbo(
    model, graph, tokens: list[torch.Tensor], *, t_samples: int, batch_size: int, seed: int, progress=None
) -> torch.Tensor:
    """-ELBO (nats) of every sequence, in input order; deterministic for a given seed and batch size."""
    return dataset_negative_elbo_with_error(
        model, graph, tokens, t_samples=t_samples, batch_size=batch_size, seed=seed, progress=progress
    )[0]


def dataset_negative_elbo_with_error(
    model, graph, tokens: list[torch.Tensor], *, t_samples: int, batch_size: int, seed: int, progress=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(-ELBO, standard error) of every sequence in nats, in input order (see negative_elbo_with_error)."""
    out = torch.zeros(len(tokens), dtype=torch.float64)
    error = torch.zeros(len(tokens), dtype=torch.float64)
    pad_index = graph.pad_index
    for number, (index, x0, lengths) in enumerate(batches_in_order(tokens, batch_size, pad_index)):
        generator = torch.Generator().manual_seed(seed * 7919 + number)
        out[index], error[index] = negative_elbo_with_error(model, graph, x0, lengths, t_samples, generator)
        if progress is not None:
            progress(len(index))
    return out, error


@torch.no_grad()
def shared_draws_negative_elbo(
    model, graph, x0: torch.Tensor, *, t_samples: int, seed: int, batch_size: int, progress=None
) -> torch.Tensor:
    """The `t_samples` per-draw -ELBO estimates [S, t_samples] (nats, float64) of S sequences of one length.

    Every row shares every draw (common random numbers): draw k (how many positions are noised, the noise
    level, which positions, and on the uniform graph their new tokens) is the one
    `dataset_negative_elbo_with_error` makes for a sequence of this length scored alone (batch size 1, seed
    `seed`), so a row's mean is that estimate. The difference of two rows' draws estimates the difference
    of their bounds with far less variance than independent draws: for a point mutant most of the draws'
    noise is common to both sequences and cancels. x0 [S, L] holds no padding.
    """
    device = next(model.parameters()).device
    n_rows, width = x0.shape
    lengths = torch.full((1,), width)
    generator = torch.Generator().manual_seed(seed * 7919)  # the first batch's stream, as when scored alone
    offsets = torch.rand(1, generator=generator, dtype=torch.float64)
    sentinel = torch.full((1, width), graph.pad_index)  # elbo_draw's noised tokens land on pads: they mark S
    noised, sigma_bars, weights = [], [], []
    for k in range(t_samples):
        m, u, x_t = graph.elbo_draw(sentinel, lengths, (k + offsets) / t_samples, generator)
        sigma_bar = -torch.log1p(-u)
        noised.append(x_t[0])
        sigma_bars.append(sigma_bar[0])
        weight = graph.elbo_weight(lengths, m, u, sigma_bar)
        weights.append(weight[0])
    noised, sigma_bars, weights = torch.stack(noised), torch.stack(sigma_bars), torch.stack(weights)
    pairs = torch.cartesian_prod(torch.arange(n_rows), torch.arange(t_samples))  # (row, draw), row-major
    out = torch.zeros(n_rows * t_samples, dtype=torch.float64)
    for start in range(0, len(pairs), batch_size):
        rows, draws = pairs[start : start + batch_size].unbind(-1)
        clean = x0[rows]
        x_t = torch.where(noised[draws] != graph.pad_index, noised[draws], clean).to(device)
        sigma = sigma_bars[draws].float().to(device)
        logits = model(x_t, sigma, torch.full((len(rows),), width, device=device))
        log_score = graph.log_score(logits, sigma, model.config.time_conditioning)
        se = graph.score_entropy(log_score, sigma, x_t, clean.to(device)).double().sum(-1).cpu()
        out[start : start + len(rows)] = weights[draws] * se
        if progress is not None:
            progress(len(rows))
    return out.view(n_rows, t_samples)


LN2 = math.log(2)
