"""Upper bounds on numbers a user can ask for, so that a typo (`--n 100000000000`) ends in one line, not
an attempt to allocate terabytes or a crash deep inside torch.

The bounds are far above any sensible run; each message states the bound it enforces.
"""

from __future__ import annotations

import numbers

from protein_sedd.errors import UserError

MAX_DESIGNS = 10_000_000
MAX_SAMPLING_STEPS = 100_000
MAX_BATCH_SIZE = 65_536
MAX_T_SAMPLES = 10_000
MAX_TRAIN_STEPS = 1_000_000_000
# design feeds its seed to numpy's SeedSequence and torch.manual_seed (< 2**64); training and evaluate
# multiply theirs (seed * 1_000_003 + epoch, seed * 7919 + batch) before seeding, hence the lower bound
MAX_DESIGN_SEED = 2**63 - 1
MAX_SEED = 2**32 - 1
MAX_TOKENS_PER_BATCH = 10_000_000
MAX_CHUNK_SIZE = 1_000_000


def check_int(field: str, value: int, low: int, high: int) -> None:
    """Parameter `field`'s `value` must be a whole number in [low, high]; the message names both ends."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise UserError(f"{{{field}}} {value!r}: must be a whole number in {low}..{high:_}", field=field)
    if not low <= value <= high:
        raise UserError(f"{{{field}}} {value}: must be in {low}..{high:_}", field=field)
