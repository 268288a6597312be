"""Row selection that works alike on the two kinds of feature table: a DataFrame (tabular)
and an array (images, n x C x H x W)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def take_rows(X, idx: np.ndarray):
    """Rows `idx` of a DataFrame (by position) or of an array."""
    return X.iloc[idx] if isinstance(X, pd.DataFrame) else X[idx]
