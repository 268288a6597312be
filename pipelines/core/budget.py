"""The optional time budget (params `budget`: seconds per competition, download and clean
aside), shared out between the stages that can spend more or less: tune 12%, train 58%,
distill 18%; the other 12% is left for what cannot be planned (the zoo and ensemble stages,
DVC's own hashing). A stage's clock starts with its process, so its imports count. Each stage
plans within its own share, like AutoGluon's `time_limit`:

- tune: each model's study stops at its part of the share (Optuna's `timeout`), and a
  trial's fits end with it;
- train: every fit trains for its part of what is left (`Deadline.fit_seconds`: an even
  part, less what predicting cost the fits before it): a torch fit stops between batches,
  within its first epoch if need be; boosting stops adding trees and skips its final fit
  on all rows when that would not end in time. The first model always trains; a later one
  is skipped when the share is spent, or when its first folds project past what is left;
- distill: the student is trained the same way, and skipped the same way; ensemble then
  blends the teachers alone.

What a stage left out or cut is printed and written to its outputs (`cv.json`'s `left_out`
and `budget_cuts`, `distill`'s `left_out.json`), and `details.json` gathers it. A budget
makes results depend on the machine's speed, as `tune.timeout` does: reproducible runs
leave it null.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

SHARES = {"tune": 0.12, "train": 0.58, "distill": 0.18}  # the rest: zoo, ensemble and DVC's own work
FIRST_FIT_SHARE = 0.75  # of its part, what a fit trains for before any fit measured what predicting costs


def stage_seconds(budget: float | None, stage: str) -> float | None:
    """A stage's share of the budget in seconds (None: no budget)."""
    return None if budget is None else budget * SHARES[stage]


class OverBudget(Exception):  # noqa: N818 (a signal between a stage and its fold callback, not an error)
    """A model would not finish within what is left of its stage's share."""


def process_start() -> float:
    """`time.monotonic()` when this process started, so a stage's share also pays for its
    imports (torch, timm: seconds); now where /proc is missing."""
    try:
        stat = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started = int(stat[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time, clock ticks after boot
        age = float(Path("/proc/uptime").read_text().split()[0]) - started
    except (OSError, ValueError, IndexError):
        age = 0.0
    return time.monotonic() - min(max(age, 0.0), 60.0)  # a stage is never charged more than a minute


@dataclass
class Deadline:
    seconds: float | None  # the stage's share; None: no budget
    start: float = field(default_factory=time.monotonic)
    overheads: list[float] = field(default_factory=list)  # per finished fit: seconds beyond training (predicting)
    last_cut: bool = False  # whether the budget cut the last finished fit's training

    def fit_seconds(self, fits: int) -> float | None:
        """Training seconds for the next of `fits` fits still to run in this stage: an even
        part of what is left once each of them has paid what predicting cost the fits so far
        (None: no budget)."""
        part = self.share(fits)
        if part is None:
            return None
        if not self.overheads:  # nothing measured yet: the rest of a fit's part is kept for predicting
            return FIRST_FIT_SHARE * part
        return max(part - sum(self.overheads) / len(self.overheads), 0.0)

    def note_fit(self, overhead: float, cut: bool) -> None:
        """A finished fit spent `overhead` seconds outside training (its predictions), and
        the budget cut its training (`cut`: it keeps to its part, so the fits after it will too)."""
        self.overheads.append(overhead)
        self.last_cut = cut

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
        project the remaining ones past the time left. When the budget cut the last fold's
        training, the fits keep to their parts of what is left: only what the latest cost
        beyond training (predicting) is projected, from the second fold on (the first pays
        one-off costs: imports, warm-up)."""
        start = time.monotonic()

        def on_fold(k: int, _score: float) -> None:
            done = k + 1
            took = time.monotonic() - start
            fixed = self.last_cut and self.overheads
            if fixed and done < 2:
                return
            rest = (self.overheads[-1] if fixed else took / done) * (total - done)
            if self.seconds is not None and done < total and rest > self.left():
                raise OverBudget(
                    f"{what}: {done} of {total} folds took {took:.0f}s; the rest would take {rest:.0f}s "
                    f"with {max(self.left(), 0):.0f}s of the budget left"
                )

        return on_fold


class FitClock:
    """One torch fit's time budget (`ctx.fit_seconds`; None: none), on the loop's epoch
    history (per epoch its "seconds"; a resumed fit has spent those already).

    Between epochs the fit stops when one more, as long as the longest so far, would end
    past the budget (like early stopping: the best weights are kept). Within an epoch
    (`stop_at`, a `time.monotonic()`) it stops between two batches once the budget is spent,
    so an epoch longer than the whole budget (large data) sees only part of its rows; not
    under torchrun (`world` > 1: every rank must step the same batches)."""

    def __init__(self, seconds: float | None, history: list[dict], world: int = 1):
        self.seconds, self.cut = seconds, False
        spent = sum(h["seconds"] for h in history)
        self.stop_at = None if seconds is None or world > 1 else time.monotonic() + seconds - spent

    def stops(self, history: list[dict], out_of_patience: bool) -> bool:
        """Whether the fit ends before another epoch: early stopping, or the budget."""
        seconds = [h["seconds"] for h in history]
        over = self.seconds is not None and bool(seconds) and sum(seconds) + max(seconds) > self.seconds
        self.cut = over and not out_of_patience
        return out_of_patience or over

    def within_epoch(self, share: float) -> bool:
        """Whether the epoch just ended was stopped by the budget (`share` of its batches < 1)."""
        self.cut = self.cut or share < 1.0
        return share < 1.0

    def note(self, history: list[dict], epochs: int) -> str | None:
        """What the budget cut, in words (None: nothing): the epochs the fit ran, and the
        share of the last one's batches when it stopped within it."""
        if not self.cut:
            return None
        share = history[-1].get("rows_share", 1.0) if history else 1.0
        part = f" ({share:.0%} of its batches)" if share < 1.0 else ""
        return f"{len(history)} of {epochs} epochs{part}"
