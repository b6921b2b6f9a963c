"""A natural baseline for design metrics: natural sequences with the designs' length distribution.

Every rate of a design run (family pass, pLDDT success, low complexity) depends on length, so it is read
against natural sequences of the same lengths: each design length takes an unused natural of the nearest
length (order fixed by a seeded shuffle, so ties are broken the same way every run); only when there are
more designs than naturals is a natural used twice.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence


def length_matched(pool: Sequence[str], lengths: Sequence[int], seed: int = 0) -> list[str]:
    """One sequence of `pool` per entry of `lengths`, of the nearest length, without reuse while possible."""
    candidates = list(dict.fromkeys(pool))
    if not candidates:
        return []
    random.Random(seed).shuffle(candidates)
    candidates.sort(key=len)  # stable: equal lengths keep their shuffled order
    sorted_lengths = [len(s) for s in candidates]
    used: set[int] = set()
    chosen = []
    for length in lengths:
        if len(used) == len(candidates):
            used.clear()  # more designs than naturals: start reusing them
        start = bisect.bisect_left(sorted_lengths, length)
        pick = next(
            c
            for step in range(len(candidates) + 1)  # nearest unused length, looking outwards
            for c in (start + step, start - step - 1)
            if 0 <= c < len(candidates) and c not in used
        )
        used.add(pick)
        chosen.append(candidates[pick])
    return chosen
