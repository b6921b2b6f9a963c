"""Zero-shot variant effects: parse mutants against a wild type, score them, and compare with a scan.

Mutants are written as in ProteinGym's deep mutational scanning tables: `A23V` (wild-type residue, 1-based
position on the wild type, new residue), multi-mutants joined by ':' (`A23V:G45L`). Scores are in nats,
higher = fitter (more likely under the model than the wild type).

**Masked marginal** (Meier et al. 2021). For a variant mutating the positions P of the wild type w to m,

    score = sum_{i in P} [ log p(x_i = m_i | w_{-P}) - log p(x_i = w_i | w_{-P}) ],

where w_{-P} is the wild type with every position of P masked and p(x_i | w_{-P}) the model's denoising
distribution there. For the time-independent absorbing parametrisation (the default) this is exact: the
log score at a masked position is log p_0(y | unmasked rest) - log expm1(sigma_bar) (`graph.log_score`),
so its log softmax over the 21 real tokens is the network's own conditional, at any noise level. A
time-conditioned network is evaluated at sigma_bar = -log(1 - |P| / L), the noise level at which |P| of
the L positions are masked on average (a small one for a few mutations). Cost: one network pass per
distinct set P, shared by every variant mutating those positions: a full single-site scan of L positions
(19 L variants) takes L passes, 1/19 of a pass per variant.

**ELBO difference** (`method="elbo"`). score = B(w) - B(v), B the upper bound on -log p(x) of `score`
(the negative ELBO plus the length term, which cancels for substitutions). Both bounds are estimated with
the same K noise draws (`shared_draws_negative_elbo`: common random numbers), and the score is the mean
of the K per-draw differences d_k = B_k(w) - B_k(v); its standard error is their standard deviation
over sqrt(K), conservative because the draws are stratified. Each bound equals the one `score` gives that
sequence scored alone (batch size 1, same seed). Cost: K passes per distinct mutant sequence, plus K
for the wild type. For the autoregressive baseline (`model=ar`) the same method is the exact
log-likelihood ratio, one pass per sequence, with standard error 0.

**The wild type on the model's focus** (evaluation/wildtype.py). A model trained on an alignment knows its
focus region; the user's wild type (full length, or the region itself) is placed on it and only the region
is scored, each variant's positions shifted onto it; a variant outside it gets no score (NaN).
**Focus-columns models** (`data.representation=focus_columns`, data/focus_columns.py) read sequences as rows
over an alignment's focus columns: the region's positions are mapped to their columns and scored, by
either method, on the region's column row. A variant touching a position without a column gets no score.

**Spearman's rho** with a measured score (`DMS_score`): the Pearson correlation of the average ranks,
with a percentile bootstrap interval (variants resampled with replacement, `resamples` times, seeded).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from protein_sedd.config.limits import MAX_BATCH_SIZE, MAX_SEED, MAX_T_SAMPLES, check_int
from protein_sedd.data.alphabet import ALPHABET, AMINO_ACIDS
from protein_sedd.diffusion.likelihood import shared_draws_negative_elbo
from protein_sedd.errors import UserError
from protein_sedd.evaluation.wildtype import Placement, place
from protein_sedd.io.tables import numeric_column, parse_number
from protein_sedd.runtime.devices import inference_autocast

METHODS = ("masked-marginal", "elbo")
OUTPUT_COLUMNS = ("score", "standard_error")  # added to the table; an input may not hold them
MAX_VARIANTS = 10_000_000
MUTATION = re.compile(r"([A-Za-z*])([0-9]+)([A-Za-z*])")


@dataclass(frozen=True)
class Variant:
    """A parsed mutant: its text, 0-based positions (ascending), and the wild-type and new residues there."""

    mutant: str
    positions: tuple[int, ...]
    wild: str
    new: str

    def apply(self, wildtype: str) -> str:
        residues = list(wildtype)
        for position, residue in zip(self.positions, self.new, strict=True):
            residues[position] = residue
        return "".join(residues)


@dataclass
class VariantScores:
    """Scores (nats, higher = fitter), their standard errors (elbo only) and what they cost."""

    score: np.ndarray
    standard_error: np.ndarray | None
    network_passes: int
    note: str


def check_variant_settings(method: str, t_samples: int, seed: int, batch_size: int) -> None:
    """The method and numbers of a scoring run; messages name the parameter (`UserError.field`)."""
    if method not in METHODS:
        raise UserError(f"{{method}} {method!r}: choose {' or '.join(METHODS)}", field="method")
    check_int("t_samples", t_samples, 2, MAX_T_SAMPLES)  # two draws at least: a standard error
    check_int("seed", seed, 0, MAX_SEED)
    check_int("batch_size", batch_size, 1, MAX_BATCH_SIZE)


# -- parsing -----------------------------------------------------------------------------------------------
def parse_mutant(text: str, wildtype: str, first: int = 1) -> Variant:
    """`A23V` or `A23V:G45L` against the wild type, whose first residue is number `first` (1, or the start
    of a `/start-end` id: evaluation/wildtype.py); a ValueError says what is wrong. The variant's
    positions are 0-based indices into `wildtype`."""
    stripped = text.strip()
    if not stripped:
        raise ValueError("empty mutant; expected e.g. A23V or A23V:G45L")
    changes: dict[int, tuple[str, str]] = {}
    for part in stripped.split(":"):
        match = MUTATION.fullmatch(part.strip())
        if match is None:
            raise ValueError(
                f"{part.strip()!r} is not a mutation like A23V (wild-type residue, 1-based position, new "
                "residue; multi-mutants joined by ':')"
            )
        wild, number, new = match.group(1), int(match.group(2)), match.group(3)
        if number == 0:
            raise ValueError("position 0: positions are 1-based")
        index = number - first
        if index < 0:
            raise ValueError(f"position {number} is before the wild type, which starts at residue {first}")
        if index >= len(wildtype):
            last = first + len(wildtype) - 1
            span = f"{len(wildtype)} residues" if first == 1 else f"residues {first}-{last}"
            raise ValueError(f"position {number} is beyond the wild type ({span})")
        if wildtype[index] != wild.upper():
            raise ValueError(
                f"position {number} of the wild type is {wildtype[index]!r}, not {wild!r}; check that "
                "the wild type is the sequence the positions number (1-based, full length)"
            )
        new = new.upper()
        if new == "*":
            raise ValueError("stop codon '*': nonsense variants are not scored, drop them")
        if new not in AMINO_ACIDS:
            raise ValueError(f"unknown residue {new!r}; use one of the 20 amino acids {AMINO_ACIDS}")
        if index in changes:
            raise ValueError(f"position {number} is mutated twice")
        changes[index] = (wildtype[index], new)
    positions = tuple(sorted(changes))
    return Variant(
        stripped,
        positions,
        "".join(changes[p][0] for p in positions),
        "".join(changes[p][1] for p in positions),
    )


def parse_variants(
    wildtype: str, table: pd.DataFrame, where: Callable[[int], str], first: int = 1
) -> list[Variant]:
    """Every row's `mutant`, checked against the wild type (numbered from `first`; and its
    `mutated_sequence` and `DMS_score` when present); a mistake is a UserError naming the row through
    `where(row_number)` (0-based)."""
    if "mutant" not in table.columns:
        raise UserError(f"no 'mutant' column (columns: {', '.join(map(str, table.columns)) or 'none'})")
    if len(table) == 0:
        raise UserError("no variants given")
    variants = []
    sequences = table["mutated_sequence"] if "mutated_sequence" in table.columns else None
    measured = table["DMS_score"] if "DMS_score" in table.columns else None
    for row, text in enumerate(table["mutant"]):
        try:
            if not isinstance(text, str):
                raise ValueError(f"expected text like A23V, got {text!r}")
            variant = parse_mutant(text, wildtype, first)
        except ValueError as err:
            raise UserError(f"{where(row)} (mutant {text!r}): {err}") from None
        if sequences is not None and isinstance(sequences.iloc[row], str) and sequences.iloc[row].strip():
            given = sequences.iloc[row].strip().upper()
            expected = variant.apply(wildtype)
            if given != expected:
                raise UserError(
                    f"{where(row)} (mutant {text!r}): mutated_sequence is not the wild type with {text} "
                    f"applied ({_first_difference(given, expected)}); check the wild type"
                )
        if measured is not None:
            _check_measured(measured.iloc[row], f"{where(row)} (mutant {text!r})")
        variants.append(variant)
    return variants


def _first_difference(given: str, expected: str) -> str:
    if len(given) != len(expected):
        return f"{len(given)} residues, expected {len(expected)}"
    position = next(i for i, (a, b) in enumerate(zip(given, expected, strict=True)) if a != b)
    return f"position {position + 1} is {given[position]!r}, expected {expected[position]!r}"


def _check_measured(value, where: str) -> None:
    try:
        parse_number(value)
    except ValueError as err:
        raise UserError(f"{where}: DMS_score {err} (leave it empty if unmeasured)") from None


def measured_scores(table: pd.DataFrame) -> np.ndarray | None:
    """`DMS_score` as floats (NaN where unmeasured: blank, NA, nan, None...), or None without that column;
    the same parser `parse_variants` checked the cells with, whatever dtype pandas gave the column."""
    if "DMS_score" not in table.columns:
        return None
    return numeric_column(table, "DMS_score", lambda row: f"row {row}", missing_ok=True)


def read_variants(path: Path) -> pd.DataFrame:
    """A ProteinGym-style CSV as text columns (values carried through exactly as written).

    It needs a `mutant` column; it may not hold the output's `score` or `standard_error` columns.
    """
    from protein_sedd.io.tables import read_text_table

    table = read_text_table(path, "--variants", "a CSV table of variants naming a 'mutant' column")
    if "mutant" not in table.columns:
        columns = ", ".join(repr(c) for c in table.columns[:10])
        raise UserError(
            f"{path}: no 'mutant' column (columns: {columns}); name the mutations in a column 'mutant', "
            "e.g. A23V or A23V:G45L"
        )
    taken = [c for c in OUTPUT_COLUMNS if c in table.columns]
    if taken:
        raise UserError(
            f"{path}: has a column {taken[0]!r}, which the output adds; rename or drop it in the input"
        )
    if len(table) == 0:
        raise UserError(f"{path}: no variants (only a header line)")
    if len(table) > MAX_VARIANTS:
        raise UserError(f"{path}: {len(table):_} variants, more than {MAX_VARIANTS:_}; split the table")
    return table


# -- scoring -----------------------------------------------------------------------------------------------
@dataclass
class ScoringPlan:
    """What the network scores: `sequence` (the wild type, or a focus_columns model's column row), the
    `variants` in its coordinates, and each one's index in the full list (`rows`); the rest go unscored."""

    sequence: str
    variants: list[Variant]
    rows: np.ndarray
    n_unscored: int = 0
    unscored_reason: str | None = None
    placement: Placement | None = None  # where the model's focus lies in the wild type


def scoring_plan(
    representation, wildtype: str, variants: Sequence[Variant], max_length: int, where: str = "the wild type",
    placement: Placement | None = None, first: int = 1,
) -> ScoringPlan:  # fmt: skip
    """The model's row for the wild type's focus region (`placement`, evaluation/wildtype.py; the whole wild
    type when None) and each variant on it (`representation`: the model's, data/representation.py); a
    variant outside the region, or whose positions have no place on the row, goes unscored."""
    placement = placement or Placement(0, len(wildtype), "as given")
    row = representation.wildtype_row(placement.region(wildtype), max_length, where)
    mapped, rows, outside, off_row = [], [], 0, 0
    for index, variant in enumerate(variants):
        if not placement.inside(variant.positions):
            outside += 1
            continue
        columns = representation.columns(tuple(p - placement.offset for p in variant.positions))
        if columns is None:
            off_row += 1
            continue
        mapped.append(Variant(variant.mutant, columns, variant.wild, variant.new))
        rows.append(index)
    start = first + placement.offset
    region = f"a mutated position outside the focus region (residues {start}-{start + placement.length - 1})"
    given = [(c, why) for c, why in [(outside, region), (off_row, representation.unscored_reason)] if c]
    reason = given[0][1] if len(given) == 1 else "; ".join(f"{c} with {why}" for c, why in given) or None
    return ScoringPlan(row, mapped, np.array(rows, dtype=np.int64), outside + off_row, reason, placement)


def masked_marginal_scores(
    network, graph, wildtype: str, variants: Sequence[Variant], *, batch_size: int, progress=None
) -> VariantScores:
    """The masked-marginal score of every variant: one network pass per distinct set of mutated positions."""
    if not graph.has_mask:
        raise UserError(
            f"the masked marginal needs an absorbing-graph model (this one uses the {graph.name} graph, "
            "which has no mask); use {method} 'elbo'",
            field="method",
        )
    device = next(network.parameters()).device
    time_conditioning = bool(network.config.time_conditioning)
    length = len(wildtype)
    tokens = ALPHABET.encode(wildtype)
    sets = list(dict.fromkeys(v.positions for v in variants))  # distinct sets, first-seen order
    log_probs = {}  # set -> [|P|, 21] log p(x_i = y | w_{-P}) at its positions, float64
    for start in range(0, len(sets), batch_size):
        chunk = sets[start : start + batch_size]
        x = tokens.repeat(len(chunk), 1)
        for row, positions in enumerate(chunk):
            x[row, list(positions)] = graph.mask_index
        fraction = torch.tensor([min(len(p), length - 0.5) / length for p in chunk], dtype=torch.float64)
        sigma = (-torch.log1p(-fraction)).float().to(device)
        with inference_autocast(device):
            logits = network(x.to(device), sigma, torch.full((len(chunk),), length, device=device))
        log_score = graph.log_score(logits.float(), sigma, time_conditioning)
        conditional = torch.log_softmax(log_score.double(), dim=-1).detach().cpu()  # values, not a graph
        for row, positions in enumerate(chunk):
            log_probs[positions] = conditional[row, list(positions)]
        if progress is not None:
            progress(len(chunk))
    index = {residue: i for i, residue in enumerate(ALPHABET.residues)}
    scores = np.empty(len(variants))
    for number, variant in enumerate(variants):
        table = log_probs[variant.positions]
        rows = range(len(variant.positions))
        new = sum(float(table[r, index[a]]) for r, a in zip(rows, variant.new, strict=True))
        old = sum(float(table[r, index[a]]) for r, a in zip(rows, variant.wild, strict=True))
        scores[number] = new - old
    if time_conditioning:
        note = "masked marginal at sigma_bar = -log(1 - |P|/L) (time-conditioned network)"
    else:
        note = "masked marginal: the network's exact conditional (time-independent absorbing)"
    return VariantScores(scores, None, len(sets), note)


def elbo_difference_scores(
    model, wildtype: str, variants: Sequence[Variant], *, t_samples: int, seed: int,
    batch_size: int, progress=None,
) -> VariantScores:  # fmt: skip
    """B(wild type) - B(variant), B the bound of `score`, with its standard error (see the module)."""
    sequences = list(dict.fromkeys([wildtype, *(v.apply(wildtype) for v in variants)]))
    which = {sequence: i for i, sequence in enumerate(sequences)}
    rows = np.array([which[v.apply(wildtype)] for v in variants])
    tokens = torch.stack([ALPHABET.encode(s) for s in sequences])
    if model.is_autoregressive:  # exact log-likelihoods
        nats, _ = model.nats(list(tokens), t_samples=1, batch_size=batch_size, seed=seed, progress=progress)
        scores = float(nats[0]) - nats.numpy()[rows]
        note = "exact log-likelihood ratio (autoregressive model)"
        return VariantScores(scores, np.zeros(len(variants)), len(sequences), note)
    with inference_autocast(model.device):
        draws = shared_draws_negative_elbo(
            model.network,
            model.graph,
            tokens,
            t_samples=t_samples,
            seed=seed,
            batch_size=batch_size,
            progress=progress,
        ).numpy()
    differences = draws[0][None, :] - draws[rows]  # [variants, K]: B_k(w) - B_k(v)
    scores = differences.mean(axis=1)
    errors = differences.std(axis=1, ddof=1) / math.sqrt(t_samples)
    note = f"difference of -ELBO bounds, {t_samples} shared noise draws per sequence"
    return VariantScores(scores, errors, len(sequences) * t_samples, note)


def score_table(
    model, wildtype: str, table: pd.DataFrame, *, method: str, t_samples: int, seed: int, batch_size: int,
    where: Callable[[int], str], progress=None, first: int = 1, focus_start: int | None = None,
    allow_differences: bool = False,
) -> pd.DataFrame:  # fmt: skip
    """`table` with `score` (and for elbo `standard_error`) after `mutant`, the other columns carried.

    `model` is a loaded `ProteinSEDD`. The frame's `attrs` hold the method, its note, the network passes
    (sequence passes), the seconds taken, and how many variants have no score and why (`n_unscored`,
    `unscored_reason`: a focus_columns model's positions without a column; their score is NaN).
    """
    check_variant_settings(method, t_samples, seed, batch_size)
    variants = VariantSet.parse(wildtype, table, where, first)
    return variants.job(
        model, method=method, t_samples=t_samples, seed=seed, batch_size=batch_size, focus_start=focus_start,
        allow_differences=allow_differences,
    ).run(progress)  # fmt: skip


@dataclass
class VariantSet:
    """The variants a user asked for, read without a model: the wild type, their table (its other columns
    are carried to the output) and each one parsed. `job` checks them against a model."""

    wildtype: str
    table: pd.DataFrame
    variants: list[Variant]
    first: int = 1  # the wild type's first residue number (a `/start-end` id's start)

    @classmethod
    def parse(
        cls, wildtype: str, table: pd.DataFrame, where: Callable[[int], str], first: int = 1
    ) -> VariantSet:
        variants = parse_variants(wildtype, table, where, first)
        taken = [c for c in OUTPUT_COLUMNS if c in table.columns]
        if taken:
            raise UserError(f"the variants already have a column {taken[0]!r}, which the output adds")
        return cls(wildtype, table, variants, first)

    def job(
        self, model, *, method: str, t_samples: int, seed: int, batch_size: int, where: str = "the wild type",
        focus_start: int | None = None, allow_differences: bool = False,
    ) -> VariantJob:  # fmt: skip
        """The scoring of these variants by `model`, planned: the wild type placed on the model's focus
        (evaluation/wildtype.py; `focus_start`, `allow_differences`), `where` naming it in messages."""
        placement = place(
            self.wildtype, model.representation.focus_sequence, first=self.first, focus_start=focus_start,
            allow_differences=allow_differences, where=where,
        )  # fmt: skip
        plan = scoring_plan(model.representation, self.wildtype, self.variants, model.max_length, where,
                            placement, self.first)  # fmt: skip
        if method == "masked-marginal" and model.is_autoregressive:
            raise UserError(
                "the autoregressive baseline (model=ar) has no masked marginal; use {method} 'elbo', for it "
                "the exact log-likelihood ratio",
                field="method",
            )
        return VariantJob(model, self, plan, method, t_samples, seed, batch_size)


@dataclass
class VariantJob:
    """One scoring run, checked and planned: `plan` says what the network scores (and what goes unscored),
    `passes` how many sequence passes `run` will take."""

    model: object
    variants: VariantSet
    plan: ScoringPlan
    method: str
    t_samples: int
    seed: int
    batch_size: int

    @property
    def passes(self) -> int:
        plan = self.plan
        if hasattr(self.model, "score_plan"):
            return 0
        return network_passes(
            plan.sequence, plan.variants, self.method, self.t_samples, self.model.is_autoregressive
        )

    def run(self, progress=None) -> pd.DataFrame:
        """The output table (see `score_table`); `progress` is given the sequence passes as they run."""
        model, plan, table = self.model, self.plan, self.variants.table
        began = time.perf_counter()
        if hasattr(model, "score_plan"):  # a baseline that scores the plan itself (baselines/potts.py)
            result = model.score_plan(plan)
        elif self.method == "masked-marginal":
            result = masked_marginal_scores(
                model.network, model.graph, plan.sequence, plan.variants, batch_size=self.batch_size,
                progress=progress,
            )  # fmt: skip
        else:
            result = elbo_difference_scores(
                model, plan.sequence, plan.variants, t_samples=self.t_samples, seed=self.seed,
                batch_size=self.batch_size, progress=progress,
            )  # fmt: skip
        mutants = [v.mutant for v in self.variants.variants]
        out = pd.DataFrame({"mutant": mutants, "score": _scattered(result.score, plan)})
        if result.standard_error is not None:
            out["standard_error"] = _scattered(result.standard_error, plan)
        for column in table.columns:
            if column != "mutant":
                out[column] = table[column].to_numpy()
        out.attrs.update(
            method=self.method, note=result.note, network_passes=result.network_passes,
            seconds=time.perf_counter() - began, n_unscored=plan.n_unscored,
            unscored_reason=plan.unscored_reason,
        )  # fmt: skip
        return out


def _scattered(values: np.ndarray, plan: ScoringPlan) -> np.ndarray:
    """The scored variants' values at their rows of the full list, NaN at the unscored ones."""
    full = np.full(len(plan.rows) + plan.n_unscored, np.nan)
    full[plan.rows] = values
    return full


def network_passes(
    wildtype: str, variants: Sequence[Variant], method: str, t_samples: int, causal: bool
) -> int:
    """The sequence passes a run will take (for a progress bar): see the module's costs."""
    if method == "masked-marginal":
        return len({v.positions for v in variants})
    sequences = len({wildtype, *(v.apply(wildtype) for v in variants)})
    return sequences if causal else sequences * t_samples


# -- comparison with measurements --------------------------------------------------------------------------
def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n along the last axis, ties given their average rank."""
    values = np.asarray(values, dtype=float)
    flat = np.atleast_2d(values)
    ranked = pd.DataFrame(flat).rank(axis=1, method="average").to_numpy()
    return ranked.reshape(values.shape)


def spearman(x, y) -> float:
    """Spearman's rho: the Pearson correlation of the average ranks; NaN when either side is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return float(_row_pearson(average_ranks(x)[None, :], average_ranks(y)[None, :])[0])


def _row_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denominator = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(axis=1) / denominator, np.nan)


@dataclass(frozen=True)
class Correlation:
    """Spearman's rho of n pairs and its interval at `confidence` (`interval`: how it was computed)."""

    rho: float
    low: float
    high: float
    n: int
    confidence: float
    resamples: int
    interval: str = "bootstrap"

    def as_dict(self) -> dict:
        return dict(self.__dict__)


# Above this many pairs the interval is Fisher's z with Fieller's variance 1.06 / (n - 3) instead of the
# bootstrap, whose cost grows with n (300,000 pairs: 8 minutes; 3,000,000 did not finish). Measured on
# rho 0.5 pairs: at 20,000 pairs the two intervals agree within 5e-4; the bootstrap there takes 6 s.
BOOTSTRAP_MAX_PAIRS = 20_000


def spearman_interval(x, y, *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> Correlation:
    """rho over the pairs where both are finite, with a percentile bootstrap interval.

    The pairs are resampled with replacement `resamples` times (numpy generator seeded by `seed`); the
    interval holds the central `confidence` of the resampled rhos (resamples with a constant side, whose
    rho is undefined, are left out). NaN everywhere with fewer than 3 pairs. Over BOOTSTRAP_MAX_PAIRS
    pairs, tanh(atanh(rho) -+ z sqrt(1.06 / (n - 3))) instead (interval 'fisher-z', no resamples).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = len(x)
    if n < 3:
        return Correlation(math.nan, math.nan, math.nan, n, confidence, resamples)
    rho = spearman(x, y)
    if n > BOOTSTRAP_MAX_PAIRS:
        from statistics import NormalDist

        if not math.isfinite(rho) or abs(rho) >= 1:
            return Correlation(rho, rho, rho, n, confidence, 0, "fisher-z")
        half = NormalDist().inv_cdf(0.5 + confidence / 2) * math.sqrt(1.06 / (n - 3))
        z = math.atanh(rho)
        return Correlation(rho, math.tanh(z - half), math.tanh(z + half), n, confidence, 0, "fisher-z")
    rng = np.random.default_rng(seed)
    chunk = max(1, 4_000_000 // n)  # resamples per block: bounded memory for any n
    values = []
    for start in range(0, resamples, chunk):
        picks = rng.integers(0, n, size=(min(chunk, resamples - start), n))
        values.append(_row_pearson(average_ranks(x[picks]), average_ranks(y[picks])))
    values = np.concatenate(values)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return Correlation(rho, math.nan, math.nan, n, confidence, resamples)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Correlation(rho, float(low), float(high), n, confidence, resamples)


def roc_auc(positives, negatives) -> float:
    """P(a positive scores above a negative), ties counting one half (the Mann-Whitney statistic)."""
    positives, negatives = np.asarray(positives, dtype=float), np.asarray(negatives, dtype=float)
    if len(positives) == 0 or len(negatives) == 0:
        return math.nan
    ranks = average_ranks(np.concatenate([positives, negatives]))
    n_pos, n_neg = len(positives), len(negatives)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
