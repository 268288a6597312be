"""Progress bars for folds, trials, epochs, downloads and image decoding: one helper, one setting.

    progress.configure(params.progress)      # the CLI, once: "auto" | True | False (--[no-]progress wins)
    for k in progress.bar(range(n), desc="lightgbm folds", unit="fold"): ...
    study.optimize(..., show_progress_bar=progress.enabled())

Bars are tqdm's, on stderr, and vanish when done, so each stage's one summary line (stdout)
is all that stays. `auto` shows them when stderr is a terminal: logs of `dvc repro` in CI, in
tests or redirected to a file stay clean. The setting only changes what is drawn, never a
result, like logging's level; so it is a process-wide display setting and no stage lists it in
`dvc.yaml` (toggling it re-runs nothing).
"""

from __future__ import annotations

import sys
from typing import Literal

from tqdm import tqdm

Setting = bool | Literal["auto"]
_setting: list[Setting] = ["auto"]  # one cell: configure() sets it, enabled() reads it


def configure(setting: Setting) -> None:
    """Set the process's progress setting (the CLI does, from params.yaml's `progress` or the flag)."""
    _setting[0] = setting


def enabled() -> bool:
    """Whether bars are drawn: the configured setting, `auto` meaning "stderr is a terminal"."""
    setting = _setting[0]
    return sys.stderr.isatty() if setting == "auto" else bool(setting)


def bar(iterable=None, *, show: bool | None = None, **kw) -> tqdm:
    """A tqdm bar over `iterable` (or of `total` steps, updated by hand), drawn when `show`
    (default: `enabled()`); disabled, it costs nothing and prints nothing."""
    kw.setdefault("leave", False)
    kw.setdefault("dynamic_ncols", True)
    return tqdm(iterable, disable=not (enabled() if show is None else show), **kw)
