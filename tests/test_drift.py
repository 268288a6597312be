"""Adversarial validation (`features/drift.py`): train and test carved at random look alike;
a carve whose test rows are all first-class passengers does not, and `clean` says so."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd

from pipelines.__main__ import main
from pipelines.features.drift import WARN_AUC, adversarial_validation
from pipelines.features.tabular import build_features
from pipelines.sources.embedded import get_embedded


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
