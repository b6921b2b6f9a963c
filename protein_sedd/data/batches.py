"""Tokens in memory and padded batches in a reproducible order.

Batch order is a function of (seed, epoch) alone, so a resumed run sees exactly the batches
an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from protein_sedd.data.alphabet import ALPHABET, Alphabet

DRAW_BLOCK = 1 << 16  # weighted draws made at a time


def encode_all(sequences: list[str], alphabet: Alphabet = ALPHABET) -> list[torch.Tensor]:
    return [alphabet.encode(s) for s in sequences]


def pad_batch(tokens: list[torch.Tensor], pad_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest sequence; returns (tokens [B, L], lengths [B])."""
    lengths = torch.tensor([len(t) for t in tokens], dtype=torch.long)
    batch = torch.full((len(tokens), int(lengths.max())), pad_index, dtype=torch.long)
    for row, seq in enumerate(tokens):
        batch[row, : len(seq)] = seq
    return batch, lengths


def epoch_order(n: int, seed: int, epoch: int, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The n record indices (int32: 4 bytes a record) of an epoch: a permutation, or with `weights` n
    draws with replacement, record i with probability w_i / sum(w) (redundancy weights: a cluster of
    near-duplicates is drawn about as often as one sequence), by inverting the cumulative weights (any n;
    a weight 0 is never drawn).

    The same orders as the int64 `torch.randperm(n)` and whole-epoch `torch.rand(n)` of earlier versions
    (randperm's shuffle and the generator's stream do not depend on the dtype or on drawing in blocks),
    so runs resume onto the batches they started with.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    if weights is None:
        return torch.randperm(n, generator=generator, dtype=torch.int32)
    cumulative = torch.cumsum(weights, 0)
    order = torch.empty(n, dtype=torch.int32)
    for start in range(0, n, DRAW_BLOCK):  # no float64 temporary the size of the epoch
        draws = torch.rand(min(DRAW_BLOCK, n - start), generator=generator, dtype=torch.float64)
        picked = torch.searchsorted(cumulative, draws * cumulative[-1], right=True, out_int32=True)
        order[start : start + len(draws)] = picked.clamp_(max=n - 1)
    return order


class BatchStream:
    """An endless stream of shuffled, padded batches, resumable at any (epoch, offset).

    With several ranks, each global batch of batch_size x world_size sequences is cut into one
    slice per rank, so ranks see disjoint data and share one (epoch, offset) state.
    """

    def __init__(
        self,
        tokens: list[torch.Tensor],
        batch_size: int,
        seed: int,
        pad_index: int,
        rank: int = 0,
        world_size: int = 1,
        weights=None,
    ):
        if not tokens:
            raise ValueError("no training sequences")
        self.tokens = tokens
        # per-record sampling weights (float64, aligned with tokens), or None for plain shuffling
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        self.batch_size = batch_size * world_size
        self.rank_slice = slice(rank * batch_size, (rank + 1) * batch_size)
        self.seed = seed
        self.pad_index = pad_index
        self.epoch = 0
        self.offset = 0
        self._order = None  # (epoch, permutation) cache: one randperm per epoch, not per batch

    def _order_for(self, epoch: int) -> torch.Tensor:
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, epoch_order(len(self.tokens), self.seed, epoch, self.weights))
        return self._order[1]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "offset": self.offset}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.offset = int(state["epoch"]), int(state["offset"])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        order = self._order_for(self.epoch)
        picked = []
        while len(picked) < self.batch_size:
            take = order[self.offset : self.offset + self.batch_size - len(picked)]
            picked.extend(int(i) for i in take)
            self.offset += len(take)
            if self.offset >= len(self.tokens):
                self.epoch, self.offset = self.epoch + 1, 0
                order = self._order_for(self.epoch)
        return pad_batch([self.tokens[i] for i in picked[self.rank_slice]], self.pad_index)


def batches_in_order(tokens: list[torch.Tensor], batch_size: int, pad_index: int):
    """Fixed-order padded batches for evaluation, sorted by length to waste little on padding."""
    order = sorted(range(len(tokens)), key=lambda i: len(tokens[i]))
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        yield index, *pad_batch([tokens[i] for i in index], pad_index)
