"""The Potts (EVmutation) baseline: a pairwise model of an alignment's focus columns, by pseudo-likelihood.

Over the L focus columns, with q = 21 symbols (the 20 amino acids and a gap; X counts as a gap),

    E(x) = sum_i h_i(x_i) + sum_{i<j} J_ij(x_i, x_j),        p(x) proportional to exp(E(x)),

fitted as plmc does (Balakrishnan et al. 2011; Ekeberg et al. 2013; Hopf et al. 2017, EVmutation): maximise
the weighted pseudo-likelihood

    sum_s w_s sum_i log p(x_i^s | x_-i^s),
    log p(x_i = a | x_-i) = h_i(a) + sum_{j != i} J_ij(a, x_j) - log Z_i,

minus lambda_h ||h||^2 + lambda_J sum_{i<j} ||J_ij||^2, with EVmutation's regularisation lambda_h = 0.01 and
lambda_J = 0.01 (q - 1)(L - 1) (each field sees L - 1 couplings of q - 1 free values) and the redundancy
weights w (sum = Neff; data/family/weights.py). L-BFGS (torch) on all parameters at once: the pairwise
term of every row is one product of its one-hot matrix [N, L q] with J [L q, L q] (J symmetric, its
diagonal blocks zero), so a few hundred columns fit in minutes on a CPU.

A variant's score is the change in the Hamiltonian, E(mutant) - E(wild type) (nats, higher = fitter; the
same sign convention as the masked marginal), which needs no gauge. A variant touching a wild-type
position outside the focus columns has no score (NaN).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from protein_sedd.data.alphabet import AMINO_ACIDS

Q = len(AMINO_ACIDS) + 1  # the 20 amino acids and a gap (X counts as one)
GAP = len(AMINO_ACIDS)
LAMBDA_H = 0.01
LAMBDA_J = 0.01  # times (q - 1)(L - 1)
HISTORY = 5
MAX_ITERATIONS = 200


def potts_symbols(columns: np.ndarray) -> np.ndarray:
    """Alignment symbol codes (protein_sedd.io.alignment: amino acids 0-19, X, gap) -> 0..20, X and gap
    both GAP."""
    codes = np.asarray(columns, dtype=np.int64)
    return np.where(codes >= GAP, GAP, codes)


@dataclass
class Potts:
    """Fields h [L, q] and couplings J [L, q, L, q] (symmetric, zero on the diagonal blocks)."""

    fields: np.ndarray
    couplings: np.ndarray
    report: dict

    def energies(self, symbols: np.ndarray) -> np.ndarray:
        """E(x) of rows of symbols [N, L] (0..20)."""
        symbols = np.asarray(symbols)
        every = np.arange(symbols.shape[1])
        fields = self.fields[every, symbols].sum(-1)
        pairs = self.couplings[every[:, None], symbols[:, :, None], every[None, :], symbols[:, None, :]]
        return fields + 0.5 * pairs.sum((-1, -2))

    def changes(self, wildtype: np.ndarray, mutants: Sequence[Sequence[tuple[int, int]]]) -> np.ndarray:
        """E(mutant) - E(wild type) for mutants given as (column, new symbol) pairs, from the wild type's
        local fields f_i(a) = h_i(a) + sum_j J_ij(a, x_j) (one pass over J): for changed columns P,

            sum_{i in P} f_i(b_i) - f_i(a_i)
              + sum_{i<k in P} J_ik(b_i,b_k) - J_ik(b_i,a_k) - J_ik(a_i,b_k) + J_ik(a_i,a_k),

        the second sum correcting the pairs inside P that the local fields count at the wild type."""
        x = np.asarray(wildtype)
        every = np.arange(len(x))
        local = self.fields + self.couplings[:, :, every, x].sum(-1)  # [L, q]
        J = self.couplings
        out = np.empty(len(mutants))
        for number, changes in enumerate(mutants):
            total = 0.0
            for i, b in changes:
                total += local[i, b] - local[i, x[i]]
            for first, (i, b) in enumerate(changes):
                for k, c in changes[first + 1 :]:
                    a, d = x[i], x[k]
                    total += J[i, b, k, c] - J[i, b, k, d] - J[i, a, k, c] + J[i, a, k, d]
            out[number] = total
        return out


class PseudoLikelihood:
    """The regularised negative pseudo-log-likelihood of weighted rows and its gradient, by hand: two matrix
    products of the rows' one-hot matrix X [N, L q] an evaluation, and no autograd graph over the
    (L q)^2 couplings. With G = w (softmax(logits) - X) [N, L q] (the gradient at the logits),

        d/dh = sum_s G_s + 2 lambda_h h,        d/dJ = sym(X^T G) + lambda_J' J,

    sym(M) = (M + M^T) / 2 with the diagonal blocks zeroed: J is one symmetric matrix, each pair i<j held
    twice (J_ij and J_ji^T), so the penalty lambda_J' sum_{i<j} ||J_ij||^2 is (lambda_J' / 2) ||J||^2. A
    symmetric gradient keeps L-BFGS, whose steps are sums of gradients, on symmetric J from J = 0."""

    def __init__(self, symbols: torch.Tensor, weights: torch.Tensor, lambda_h: float, scale_j: float):
        n, self.length = symbols.shape
        self.symbols, self.weights = symbols, weights
        self.onehot = torch.nn.functional.one_hot(symbols, Q).to(torch.float32).reshape(n, self.length * Q)
        self.lambda_h, self.scale_j = lambda_h, scale_j
        self.size = self.length * Q

    def split(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One flat parameter vector -> h [L q], J [L q, L q] (views)."""
        return flat[: self.size], flat[self.size :].view(self.size, self.size)

    def zero_diagonal_blocks(self, matrix: torch.Tensor) -> torch.Tensor:
        blocks = matrix.view(self.length, Q, self.length, Q)
        every = torch.arange(self.length)
        blocks[every, :, every, :] = 0
        return matrix

    def __call__(self, flat: torch.Tensor, gradient: torch.Tensor | None = None) -> float:
        """The objective at `flat`; with `gradient` (same shape), its gradient written there."""
        h, J = self.split(flat)
        logits = torch.addmm(h, self.onehot, J)  # [N, L q]: h_i(a) + sum_j J_ij(a, x_j)
        log_p = torch.log_softmax(logits.view(-1, self.length, Q), dim=-1)
        picked = log_p.gather(-1, self.symbols[..., None]).squeeze(-1)  # [N, L]
        value = -(self.weights * picked.sum(-1)).sum()
        value = value + self.lambda_h * h.square().sum() + 0.5 * self.scale_j * J.square().sum()
        if gradient is not None:
            grad_h, grad_j = self.split(gradient)
            g = log_p.exp_().view_as(logits).sub_(self.onehot).mul_(self.weights[:, None])  # [N, L q]
            torch.sum(g, dim=0, out=grad_h)
            grad_h.add_(h, alpha=2 * self.lambda_h)
            torch.mm(self.onehot.T, g, out=grad_j)
            grad_j.add_(grad_j.T.clone()).mul_(0.5)
            self.zero_diagonal_blocks(grad_j).add_(J, alpha=self.scale_j)
        return float(value)


def fit_potts(
    columns: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    lambda_h: float = LAMBDA_H,
    lambda_j: float = LAMBDA_J,
    max_iterations: int = MAX_ITERATIONS,
    threads: int | None = None,
    every: int | None = None,
    callback=None,
) -> Potts:
    """The pseudo-likelihood Potts model of `columns` (rows, L focus columns, alignment symbol codes),
    each row weighted by `weights` (None: 1). `lambda_j` is scaled by (q - 1)(L - 1) as in EVmutation.
    L-BFGS runs until the objective stops changing (relative 1e-7) or `max_iterations`; with `every`
    and `callback`, `callback(potts)` sees the model every `every` iterations (a benchmark's trajectory)."""
    began = time.perf_counter()
    symbols = torch.as_tensor(potts_symbols(columns))
    n, length = symbols.shape
    w = torch.ones(n) if weights is None else torch.as_tensor(np.asarray(weights, dtype=np.float32))
    scale_j = lambda_j * (Q - 1) * (length - 1)
    objective = PseudoLikelihood(symbols, w, lambda_h, scale_j)
    flat = torch.zeros(objective.size * (1 + objective.size), dtype=torch.float32, requires_grad=True)
    flat.grad = torch.zeros_like(flat)
    # float32 and a short history: the couplings of 400 columns are 66M numbers, and L-BFGS keeps two
    # vectors of that size per remembered step
    chunk = min(every or max_iterations, max_iterations)
    optimiser = torch.optim.LBFGS(
        [flat], lr=1.0, max_iter=chunk, history_size=HISTORY, tolerance_grad=1e-5,
        tolerance_change=1e-7, line_search_fn="strong_wolfe",
    )  # fmt: skip
    evaluations = 0

    def closure():
        nonlocal evaluations
        evaluations += 1
        with torch.no_grad():
            return torch.tensor(objective(flat.detach(), flat.grad))

    def snapshot(final: float, iterations: int) -> Potts:
        h, J = objective.split(flat.detach())
        report = {
            "columns": length,
            "rows": n,
            "neff": float(w.sum()),
            "lambda_h": lambda_h,
            "lambda_J": scale_j,
            "iterations": iterations,
            "evaluations": evaluations,
            "objective": final,
            "seconds": time.perf_counter() - began,
        }
        fields = h.reshape(length, Q).double().numpy()
        return Potts(fields, J.reshape(length, Q, length, Q).double().numpy(), report)

    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        done = 0
        while done < max_iterations:
            optimiser.param_groups[0]["max_iter"] = min(chunk, max_iterations - done)
            before = optimiser.state[flat].get("n_iter", 0)
            optimiser.step(closure)
            done = optimiser.state[flat]["n_iter"]
            if callback is not None and done < max_iterations and done - before == chunk:
                callback(snapshot(objective(flat.detach()), done))
            if done - before < optimiser.param_groups[0]["max_iter"]:
                break  # converged: L-BFGS stopped before its budget
        final = objective(flat.detach())
    finally:
        torch.set_num_threads(previous)
    return snapshot(final, int(optimiser.state[flat].get("n_iter", 0)))


def potts_scores(
    model: Potts, wildtype_symbols: np.ndarray, focus_positions: Sequence[int], variants
) -> np.ndarray:
    """E(mutant) - E(wild type) per variant (nats); NaN for a variant touching a position outside the focus
    columns. `wildtype_symbols` [L]: the wild type's row (0..20); `focus_positions`: each column's 0-based
    wild-type position; `variants`: parsed `protein_sedd.evaluation.variants.Variant`s."""
    column_of = {int(p): c for c, p in enumerate(focus_positions)}
    index = {a: i for i, a in enumerate(AMINO_ACIDS)}
    mutants, scored = [], []
    for number, variant in enumerate(variants):
        if all(p in column_of for p in variant.positions):
            mutants.append(
                [(column_of[p], index[r]) for p, r in zip(variant.positions, variant.new, strict=True)]
            )
            scored.append(number)
    scores = np.full(len(variants), np.nan)
    if mutants:
        scores[scored] = model.changes(np.asarray(wildtype_symbols), mutants)
    return scores


class PottsModel:
    """A fitted Potts model of an alignment, as `score-variants` and `VariantSet.job` use a model: its focus
    (the alignment's, read as a focus_columns model reads it), so a wild type is placed and its variants
    mapped onto the columns exactly as for SEDD; `score_plan` scores a plan (no network passes)."""

    is_autoregressive = False
    method = "potts"

    def __init__(self, path, potts: Potts, focus_sequence: str, focus_positions: np.ndarray, config: dict):
        from protein_sedd.data.focus_columns import FocusMapping
        from protein_sedd.data.representation import FocusColumns

        self.path, self.potts, self.config = path, potts, config
        self.focus = FocusMapping(focus_sequence, np.asarray(focus_positions))
        self.representation = FocusColumns(self.focus)
        self.max_length = len(focus_positions)
        self.device = torch.device("cpu")

    @classmethod
    def fit(cls, alignment, *, focus: str | None = None, identity: float = 0.8, min_coverage: float = 0.5,
            threads: int | None = None, max_iterations: int = MAX_ITERATIONS) -> PottsModel:  # fmt: skip
        """Fit on `alignment` (A2M, A3M, Stockholm, aligned FASTA): rows covering at least `min_coverage`
        of the focus columns, each weighted 1 / (rows within `identity`), as training does."""
        from protein_sedd.data.family.weights import identity_weights
        from protein_sedd.errors import UserError
        from protein_sedd.io.alignment import GAP_CODE, read_sequences

        data = read_sequences(alignment, focus)
        if not data.aligned:
            raise UserError(f"--potts {alignment}: not an alignment (A2M, A3M, Stockholm or aligned FASTA)")
        covered = (data.columns != GAP_CODE).mean(axis=1)
        kept = data.columns[covered >= min_coverage]
        weights = identity_weights(kept, identity)
        potts = fit_potts(kept, weights, threads=threads, max_iterations=max_iterations)
        focus_sequence = data.records[data.focus_index].sequence
        config = {"dataset": {"format": data.format, "source": str(alignment), "sha256": data.sha256}}
        return cls(alignment, potts, focus_sequence, data.focus_positions, config)

    def score_plan(self, plan):
        """`plan` (evaluation/variants.ScoringPlan, variants on the focus row's columns) -> VariantScores."""
        from protein_sedd.evaluation.variants import VariantScores

        index = {a: i for i, a in enumerate(AMINO_ACIDS)}
        row = np.array([index.get(letter, GAP) for letter in plan.sequence])
        scores = potts_scores(self.potts, row, range(len(row)), plan.variants)
        report = self.potts.report
        note = (
            f"Potts model (EVmutation) of {report['columns']} focus columns, {report['rows']} rows (Neff "
            f"{report['neff']:.1f}), E(mutant) - E(wild type); fitted in {report['seconds']:.1f} s"
        )
        return VariantScores(scores, None, 0, note)
