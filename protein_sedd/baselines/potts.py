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
        onehot = np.eye(Q)[symbols].reshape(len(symbols), -1)  # [N, L q]
        length = self.fields.shape[0]
        pair = self.couplings.reshape(length * Q, length * Q)
        return onehot @ self.fields.reshape(-1) + 0.5 * ((onehot @ pair) * onehot).sum(-1)


def fit_potts(
    columns: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    lambda_h: float = LAMBDA_H,
    lambda_j: float = LAMBDA_J,
    max_iterations: int = 200,
    threads: int | None = None,
) -> Potts:
    """The pseudo-likelihood Potts model of `columns` (rows, L focus columns, alignment symbol codes),
    each row weighted by `weights` (None: 1). `lambda_j` is scaled by (q - 1)(L - 1) as in EVmutation."""
    began = time.perf_counter()
    symbols = torch.as_tensor(potts_symbols(columns))
    n, length = symbols.shape
    w = torch.ones(n) if weights is None else torch.as_tensor(np.asarray(weights, dtype=np.float32))
    onehot = torch.nn.functional.one_hot(symbols, Q).to(torch.float32).reshape(n, length * Q)
    off_diagonal = (1 - torch.eye(length, dtype=torch.float32))[:, None, :, None].expand(length, Q, length, Q)
    off_diagonal = off_diagonal.reshape(length * Q, length * Q)
    scale_j = lambda_j * (Q - 1) * (length - 1)
    h = torch.zeros(length * Q, dtype=torch.float32, requires_grad=True)
    raw = torch.zeros(length * Q, length * Q, dtype=torch.float32, requires_grad=True)

    def couplings() -> torch.Tensor:
        return 0.5 * (raw + raw.T) * off_diagonal

    def objective() -> torch.Tensor:
        J = couplings()
        logits = (h + onehot @ J).reshape(n, length, Q)  # J_ij(a, x_j) summed over j: row-wise products
        log_p = torch.log_softmax(logits, dim=-1).gather(-1, symbols[..., None]).squeeze(-1)  # [N, L]
        penalty = lambda_h * (h**2).sum() + scale_j * 0.5 * (J**2).sum()  # 0.5: each pair i<j once
        return -(w * log_p.sum(-1)).sum() + penalty

    # float32 and a short history: the couplings of 400 columns are 70M numbers, and L-BFGS keeps two
    # vectors of that size per remembered step
    optimiser = torch.optim.LBFGS(
        [h, raw], lr=1.0, max_iter=max_iterations, history_size=HISTORY, tolerance_grad=1e-5,
        tolerance_change=1e-7, line_search_fn="strong_wolfe",
    )  # fmt: skip
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:

        def closure():
            optimiser.zero_grad()
            loss = objective()
            loss.backward()
            return loss

        optimiser.step(closure)
        with torch.no_grad():
            final = float(objective())
    finally:
        torch.set_num_threads(previous)
    state = optimiser.state[optimiser._params[0]]
    report = {
        "columns": length,
        "rows": n,
        "neff": float(w.sum()),
        "lambda_h": lambda_h,
        "lambda_J": scale_j,
        "iterations": int(state.get("n_iter", 0)),
        "objective": final,
        "seconds": time.perf_counter() - began,
    }
    fields = h.detach().reshape(length, Q).double().numpy()
    pair = couplings().detach().reshape(length, Q, length, Q).double().numpy()
    return Potts(fields, pair, report)


def potts_scores(
    model: Potts, wildtype_symbols: np.ndarray, focus_positions: Sequence[int], variants
) -> np.ndarray:
    """E(mutant) - E(wild type) per variant (nats); NaN for a variant touching a position outside the focus
    columns. `wildtype_symbols` [L]: the wild type's row (0..20); `focus_positions`: each column's 0-based
    wild-type position; `variants`: parsed `protein_sedd.evaluation.variants.Variant`s."""
    column_of = {int(p): c for c, p in enumerate(focus_positions)}
    index = {a: i for i, a in enumerate(AMINO_ACIDS)}
    rows, scored = [], []
    for number, variant in enumerate(variants):
        if not all(p in column_of for p in variant.positions):
            continue
        row = np.array(wildtype_symbols, copy=True)
        for position, residue in zip(variant.positions, variant.new, strict=True):
            row[column_of[position]] = index[residue]
        rows.append(row)
        scored.append(number)
    scores = np.full(len(variants), np.nan)
    if rows:
        energies = model.energies(np.stack([np.asarray(wildtype_symbols), *rows]))
        scores[scored] = energies[1:] - energies[0]
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
            threads: int | None = None, max_iterations: int = 200) -> PottsModel:  # fmt: skip
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
