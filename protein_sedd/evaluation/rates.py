"""Rates with honest error bars: the 95% Wilson score interval, overall and per length bin.

For k successes in n trials, with p = k/n and z = 1.96, the Wilson interval is

    (p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)

It stays inside [0, 1] and keeps sensible coverage at small n and at rates near 0 or 1 (300 designs with
a 97% pass rate, or 5 designs in a length bin), where the textbook p ± z sqrt(p(1-p)/n) interval fails.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Z95 = 1.959963984540054
LENGTH_BIN = 20  # residues per length bin: 60-79, 80-99, ...


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """(low, high) of the Wilson score interval; (0, 1) when n is 0 (nothing is known)."""
    if not 0 <= successes <= n:
        raise ValueError(f"{successes} successes out of {n} trials")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    denominator = 1 + z * z / n
    return max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator)


def rate(flags: Sequence[bool]) -> dict:
    """{"rate", "ci95": [low, high], "count", "n"} of a list of yes/no outcomes (rate null when n is 0)."""
    n, count = len(flags), int(sum(bool(f) for f in flags))
    low, high = wilson_interval(count, n)
    return {"rate": count / n if n else None, "ci95": [low, high], "count": count, "n": n}


def rates_by_length(lengths: Sequence[int], flags: Sequence[bool], width: int = LENGTH_BIN) -> list[dict]:
    """`rate` per length bin of `width` residues, in increasing length; bins without designs are left out."""
    bins: dict[int, list[bool]] = {}
    for length, flag in zip(lengths, flags, strict=True):
        bins.setdefault(length // width, []).append(bool(flag))
    return [{"lengths": f"{b * width}-{b * width + width - 1}", **rate(bins[b])} for b in sorted(bins)]
