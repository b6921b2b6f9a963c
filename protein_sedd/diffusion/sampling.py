"""Sampling: a trained score network -> sequences, by tau-leaping from t = 1 down to t_end, then a denoise.

Every design starts from a token row: the mask token at each position to design, a real token at each
fixed position (infilling), so unconditional design is the all-mask start. Time grid: `steps` equal
steps from t = 1 to t_end (noise eps for log-linear; 0 for geometric, where sigma_bar(0) = sigma_min),
then one denoising step at t_end that leaves no noise behind.

Caching (absorbing graph, time-independent network): the network's output depends on the tokens only,
so each row keeps its last softmax and the network re-runs only on rows whose tokens changed since.
The uniforms for every row and step are drawn in the same order either way, so the cached and uncached
samplers make the same draws from the same probabilities.

Samplers: `sampler="events"` (the default) runs the analytic predictor of a time-independent absorbing model
as event_sampling.py does, visiting only steps where positions unmask: the same distribution as this step loop
at the same `steps`, not the same draws; `steps="exact"` is its limit of infinitely many steps, one position
per event (the exact reverse process, event sampler only). Where it does not apply (`event_sampler_applies`)
and with `sampler="steps"`, the step loop below runs: each step computes scores, the graph's reverse weights
from them (graph.py), then draws. Samplers are entries of `SAMPLERS` (name -> `Sampler`: where it applies, its
fallback, how it runs a batch); a third sampler is a third entry.

Sampling controls (temperature, top-p; sampling_controls.py) reshape the absorbing graph's normalised
score over the real tokens, keeping its total, in both samplers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.diffusion.categorical import uniforms
from protein_sedd.diffusion.event_sampling import ExactSchedule, GridSchedule, sample_events
from protein_sedd.diffusion.sampling_controls import SamplingControls
from protein_sedd.runtime.precision import network_autocast, network_for, resolve_precision

EXACT = "exact"  # steps=EXACT: the event sampler's exact limit, one position per event


@dataclass
class SampleResult:
    sequences: list[str]
    network_rows: int  # sequences passed through the network, summed over steps
    cached: bool
    sampler: str = "steps"  # the sampler that ran: events or steps


def cache_applies(model, graph) -> bool:
    """Only an absorbing-graph network without time conditioning gives noise-level-free outputs."""
    return graph.has_mask and not model.config.time_conditioning


def event_sampler_applies(model, graph, predictor: str, guided: str | None = None) -> bool:
    """Whether the event-driven sampler is exact: unmasking times must not depend on the network.

    True for the analytic predictor of a time-independent absorbing model; a time-conditioned network's
    score need not sum to 1 / expm1(sigma_bar), the uniform graph has no masks, and euler's unmasking
    probability d / expm1(sigma_bar) is not the analytic schedule the event sampler draws from (it
    equals it under log-linear noise only). `guided`: None, or the guide's ratio method
    (protein_sedd/guidance). Taylor ratios reweight the unmasking rates and so change when positions
    unmask; exact ratios leave the total rate as it is (event_sampling.py) and reweight only the residue.
    """
    return cache_applies(model, graph) and predictor == "analytic" and guided in (None, "exact")


@dataclass(frozen=True)
class Sampler:
    """A way from start rows to designs: where it is exact (`applies`), what runs where it is not
    (`fallback`, a sampler that always applies), and `run`, one padded batch -> (tokens, network rows)."""

    name: str
    applies: Callable[..., bool]  # (network, graph, predictor, guide's ratio method or None) -> bool
    fallback: str | None
    run: Callable[..., tuple[torch.Tensor, int]]


def _run_events(model, graph, x, lengths, schedule, sizes, *, predictor, controls, cache, guide, generator,
                on_step, precision):  # fmt: skip
    return sample_events(model, graph, x, lengths, schedule, controls, generator, on_step, precision, guide)


def _run_steps(model, graph, x, lengths, schedule, sizes, *, predictor, controls, cache, guide, generator,
               on_step, precision):  # fmt: skip
    sigmas = schedule.sigmas
    scores = NetworkScores(model, graph, x, lengths, cache, controls, precision)
    if guide is not None:
        scores = guide.steer(scores)  # the guide runs every step; the network's cache still holds
    return step_loop(scores, graph, x, sigmas, sizes, predictor, generator, on_step), scores.rows_run


SAMPLERS: dict[str, Sampler] = {  # by name: a third sampler is one more entry
    sampler.name: sampler
    for sampler in (
        Sampler("events", event_sampler_applies, "steps", _run_events),
        Sampler("steps", lambda *model: True, None, _run_steps),
    )
}


def sampler_that_runs(model, graph, predictor: str, sampler: str, guided: str | None = None) -> str:
    """The sampler asked for where it applies, else its fallback ("steps" for the event sampler).
    `guided`: None, or the guide's ratio method ("taylor" or "exact")."""
    chosen = SAMPLERS[sampler]
    return chosen.name if chosen.applies(model, graph, predictor, guided) else chosen.fallback


def progress_ticks(steps: int | str, starts: list[torch.Tensor]) -> int:
    """Progress calls per batch: one per step, or with steps="exact" one per position of the longest start."""
    return max(len(start) for start in starts) if steps == EXACT else steps


def time_grid(noise, steps: int) -> torch.Tensor:
    """t = 1, ..., t_end: steps + 1 equally spaced times, float64 on the host."""
    return torch.linspace(1.0, noise.t_end, steps + 1, dtype=torch.float64)


def sigma_grid(noise, steps: int) -> list[float]:
    """sigma_bar at t = 1, ..., t_end (steps + 1 values, float64 precision, on the host)."""
    return noise.total(time_grid(noise, steps)).tolist()


def step_sizes(noise, steps: int, predictor: str) -> list[float]:
    """The `d` of each reverse step from t to s (see transitions.py), one per step.

    analytic: the noise the step removes, sigma_bar(t) - sigma_bar(s). euler: the first-order step
    sigma(t) (t - s), the rate at the step's start times its length. Log-linear noise makes the euler
    size equal expm1 of the analytic one, so on the absorbing graph both predictors jump alike.
    """
    times = time_grid(noise, steps)
    if predictor == "euler":
        return (noise.rate(times[:-1]) * (times[:-1] - times[1:])).tolist()
    total = noise.total(times)
    return (total[:-1] - total[1:]).tolist()


class NetworkScores:
    """exp(log score) over real tokens, float64 [B, W, N], re-running the network only where needed.

    Time-independent absorbing networks keep each row's softmax p: the score is p / expm1(sigma_bar).
    With `cache` a row is re-run only when its tokens changed since its last evaluation (and it still
    has positions to sample); without, every row is re-run at every call, the reference behaviour.
    """

    def __init__(
        self,
        model,
        graph,
        x: torch.Tensor,
        lengths: torch.Tensor,
        cache: bool,
        controls: SamplingControls,
        precision: str = "fp32",
    ):
        self.model, self.graph, self.lengths, self.controls = model, graph, lengths, controls
        self.time_independent = cache_applies(model, graph)
        self.cache = cache and self.time_independent
        self.device, self.precision = x.device, precision
        self.rows_run = 0
        if self.time_independent:
            self.probs = torch.zeros(*x.shape, graph.n, dtype=torch.float64, device=x.device)
            self.stale = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)

    def _logits(self, tokens: torch.Tensor, sigma_bar: float, lengths: torch.Tensor) -> torch.Tensor:
        sigma = torch.full((tokens.shape[0],), sigma_bar, device=tokens.device)
        with network_autocast(self.device, self.precision):
            return self.model(tokens, sigma, lengths)

    def __call__(self, x: torch.Tensor, sigma_bar: float, active: torch.Tensor) -> torch.Tensor:
        """Scores at noise level sigma_bar; rows outside `active` [B] may hold stale values."""
        if not self.time_independent:
            self.rows_run += x.shape[0]
            logits = self._logits(x, sigma_bar, self.lengths)
            sigma = torch.full((x.shape[0],), sigma_bar, device=x.device)
            score = self.graph.log_score(logits, sigma, True).double().exp()
            if self.controls.is_model:
                return score
            total = score.sum(-1, keepdim=True)  # the jump rate, which the controls keep
            return total * self.controls.apply(score / total)
        if self.cache:
            rows = (self.stale & active).nonzero().squeeze(1)  # the one host sync per step
            if rows.numel():
                self.rows_run += rows.numel()
                logits = self._logits(x[rows], sigma_bar, self.lengths[rows])
                self.probs[rows] = self._denoising(logits)
                self.stale[rows] = False
        else:
            self.rows_run += x.shape[0]
            logits = self._logits(x, sigma_bar, self.lengths)
            self.probs = self._denoising(logits)
        return self.probs / math.expm1(sigma_bar)

    def _denoising(self, logits: torch.Tensor) -> torch.Tensor:
        """p(y | unmasked rest) over real tokens, float64, reshaped by the sampling controls."""
        return self.controls.apply(torch.softmax(logits[..., : self.graph.n].double(), dim=-1))

    def tokens_changed(self, changed: torch.Tensor) -> None:
        if self.time_independent:
            self.stale |= changed


def step_loop(scores, graph, x, sigmas, sizes, predictor, generator, on_step) -> torch.Tensor:
    """The step loop: per step, scores [B, W, N] (per-token jump rates) -> the graph's reverse weights ->
    draws, then the graph's denoise at t_end. The uniforms are drawn for every row at every step, so the
    cache never shifts the random stream."""
    x, free = graph.begin(x, generator)
    for t_sigma, d in zip(sigmas[:-1], sizes, strict=True):
        score = scores(x, t_sigma, graph.active(x, free))
        new = graph.step(x, free, score, d, predictor, uniforms(x.shape, generator, x.device))
        scores.tokens_changed((new != x).any(-1))
        x = new
        on_step()
    score = scores(x, sigmas[-1], graph.active(x, free))
    return graph.denoise(x, free, score, sigmas[-1], uniforms(x.shape, generator, x.device))


def _pad_batch(starts: list[torch.Tensor], pad_index: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(s) for s in starts])
    x = torch.full((len(starts), int(lengths.max())), pad_index, dtype=torch.long)
    for row, start in enumerate(starts):
        x[row, : len(start)] = start
    return x.to(device), lengths.to(device)


def plan_batches(starts: list[torch.Tensor], batch_size: int) -> list[list[int]]:
    """Start indices in batches of `batch_size`, in length order (less padding); fixed by the starts alone."""
    order = sorted(range(len(starts)), key=lambda i: (len(starts[i]), i))
    return [order[first : first + batch_size] for first in range(0, len(order), batch_size)]


def batch_generator(seed: int, batch: int, device) -> torch.Generator:
    """Batch `batch`'s own random stream, keyed by (seed, batch).

    Whichever process runs a batch, and in whatever order, it makes the same draws: designs depend on
    the seed and the batch size, never on how many ranks share the work.
    """
    high, low = np.random.SeedSequence([seed, batch]).generate_state(2, dtype=np.uint32)
    return torch.Generator(device=device).manual_seed((int(high) << 31) | (int(low) >> 1))  # < 2**63


@dataclass
class DesignedBatch:
    indices: list[int]  # positions in the list of starts
    sequences: list[str]
    network_rows: int


def in_input_order(batches: list[DesignedBatch], n: int) -> tuple[list[str], int]:
    """(the n designs in input order, network passes) from designed batches in any order."""
    sequences = [""] * n
    for batch in batches:
        for index, sequence in zip(batch.indices, batch.sequences, strict=True):
            sequences[index] = sequence
    return sequences, sum(batch.network_rows for batch in batches)


@torch.inference_mode()
def sample_batches(
    model,
    graph,
    noise,
    starts: list[torch.Tensor],
    *,
    steps: int,
    seed: int,
    predictor: str = "analytic",
    sampler: str = "events",
    controls: SamplingControls = SamplingControls(),
    cache: bool = True,
    batch_size: int = 128,
    runs_batch: Callable[[int], bool] = lambda batch: True,
    on_step: Callable[[], None] | None = None,
    guide=None,
    precision: str = "auto",
) -> Iterator[DesignedBatch]:
    """Design the batches of `plan_batches(starts, batch_size)` that `runs_batch` picks, one at a time.

    `steps`: a number of steps, or "exact" (the event sampler only: one position per event).
    `sampler`: "events" (where `event_sampler_applies`, else the step loop) or "steps" (the step loop).
    `guide`: None, or guided rates (protein_sedd.guidance.reweighting.GuidedRates) that reweight the step
    loop's scores, or with exact ratios the event sampler's residue draws; absorbing graph only.
    `precision`: what the network computes in (auto, bf16 or fp32; runtime/precision.py); the guide and
    the draws are not affected.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}")
    if guide is not None and not graph.has_mask:
        raise ValueError("guidance reweights the absorbing graph's unmasking rates")
    if not graph.has_mask and not controls.is_model:
        raise ValueError("temperature and top-p reshape the absorbing graph's denoising distribution")
    device = next(model.parameters()).device
    precision = resolve_precision(precision, device)
    network = network_for(model, precision)
    guided = guide.method.name if guide is not None else None
    ran = sampler_that_runs(model, graph, predictor, sampler, guided)
    if steps == EXACT:
        if ran != "events":
            raise ValueError("steps='exact' is the event sampler's limit; the step loop needs a number")
        schedule, sizes = ExactSchedule(noise, progress_ticks(steps, starts)), None
    else:
        schedule, sizes = GridSchedule(sigma_grid(noise, steps)), step_sizes(noise, steps, predictor)
    run = SAMPLERS[ran].run
    step_callback = on_step or (lambda: None)
    for number, batch in enumerate(plan_batches(starts, batch_size)):
        if not runs_batch(number):
            continue
        x, lengths = _pad_batch([starts[i] for i in batch], graph.pad_index, device)
        generator = batch_generator(seed, number, device)
        x, rows_run = run(
            network, graph, x, lengths, schedule, sizes, predictor=predictor, controls=controls, cache=cache,
            guide=guide, generator=generator, on_step=step_callback, precision=precision,
        )  # fmt: skip
        x = x.cpu()
        if bool((x == graph.mask_index).any()):
            raise RuntimeError("internal error: a mask token survived the final denoising step")
        sequences = [ALPHABET.decode(x[row, : len(starts[i])]) for row, i in enumerate(batch)]
        yield DesignedBatch(batch, sequences, rows_run)


def sample(model, graph, noise, starts: list[torch.Tensor], **options) -> SampleResult:
    """Design one sequence per start row (mask token = position to design), in input order.

    `options` are `sample_batches`' keywords (steps, seed, predictor, sampler, controls, cache, batch_size,
    on_step, guide, precision). Memory is bounded by `batch_size` whatever the number of starts. With the
    same seed, device, precision, batch size and sampler the output is repeatable, and the cache never
    changes it.
    """
    batches = sample_batches(model, graph, noise, starts, **options)
    sequences, rows_run = in_input_order(list(batches), len(starts))
    predictor, sampler = options.get("predictor", "analytic"), options.get("sampler", "events")
    guide = options.get("guide")
    ran = sampler_that_runs(model, graph, predictor, sampler, guide.method.name if guide else None)
    cached = ran == "steps" and options.get("cache", True) and cache_applies(model, graph)
    return SampleResult(sequences, rows_run, cached, ran)
