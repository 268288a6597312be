"""`core/safe_state.py`: every non-torch model of the registry, fitted on a tiny table, written
as JSON and read back, predicts exactly the same numbers; a state naming code that is not on
the allowlist is refused before anything is built."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipelines.core.context import ModelContext
from pipelines.core.errors import PipelineError
from pipelines.core.metrics import get_metric
from pipelines.core.safe_state import check_versions, decode, encode, versions
from pipelines.features.tabular import build_features
from pipelines.models.registry import create_model
from pipelines.sources.embedded import carve

TREES = ("lightgbm", "xgboost", "catboost", "student_gbdt")
SMALL = {"random_forest": {"n_estimators": 5}, "hgb": {"max_iter": 10}, **{t: {"n_estimators": 20} for t in TREES}}


@pytest.fixture(scope="module")
def titanic():
    rows = carve("titanic")["train.csv"].iloc[:300]
    test = rows.iloc[200:].drop(columns="Survived")
    X, X_test, roles = build_features(rows.iloc[:200], test, "PassengerId", "Survived")
    return X, rows["Survived"].to_numpy()[:200], X_test, roles


CASES = [
    ("binary", name)
    for name in ("logreg", "svm", "lightgbm", "xgboost", "catboost", "random_forest", "hgb", "student_gbdt")
] + [("multiclass", "lightgbm_ordinal"), ("multiclass", "xgboost"), ("regression", "ridge"), ("regression", "svm")]


@pytest.mark.parametrize("task, name", CASES)
def test_a_fitted_model_as_json_predicts_the_same(titanic, task, name):
    X, y, X_test, roles = titanic
    k = {"binary": 2, "multiclass": 3, "regression": 1}[task]
    target = {"binary": y, "multiclass": np.where(X["Pclass"].to_numpy() > 2, 2, y), "regression": X["Fare"].fillna(0)}
    metric = get_metric("rmse" if task == "regression" else "accuracy")
    ctx = ModelContext(task=task, metric=metric, n_classes=k, roles=roles, progress=False, threads=1)
    model = create_model(name, ctx, **SMALL.get(name, {})).fit(X, np.asarray(target[task]))
    state = json.loads(json.dumps(encode(model), allow_nan=False))  # plain JSON: no NaN tokens either
    np.testing.assert_array_equal(decode(state).predict_output(X_test), model.predict_output(X_test))
    assert "sklearn" in versions(state)


def test_code_not_on_the_allowlist_is_refused():
    with pytest.raises(PipelineError, match="os:system is not on the list"):
        decode({"$": "function", "name": "os:system"})
    with pytest.raises(PipelineError, match="builtins:eval is not on the list"):
        decode({"$": "object", "class": "builtins:eval", "state": {"$": "dict", "v": []}})
    with pytest.raises(PipelineError, match="subprocess:Popen is not on the list"):
        decode({"$": "reduce", "class": "subprocess:Popen", "args": ["echo hi"], "state": None})
    with pytest.raises(PipelineError, match="function json:loads cannot be written"):
        encode({"f": json.loads})
    with pytest.raises(PipelineError, match="a fitted .*Random cannot be written"):
        import random

        encode(random.Random(0))
    with pytest.raises(PipelineError, match="exported with sklearn 0.1, this environment has"):
        check_versions({"sklearn": "0.1"}, "model.json")
