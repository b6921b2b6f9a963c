"""Early stopping on the validation bound (`trainer.patience`).

A run stops once `patience` scheduled validations in a row (steps that are multiples of
`trainer.val_every`) have not lowered the best validation bound seen so far; 0 turns it off. Only scheduled
validations count: the extra one at a run's last step (`--max-steps`) is not a check, so a run stopped there
and resumed counts exactly as an uninterrupted one does.

The count lives in the training state (`trainer_state.pt`, key "early_stopping"), not in metrics.csv: the
log is rank 0's and a user's to edit, while the state travels with the weights it describes. `patience`
itself is read from the config, so `--resume trainer.patience=N` may lengthen or shorten the wait. The
checkpoint of a stopped run is its last step's, at most `patience * val_every` steps past the best one
(its step and bound are printed and in metrics.csv); with `trainer.keep_best` (the default) the best one's
EMA weights are in `RUN/best/`, written at each scheduled validation that lowers the bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class EarlyStopping:
    best: float = math.inf  # the lowest scheduled validation bound (bits/residue) so far
    best_step: int = 0  # the step that reached it (0: none yet)
    bad_checks: int = 0  # scheduled validations since then that did not lower it

    def update(self, step: int, value: float) -> bool:
        """Count the scheduled validation at `step` with bound `value` (lower is better); True when it
        is the new best."""
        if value < self.best:
            self.best, self.best_step, self.bad_checks = value, step, 0
            return True
        self.bad_checks += 1
        return False

    def should_stop(self, patience: int) -> bool:
        return patience > 0 and self.bad_checks >= patience

    def state_dict(self) -> dict:
        return {"best": self.best, "best_step": self.best_step, "bad_checks": self.bad_checks}

    def load_state_dict(self, state: dict) -> None:
        self.best = float(state["best"])
        self.best_step, self.bad_checks = int(state["best_step"]), int(state["bad_checks"])


def check_early_stopping_state(state) -> str | None:
    """What is wrong with a stored early-stopping state, or None when it has the right shape."""
    if not isinstance(state, dict):
        return f"a {type(state).__name__}, expected a mapping"
    best = state.get("best")
    if isinstance(best, bool) or not isinstance(best, (int, float)) or math.isnan(best):
        return "'best' must be a number"
    for key in ("best_step", "bad_checks"):
        if type(state.get(key)) is not int or state[key] < 0:
            return f"{key!r} must be a whole number >= 0"
    return None
