"""Any competition from its spec alone: a tiny regression and a tiny multiclass (qwk) one.

Synthetic data in Kaggle layout (a `local` folder), one real `dvc repro` for both, on the
same default model list: `logreg` must turn into `ridge` for the regression task by itself.
"""

import json

import numpy as np
import pandas as pd
import yaml

from pipelines.metrics import get_metric
from tests.conftest import run, tiny_params

QUALITY = np.array(["Po", "Fa", "TA", "Gd", "Ex"])


def write_layout(folder, train: pd.DataFrame, test: pd.DataFrame, id_col: str, target: str, filler) -> None:
    folder.mkdir(parents=True)
    train.to_csv(folder / "train.csv", index=False)
    test.drop(columns=[target]).to_csv(folder / "test.csv", index=False)
    pd.DataFrame({id_col: test[id_col], target: filler}).to_csv(folder / "sample_submission.csv", index=False)


def houses(n: int, seed: int = 0) -> pd.DataFrame:
    """Prices: skewed, positive, driven by area, an ordinal quality scale and a district."""
    rng = np.random.default_rng(seed)
    quality = rng.integers(0, 5, n)
    area = rng.lognormal(7, 0.4, n)
    district = rng.choice(["north", "south", "east", "west"], n)
    price = np.exp(10 + 0.8 * np.log(area) / 7 + 0.25 * quality + (district == "north") * 0.3 + rng.normal(0, 0.1, n))
    frame = pd.DataFrame({"Id": np.arange(1, n + 1), "Area": area.round(1), "Quality": QUALITY[quality]})
    frame["District"] = district
    frame.loc[rng.random(n) < 0.05, "Area"] = np.nan
    frame["Price"] = price.round(0)
    return frame


def ratings(n: int, seed: int = 1) -> pd.DataFrame:
    """An ordered 1..4 rating from two numbers and a level scale (a QWK competition)."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    level = rng.choice(["low", "medium", "high"], n)
    latent = x1 + 0.5 * x2 + (level == "high") * 0.8 - (level == "low") * 0.8 + rng.normal(0, 0.5, n)
    frame = pd.DataFrame({"row_id": np.arange(n), "x1": x1.round(4), "x2": x2.round(4), "level": level})
    frame["rating"] = np.digitize(latent, [-1.0, 0.0, 1.0]) + 1
    return frame


def test_regression_and_multiclass_from_spec_alone(dvc_repo, tmp_path):
    hp, rt = houses(400), ratings(500)
    write_layout(tmp_path / "prices", hp.iloc[:300], hp.iloc[300:], "Id", "Price", 1.0)
    write_layout(tmp_path / "ratings", rt.iloc[:380], rt.iloc[380:], "row_id", "rating", 1)
    regression = {"id": "Id", "target": "Price", "task": "regression", "metric": "rmsle"}
    ordered = {"id": "row_id", "target": "rating", "task": "multiclass", "metric": "qwk"}
    params = tiny_params(
        prices={"source": "local", "path": str(tmp_path / "prices"), **regression},
        ratings={"source": "local", "path": str(tmp_path / "ratings"), **ordered},
    )
    params["train"]["models"]["tabular"] = ["lightgbm", "logreg"]
    params["tune"]["n_trials"] = 2
    (dvc_repo / "params.yaml").write_text(yaml.safe_dump(params))
    run(["dvc", "repro"], dvc_repo, env={"PIPELINES_PROGRESS": ""}, timeout=600)

    # regression: values, RMSLE per model and for the ensemble; logreg became ridge
    out = dvc_repo / "submissions/prices"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["metric"] == "rmsle"
    assert set(metrics["models"]) == {"lightgbm", "ridge", "distill:student"}
    y = np.load(dvc_repo / "data/clean/prices/target.npy")
    assert metrics["cv"] == get_metric("rmsle")(y, np.load(out / "oof.npy"), "regression")
    assert metrics["cv"] < 0.2 and metrics["models"]["ridge"] < 0.2  # noise alone is 0.1
    sub = pd.read_csv(out / "submission.csv")
    assert list(sub.Id) == list(hp.Id.iloc[300:]) and (sub.Price > 0).all()
    truth = hp.Price.iloc[300:].to_numpy()
    assert get_metric("rmsle")(truth, sub.Price.to_numpy(), "regression") < 0.2
    assert (out / "plots/residuals.csv").exists() and (out / "plots/regression.png").stat().st_size > 1000
    features = pd.read_parquet(dvc_repo / "data/clean/prices/train.parquet")
    assert "Quality__ord" in features and set(features["Quality__ord"]) <= {1.0, 2.0, 3.0, 4.0, 5.0}

    # multiclass scored by qwk: labels from thresholds fitted on OOF predictions
    out = dvc_repo / "submissions/ratings"
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["models"]) == {"lightgbm", "logreg", "distill:student"}
    assert any(m.endswith("+thresholds") for m in metrics["methods_nested_cv"])
    y = np.load(dvc_repo / "data/clean/ratings/target.npy")
    assert metrics["cv"] == get_metric("qwk")(y, np.load(out / "oof.npy"), "multiclass")
    assert metrics["cv"] > 0.7
    sub = pd.read_csv(out / "submission.csv")
    assert list(sub.columns) == ["row_id", "rating"] and set(sub.rating) <= {1, 2, 3, 4}
    truth = rt.rating.iloc[380:].to_numpy()
    assert get_metric("qwk")(truth, sub.rating.to_numpy().astype(float), "regression") > 0.7


def test_ensemble_thresholds_for_a_rating_scored_as_regression():
    """A regression target scored by qwk: blends are cut into the target's own levels, with
    cuts fitted on the training folds only (nested), and beat plain rounding."""
    from pipelines.ensembling import candidate_methods, nested_oof

    rng = np.random.default_rng(0)
    y = rng.integers(1, 6, 1500).astype(float)
    shrunk = [3 + 0.5 * (y - 3) + rng.normal(0, 0.4, len(y)) for _ in range(2)]  # two models, both timid
    folds = np.arange(len(y)) % 5
    qwk = get_metric("qwk")
    methods = candidate_methods(["mean"], qwk, "regression", 10, 0)
    assert set(methods) == {"mean", "mean+thresholds"}
    plain = nested_oof(lambda tr, yy, ap: methods["mean"](tr, yy, ap)[0], shrunk, y, folds)
    cut = nested_oof(lambda tr, yy, ap: methods["mean+thresholds"](tr, yy, ap)[0], shrunk, y, folds)
    assert set(np.unique(cut)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert qwk(y, cut, "regression") > qwk(y, plain, "regression") + 0.02


def test_house_prices_with_kaggles_real_test_set():
    """`kaggle: house-prices-kaggle-test`: all labelled rows to train on, Kaggle's own test.csv
    to submit; no hidden answers, so the offline leaderboard says to upload instead."""
    import pytest

    from pipelines.embedded import carve, hidden_answers
    from pipelines.errors import PipelineError

    parts = carve("house-prices-kaggle-test")
    train, test, sample = parts["train.csv"], parts["test.csv"], parts["sample_submission.csv"]
    assert len(train) == 1460 and len(test) == 1459 and "SalePrice" not in test
    assert list(sample.columns) == ["Id", "SalePrice"] and list(sample.Id) == list(test.Id) == list(range(1461, 2920))
    assert list(test.columns) == [c for c in train.columns if c != "SalePrice"]
    with pytest.raises(PipelineError, match="upload its submission.csv on Kaggle"):
        hidden_answers("house-prices-kaggle-test")
