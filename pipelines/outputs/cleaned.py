"""The reader of `clean`'s folder: what every later stage loads once, outside any loop."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipelines.core.context import IMAGE
from pipelines.core.io import load_array, read_json


class CleanData:
    """What later stages read from `clean`'s folder (loaded once, outside any loop)."""

    def __init__(self, folder: Path):
        folder = Path(folder)
        self.meta = read_json(folder / "meta.json")
        self.y = load_array(folder / "target.npy")
        self.folds = load_array(folder / "folds.npy")
        # folds.adversarial: CV scores only these rows (the most test-like); None: every row
        rows = folder / "score_rows.npy"
        self.score_rows = load_array(rows) if rows.is_file() else None
        self.test_ids = pd.read_csv(folder / "test_ids.csv")[self.meta["id"]]
        if self.meta["modality"] == IMAGE:
            self.X = load_array(folder / "train_x.npy")
            self.X_test = load_array(folder / "test_x.npy")
        else:
            self.X = pd.read_parquet(folder / "train.parquet")
            self.X_test = pd.read_parquet(folder / "test.parquet")

    @property
    def task(self) -> str:
        return self.meta["task"]

    @property
    def n_splits(self) -> int:
        return int(self.folds.max()) + 1
