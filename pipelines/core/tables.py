"""Row selection that works alike on the two kinds of feature table: a DataFrame (tabular)
and an array (images, n x C x H x W); and the column names every library takes.

A user's column may be called anything a CSV header holds (`sib,sp:"x"`, `a[0]`, `Größe`),
but LightGBM refuses JSON's special characters in a feature name and XGBoost `[`, `]` and
`<`: what a library sees goes through `safe_names` (ASCII letters, digits and `_`, unique),
while every output (drift.json, roles, exports) keeps the user's names."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

UNSAFE = re.compile(r"[^0-9A-Za-z_]")


def take_rows(X, idx: np.ndarray):
    """Rows `idx` of a DataFrame (by position) or of an array."""
    return X.iloc[idx] if isinstance(X, pd.DataFrame) else X[idx]


def safe_names(names) -> list[str]:
    """Each name with every character but ASCII letters, digits and `_` replaced by `_`, made
    unique by its position where two would meet (`a b` and `a_b`); same names in, same out."""
    out: list[str] = []
    seen: set[str] = set()
    for i, name in enumerate(names):
        safe = UNSAFE.sub("_", str(name)) or "_"
        if safe in seen:
            safe = f"{safe}__{i}"
        while safe in seen:
            safe += "_"
        seen.add(safe)
        out.append(safe)
    return out


def with_safe_names(frame: pd.DataFrame) -> pd.DataFrame:
    """The same frame, its columns renamed by `safe_names` (for a library that reads them)."""
    return frame.set_axis(safe_names(frame.columns), axis=1)
