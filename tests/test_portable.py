"""Serving rebuilds a raw row's model inputs without pickle: the clean-time feature recipe
(`features/tabular.py`) and the fitted preprocessor as JSON (`features/portable.py`).

On the embedded Titanic and House Prices splits: the recipe, round-tripped through JSON and
applied to test.csv's rows one batch at a time (also one row at a time, and from JSON-typed
rows), gives clean's test features exactly; the JSON preprocessor gives scikit-learn's
outputs (binary and multiclass target encoding, unseen levels and keys, missing values).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipelines.core.context import ModelContext
from pipelines.core.errors import PipelineError
from pipelines.core.metrics import get_metric
from pipelines.features.portable import Portable, preprocessor_state
from pipelines.features.preprocess import make_preprocessor
from pipelines.features.tabular import apply_features, build_features, fit_features, typed_inputs
from pipelines.sources.embedded import carve

SPLITS = {"titanic": ("PassengerId", "Survived"), "house-prices-advanced-regression-techniques": ("Id", "SalePrice")}


@pytest.fixture(scope="module", params=list(SPLITS))
def split(request):
    frames = carve(request.param)
    id_col, target = SPLITS[request.param]
    return frames["train.csv"], frames["test.csv"], id_col, target


def _json_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """What a client posts: test.csv's rows through JSON (NaN as null, numbers as numbers)."""
    rows = json.loads(frame.to_json(orient="records"))
    return pd.DataFrame(rows, columns=frame.columns)


def test_recipe_rebuilds_clean_features_from_raw_rows(split):
    train, test, id_col, target = split
    X, X_test, roles = build_features(train, test, id_col, target)
    recipe = json.loads(json.dumps(fit_features(train, test, id_col, target)))  # plain JSON survives
    raw = typed_inputs(recipe, _json_rows(test.drop(columns=[id_col])))
    served, served_roles = apply_features(recipe, raw)
    assert served_roles == roles
    pd.testing.assert_frame_equal(served.reset_index(drop=True), X_test, check_exact=True)
    one = apply_features(recipe, raw.iloc[[7]])[0]  # a row alone gets the features it got in a batch
    pd.testing.assert_frame_equal(one.reset_index(drop=True), X_test.iloc[[7]].reset_index(drop=True))
    assert list(recipe["inputs"]) == [c for c in test.columns if c != id_col]


def _ctx(task: str, n_classes: int, roles) -> ModelContext:
    return ModelContext(task=task, metric=get_metric("accuracy"), n_classes=n_classes, roles=roles, seed=3)


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_portable_preprocessor_matches_sklearn(split, task):
    train, test, id_col, target = split
    X, X_test, roles = build_features(train, test, id_col, target)
    y = train[target].to_numpy()
    y = (y > np.median(y)).astype(int) if task == "binary" else pd.qcut(y, 3, labels=False, duplicates="drop")
    n_classes = int(np.max(y)) + 1
    ct = make_preprocessor(_ctx(task, n_classes, roles))
    ct.fit_transform(X, y)
    state = json.loads(json.dumps(preprocessor_state(ct)))
    portable = Portable(state)
    # unseen values too: a new key, a level the fold never saw, missing numbers and categories
    odd = X_test.iloc[:4].copy()
    for col in roles.get("key", []):
        odd[col] = pd.Series(["never-seen", None, "x", "y"], dtype="string").to_numpy()
    for col in roles.get("categorical", [])[:2]:
        odd[col] = pd.Categorical([None, "__rare__", None, None], categories=X[col].cat.categories)
    odd[roles["numeric"][0]] = np.nan
    for rows in (X_test, odd):
        expected = np.asarray(ct.transform(rows), dtype=np.float32)
        got = portable.transform(rows)
        assert got.shape == expected.shape == (len(rows), portable.width)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_portable_refuses_other_formats_and_unknown_parts(split):
    train, test, id_col, target = split
    X, _, roles = build_features(train, test, id_col, target)
    y = (train[target].to_numpy() > train[target].median()).astype(int)
    ct = make_preprocessor(_ctx("binary", 2, roles))
    ct.fit(X, y)
    state = preprocessor_state(ct)
    with pytest.raises(PipelineError, match="format"):
        Portable({**state, "format": 99})
    ct_trees = make_preprocessor(_ctx("binary", 2, roles), scale=False)
    ct_trees.fit(X, y)
    with pytest.raises(PipelineError, match="NumericCleaner"):
        preprocessor_state(ct_trees)


def test_portable_one_hot_with_a_category_missing_in_every_fitted_row():
    # a fold can see a categorical as NaN only (House Prices' pool quality): its one level is NaN
    levels = ["a", "b", "__rare__"]
    frame = pd.DataFrame(
        {
            "x": np.arange(40, dtype=np.float32),
            "c": pd.Categorical(["a", "b"] * 20, categories=levels),
            "empty": pd.Categorical([None] * 40, categories=levels),
        }
    )
    roles = {"numeric": ["x"], "categorical": ["c", "empty"]}
    ct = make_preprocessor(_ctx("binary", 2, roles))
    ct.fit(frame, np.arange(40) % 2)
    portable = Portable(json.loads(json.dumps(preprocessor_state(ct))))
    rows = frame.iloc[:4].assign(empty=pd.Categorical(["a", None, "b", None], categories=levels))
    np.testing.assert_allclose(portable.transform(rows), np.asarray(ct.transform(rows), np.float32), atol=1e-6)
