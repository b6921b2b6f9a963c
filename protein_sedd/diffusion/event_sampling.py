"""Event-driven exact sampling: the analytic tau-leaping sampler, visiting only the steps where tokens change.

For a time-independent network on the absorbing graph the analytic step from t to s moves a masked
position to real token y with probability expm1(sigma_bar(t) - sigma_bar(s)) p(y | x) / expm1(sigma_bar(t))
(transitions.absorbing_step_weights, with the score p / expm1(sigma_bar(t))). Since p sums to 1 over the
real tokens, the position stays masked with probability

  1 - expm1(sigma_bar(t) - sigma_bar(s)) / expm1(sigma_bar(t)) = (1 - e^-sigma_bar(s)) / (1 - e^-sigma_bar(t))

which the network does not enter. Over the grid t_0 = 1 > ... > t_K = t_end the product telescopes: a
position masked at t_0 is still masked after step k with probability S_(k+1) = (1 - e^-sigma_k+1) /
(1 - e^-sigma_0), and the final denoise (step K) fills whatever is left. So each position's unmasking step
is drawn up front, independently, with P(k) = S_k - S_(k+1) (k < K), P(K) = S_K; then each sequence's
unmasking steps are visited in order (batched across sequences, see EventPlan), the network runs once
on the sequence per such step, and each position unmasking there draws its residue from
p(. | current tokens), reshaped by the sampling controls. Positions that unmask at the same step draw
independently given the same tokens, as in the step loop: the joint distribution of the designs is the
step loop's, with the same `steps` (the draws, and so the designs for a given seed, differ). Network
passes per sequence = its number of distinct unmasking steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from protein_sedd.diffusion.categorical import sample_categorical, uniforms
from protein_sedd.diffusion.sampling_controls import SamplingControls
from protein_sedd.runtime.precision import network_autocast


def unmask_step_probabilities(sigmas: list[float]) -> torch.Tensor:
    """P(a position masked at t_0 unmasks at step k), k = 0 .. K, float64 [K + 1] (K = the final denoise).

    `sigmas` are sigma_bar at t_0 .. t_K (`sampling.sigma_grid`). Log-linear noise makes
    1 - e^-sigma_bar(t) = (1 - eps) t, so P(k) = t_k - t_(k+1) and P(K) = t_K = eps.
    """
    sigma = torch.tensor(sigmas, dtype=torch.float64)
    masked = -torch.expm1(-sigma)  # mask probability of the forward process at each t_k
    survive = masked / masked[0]  # S_0 = 1, ..., S_K
    return torch.cat([survive[:-1] - survive[1:], survive[-1:]]).clamp(min=0)


def draw_unmask_steps(
    masked: torch.Tensor, probabilities: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """The step at which each masked position unmasks [B, W] (-1 elsewhere), by inverse CDF over the grid.

    One float64 uniform per position (masked or not, so the stream depends on the batch's shape only).
    """
    u = uniforms(masked.shape, generator, masked.device)
    cumulative = probabilities.to(masked.device).cumsum(0)
    # the first k whose cumulative probability exceeds u: a zero-probability step is never drawn
    step = torch.searchsorted(cumulative, (u * cumulative[-1]).reshape(-1), right=True).reshape(u.shape)
    step = step.clamp(max=len(probabilities) - 1)
    return torch.where(masked, step, -1)


class GridSchedule:
    """Unmasking steps on the sampler's time grid: `sigmas` are sigma_bar at t_0 .. t_K (K steps, the last
    the final denoise); `ticks` progress calls, one per step."""

    def __init__(self, sigmas: list[float]):
        self.sigmas, self.ticks = sigmas, len(sigmas) - 1
        self.probabilities = unmask_step_probabilities(sigmas)

    def draw(self, masked: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, list[float]]:
        """(the step of each masked position [B, W], -1 elsewhere; sigma_bar of each step)."""
        return draw_unmask_steps(masked, self.probabilities, generator), self.sigmas


class ExactSchedule:
    """One position per step: each masked position's own unmasking time, drawn in continuous time (see the
    module doc), its step the rank of that time in the batch. `noise` gives sigma_bar(1); `ticks` progress
    calls per batch (the caller's count, e.g. the longest design's length)."""

    def __init__(self, noise, ticks: int):
        self.sigma_start, self.ticks = float(noise.total(torch.tensor(1.0, dtype=torch.float64))), ticks

    def draw(self, masked: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, list[float]]:
        """(each masked position's step [B, W], distinct, -1 elsewhere; sigma_bar at each step's time)."""
        u = uniforms(masked.shape, generator, masked.device)  # one per position, as draw_unmask_steps
        survive = (1.0 - u)[masked]  # S(tau) in (0, 1]: the earliest unmask first
        order = torch.argsort(-survive, stable=True)
        step = torch.empty_like(order)
        step[order] = torch.arange(len(order), device=order.device)
        steps = torch.full(masked.shape, -1, dtype=torch.long, device=masked.device)
        steps[masked] = step
        sigmas = (-torch.log1p(-survive[order] * -math.expm1(-self.sigma_start))).tolist()
        return steps, sigmas


class EventPlan:
    """One batch's unmasking events, grouped into rounds on the host.

    Sequences do not interact, and a time-independent network ignores the noise level, so the events
    need not be visited step by step across the batch: round j holds every sequence's j-th distinct
    unmasking step, and one network pass per sequence serves them all. The number of rounds is the largest
    number of distinct unmasking steps of any sequence (about 95 for 100 residues over 1024 steps), not
    the number of steps with an event somewhere in the batch (nearly all of them for a batch of 128).
    """

    def __init__(self, unmask_step: torch.Tensor):
        step = unmask_step.cpu().numpy()
        rows, cols = np.nonzero(step >= 0)
        steps = step[rows, cols]
        order = np.lexsort((cols, steps, rows))  # last key first: by row, then step, then position
        rows, cols, steps = rows[order], cols[order], steps[order]
        new_group = _changes(rows) | _changes(steps)  # a (row, step) pair: one network pass
        group = np.cumsum(new_group) - 1
        row_first_group = np.maximum.accumulate(np.where(_changes(rows), group, 0))
        rounds = group - row_first_group  # the pass's rank among its row's passes
        order = np.lexsort((cols, rows, rounds))
        self.rounds, self.rows, self.cols, self.steps = rounds[order], rows[order], cols[order], steps[order]
        self.passes = int(new_group.sum())
        _, self.starts = np.unique(self.rounds, return_index=True)
        self.ends = np.append(self.starts[1:], len(self.rounds))

    def __len__(self) -> int:
        return len(self.starts)

    def __iter__(self):
        """Per round: (rows [R], their steps [R], each event's index into rows [E], event positions [E])."""
        for first, last in zip(self.starts, self.ends, strict=True):
            rows, cols, steps = self.rows[first:last], self.cols[first:last], self.steps[first:last]
            new_row = _changes(rows)  # events are sorted by row within a round
            yield rows[new_row], steps[new_row], np.cumsum(new_row) - 1, cols


def _changes(values: np.ndarray) -> np.ndarray:
    """True where an entry differs from the one before it (and at the first)."""
    flags = np.ones(len(values), dtype=bool)
    flags[1:] = values[1:] != values[:-1]
    return flags


# Rows per network call on a CPU, by precision: a round's rows go through in calls of about this many
# tokens, cropped to their longest row. Measured (tiny model, 2-core Xeon with AMX): in fp32, one thread,
# the cost per row is lowest at 4 rows of 127 tokens and 45% higher at 128 rows, whose activations no
# longer fit the cache; bf16 products gain on larger calls (one thread: 2048 or 4096 tokens 1.17x faster
# than 512; two threads: 4096 tokens 1.14x faster than 2048, as fewer parallel regions wake the threads).
# A GPU takes a whole round in one call: there the number of calls is what costs.
CPU_TOKENS_PER_CALL = {"fp32": 512, "bf16": 4096}


def _call_bounds(lengths: np.ndarray, on_cpu: bool, precision: str) -> list[tuple[int, int]]:
    """[first, last) row ranges of a round's network calls."""
    if not on_cpu:
        return [(0, len(lengths))]
    rows_per_call = max(1, CPU_TOKENS_PER_CALL[precision] // int(lengths.max()))
    return [
        (first, min(first + rows_per_call, len(lengths))) for first in range(0, len(lengths), rows_per_call)
    ]


def network_logits_at(model, tokens, sigma, lengths, rows, cols) -> torch.Tensor:
    """The network's logits at positions (rows[e], cols[e]) [E, vocab]: `model.logits_at` where the network
    computes only those (DDiT's last block), else its whole output, gathered."""
    if hasattr(model, "logits_at"):
        return model.logits_at(tokens, sigma, lengths, rows, cols)
    return model(tokens, sigma, lengths)[rows, cols]


def _event_logits(
    model, x, lengths, lengths_host, rows, row_steps, local, cols, sigmas, n, precision
) -> torch.Tensor:
    """The network's logits over the n real tokens at each event [E, n], float64, rows run in calls."""
    device, parts = x.device, []
    for first, last in _call_bounds(lengths_host[rows], x.device.type == "cpu", precision):
        chunk = torch.from_numpy(rows[first:last]).to(device)
        width = int(lengths_host[rows[first:last]].max())  # crop the batch padding these rows do not need
        sigma = torch.tensor([sigmas[k] for k in row_steps[first:last]], device=device)
        begin, end = np.searchsorted(local, [first, last])  # events are sorted by row
        at = (
            torch.from_numpy(local[begin:end] - first).to(device),
            torch.from_numpy(cols[begin:end]).to(device),
        )
        with network_autocast(device, precision):
            logits = network_logits_at(model, x[chunk, :width], sigma, lengths[chunk], *at)
        parts.append(logits[:, :n].double())
    return torch.cat(parts)


def sample_events(
    model,
    graph,
    x: torch.Tensor,
    lengths: torch.Tensor,
    schedule: GridSchedule | ExactSchedule,
    controls: SamplingControls,
    generator: torch.Generator,
    on_step: Callable[[], None],
    precision: str = "fp32",
    guide=None,
) -> tuple[torch.Tensor, int]:
    """(designed tokens [B, W], network passes) from start rows x (mask = to design); see the module doc.

    `schedule` draws when each position unmasks (GridSchedule: the step grid; ExactSchedule: one position
    at a time). `on_step` runs `schedule.ticks` times in all, spread over the rounds; `precision` (bf16 or
    fp32) is what the network computes in (runtime/precision.py); `guide`: None, or guided rates with
    exact ratios (reweighting.GuidedRates), which reweight each event's residue draw.
    """
    device, ticks, lengths_host = x.device, schedule.ticks, lengths.cpu().numpy()
    unmask_step, sigmas = schedule.draw(x == graph.mask_index, generator)
    plan = EventPlan(unmask_step)
    x, reported = x.clone(), 0
    for number, (rows, row_steps, local, cols) in enumerate(plan, start=1):
        logits = _event_logits(
            model, x, lengths, lengths_host, rows, row_steps, local, cols, sigmas, graph.n, precision
        )
        probs = controls.apply(torch.softmax(logits, dim=-1))  # p(. | current tokens) at each event
        if guide is not None:
            row_index = torch.from_numpy(rows).to(device)
            noise = [sigmas[k] for k in row_steps]
            probs = guide.reweight_events(probs, x[row_index], lengths[row_index], noise, local, cols)
        drawn = sample_categorical(probs, uniforms((len(cols),), generator, device))
        x[torch.from_numpy(rows[local]).to(device), torch.from_numpy(cols).to(device)] = drawn
        for _ in range(ticks * number // len(plan) - reported):
            on_step()
        reported = ticks * number // len(plan)
    for _ in range(ticks - reported):
        on_step()
    return x, plan.passes
