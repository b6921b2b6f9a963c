"""Redundancy weights: a family's near-duplicates share the weight of one sequence.

The EVmutation/plmc convention, over the L focus columns of an alignment, a gap counting as a symbol:

    id(i, j) = (1 / L) * sum_c [x_ic = x_jc],     w_i = 1 / #{ j : id(i, j) >= theta },  j = i included,

and Neff = sum_i w_i, the effective number of sequences (theta = data.weight_identity, 0.8 by default).
A planted set of k copies within theta of each other and of nothing else gets weights 1/k, summing to one.

Unaligned FASTA has no columns: id(i, j) is estimated from k-mer sketches instead (`kmer_weights`): the
fraction of i's distinct 3-mers that j also holds, compared with theta^3 (two sequences at identity p
share about p^3 of their 3-mers when differences fall independently).

Both count neighbours with blocks of indicator-matrix products, never a Python loop over pairs, and the
counts are exact integers: for alignments bfloat16 one-hot products (fast on CPUs with AMX or AVX-512
BF16, and on GPUs) summed over at most 256 columns each, where bfloat16 still holds every integer; for
k-mers a sparse float32 presence matrix times a dense block of it.
"""

from __future__ import annotations

import numpy as np
import torch

from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.io.alignment import GAP_CODE

N_SYMBOLS = GAP_CODE + 1  # residues and the gap
EXACT_COLUMNS = 256  # bfloat16 holds every integer up to 256: a product over more columns is cut up
KMER = 3


def _one_hot_chunks(codes: torch.Tensor, eye: torch.Tensor) -> list[torch.Tensor]:
    """(rows, columns * symbols) bfloat16 indicators of `codes`, cut into chunks of EXACT_COLUMNS columns."""
    rows, columns = codes.shape
    return [
        eye[codes[:, start : start + EXACT_COLUMNS].long()].reshape(rows, -1)
        for start in range(0, columns, EXACT_COLUMNS)
    ]


def neighbour_counts(
    columns: np.ndarray, threshold: float, block: int = 2048, device: str | torch.device = "cpu"
) -> np.ndarray:
    """#{ j : id(i, j) >= threshold } for each row of `columns` (rows, L) uint8 symbol codes.

    id is symmetric, so each pair of row blocks is compared once and counted for both; memory is two
    blocks' one-hot matrices (block x L x 22 bfloat16) and one block x block count matrix.
    """
    codes = torch.as_tensor(np.ascontiguousarray(columns), device=device)
    n, length = codes.shape
    needed = threshold * length - 1e-6 * length  # id >= theta <=> matches >= theta * L (float slack)
    eye = torch.eye(N_SYMBOLS, dtype=torch.bfloat16, device=device)
    counts = torch.zeros(n, dtype=torch.float64, device=device)
    for i in range(0, n, block):
        left = _one_hot_chunks(codes[i : i + block], eye)
        for j in range(i, n, block):
            right = left if j == i else _one_hot_chunks(codes[j : j + block], eye)
            matches = sum((a @ b.T).float() for a, b in zip(left, right, strict=True))
            close = (matches >= needed).float()
            counts[i : i + block] += close.sum(1)
            if j != i:
                counts[j : j + block] += close.sum(0)
    return counts.cpu().numpy()


def identity_weights(
    columns: np.ndarray, threshold: float, block: int = 2048, device: str | torch.device = "cpu"
) -> np.ndarray:
    """w_i = 1 / (rows within `threshold` identity of row i over the focus columns, itself included)."""
    if len(columns) == 0:
        return np.zeros(0)
    return 1.0 / neighbour_counts(columns, threshold, block, device)


def kmer_sketches(sequences: list[str], k: int = KMER) -> list[np.ndarray]:
    """Each sequence's distinct k-mers as sorted int indices in 0 .. 21^k - 1."""
    table = np.full(256, 0, dtype=np.int64)
    table[np.frombuffer(ALPHABET.residues.encode(), np.uint8)] = np.arange(ALPHABET.n_residues)
    sketches = []
    for sequence in sequences:
        tokens = table[np.frombuffer(sequence.encode("ascii"), np.uint8)]
        if len(tokens) < k:
            sketches.append(np.zeros(0, dtype=np.int64))
            continue
        width = len(tokens) - k + 1
        index = sum(tokens[s : s + width] * ALPHABET.n_residues ** (k - 1 - s) for s in range(k))
        sketches.append(np.unique(index))
    return sketches


def _presence(sketches: list[np.ndarray], dims: int) -> torch.Tensor:
    """(rows, dims) float32 0/1: which k-mers each sketch holds."""
    rows = np.repeat(np.arange(len(sketches)), [len(sketch) for sketch in sketches])
    dense = torch.zeros(len(sketches), dims)
    dense[torch.from_numpy(rows), torch.from_numpy(np.concatenate(sketches))] = 1.0
    return dense


def kmer_weights(sequences: list[str], threshold: float, block: int = 1024, k: int = KMER) -> np.ndarray:
    """Weights for unaligned sequences: j is i's neighbour when it holds >= threshold^k of i's distinct
    k-mers. Shared k-mer counts |K_i & K_j| are products of dense float32 presence blocks (exact counts),
    each pair of blocks once: the count is symmetric, only the bar (threshold^k |K_i|) is i's own."""
    sketches = kmer_sketches(sequences, k)
    n, dims = len(sketches), ALPHABET.n_residues**k
    if n == 0:
        return np.zeros(0)
    sizes = torch.tensor([len(sketch) for sketch in sketches], dtype=torch.float32)
    needed = (threshold**k * sizes).clamp(min=1) - 1e-6  # a row without k-mers: only itself
    counts = torch.zeros(n, dtype=torch.float64)
    for i in range(0, n, block):
        left = _presence(sketches[i : i + block], dims)
        for j in range(i, n, block):
            right = left if j == i else _presence(sketches[j : j + block], dims)
            shared = left @ right.T
            counts[i : i + block] += (shared >= needed[i : i + block, None]).sum(1)
            if j != i:
                counts[j : j + block] += (shared.T >= needed[j : j + block, None]).sum(1)
    return 1.0 / counts.clamp(min=1).numpy()
