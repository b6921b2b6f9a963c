"""Transition graphs: each one's forward process, score parametrisation and score entropy (training), its
draws for the likelihood bound (likelihood.py), and its reverse steps (sampling.py's step loop).

Tokens 0 .. N-1 are real residues (N = alphabet.n_residues); the pad token is never noised and never
scored; the absorbing graph's mask is the last vocabulary index. Log scores `s` have shape [..., N] and
approximate log p_t(x with y at i) / p_t(x) over the real tokens y. A new graph is a subclass and an entry
in GRAPHS; nothing outside diffusion/ asks a graph its name, only `has_mask`.
"""

from __future__ import annotations

import torch

from protein_sedd.diffusion.categorical import sample_categorical
from protein_sedd.diffusion.transitions import (
    absorbing_denoise_weights,
    absorbing_step_weights,
    uniform_step_weights,
)
from protein_sedd.errors import UserError


def log_expm1(x: torch.Tensor) -> torch.Tensor:
    """log(exp(x) - 1), stable for small x (expm1) and large x (x + log1p(-exp(-x)))."""
    return torch.where(x < 20, torch.log(torch.expm1(x.clamp(max=20))), x + torch.log1p(-torch.exp(-x)))


def entropy_const(r: torch.Tensor) -> torch.Tensor:
    """K(r) = r (log r - 1), with K(0) = 0."""
    return torch.where(r > 0, r * (torch.log(r.clamp(min=1e-30)) - 1), torch.zeros_like(r))


class Graph:
    """What every graph knows of the alphabet (N real tokens, where the mask and the pad sit), and what each
    one says of itself.

    `has_mask`: positions to design are masked and unmask once (the absorbing graph). Then the network's
    denoising distribution is a distribution over residues (temperature and top-p reshape it, a guide
    reweights it, the masked marginal reads it) and a time-independent network's output depends on the
    tokens alone (the step loop's cache, the event sampler).

    Forward side: `perturb`, `log_score`, `score_entropy`. Likelihood: `elbo_draw` (how many positions
    are noised, the noise level, the noised tokens) and `elbo_weight` (the draw's importance weight).
    Reverse side (the step loop): `begin` (the start of the chain and the positions that may change),
    `active` (rows with work left), `step` (one tau-leaping step from weights of the scores) and `denoise`.
    """

    name = ""
    has_mask = False

    def __init__(self, n_residues: int, mask_index: int, pad_index: int):
        self.n = n_residues
        self.mask_index = mask_index
        self.pad_index = pad_index

    def begin(self, x: torch.Tensor, generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(the chain's first state, the free positions [B, W]) from start rows (mask = to design)."""
        return x, x == self.mask_index


class AbsorbingGraph(Graph):
    """Each real token jumps to the mask at rate sigma(t); the mask never leaves."""

    name = "absorbing"
    has_mask = True

    def perturb(self, x0, sigma_bar, generator=None):
        """Mask each real position with probability 1 - exp(-sigma_bar)."""
        p_mask = -torch.expm1(-sigma_bar)[:, None]
        draw = torch.rand(x0.shape, generator=generator, device=x0.device)
        return torch.where((draw < p_mask) & (x0 != self.pad_index), self.mask_index, x0)

    def log_score(self, logits, sigma_bar, time_conditioning: bool):
        """Log scores over real tokens at masked positions, in one of two parametrisations.

        At a masked position i, p_t(x with y at i) / p_t(x) = p_0(y | unmasked rest) / expm1(sigma_bar), so
        a time-independent network only has to predict p_0: its log softmax less log expm1(sigma_bar).
        A time-conditioned network's logits are taken as the log score, offset by the same shift and log N.
        """
        real = logits[..., : self.n].float()
        shift = log_expm1(sigma_bar.float())[:, None, None]
        if time_conditioning:
            return real - shift - torch.log(torch.tensor(float(self.n)))
        return torch.log_softmax(real, dim=-1) - shift

    def score_entropy(self, log_score, sigma_bar, x_t, x0):
        """Per-position score entropy [B, L]; zero at unmasked and pad positions.

        sum_y exp(s_y) - a s_x0 + a (log a - 1) with a = 1/expm1(sigma_bar), computed as
        a * (sum_y exp(u_y) - u_x0 - 1) with u = s + log expm1(sigma_bar): no large numbers cancel.
        """
        shift = log_expm1(sigma_bar.float())[:, None, None]
        u = log_score + shift
        a = torch.exp(-shift[..., 0])
        x0_real = x0.clamp(max=self.n - 1)
        value = a * (u.exp().sum(-1) - u.gather(-1, x0_real[..., None])[..., 0] - 1)
        return torch.where(x_t == self.mask_index, value, torch.zeros_like(value))

    def elbo_draw(self, x0, lengths, stratum, generator):
        """m uniform on {1..L} (stratified), u ~ Beta(m, L - m + 1), a uniform m-subset masked."""
        from protein_sedd.diffusion.likelihood import order_statistic, random_subset

        width = x0.shape[1]
        m = (1 + torch.floor(stratum * lengths)).long().clamp(1, None).minimum(lengths)
        u = order_statistic(lengths, m, 0, generator, width)
        chosen = random_subset(lengths, m, generator, width)
        return m, u, torch.where(chosen, self.mask_index, x0)

    def elbo_weight(self, lengths, m, u, sigma_bar, se=None):
        """(L / m) expm1(sigma_bar), bounded for every draw; with `se`, the weighted draw."""
        weight = lengths / m * torch.expm1(sigma_bar)
        return weight if se is None else weight * se

    def active(self, x, free):
        return (x == self.mask_index).any(-1)

    def step(self, x, free, score, d: float, predictor: str, u):
        """Masked positions jump to a real token or stay masked; others never change."""
        drawn = sample_categorical(absorbing_step_weights(score, d, predictor), u)
        return torch.where((x == self.mask_index) & (drawn < self.n), drawn, x)  # drawn == n: stays masked

    def denoise(self, x, free, score, sigma_end: float, u):
        """The last step: every remaining mask becomes a real token."""
        drawn = sample_categorical(absorbing_denoise_weights(score), u)
        return torch.where(x == self.mask_index, drawn, x)


class UniformGraph(Graph):
    """Each real token jumps to a uniformly random real token at rate sigma(t) (Q = 11^T / N - I)."""

    name = "uniform"

    def perturb(self, x0, sigma_bar, generator=None):
        """With probability 1 - exp(-sigma_bar) a position is redrawn uniformly (possibly to itself)."""
        p_move = -torch.expm1(-sigma_bar)[:, None]
        draw = torch.rand(x0.shape, generator=generator, device=x0.device)
        fresh = torch.randint(0, self.n, x0.shape, generator=generator, device=x0.device)
        return torch.where((draw < p_move) & (x0 != self.pad_index), fresh, x0)

    def log_score(self, logits, sigma_bar, time_conditioning: bool):
        return logits[..., : self.n].float()

    def ratios(self, sigma_bar, x_t, x0):
        """r_y = p_t(y | x0) / p_t(x_t | x0) for every real y, [B, L, N]."""
        beta = torch.exp(-sigma_bar.float())[:, None, None]
        p = (1 - beta) / self.n + beta * torch.nn.functional.one_hot(x0.clamp(max=self.n - 1), self.n)
        return p / p.gather(-1, x_t.clamp(max=self.n - 1)[..., None])

    def score_entropy(self, log_score, sigma_bar, x_t, x0):
        """(1/N) sum_{y != x_t} [exp(s_y) - r_y s_y + K(r_y)] per position [B, L]; zero at pads."""
        r = self.ratios(sigma_bar, x_t, x0)
        terms = log_score.exp() - r * log_score + entropy_const(r)
        current = torch.nn.functional.one_hot(x_t.clamp(max=self.n - 1), self.n).bool()
        value = terms.masked_fill(current, 0.0).sum(-1) / self.n
        return torch.where(x0 == self.pad_index, torch.zeros_like(value), value)

    def elbo_draw(self, x0, lengths, stratum, generator):
        """m uniform on {0..L} (stratified), u ~ Beta(m + 1, L - m + 1), a uniform m-subset redrawn."""
        from protein_sedd.diffusion.likelihood import order_statistic, random_subset

        width = x0.shape[1]
        m = torch.floor(stratum * (lengths + 1)).long().minimum(lengths)
        u = order_statistic(lengths, m + 1, 1, generator, width)
        chosen = random_subset(lengths, m, generator, width)
        fresh = torch.randint(0, self.n, x0.shape, generator=generator)
        return m, u, torch.where(chosen, fresh, x0)

    def elbo_weight(self, lengths, m, u, sigma_bar, se=None):
        """1 / (1 - u), unbounded as u -> 1 (the estimate is heavy-tailed); with `se`, se / (1 - u)."""
        return 1 / (1 - u) if se is None else se / (1 - u)

    def begin(self, x, generator):
        """The uniform graph's limit: the designed positions uniformly random."""
        free = x == self.mask_index
        start = torch.randint(0, self.n, x.shape, generator=generator, device=x.device)
        return torch.where(free, start, x), free

    def active(self, x, free):
        return torch.ones(x.shape[0], dtype=torch.bool, device=x.device)

    def step(self, x, free, score, d: float, predictor: str, u):
        """Free positions move by the reverse weights; fixed ones and pads never change."""
        current = x.clamp(max=self.n - 1)  # pads are never free; clamp keeps one_hot in range
        drawn = sample_categorical(uniform_step_weights(score, current, d, predictor), u)
        return torch.where(free, drawn, x)

    def denoise(self, x, free, score, sigma_end: float, u):
        """The analytic step over the noise left at t_end."""
        return self.step(x, free, score, sigma_end, "analytic", u)


GRAPHS: dict[str, type[Graph]] = {"absorbing": AbsorbingGraph, "uniform": UniformGraph}


def build_graph(name: str, alphabet) -> Graph:
    if name not in GRAPHS:  # configs are validated first (config/checks.py); this guards direct callers
        raise UserError(f"graph.name={name!r}: choose {' or '.join(GRAPHS)}")
    return GRAPHS[name](alphabet.n_residues, alphabet.mask_index, alphabet.pad_index)
