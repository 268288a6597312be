"""Tabular features and models: every registered tabular model on tiny data, every task."""

import numpy as np
import pandas as pd
import pytest

from pipelines.cv import cross_validate
from pipelines.features.tabular import build_features
from pipelines.metrics import get_metric
from pipelines.models.registry import ModelContext, create_model, get_entry, list_models
from pipelines.models.tabular import GroupTargetEncoder
from pipelines.errors import PipelineError
from pipelines.stages.clean import make_folds

METRIC = {"binary": "roc_auc", "multiclass": "logloss", "regression": "rmse"}


def synthetic(task: str, n: int = 240, seed: int = 0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "id": np.arange(n),
            "x1": rng.normal(size=n),
            "x2": rng.normal(size=n),
            "colour": rng.choice(["red", "green", "blue"], n),
            "group": rng.integers(0, 60, n).astype(str),
            "when": pd.date_range("2020-01-01", periods=n, freq="D").astype(str),
        }
    )
    frame.loc[rng.random(n) < 0.1, "x2"] = np.nan
    signal = frame["x1"] + (frame["colour"] == "red") * 1.5
    if task == "regression":
        frame["y"] = 10 + signal * 2 + rng.normal(0, 0.3, n)
    elif task == "binary":
        frame["y"] = (signal + rng.normal(0, 0.5, n) > 0.5).astype(int)
    else:
        frame["y"] = np.digitize(signal, [-0.5, 0.5, 1.5])
    return frame


def prepared(task):
    frame = synthetic(task)
    train, test = frame.iloc[:200], frame.iloc[200:].drop(columns="y")
    X, X_test, roles = build_features(train, test, "id", "y")
    y = train["y"].to_numpy()
    return X, X_test, y, roles


def test_build_features_types_columns():
    X, X_test, y, roles = prepared("binary")
    assert "colour" in roles["categorical"] and X["colour"].dtype == "category"
    assert "group" in roles["key"] and "group__count" in roles["numeric"]
    assert {"when__year", "when__dayofweek", "x2__missing"} <= set(roles["numeric"])
    assert "id" not in X and "y" not in X
    assert list(X.columns) == list(X_test.columns)


def test_group_target_encoder_never_sees_own_label():
    X = pd.DataFrame({"k": ["a"] * 10 + ["b"] * 10})
    y = np.array([1] * 10 + [0] * 10)
    enc = GroupTargetEncoder(smoothing=0.0, n_splits=5, random_state=0)
    out = enc.fit_transform(X, y)
    assert np.allclose(out[:10, 0], 1.0) and np.allclose(out[10:, 0], 0.0)
    assert (out[:, 1] <= 9).all() and (out[:, 1] >= 5).all()  # a row never counts itself
    test = enc.transform(pd.DataFrame({"k": ["a", "zz"]}))
    assert test[0, 0] == 1.0 and test[1, 1] == 0  # unseen key: prior, count 0


TORCH = {"mlp", "student_mlp"}  # covered by tests/test_torch_models.py


@pytest.mark.parametrize(
    "name, task",
    [(m, t) for m in list_models(modality="tabular") if m not in TORCH for t in get_entry(m).tasks],
)
def test_every_tabular_model_fits_each_task(name, task):
    X, X_test, y, roles = prepared(task)
    ctx = ModelContext(task=task, metric=get_metric(METRIC[task]), n_classes=4 if task == "multiclass" else (2 if task == "binary" else 1), roles=roles, progress=False)
    model = create_model(name, ctx).fit(X.iloc[:150], y[:150], eval_set=(X.iloc[150:], y[150:]))
    out = model.predict_output(X_test)
    expected = {"binary": (40,), "multiclass": (40, 4), "regression": (40,)}[task]
    assert out.shape == expected and np.isfinite(out).all()
    score = ctx.metric(y[150:], model.predict_output(X.iloc[150:]), task)
    assert (score > 0.75) if task == "binary" else (score < (1.0 if task == "multiclass" else 2.5))


def test_cv_score_equals_metric_of_oof():
    X, X_test, y, roles = prepared("binary")
    ctx = ModelContext(task="binary", metric=get_metric("accuracy"), n_classes=2, roles=roles, progress=False)
    folds = make_folds(y, "binary", 4, seed=1)
    res = cross_validate("logreg", {}, X, y, X_test, folds, ctx)
    assert res.score == ctx.metric(y, res.oof, "binary")
    assert len(res.fold_scores) == 4 and res.test.shape == (len(X_test),)


def test_registry_rejects_unknown_names_and_params():
    ctx = ModelContext(task="binary", metric=get_metric("accuracy"))
    with pytest.raises(PipelineError, match="unknown model 'xgboost'"):
        create_model("xgboost", ctx)
    with pytest.raises(PipelineError, match="unknown parameter"):
        create_model("logreg", ctx, depth=3)
    with pytest.raises(PipelineError, match="does not support task 'regression'"):
        create_model("logreg", ModelContext(task="regression", metric=get_metric("rmse")))
