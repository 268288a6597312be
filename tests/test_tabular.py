"""Tabular features and models: every registered tabular model on tiny data, every task."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from pipelines.core.context import ModelContext
from pipelines.core.errors import PipelineError
from pipelines.core.metrics import get_metric
from pipelines.features.preprocess import GroupTargetEncoder
from pipelines.features.tabular import build_features
from pipelines.models.registry import create_model, get_entry, list_models
from pipelines.models.selection import models_for
from pipelines.stages.clean import make_folds
from pipelines.training.cv import FoldData, cross_validate

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


def test_timestamps_give_their_hour_and_time_zones_are_read_in_utc():
    """A date column with times of day adds `__hour`; "...Z" and "+02:00" timestamps (a time
    zone) are read in UTC, where they used to stop `clean` (tz-aware minus naive)."""
    stamps = ["2013-01-01T10:30:00Z", "2013-01-02T05:00:00Z", "2013-01-05T23:00:00Z", "2013-01-07T01:00:00Z"]
    train = pd.DataFrame(
        {"id": range(4), "when": stamps, "day": ["2020-01-0" + str(d) for d in range(1, 5)], "y": [0, 1, 0, 1]}
    )
    test = pd.DataFrame({"id": [9], "when": ["2013-01-03T12:00:00+02:00"], "day": ["2020-02-01"]})
    X, X_test, roles = build_features(train, test, "id", "y")
    assert X["when__hour"].tolist() == [10.5, 5.0, 23.0, 1.0] and X_test["when__hour"].tolist() == [10.0]
    assert X["when__dayofweek"].tolist() == [1, 2, 5, 0] and X["when__ordinal"].iloc[0] == 15706.4375  # 10:30
    assert "day__hour" not in X and "day__year" in roles["numeric"]  # dates alone have no hour


def test_group_target_encoder_never_sees_own_label():
    X = pd.DataFrame({"k": ["a"] * 10 + ["b"] * 10})
    y = np.array([1] * 10 + [0] * 10)
    enc = GroupTargetEncoder(smoothing=0.0, n_splits=5, random_state=0)
    out = enc.fit_transform(X, y)
    assert np.allclose(out[:10, 0], 1.0) and np.allclose(out[10:, 0], 0.0)
    assert (out[:, 1] <= 9).all() and (out[:, 1] >= 5).all()  # a row never counts itself
    test = enc.transform(pd.DataFrame({"k": ["a", "zz"]}))
    assert test[0, 0] == 1.0 and test[1, 0] == 0.5 and test[1, 1] == 0  # unseen key: prior, count 0


TORCH = {"mlp", "student_mlp"}  # covered by tests/test_torch_models.py


@pytest.mark.parametrize(
    "name, task",
    [(m, t) for m in list_models(modality="tabular") if m not in TORCH for t in get_entry(m).tasks],
)
def test_every_tabular_model_fits_each_task(name, task):
    X, X_test, y, roles = prepared(task)
    metric = "qwk" if name == "lightgbm_ordinal" else METRIC[task]  # its two-hot rows are no probabilities to log
    ctx = ModelContext(
        task=task,
        metric=get_metric(metric),
        n_classes=4 if task == "multiclass" else (2 if task == "binary" else 1),
        roles=roles,
        progress=False,
    )
    model = create_model(name, ctx).fit(X.iloc[:150], y[:150], eval_set=(X.iloc[150:], y[150:]))
    out = model.predict_output(X_test)
    expected = {"binary": (40,), "multiclass": (40, 4), "regression": (40,)}[task]
    assert out.shape == expected and np.isfinite(out).all()
    score = ctx.metric(y[150:], model.predict_output(X.iloc[150:]), task)
    if ctx.metric.greater_is_better:
        assert score > 0.75
    else:
        assert score < (1.0 if task == "multiclass" else 2.5)


def test_cv_score_equals_metric_of_oof():
    X, X_test, y, roles = prepared("binary")
    ctx = ModelContext(task="binary", metric=get_metric("accuracy"), n_classes=2, roles=roles, progress=False)
    folds = make_folds(y, "binary", 4, seed=1)
    res = cross_validate("logreg", {}, FoldData(X, y, X_test, folds), ctx)
    assert res.score == ctx.metric(y, res.oof, "binary")
    assert len(res.fold_scores) == 4 and res.test.shape == (len(X_test),)


def test_registry_rejects_unknown_names_and_params():
    ctx = ModelContext(task="binary", metric=get_metric("accuracy"))
    with pytest.raises(PipelineError, match="unknown model 'xgbost'"):
        create_model("xgbost", ctx)
    with pytest.raises(PipelineError, match="unknown parameter"):
        create_model("logreg", ctx, depth=3)
    with pytest.raises(PipelineError, match="does not support task 'regression'"):
        create_model("logreg", ModelContext(task="regression", metric=get_metric("rmse")))


def test_ordinal_scales_are_found_by_their_levels():
    rng = np.random.default_rng(0)
    n = 300
    train = pd.DataFrame(
        {
            "id": np.arange(n),
            "kitchen": rng.choice(["Po", "Fa", "TA", "Gd", "Ex", None], n),  # a quality scale, NaN = none
            "size": rng.choice(["LOW", "Medium", "high"], n),  # case does not matter
            "colour": rng.choice(["red", "green", "blue"], n),  # no order
            "y": rng.normal(size=n),
        }
    )
    X, X_test, roles = build_features(train, train.drop(columns="y").iloc[:5], "id", "y")
    assert {"kitchen__ord", "size__ord"} <= set(roles["numeric"]) and "colour__ord" not in X
    expected = train["kitchen"].map({"Po": 1, "Fa": 2, "TA": 3, "Gd": 4, "Ex": 5}).fillna(0)
    assert (X["kitchen__ord"].to_numpy() == expected.to_numpy()).all()
    assert X.loc[train["size"] == "high", "size__ord"].eq(3).all()
    assert "kitchen" in roles["categorical"]  # the levels stay available as a category too
    assert set(roles["frequency"]) == {"kitchen__freq", "size__freq", "colour__freq"}
    assert abs(X["colour__freq"].iloc[0] - (train["colour"] == train["colour"].iloc[0]).mean()) < 0.02


def test_numeric_cleaner_logs_skewed_columns_and_clips_to_training_range():
    from pipelines.features.preprocess import NumericCleaner

    rng = np.random.default_rng(0)
    train = np.column_stack([rng.lognormal(0, 1.5, 500), rng.normal(size=500), rng.integers(0, 2, 500)])
    train[:10, 1] = np.nan
    cleaner = NumericCleaner().fit(train)
    assert cleaner.log_.tolist() == [True, False, False]  # skewed; symmetric; binary
    out = cleaner.transform(np.array([[1e9, np.nan, 1.0]]))
    assert out[0, 0] <= np.log1p(train[:, 0].max()) and out[0, 1] == pytest.approx(np.nanmedian(train[:, 1]))


def test_robust_ridge_ignores_gross_outliers():
    from pipelines.models.tabular import RobustRidge

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(0, 0.1, 400)
    y[:3] += 40  # three wild labels
    robust, plain = RobustRidge().fit(X, y), RobustRidge(outlier_z=None).fit(X, y)
    assert robust.n_outliers_ == 3 and plain.n_outliers_ == 0
    clean = X[3:] @ np.array([1.0, -2.0, 0.5])
    assert np.abs(robust.predict(X[3:]) - clean).mean() < 0.5 * np.abs(plain.predict(X[3:]) - clean).mean()


def test_scaled_svr_kernel_follows_the_data_and_target_units():
    """gamma is `gamma_scale` x scikit-learn's "scale", so it shrinks with more columns; the
    target is standardised, so predictions follow the target's units exactly."""
    from pipelines.models.tabular import ScaledSVR

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] + rng.normal(0, 0.05, 300)
    model = ScaledSVR(gamma_scale=0.25).fit(X, y)
    assert model.gamma_ == pytest.approx(0.25 / (4 * X.var()))
    wide = ScaledSVR(gamma_scale=0.25).fit(np.hstack([X, rng.normal(size=(300, 12))]), y)
    assert wide.gamma_ == pytest.approx(model.gamma_ / 4, rel=0.1)
    in_cents = ScaledSVR(gamma_scale=0.25).fit(X, 100 * y)
    np.testing.assert_allclose(in_cents.predict(X[:20]), 100 * model.predict(X[:20]), atol=0.01 * 100)
    assert np.sqrt(np.mean((model.predict(X) - y) ** 2)) < 0.2 * y.std()
    assert ScaledSVR(gamma=0.5).fit(X, y).gamma_ == 0.5


def test_regression_outputs_stay_within_the_training_targets():
    """Each column of a row may lie within its training range while the row is unlike any
    training row (here a and b always move together); a linear model then extrapolates,
    and its output is clipped to the range of the targets it was fitted on."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=300)
    X = pd.DataFrame({"a": z + rng.normal(0, 0.1, 300), "b": z + rng.normal(0, 0.1, 300)})
    y = 10 * (X["a"] - X["b"]).to_numpy()
    ctx = ModelContext(task="regression", metric=get_metric("rmse"), roles={"numeric": ["a", "b"]})
    model = create_model("ridge", ctx, outlier_z=None).fit(X, y)
    assert model.pipeline.predict(pd.DataFrame({"a": [2.0], "b": [-2.0]}))[0] > 2 * y.max()  # unclipped
    pred = model.predict_output(pd.DataFrame({"a": [2.0, -2.0, 0.05], "b": [-2.0, 2.0, 0.0]}))
    assert pred[0] == pytest.approx(y.max()) and pred[1] == pytest.approx(y.min())
    assert y.min() < pred[2] < y.max()


@pytest.mark.parametrize("name", ["lightgbm", "xgboost", "catboost"])
def test_boosting_early_stops_on_its_own_training_rows(name):
    """Above EARLY_STOPPING_ROWS the trees are counted on a holdout of the training rows: the
    fold's validation rows (eval_set) are never used, so handing in other ones changes nothing.
    Then a final fit on every training row has the rounds scaled up for the held-out tenth
    (with a categorical column: sklearn's clone refused a CatBoost given cat_features)."""
    from pipelines.models.gbdt import EARLY_STOPPING_ROWS

    rng = np.random.default_rng(0)
    n = EARLY_STOPPING_ROWS + 500
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    X["c"] = pd.Categorical(rng.choice(list("xyz"), n))
    y = (X["a"] + (X["c"] == "x") + rng.normal(0, 1, n) > 0).astype(int).to_numpy()
    roles = {"numeric": ["a", "b"], "categorical": ["c"]}
    ctx = ModelContext(task="binary", metric=get_metric("roc_auc"), n_classes=2, roles=roles)
    first = create_model(name, ctx, learning_rate=0.1).fit(X, y, eval_set=(X.iloc[:50], y[:50]))
    second = create_model(name, ctx, learning_rate=0.1).fit(X, y, eval_set=(X.iloc[50:99], 1 - y[50:99]))
    assert 1 <= first.best_rounds_ < 3000 and first.best_rounds_ == second.best_rounds_
    final = first.pipeline.named_steps["model"].get_params()[first.rounds_param]
    assert final == round(first.best_rounds_ / 0.9)  # the final fit on all n rows
    assert np.array_equal(first.predict_output(X.iloc[:20]), second.predict_output(X.iloc[:20]))


def test_multiclass_outputs_keep_every_class_when_a_fold_lacks_one():
    X, X_test, y, roles = prepared("multiclass")
    keep = y != 3  # the rarest class is absent from these training rows
    ctx = ModelContext(task="multiclass", metric=get_metric("logloss"), n_classes=4, roles=roles, progress=False)
    for name in ("lightgbm", "xgboost", "catboost", "logreg"):
        out = create_model(name, ctx).fit(X[keep], y[keep]).predict_output(X_test)
        assert out.shape == (len(X_test), 4) and np.allclose(out[:, 3], 0) and np.allclose(out.sum(1), 1)


def test_svm_probabilities_with_a_one_member_class():
    # why `svm` keeps SVC(probability=True): CalibratedClassifierCV, scikit-learn's stand-in,
    # refuses a class with fewer members than its inner folds
    X, X_test, y, roles = prepared("multiclass")
    y = y.copy()
    y[np.flatnonzero(y == 3)[1:]] = 2  # class 3 keeps a single row
    ctx = ModelContext(task="multiclass", metric=get_metric("logloss"), n_classes=4, roles=roles, progress=False)
    out = create_model("svm", ctx).fit(X, y).predict_output(X_test)
    assert out.shape == (len(X_test), 4) and np.allclose(out.sum(1), 1) and np.isfinite(out).all()


def test_models_follow_the_task():
    from pipelines.core.config import parse_params

    spec = {
        "source": "embedded",
        "kaggle": "house-prices",
        "id": "Id",
        "target": "SalePrice",
        "task": "regression",
        "metric": "rmsle",
    }
    params = parse_params(
        {"competitions": {"hp": spec}, "train": {"models": {"tabular": ["lightgbm", "logreg", "ridge", "hgb"]}}}
    )
    assert models_for(params, "hp") == ["lightgbm", "ridge", "hgb"]  # logreg -> ridge, once
    params = parse_params(
        {
            "competitions": {"hp": {**spec, "task": "binary", "metric": "roc_auc"}},
            "train": {"models": {"tabular": ["ridge"]}},
        }
    )
    assert models_for(params, "hp") == ["logreg"]
    assert params.folds.resolve(1000) == 5 and params.folds.resolve(300_000) == 3
    # images cost per image, not per feature: 3 folds from 20,000 of them (42,000 digits)
    assert params.folds.resolve(42_000) == 5 and params.folds.resolve(42_000, "image") == 3
    assert params.folds.resolve(5_000, "image") == 5


def test_lightgbm_learns_ordered_classes_by_regression_for_qwk():
    from pipelines.core.metrics import decision_score
    from pipelines.models.tabular import two_hot

    out = two_hot(np.array([-1.0, 0.0, 2.7, 3.0, 9.0]), 4)
    assert np.allclose(out.sum(1), 1) and np.allclose(decision_score(out, "multiclass"), [0, 0, 2.7, 3, 3])
    assert out.argmax(1).tolist() == [0, 0, 3, 3, 3]
    X, X_test, y, roles = prepared("multiclass")
    ctx = ModelContext(task="multiclass", metric=get_metric("qwk"), n_classes=4, roles=roles, progress=False)
    model = create_model("lightgbm_ordinal", ctx).fit(X, y)
    assert model.ordinal and model.predict_output(X_test).shape == (len(X_test), 4)
    assert get_metric("qwk")(y, model.predict_output(X), "multiclass") > 0.8


@pytest.mark.parametrize("name", ["xgboost", "catboost"])
def test_boosting_is_seeded_and_uses_categories_natively(name):
    X, X_test, y, roles = prepared("binary")
    assert roles["categorical"], "the synthetic frame must hold a categorical column"
    ctx = ModelContext(task="binary", metric=get_metric("roc_auc"), n_classes=2, roles=roles, progress=False)
    runs = [create_model(name, ctx, subsample=0.7).fit(X, y).predict_output(X_test) if name == "xgboost"
            else create_model(name, ctx).fit(X, y).predict_output(X_test) for _ in range(2)]  # fmt: skip
    assert np.array_equal(runs[0], runs[1])
    other = create_model(name, replace(ctx, seed=7)).fit(X, y).predict_output(X_test)
    assert not np.array_equal(runs[0], other)  # the seed reaches the booster
    prep = create_model(name, ctx).pipeline.named_steps["prep"].fit(X, y)
    kinds = prep.transform(X_test).dtypes[roles["categorical"]]
    assert all(str(k) == ("category" if name == "xgboost" else "int64") for k in kinds)


def test_xgboost_sees_wide_categories_as_codes():
    """Categories of more levels than `max_cat_levels` reach XGBoost as codes (numbers, NaN
    where missing), narrower ones as native categories."""
    X, X_test, y, roles = prepared("binary")
    ctx = ModelContext(task="binary", metric=get_metric("roc_auc"), n_classes=2, roles=roles, progress=False)
    n_levels = X["colour"].cat.categories.size
    narrow = create_model("xgboost", ctx, max_cat_levels=n_levels).pipeline.named_steps["prep"].fit(X, y)
    wide = create_model("xgboost", ctx, max_cat_levels=n_levels - 1).pipeline.named_steps["prep"].fit(X, y)
    assert str(narrow.transform(X_test)["colour"].dtype) == "category"
    missing = X_test["colour"].copy()
    missing.iloc[0] = np.nan
    codes = wide.transform(X_test.assign(colour=missing))["colour"]
    assert codes.dtype == np.float64 and np.isnan(codes.iloc[0])
    assert codes.iloc[1:].tolist() == X_test["colour"].cat.codes.iloc[1:].astype(float).tolist()
    assert create_model("xgboost", ctx, max_cat_levels=0).fit(X, y).predict_output(X_test).shape == (len(X_test),)


def test_xgboost_splits_categories_one_level_against_the_rest_below_max_cat_to_onehot():
    """`max_cat_to_onehot` reaches XGBoost: a category of fewer levels splits one level against
    the rest (as one-hot columns would), a wider one by partitions of its levels; the trees differ."""
    X, X_test, y, roles = prepared("binary")
    ctx = ModelContext(task="binary", metric=get_metric("roc_auc"), n_classes=2, roles=roles, progress=False)
    n_levels = X["colour"].cat.categories.size
    assert n_levels > 2
    fits = {}
    for cut in (2, n_levels + 1):
        model = create_model("xgboost", ctx, max_cat_to_onehot=cut).fit(X, y)
        assert model.pipeline.named_steps["model"].get_params()["max_cat_to_onehot"] == cut
        fits[cut] = model.predict_output(X_test)
    assert not np.allclose(fits[2], fits[n_levels + 1])


def test_group_target_encoder_names_follow_its_columns():
    X = pd.DataFrame({"k": ["a", "b"] * 10, "m": ["x"] * 20})
    enc = GroupTargetEncoder(n_classes=3).fit(X, np.arange(20) % 3)
    out = enc.transform(X)
    names = list(enc.get_feature_names_out())
    assert names == ["k__te0", "k__te1", "k__n", "m__te0", "m__te1", "m__n"]
    assert np.allclose(out[:, names.index("m__n")], 20)  # the count column is where its name says


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_gbdt_student_learns_the_teachers_soft_targets(task):
    X, X_test, y, roles = prepared(task)
    n_classes = {"binary": 2, "multiclass": 4, "regression": 1}[task]
    ctx = ModelContext(task=task, metric=get_metric(METRIC[task]), n_classes=n_classes, roles=roles, progress=False)
    # a teacher far from the labels: probabilities 0.3 / 0.7, or values halfway to the mean
    if task == "multiclass":
        teacher = 0.6 * np.eye(4)[y] + 0.1
    elif task == "binary":
        teacher = 0.3 + 0.4 * y
    else:
        teacher = 0.5 * y + 0.5 * y.mean()
    student = create_model("student_gbdt", ctx, alpha=1.0).fit(X, y, soft_targets=teacher)
    hard = create_model("student_gbdt", ctx, alpha=0.0).fit(X, y, soft_targets=teacher)
    gap = np.abs(student.predict_output(X) - teacher).mean()
    assert gap < 0.5 * np.abs(hard.predict_output(X) - teacher).mean()  # alpha=1: it follows the teacher
    out = student.predict_output(X_test)
    assert out.shape == ((len(X_test), 4) if task == "multiclass" else (len(X_test),)) and np.isfinite(out).all()
    if task == "multiclass":
        assert np.allclose(out.sum(1), 1)
