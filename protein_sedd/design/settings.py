"""How to design: the sampling settings of one design call, checked once, when they are made.

    DesignSettings(steps=256, seed=0, batch_size=64, sampler="steps", temperature=0.8, precision="fp32")

`steps` tau-leaping steps from t = 1 to t_end, then a final denoise, or "exact": the event sampler's limit,
one position per event (the exact reverse process; diffusion/event_sampling.py); `seed` with `batch_size`
fixes the draws (same seed, device and batch size: same designs); `predictor` 'analytic' (Tweedie) or 'euler';
`sampler` 'events' (visit only the steps where positions unmask, where that applies) or 'steps' (the step loop
always); `temperature` and `top_p` reshape the denoising distribution (sampling_controls.py); `cache` lets the
step loop re-run the network only on rows whose tokens changed; `precision` is what the network computes in:
'auto' (bf16 where the device multiplies it natively), 'bf16' or 'fp32' (runtime/precision.py; the same seed
gives other draws in each). A mistake names the parameter (`UserError.field`); what depends on the model
(which sampler runs, whether controls apply) is `for_model`.
"""

from __future__ import annotations

from dataclasses import dataclass

from protein_sedd.config.limits import MAX_BATCH_SIZE, MAX_DESIGN_SEED, MAX_SAMPLING_STEPS, check_int
from protein_sedd.diffusion.sampling import EXACT, SAMPLERS, cache_applies, sampler_that_runs
from protein_sedd.diffusion.sampling_controls import SamplingControls, check_sampling_controls
from protein_sedd.diffusion.transitions import PREDICTORS
from protein_sedd.errors import UserError
from protein_sedd.runtime.precision import check_precision


@dataclass(frozen=True)
class DesignSettings:
    steps: int | str = 1024
    seed: int = 0
    batch_size: int = 128
    predictor: str = "analytic"
    sampler: str = "events"
    temperature: float = 1.0
    top_p: float = 1.0
    cache: bool = True
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.steps != EXACT:
            if isinstance(self.steps, str):
                raise UserError(
                    f"{{steps}} {self.steps!r}: give a number of steps (1..{MAX_SAMPLING_STEPS:_}) or "
                    f"'{EXACT}' (one position per event)",
                    field="steps",
                )
            check_int("steps", self.steps, 1, MAX_SAMPLING_STEPS)
        check_int("seed", self.seed, 0, MAX_DESIGN_SEED)
        check_int("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        for field, value, choices in (
            ("predictor", self.predictor, PREDICTORS),
            ("sampler", self.sampler, SAMPLERS),
        ):
            if value not in choices:
                raise UserError(f"{{{field}}} {value!r}: choose {' or '.join(choices)}", field=field)
        if not isinstance(self.cache, bool):
            raise UserError(f"{{cache}} {self.cache!r}: must be True or False", field="cache")
        check_sampling_controls(self.temperature, self.top_p)
        check_precision(self.precision)

    @property
    def controls(self) -> SamplingControls:
        return SamplingControls(float(self.temperature), float(self.top_p))

    def for_model(self, model, guided: str | None = None) -> tuple[str, bool]:
        """For `model` (a ProteinSEDD) and a guide's ratio method (`guided`, None unguided): the sampler that
        runs ('events' where it applies and was asked for, else 'steps') and whether the step loop caches.
        Refuses controls its graph has no use for, and steps="exact" where the event sampler does not run."""
        if not model.graph.has_mask and not self.controls.is_model:
            raise UserError(
                "{temperature}/{top_p} apply to absorbing-graph models; this model uses the "
                f"{model.graph.name} graph: leave them at 1.0",
                field=("temperature", "top_p"),
            )
        sampler = sampler_that_runs(model.network, model.graph, self.predictor, self.sampler, guided)
        if self.steps == EXACT and sampler != "events":
            raise UserError(
                f"{{steps}} {EXACT}: one position per event needs the event sampler, which does not run here "
                f"({self.why_not_events(model, guided)}); give a number of steps",
                field=("steps", "sampler"),
            )
        return sampler, self.cache and sampler == "steps" and cache_applies(model.network, model.graph)

    def why_not_events(self, model, guided: str | None) -> str:
        """Why the step loop runs instead of the event sampler, in a few words."""
        if self.sampler == "steps":
            return "{sampler} steps"
        if guided == "taylor":
            return "a guide with Taylor ratios reweights the unmasking rates"
        if self.predictor != "analytic":
            return f"{self.predictor} predictor"
        if not model.graph.has_mask:
            return f"{model.graph.name} graph"
        return "time-conditioned network"
