"""The optional time budget (params `budget`: seconds per competition), shared out between
the stages that can spend more or less: tune 15%, train 65%, distill 20% (download, clean
and ensemble take seconds). Each stage plans within its own share, like AutoGluon's
`time_limit`:

- tune: each model's study stops at its part of the share (Optuna's `timeout`);
- train: the first model always trains; a later one is skipped when the share is spent, or
  when its first folds project past what is left; a torch fit stops after the epoch that
  would overrun its part (the best weights so far are kept, as with early stopping);
- distill: the student is skipped the same way; ensemble then blends the teachers alone.

What a stage left out is printed and written to its outputs (`cv.json`'s `left_out`,
`distill`'s `left_out.json`), and `details.json` gathers it. A budget makes results depend on
the machine's speed, as `tune.timeout` does: reproducible runs leave it null.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

SHARES = {"tune": 0.15, "train": 0.65, "distill": 0.20}


def stage_seconds(budget: float | None, stage: str) -> float | None:
    """A stage's share of the budget in seconds (None: no budget)."""
    return None if budget is None else budget * SHARES[stage]


class OverBudget(Exception):  # noqa: N818 (a signal between a stage and its fold callback, not an error)
    """A model would not finish within what is left of its stage's share."""


@dataclass
class Deadline:
    seconds: float | None  # the stage's share; None: no budget
    start: float = field(default_factory=time.monotonic)

    def guard(self, what: str, fits: int):
        """`fold_check`'s callback when there is a budget, else None (nothing to check)."""
        return None if self.seconds is None else self.fold_check(what, fits)

    def left(self) -> float:
        return math.inf if self.seconds is None else self.seconds - (time.monotonic() - self.start)

    def spent(self) -> bool:
        return self.left() <= 0

    def share(self, parts: int) -> float | None:
        """An even part of what is left, for one of `parts` fits still to run (None: no budget)."""
        return None if self.seconds is None else max(self.left(), 0.0) / max(parts, 1)

    def fold_check(self, what: str, total: int):
        """An `on_fold(k, score)` callback that raises OverBudget once the folds done so far
        project the remaining ones past the time left."""
        start = time.monotonic()

        def on_fold(k: int, _score: float) -> None:
            done = k + 1
            took = time.monotonic() - start
            rest = took / done * (total - done)
            if self.seconds is not None and done < total and rest > self.left():
                raise OverBudget(
                    f"{what}: {done} of {total} folds took {took:.0f}s; the rest would take {rest:.0f}s "
                    f"with {max(self.left(), 0):.0f}s of the budget left"
                )

        return on_fold
