"""Predictor guidance on the reverse rates: steer tau-leaping toward sequences a guide labels `target`.

**Guided rates** (Nisonoff et al. 2024, "Unlocking guidance for discrete state-space diffusion and flow
models"). Bayes' rule on the reverse process conditioned on a label y gives, for x' one token away from x,

    R^y_t(x, x') = R_t(x, x') * [p_t(y | x') / p_t(y | x)]^gamma,

gamma = 1 being exact conditioning and gamma > 1 sharper (the guide scale). On the absorbing graph the
unguided reverse rate from x (position i masked) to x^{i<-j} (position i set to token j) is sigma(t) times
the score s_ij (sampling.py), so guidance multiplies each score entry by r_ij^gamma, with
r_ij = p_t(y | x^{i<-j}) / p_t(y | x). The tau-leaping step then takes its weights from the guided scores
unchanged: jump probabilities expm1(d) s_ij r_ij^gamma (analytic; d s_ij r_ij^gamma for euler) and "stay
masked" the rest, clamped at 0; the final denoise draws token j at i in proportion to s_ij r_ij^gamma.
Unmasked positions never jump, so only masked i matter.

**Exact guidance** (`method="exact"`): r_ij from one guide pass per candidate x^{i<-j} (each real token
j: the 20 amino acids and X), batched (`one_change_log_ratios`). In the event sampler (the default where
it applies) the guide leaves the unmasking times alone and reweights each residue draw (event_sampling.py
derives why that is exact): the guide runs on the row and its 21 candidates at each unmasking event,
**22 guide passes per designed position** with `steps="exact"` (2,200 for a 100-residue design), fewer
when positions share a step. In the step loop (`sampler="steps"`, euler, time-conditioned networks)
every masked position needs its candidates at every step: 21 per masked position and step, about
10 L * steps per design of length L. At scale 1 the designs are the model conditioned on the label as
the guide judges it; a trained guide's own errors remain.

**Taylor-approximated guidance** (`method="taylor"`, the default; TAG, Nisonoff et al. section 4.2).
With g = d log p_t(y | x) / d onehot(x) from one forward and one backward pass,

    log r_ij ~ g . (onehot(x^{i<-j}) - onehot(x)) = g[i, j] - g[i, x_i],

the first-order expansion of log p(y | .) around x, exact when the log-likelihood is linear in the one-hot
input (a site-independent model). For a guide whose label depends on several positions together, it is not: a
masked position's one-hot is far from any token's, and the expansion underestimates how much setting one
residue changes the label's odds. **So at scale 1 the Taylor form steers less than conditioning on the label
would**; the scale is then a strength to tune, not a probability. Measured
(`workflows/benchmarks/guided_design.py`, a 12-residue family whose label is a two-residue motif carried by
29% of unguided designs, 300 designs a row): Taylor reaches 0.72 at scale 1, 0.86 at 2 and 0.94 at 4, where
exact ratios reach 0.89 at scale 1 (the guide's own error is the rest), the family rule kept in both. Cost:
**one guide forward + backward pass per sequence per design step** (the guide is far smaller than the score
network, and it runs every step: it depends on the noise level, so the score network's cache does not apply to
it).

Either way gamma = 0 is never evaluated: the sampler skips the guide entirely and makes exactly the
unguided draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.errors import UserError
from protein_sedd.guidance.guide import Guide

# gamma * log r is clamped here: exp(50) ~ 5e21 already makes a token certain, and float64 stays finite
MAX_LOG_WEIGHT = 50.0


def mask_fraction(sigma_bar: float, rows: int, device) -> torch.Tensor:
    """m = 1 - exp(-sigma_bar) [rows]: the guide's noise input (the absorbing graph's mask probability)."""
    return torch.full((rows,), -math.expm1(-sigma_bar), device=device)


def tag_log_ratios(guide: Guide, target: float, x: torch.Tensor, sigma_bar: float, lengths, n: int):
    """(log r_ij ~ g[i, j] - g[i, x_i] over the n real tokens, float64 [B, L, n]; guide passes) (TAG)."""
    with torch.inference_mode(False), torch.enable_grad():  # the sampler runs in inference mode
        tokens, lengths = x.clone(), lengths.clone()  # ordinary tensors: autograd refuses inference ones
        onehot = F.one_hot(tokens, guide.network.config.vocab_size).float().requires_grad_(True)
        log_p = guide.log_likelihood(onehot, mask_fraction(sigma_bar, len(x), x.device), lengths, target)
        (g,) = torch.autograd.grad(log_p.sum(), onehot)  # rows are independent: the sum's gradient is theirs
    g = g.double()
    return g[..., :n] - g.gather(-1, tokens.unsqueeze(-1)), len(x)


# tokens per guide call of exact guidance: the candidates go through in calls of about this many
EXACT_TOKENS_PER_CALL = 1 << 16


def exact_log_ratios(guide: Guide, target: float, x: torch.Tensor, sigma_bar: float, lengths, n: int):
    """(log r_ij = log p(y | x^{i<-j}) - log p(y | x) at every masked position i and real token j, float64
    [B, W, n], 0 where nothing is masked; guide passes): one pass per candidate, batched."""
    masked = (x == ALPHABET.mask_index) & (torch.arange(x.shape[1], device=x.device)[None] < lengths[:, None])
    rows, cols = masked.nonzero(as_tuple=True)
    noise = mask_fraction(sigma_bar, len(x), x.device)
    changed, passes = one_change_log_ratios(guide, target, x, lengths, noise, rows, cols, n)
    log_r = torch.zeros(*x.shape, n, dtype=torch.float64, device=x.device)
    log_r[rows, cols] = changed
    return log_r, passes


def one_change_log_ratios(guide: Guide, target: float, x, lengths, noise, rows, cols, n: int):
    """(log p(y | x[rows[e]] with position cols[e] set to j) - log p(y | x[rows[e]]), float64 [E, n];
    guide passes: one per row of x and one per candidate). `noise`: each row's mask fraction [B]."""
    x = x[:, : int(lengths.max())]  # the guide reads each row's own length: the padding beyond is cropped
    candidates = x[rows].repeat_interleave(n, 0)  # [E * n, W]
    tokens = torch.arange(n, device=x.device).repeat(len(rows))
    candidates[torch.arange(len(candidates), device=x.device), cols.repeat_interleave(n)] = tokens
    here = _log_likelihoods(guide, target, x, noise, lengths)
    there = _log_likelihoods(
        guide, target, candidates, noise[rows].repeat_interleave(n), lengths[rows].repeat_interleave(n)
    )
    return there.view(len(rows), n) - here[rows, None], len(x) + len(candidates)


def _log_likelihoods(guide: Guide, target: float, x: torch.Tensor, noise, lengths) -> torch.Tensor:
    """log p(y = target | x) [B] float64 at mask fractions `noise` [B], in calls of about
    EXACT_TOKENS_PER_CALL tokens."""
    rows_per_call = max(1, EXACT_TOKENS_PER_CALL // max(1, x.shape[1]))
    parts = [torch.zeros(0, dtype=torch.float64, device=x.device)]
    for first in range(0, len(x), rows_per_call):
        chunk = slice(first, first + rows_per_call)
        onehot = F.one_hot(x[chunk], guide.network.config.vocab_size).float()
        parts.append(guide.log_likelihood(onehot, noise[chunk], lengths[chunk], target).double())
    return torch.cat(parts)


@dataclass(frozen=True)
class RatioMethod:
    """How guidance computes the likelihood ratios r_ij: (guide, target, x, sigma_bar, lengths, n) ->
    (log r [B, L, n] float64, guide passes), and what it costs (for messages)."""

    name: str
    log_ratios: Callable[..., tuple[torch.Tensor, int]]
    cost: str


RATIO_METHODS: dict[str, RatioMethod] = {  # by name: a third way to compute the ratios is one more entry
    method.name: method
    for method in (
        RatioMethod("taylor", tag_log_ratios, "one guide forward + backward pass per sequence and step"),
        RatioMethod(
            "exact",
            exact_log_ratios,
            "events: 22 guide passes per unmasking event; step loop: 21 per masked position and step",
        ),
    )
}


class GuidedRates:
    """score [B, L, N] -> the guided score s_ij r_ij^gamma, the ratios r by `method` (RATIO_METHODS)."""

    def __init__(self, guide: Guide, target: float, scale: float, method: str = "taylor"):
        if not scale > 0:
            raise ValueError(
                "guide scale 0 means no guide: pass guide=None (the draws stay the unguided ones)"
            )
        self.guide, self.target, self.scale = guide, float(target), float(scale)
        self.method = RATIO_METHODS[method]
        self.rows_run = 0  # guide passes of sequences (taylor: forward + backward), over rows and steps

    def __call__(self, score, x, sigma_bar: float, lengths, active) -> torch.Tensor:
        """Guided scores; rows outside `active` [B] (nothing left to unmask) keep their score."""
        rows = active.nonzero().squeeze(1)
        if not rows.numel():
            return score
        log_r, passes = self.method.log_ratios(
            self.guide, self.target, x[rows], sigma_bar, lengths[rows], score.shape[-1]
        )
        self.rows_run += passes
        guided = score.clone()
        guided[rows] = score[rows] * (self.scale * log_r).clamp(-MAX_LOG_WEIGHT, MAX_LOG_WEIGHT).exp()
        return guided

    def reweight_events(self, probs, x, lengths, sigma_bars: list[float], events, cols) -> torch.Tensor:
        """The event sampler's residue draws (event_sampling.py): p(j | x) [E, n] at event e (row events[e]
        of x, position cols[e]) times r_ej^gamma, normalised. Exact ratios only; `sigma_bars` per row."""
        if self.method.name != "exact":
            raise ValueError("the event sampler takes exact ratios; Taylor guidance runs in the step loop")
        noise = -torch.expm1(-torch.tensor(sigma_bars, dtype=torch.float64, device=x.device))
        log_r, passes = one_change_log_ratios(
            self.guide, self.target, x, lengths, noise.float(), torch.as_tensor(events, device=x.device),
            torch.as_tensor(cols, device=x.device), probs.shape[-1],
        )  # fmt: skip
        self.rows_run += passes
        weights = probs * (self.scale * log_r).clamp(-MAX_LOG_WEIGHT, MAX_LOG_WEIGHT).exp()
        return weights / weights.sum(-1, keepdim=True)

    def steer(self, scores) -> GuidedScores:
        """The sampler's score source (sampling.NetworkScores) with this reweighting applied."""
        return GuidedScores(scores, self)

    def note(self) -> str:
        """' guide=NAME target=T guide_scale=G' for a design header, and ' guidance=exact' when exact."""
        method = "" if self.method.name == "taylor" else f" guidance={self.method.name}"
        return f" guide={self.guide.name} target={self.target:g} guide_scale={self.scale:g}{method}"


class GuidedScores:
    """NetworkScores, guided: the same interface, so the step loop runs unchanged.

    The network's cache stays as it is (its rows re-run only when their tokens change); the guided score is
    a new tensor each step, since the guide depends on the noise level.
    """

    def __init__(self, scores, rates: GuidedRates):
        self.scores, self.rates = scores, rates

    def __call__(self, x: torch.Tensor, sigma_bar: float, active: torch.Tensor) -> torch.Tensor:
        score = self.scores(x, sigma_bar, active)
        return self.rates(score, x, sigma_bar, self.scores.lengths, active)

    def tokens_changed(self, changed: torch.Tensor) -> None:
        self.scores.tokens_changed(changed)

    @property
    def rows_run(self) -> int:
        return self.scores.rows_run


@dataclass(frozen=True)
class Guidance:
    """What to steer toward: a guide (a Guide, or its folder: read on the CPU), a target label, a scale,
    and how the likelihood ratios are computed (`method`: taylor or exact, RATIO_METHODS).

    Checked when made: a target needs a guide, a guide needs a target (one of its classes, or a value for a
    regressor), the scale is a finite number >= 0, the method is known. `rates(model)` gives the sampler's
    guided rates, or None at scale 0 (then nothing of the guide runs: the unguided designs, draw for draw).
    """

    guide: Guide | str | Path | None
    target: float | None = None
    scale: float = 1.0
    method: str = "taylor"
    target_rate: float | None = None  # instead of a scale: the label rate to reach (target_rate.py)

    def __post_init__(self) -> None:
        from protein_sedd.guidance.guide import load_guide

        if not isinstance(self.method, str) or self.method not in RATIO_METHODS:
            raise UserError(
                f"{{guidance}} {self.method!r}: choose {' or '.join(RATIO_METHODS)}", field="guidance"
            )
        if self.guide is None:
            if self.target_rate is not None:
                raise UserError("{target_rate} needs a guide ({guide})", field=("target_rate", "guide"))
            if self.target is not None:
                shown = f"{self.target:g}" if isinstance(self.target, (int, float)) else repr(self.target)
                raise UserError(
                    f"{{target}} {shown}: a target needs a guide ({{guide}})", field=("target", "guide")
                )
            return
        if not isinstance(self.guide, (Guide, str, Path)):
            raise UserError(
                f"{{guide}}: expected a guide or its folder, got {type(self.guide).__name__}", field="guide"
            )
        if not isinstance(self.guide, Guide):
            object.__setattr__(self, "guide", load_guide(self.guide, "cpu"))
        if self.target is None:
            raise UserError(
                "a guide needs {target}: one of its classes (e.g. 1), or a value for a regressor",
                field="target",
            )
        self.guide.check_target(self.target)
        scale = self.scale
        if isinstance(scale, bool) or not (isinstance(scale, (int, float)) and 0 <= scale < math.inf):
            raise UserError(
                f"{{guide_scale}} {scale}: must be a finite number >= 0 (0: no guidance)", field="guide_scale"
            )
        if self.target_rate is not None:
            self._check_target_rate()

    def _check_target_rate(self) -> None:
        rate = self.target_rate
        if isinstance(rate, bool) or not (isinstance(rate, (int, float)) and 0 < rate < 1):
            raise UserError(
                f"{{target_rate}} {rate!r}: must be a number between 0 and 1 (the share of designs the guide "
                "should call `target`), e.g. 0.9",
                field="target_rate",
            )
        if self.guide.task != "classify":
            raise UserError(
                f"{{target_rate}} needs a classifier guide; {self.guide.name} regresses a value: give "
                "{guide_scale} instead",
                field=("target_rate", "guide_scale"),
            )
        if self.scale != 1.0:
            raise UserError(
                "give {guide_scale} or {target_rate}, not both: the target rate chooses the scale",
                field=("guide_scale", "target_rate"),
            )

    @property
    def steers(self) -> bool:
        """Whether a guide runs at all (a guide at a scale above 0)."""
        return self.guide is not None and self.scale != 0

    def other_model_note(self, model) -> str | None:
        """A note when the guide was trained against another model than `model` (same graph and noise
        schedule, so its ratios are defined, but its labels were learnt on another model's sequences)."""
        trained = self.guide.record.get("model") if self.steers else None
        if trained is None or trained == model.name:
            return None
        return (
            f"note: the guide was trained against model {trained!r} ({self.guide.record.get('checkpoint')}), "
            f"not {model.name!r}: what its labels mean for this model's sequences is untested; "
            f"train-guide --checkpoint {model.path} trains one against it"
        )

    def rates(self, model) -> GuidedRates | None:
        """The guided rates for `model` (a ProteinSEDD; the guide moves to its device), or None."""
        from protein_sedd.guidance.training import check_model_can_guide

        if not self.steers:
            return None
        check_model_can_guide(model)
        check_guide_matches(self.guide, model)
        self.guide.network.to(model.device)
        return GuidedRates(self.guide, self.target, self.scale, self.method)


def check_guide_matches(guide, model) -> None:
    """Refuse a guide trained under another graph or noise schedule than `model`'s: its inputs were
    sequences noised that way, so its likelihoods of this model's noised sequences are not defined."""
    from omegaconf import OmegaConf

    ours = {"graph": model.graph.name, "noise": OmegaConf.to_container(model.config.noise)}
    for key, mine in ours.items():
        trained = guide.record.get(key)
        if trained is not None and trained != mine:
            raise UserError(
                f"{{guide}} {guide.path}: trained against a model with {key} {trained!r}, but {model.path} "
                f"has {mine!r}; train a guide against this model (train-guide --checkpoint {model.path})",
                field="guide",
            )
