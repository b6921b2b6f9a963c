"""One design call: a model, what to design (`DesignRequest`), how (`DesignSettings`) and an optional guide.

    designs = design(model, DesignRequest(10, length=80), DesignSettings(steps=256, seed=0))

`ProteinSEDD.design` and the `design` command both build a request and settings and call this function,
so the same options and seed give the same sequences from the shell and from Python. Here run the checks
that need the model (it can design; the controls apply to its graph; the guide fits it; every start fits
its length and representation), then the sampler (diffusion/sampling.py), then the records.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from protein_sedd.design.records import Design, Designs
from protein_sedd.design.request import DesignRequest
from protein_sedd.design.settings import DesignSettings
from protein_sedd.diffusion.sampling import EXACT, in_input_order, progress_ticks, sample_batches
from protein_sedd.runtime.distributed import Distributed
from protein_sedd.runtime.precision import resolve_precision


class DesignRun:
    """One design call, checked against its model and ready to run: which sampler runs (`sampler`), whether
    the step loop caches (`cached`), the start rows; `run` samples them."""

    def __init__(self, model, request: DesignRequest, settings: DesignSettings, guidance=None):
        model.check_can_design()
        self.model, self.request, self.settings = model, request, settings
        self.guidance, self.search = guidance, None
        self.rates = guidance.rates(model) if guidance is not None else None
        self.guided = self.rates.method.name if self.rates is not None else None
        if guidance is not None and guidance.target_rate is not None:
            self.guided = guidance.method  # the pilot's scale 1 stands in for the scale to be chosen
        self.sampler, self.cached = settings.for_model(model, self.guided)
        self.precision = resolve_precision(settings.precision, model.device)
        # length mistakes show before any work
        self.starts, self.note = request.starts(model.length_prior, settings.seed)
        model.representation.check_starts(self.starts)  # focus_columns: each a row over its columns
        if self.guided is not None and guidance.target_rate is not None:
            self._choose_scale()

    def _choose_scale(self) -> None:
        """The smallest guide scale whose pilot batch reaches the target label rate (target_rate.py)."""
        from dataclasses import replace

        from protein_sedd.data.alphabet import ALPHABET
        from protein_sedd.guidance.target_rate import (
            PILOT_DESIGNS,
            PILOT_SEED_OFFSET,
            choose_scale,
            label_rate,
        )

        guidance, settings, model = self.guidance, self.settings, self.model
        pilot = self.starts[:PILOT_DESIGNS]

        def rate_at(scale: float) -> float:
            rates = replace(guidance, scale=scale, target_rate=None).rates(model)
            sampler, _ = settings.for_model(model, rates.method.name if rates is not None else None)
            batches = sample_batches(
                model.network, model.graph, model.noise, pilot, steps=settings.steps,
                seed=settings.seed + PILOT_SEED_OFFSET, predictor=settings.predictor, cache=settings.cache,
                batch_size=settings.batch_size, sampler=sampler, controls=settings.controls, guide=rates,
                precision=self.precision,
            )  # fmt: skip
            tokens = [ALPHABET.encode(s) for batch in batches for s in batch.sequences]
            return label_rate(guidance.guide, guidance.target, tokens)

        self.search = choose_scale(guidance.target_rate, rate_at)
        self.guidance = replace(guidance, scale=self.search.scale, target_rate=None)
        self.rates = self.guidance.rates(model)
        self.guided = self.rates.method.name if self.rates is not None else None
        self.sampler, self.cached = settings.for_model(model, self.guided)

    def describe(self, n_threads: int, world_size: int = 1, spell: Callable[[str], str] = str) -> list[str]:
        """The lines a run logs before it samples: what runs where (the sampler, and why not the one asked
        for; the cache; the guide; ranks sharing batches), where lengths come from, the representation's
        note. `spell` writes a parameter as the caller does (the command line: its flag)."""
        model, settings, n = self.model, self.settings, len(self.starts)
        rates = self.rates
        guide = (
            f"guide {rates.guide.path} toward {rates.target:g} at scale {rates.scale:g} ({rates.method.name} "
            f"ratios: {rates.method.cost}), "
            if rates
            else ""
        )
        lines = [
            f"design: {n} designs, {settings.steps} steps, predictor {settings.predictor}, "
            f"{self._sampler_note(spell)}{settings.controls.note()}, {guide}"
            f"device {model.device.type} ({self.precision}), "
            f"{n_threads} CPU thread{'s' * (n_threads > 1)}"
            f"{_ranks_note(world_size, math.ceil(n / settings.batch_size), spell)}, checkpoint {model.path}"
        ]
        if self.request.draws_lengths:  # a run from before the record counted every training sequence
            source = (model.config.get("lengths") or {}).get("source") or "all training sequences"
            lines.append(f"lengths: drawn from the training length distribution of {source}")
        if model.representation.design_note() is not None:
            lines.append(model.representation.design_note())
        note = self.guidance.other_model_note(model) if self.guidance is not None else None
        if note is not None:
            lines.append(note)
        if self.search is not None:
            lines.append(self.search.note())
        return lines

    def _sampler_note(self, spell: Callable[[str], str]) -> str:
        """Which sampler runs, and why the events sampler does not where it was asked for."""
        from protein_sedd.diffusion.sampling import cache_applies

        model, settings = self.model, self.settings
        if self.sampler == "events":
            return "sampler events"  # one network pass per sequence and unmasking step: no cache needed
        not_applicable = (
            f"{model.graph.name} graph" if not model.graph.has_mask else "time-conditioned network"
        )
        if not cache_applies(model.network, model.graph):
            cache = f"cache off (not applicable: {not_applicable}, its output depends on the noise level)"
        else:
            cache = "cache on" if settings.cache else f"cache off ({spell('no_cache')})"
        if settings.sampler == "steps":
            return f"sampler steps, {cache}"
        return f"sampler steps (events do not apply: {settings.why_not_events(model, self.guided)}), {cache}"

    def run(self, ranks: Distributed | None = None, progress: bool | Callable[[], None] = True) -> Designs:
        """The designs, in request order (see `design`)."""
        model, settings, starts, rates = self.model, self.settings, self.starts, self.rates
        ranks = ranks or Distributed()
        began = time.perf_counter()
        own_batches = sum(ranks.owns(b) for b in range(math.ceil(len(starts) / settings.batch_size)))
        ticks = progress_ticks(settings.steps, starts)
        with _StepProgress(progress, ranks, own_batches, ticks, settings.steps == EXACT) as advance:
            designed = list(
                sample_batches(
                    model.network, model.graph, model.noise, starts, steps=settings.steps, seed=settings.seed,
                    predictor=settings.predictor, cache=settings.cache, batch_size=settings.batch_size,
                    runs_batch=ranks.owns, on_step=advance, sampler=self.sampler, controls=settings.controls,
                    guide=rates, precision=self.precision,
                )
            )  # fmt: skip
        gathered = ranks.gather(designed)
        if gathered is None:
            return Designs()  # not rank 0: rank 0 holds the designs
        sequences, network_passes = in_input_order([b for part in gathered for b in part], len(starts))
        sampling = f" sampler={self.sampler} precision={self.precision}{settings.controls.note()}" + (
            rates.note() if rates else ""
        )
        if self.search is not None:
            sampling += f" target_rate={self.search.target_rate:g}"
        protein, row_note = model.representation.protein, model.representation.row_note
        records = [(protein(s), f"{self.note}{row_note(s)}") for s in sequences]
        designs = Designs(
            Design(
                f"design_{i:04d}",
                s,
                len(s),
                settings.steps,
                settings.seed,
                settings.predictor,
                model.name,
                row_note,
                sampling,
            )  # fmt: skip
            for i, (s, row_note) in enumerate(records, start=1)
        )
        designs.network_passes, designs.seconds = network_passes, time.perf_counter() - began
        designs.guide_passes = rates.rows_run if rates is not None else 0
        return designs


def _ranks_note(world_size: int, batches: int, spell: Callable[[str], str]) -> str:
    if world_size == 1:
        return ""
    note = f", {world_size} ranks sharing {batches} batches"
    if batches < world_size:
        note += (
            f" ({world_size - batches} ranks idle: lower {spell('batch_size')} to give every rank a batch)"
        )
    return note


def design(
    model,
    request: DesignRequest,
    settings: DesignSettings,
    guidance=None,
    ranks: Distributed | None = None,
    progress: bool | Callable[[], None] = True,
) -> Designs:
    """The designs of `request` from `model` (a ProteinSEDD), in request order.

    `guidance`: None or a `protein_sedd.guidance.reweighting.Guidance`. `ranks` shares the batches among
    torchrun ranks: rank 0 returns every design, the other ranks an empty list. `progress`: True for a bar
    (a log line every 30 s when stderr is no terminal), False for silence, or a callable run once per
    sampling step (with steps="exact": once per position of the longest design, spread over the events).
    """
    return DesignRun(model, request, settings, guidance).run(ranks, progress)


class _StepProgress:
    """The per-step callback for `progress` (see `design`), as a context manager."""

    def __init__(self, progress, ranks: Distributed, batches: int, steps: int, positions: bool = False):
        self.progress, self.ranks, self.loop, self.unit = (
            progress,
            ranks,
            None,
            "positions" if positions else "steps",
        )
        self.batches, self.total = (batches, steps), batches * steps

    def __enter__(self) -> Callable[[], None]:
        if callable(self.progress) and not isinstance(self.progress, bool):
            return self.progress
        if not self.progress or not self.ranks.is_main:
            return lambda: None
        from rich.console import Console

        from protein_sedd.runtime.progress import LoopProgress

        # the count runs over every batch's steps: say so, or 361/3072 reads as a run of 3,072 steps
        batches, steps = self.batches
        label = f"design {self.unit} ({batches} batch{'es' if batches > 1 else ''} x {steps}"
        label += ")" if not self.ranks.enabled else ", rank 0)"
        self.loop = LoopProgress(Console(stderr=True), label, self.total).__enter__()
        return self.loop.advance

    def __exit__(self, *exc) -> None:
        if self.loop is not None:
            self.loop.__exit__(*exc)
