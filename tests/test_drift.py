"""Adversarial validation (`features/drift.py`): train and test carved at random look alike;
a carve whose test rows are all first-class passengers does not, and `clean` says so. With
`folds.adversarial`, CV scores only the training rows most like the test set, in every stage."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd

from pipelines.__main__ import main
from pipelines.core.metrics import get_metric
from pipelines.features.drift import WARN_AUC, adversarial_validation, most_test_like
from pipelines.features.tabular import build_features
from pipelines.sources.embedded import get_embedded
from tests.conftest import play_stages


def _titanic_carve(shifted: bool):
    full = get_embedded("titanic").load().drop(columns="Survived")
    rng = np.random.default_rng(0)
    if shifted:
        test_rows = full["Pclass"] == 1
    else:
        test_rows = pd.Series(rng.random(len(full)) < 0.3)
    train, test = full[~test_rows].assign(Survived=0), full[test_rows]
    return build_features(train, test, "PassengerId", "Survived")


def test_a_random_carve_looks_alike_and_a_shifted_one_does_not():
    alike = adversarial_validation(*_titanic_carve(shifted=False))
    assert 0.35 < alike["auc"] < 0.62 and not alike["drift"]
    shifted = adversarial_validation(*_titanic_carve(shifted=True))
    assert shifted["auc"] > 0.9 and shifted["drift"] and shifted["auc"] > WARN_AUC
    names = [f["name"] for f in shifted["features"]]
    assert {"Pclass", "Fare"} & set(names[:2]), names  # the class, or the fare that goes with it


def test_images_are_compared_by_their_pooled_pixels():
    rng = np.random.default_rng(1)
    train = rng.integers(0, 100, size=(300, 1, 28, 28), dtype=np.uint8)
    test = train[:150].copy()
    test[:, :, :14] += 100  # the test images are brighter in their top half
    result = adversarial_validation(train, test)
    assert result["auc"] > 0.95 and result["features"][0]["name"].startswith("pixels_c0_r")
    assert adversarial_validation(train, rng.integers(0, 100, size=(150, 1, 28, 28), dtype=np.uint8))["auc"] < 0.65


def test_clean_writes_drift_json_and_warns(tmp_path, caplog):
    folder = tmp_path / "raw"
    folder.mkdir()
    full = get_embedded("titanic").load()
    test = full[full["Pclass"] == 1]
    full[full["Pclass"] != 1].to_csv(folder / "train.csv", index=False)
    test.drop(columns="Survived").to_csv(folder / "test.csv", index=False)
    test[["PassengerId"]].assign(Survived=0).to_csv(folder / "sample_submission.csv", index=False)
    params = tmp_path / "params.yaml"
    params.write_text(
        "competitions:\n  shifted: {source: local, path: raw, id: PassengerId, target: Survived, task: binary, "
        "metric: accuracy}\n"
    )
    with caplog.at_level(logging.WARNING):
        code = main(["clean", "shifted", "--params", str(params), "--raw", str(folder), "--out", str(tmp_path / "c")])
    assert code == 0
    drift = json.loads((tmp_path / "c" / "drift.json").read_text())
    assert drift["drift"] and drift["rows"] == {"train": 675, "test": 216}
    assert "test rows differ from training rows" in caplog.text and "CV may not predict" in caplog.text


def test_most_test_like_takes_the_share_most_like_test():
    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.2, 0.7])
    mask = most_test_like(scores, 0.5)
    assert mask.tolist() == [False, True, False, True, False, True]
    assert most_test_like(scores, 0.01).sum() == 1 and most_test_like(scores, 1.0).all()
    assert most_test_like(None, 0.3) is None  # nothing to compare: every row counts


def _leaning_carve(folder):
    """Titanic whose test set is mostly first class: 80% of first-class passengers, 10% of the rest."""
    full = get_embedded("titanic").load()
    rng = np.random.default_rng(3)
    test_rows = rng.random(len(full)) < np.where(full["Pclass"] == 1, 0.8, 0.1)
    folder.mkdir()
    full[~test_rows].to_csv(folder / "train.csv", index=False)
    full[test_rows].drop(columns="Survived").to_csv(folder / "test.csv", index=False)
    full[test_rows][["PassengerId"]].assign(Survived=0).to_csv(folder / "sample_submission.csv", index=False)
    return full[~test_rows].reset_index(drop=True)


def test_adversarial_folds_score_cv_on_the_most_test_like_in_every_stage(tmp_path):
    train = _leaning_carve(tmp_path / "raw")
    spec = {"source": "local", "path": str(tmp_path / "raw"), "id": "PassengerId", "target": "Survived",
            "task": "binary", "metric": "accuracy"}  # fmt: skip
    params = {
        "competitions": {"lean": spec},
        "folds": {"n_splits": 3, "adversarial": True, "adversarial_share": 0.25},
        "tune": {"models": ["lightgbm"], "n_trials": 2},
        "train": {"models": {"tabular": ["lightgbm", "logreg"]}},
        "ensemble": {"iterations": 5},
    }
    d = play_stages(tmp_path, "lean", params, tmp_path / "raw")

    rows = np.load(d["clean"] / "score_rows.npy")
    assert rows.dtype == bool and rows.sum() == int(np.ceil(0.25 * len(train)))
    drift = json.loads((d["clean"] / "drift.json").read_text())
    assert drift["score_rows"] == {"share": 0.25, "rows": int(rows.sum())} and drift["rows"]["train"] == len(train)
    # the rows chosen look like the test set: far more first class than the training rows at large
    assert (train["Pclass"][rows] == 1).mean() > 2 * (train["Pclass"] == 1).mean()

    y, folds, accuracy = np.load(d["clean"] / "target.npy"), np.load(d["clean"] / "folds.npy"), get_metric("accuracy")
    oof = np.load(d["train"] / "lightgbm" / "oof.npy")
    scores = json.loads((d["train"] / "lightgbm" / "scores.json").read_text())
    assert scores["cv"] == accuracy(y[rows], oof[rows], "binary") != accuracy(y, oof, "binary")
    assert scores["folds"] == [accuracy(y[(folds == k) & rows], oof[(folds == k) & rows], "binary") for k in range(3)]
    metrics = json.loads((d["out"] / "metrics.json").read_text())
    final = np.load(d["out"] / "oof.npy")
    assert metrics["cv"] == accuracy(y[rows], final[rows], "binary") and metrics["cv_rows"] == rows.sum()
    best = json.loads((d["tune"] / "best_params.json").read_text())["lightgbm"]
    assert 0.5 < best["cv"] <= 1.0  # tuning scored the same rows (its objective is checked in test_tune)
