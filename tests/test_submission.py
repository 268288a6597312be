"""Submissions (`outputs/submission.py`, written by `ensemble`): the sample's ids, columns and
order, with the ids written exactly as the sample writes them."""

from __future__ import annotations

import pandas as pd

from pipelines.sources.embedded import get_embedded
from tests.conftest import play_stages, titanic_folder


def test_ids_keep_their_leading_zeros(tmp_path):
    full = get_embedded("titanic").load()
    full["PassengerId"] = full["PassengerId"].map("{:05d}".format)  # '00001': a number to pandas
    raw = tmp_path / "raw"
    spec = {**titanic_folder(raw, full), "metric": "accuracy"}
    params = {"competitions": {"padded": spec}, "folds": {"n_splits": 3}, "tune": {"n_trials": 0},
              "train": {"models": {"tabular": ["logreg"]}}}  # fmt: skip
    d = play_stages(tmp_path, "padded", params, raw)
    text = (d["out"] / "submission.csv").read_text().splitlines()
    assert text[0] == "PassengerId,Survived" and text[1].startswith("00601,") and len(text) == 292
    sub = pd.read_csv(d["out"] / "submission.csv", dtype={"PassengerId": str})
    assert sub["PassengerId"].tolist() == full["PassengerId"].iloc[600:].tolist()
    assert set(sub["Survived"]) <= {0, 1}
