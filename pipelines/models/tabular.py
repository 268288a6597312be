"""Tabular models: LightGBM and scikit-learn estimators behind the registry's contract.

Each factory builds a scikit-learn `Pipeline` (preprocessing + estimator) for one fold.
Preprocessing is fitted inside the fold, so nothing leaks from validation rows: the
`GroupTargetEncoder` turns high-cardinality keys (a ticket, a surname, a zip code) into the
target mean of the *other* labelled rows of the same group, out-of-fold within the
training rows, and on all training rows for validation and test rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from pipelines.models.registry import ModelContext, register_model

TABULAR = "tabular"


class GroupTargetEncoder(TransformerMixin, BaseEstimator):
    """Out-of-fold target statistics of group keys, smoothed towards the prior.

    For each key column it outputs the smoothed mean target of the other labelled rows in
    the same group (one column per class beyond the first for multiclass) and how many such
    rows there are. Training rows get out-of-fold values (`n_splits` inner folds), so a row
    never sees its own label; `transform` uses all fitted rows.
    """

    def __init__(self, n_classes: int = 1, smoothing: float = 2.0, n_splits: int = 5, random_state: int = 0):
        self.n_classes = n_classes
        self.smoothing = smoothing
        self.n_splits = n_splits
        self.random_state = random_state

    def _targets(self, y) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if self.n_classes > 2:
            return np.eye(self.n_classes)[y.astype(int)][:, 1:]
        return y[:, None]

    @staticmethod
    def _stats(keys: pd.Series, t: np.ndarray) -> pd.DataFrame:
        frame = pd.DataFrame(t, index=keys.index).assign(_key=keys.to_numpy())
        grouped = frame.groupby("_key", observed=True, dropna=True)
        stats = grouped.sum()
        stats["_n"] = grouped.size()
        return stats

    def _apply(self, keys: pd.Series, stats: pd.DataFrame, prior: np.ndarray) -> np.ndarray:
        joined = stats.reindex(keys.to_numpy())
        n = joined["_n"].fillna(0).to_numpy()
        sums = joined.drop(columns="_n").fillna(0).to_numpy()
        means = (sums + self.smoothing * prior) / (n[:, None] + self.smoothing)
        return np.column_stack([means, n])

    def fit(self, X: pd.DataFrame, y):
        t = self._targets(y)
        self.columns_ = list(X.columns)
        self.prior_ = t.mean(axis=0)
        self.stats_ = {c: self._stats(X[c].astype("string"), t) for c in self.columns_}
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        return np.hstack([self._apply(X[c].astype("string"), self.stats_[c], self.prior_) for c in self.columns_])

    def fit_transform(self, X: pd.DataFrame, y=None, **_):
        self.fit(X, y)
        t = self._targets(y)
        out = np.zeros((len(X), len(self.columns_) * (t.shape[1] + 1)))
        folds = KFold(self.n_splits, shuffle=True, random_state=self.random_state)
        for fit_idx, enc_idx in folds.split(X):
            prior = t[fit_idx].mean(axis=0)
            parts = []
            for c in self.columns_:
                keys = X[c].astype("string")
                stats = self._stats(keys.iloc[fit_idx], t[fit_idx])
                parts.append(self._apply(keys.iloc[enc_idx], stats, prior))
            out[enc_idx] = np.hstack(parts)
        return out

    def get_feature_names_out(self, input_features=None):
        k = 1 if self.n_classes <= 2 else self.n_classes - 1
        return np.array([f"{c}__te{j}" for c in self.columns_ for j in range(k)] + [f"{c}__n" for c in self.columns_])


def make_preprocessor(ctx: ModelContext, *, scale: bool = True, onehot: bool = True) -> ColumnTransformer:
    """Dense float features from the cleaned frame: numeric (imputed, optionally scaled),
    categorical (one-hot, or ordinal codes for trees), keys (out-of-fold target encoding)."""
    roles = ctx.roles
    numeric = make_pipeline(SimpleImputer(strategy="median"), *([StandardScaler()] if scale else []))
    if onehot:
        categorical = OneHotEncoder(handle_unknown="ignore", min_frequency=5, sparse_output=False)
    else:
        categorical = "passthrough"
    keys = make_pipeline(
        GroupTargetEncoder(n_classes=ctx.n_classes, random_state=ctx.seed), *([StandardScaler()] if scale else [])
    )
    parts = [
        ("num", numeric, roles.get("numeric", [])),
        ("cat", categorical, roles.get("categorical", [])),
        ("key", keys, roles.get("key", [])),
    ]
    return ColumnTransformer([p for p in parts if p[2]], remainder="drop", verbose_feature_names_out=False)


class SklearnModel:
    """Adapter: an sklearn pipeline behind the registry contract."""

    def __init__(self, pipeline: Pipeline, task: str, eval_kwargs: bool = False):
        self.pipeline = pipeline
        self.task = task
        self.eval_kwargs = eval_kwargs

    def fit(self, X, y, eval_set=None, soft_targets=None):
        self.pipeline.fit(X, np.asarray(y))
        return self

    def predict_output(self, X) -> np.ndarray:
        if self.task == "regression":
            return self.pipeline.predict(X).astype(np.float64)
        proba = self.pipeline.predict_proba(X)
        return proba[:, 1] if self.task == "binary" else proba


def _categorical_codes(ctx: ModelContext) -> ColumnTransformer:
    """Trees: numeric as is, categories as integer codes (NaN stays NaN), keys target-encoded."""

    def codes(frame: pd.DataFrame) -> np.ndarray:
        return np.column_stack([frame[c].cat.codes.replace(-1, np.nan).to_numpy(np.float64) for c in frame])

    from sklearn.preprocessing import FunctionTransformer

    roles = ctx.roles
    parts = [
        ("num", "passthrough", roles.get("numeric", [])),
        ("cat", FunctionTransformer(codes, feature_names_out="one-to-one"), roles.get("categorical", [])),
        ("key", GroupTargetEncoder(n_classes=ctx.n_classes, random_state=ctx.seed), roles.get("key", [])),
    ]
    return ColumnTransformer([p for p in parts if p[2]], remainder="drop", verbose_feature_names_out=False)


# ---------------------------------------------------------------- LightGBM


def lightgbm_space(trial) -> dict:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 4, 64, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 60, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 30.0, log=True),
        "n_estimators": trial.suggest_int("n_estimators", 100, 800, log=True),
    }


@register_model("lightgbm", modality=TABULAR, search_space=lightgbm_space)
def lightgbm(
    ctx: ModelContext,
    learning_rate: float = 0.03,
    n_estimators: int = 300,
    num_leaves: int = 15,
    min_child_samples: int = 20,
    subsample: float = 0.8,
    colsample_bytree: float = 0.7,
    reg_lambda: float = 1.0,
):
    import lightgbm as lgb

    kw = dict(
        learning_rate=learning_rate,
        n_estimators=n_estimators,
        num_leaves=num_leaves,
        min_child_samples=min_child_samples,
        subsample=subsample,
        subsample_freq=1,
        colsample_bytree=colsample_bytree,
        reg_lambda=reg_lambda,
        random_state=ctx.seed,
        n_jobs=ctx.threads,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
    )
    if ctx.task == "regression":
        est = lgb.LGBMRegressor(**kw)
    else:
        est = lgb.LGBMClassifier(**kw)
    return SklearnModel(Pipeline([("prep", _categorical_codes(ctx)), ("model", est)]), ctx.task)


# ---------------------------------------------------------------- linear


def logreg_space(trial) -> dict:
    return {"C": trial.suggest_float("C", 1e-3, 10.0, log=True)}


@register_model("logreg", modality=TABULAR, tasks=("binary", "multiclass"), search_space=logreg_space)
def logreg(ctx: ModelContext, C: float = 0.3):
    est = LogisticRegression(C=C, max_iter=2000, random_state=ctx.seed)
    return SklearnModel(Pipeline([("prep", make_preprocessor(ctx)), ("model", est)]), ctx.task)


def ridge_space(trial) -> dict:
    return {"alpha": trial.suggest_float("alpha", 1e-2, 100.0, log=True)}


@register_model("ridge", modality=TABULAR, tasks=("regression",), search_space=ridge_space)
def ridge(ctx: ModelContext, alpha: float = 3.0):
    return SklearnModel(Pipeline([("prep", make_preprocessor(ctx)), ("model", Ridge(alpha=alpha))]), ctx.task)


# ---------------------------------------------------------------- trees from scikit-learn


def hgb_space(trial) -> dict:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 4, 63, log=True),
        "l2_regularization": trial.suggest_float("l2_regularization", 1e-3, 10.0, log=True),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 5, 60, log=True),
    }


@register_model("hgb", modality=TABULAR, search_space=hgb_space)
def hgb(
    ctx: ModelContext,
    learning_rate: float = 0.05,
    max_iter: int = 300,
    max_leaf_nodes: int = 15,
    l2_regularization: float = 1.0,
    min_samples_leaf: int = 20,
):
    cls = HistGradientBoostingRegressor if ctx.task == "regression" else HistGradientBoostingClassifier
    est = cls(
        learning_rate=learning_rate,
        max_iter=max_iter,
        max_leaf_nodes=max_leaf_nodes,
        l2_regularization=l2_regularization,
        min_samples_leaf=min_samples_leaf,
        early_stopping=False,
        random_state=ctx.seed,
    )
    return SklearnModel(Pipeline([("prep", _categorical_codes(ctx)), ("model", est)]), ctx.task)


@register_model("random_forest", modality=TABULAR)
def random_forest(ctx: ModelContext, n_estimators: int = 500, min_samples_leaf: int = 2, max_features: float = 0.5):
    cls = RandomForestRegressor if ctx.task == "regression" else RandomForestClassifier
    est = cls(
        n_estimators=n_estimators,
        min_samples_leaf=min_samples_leaf,
        max_features=max_features,
        n_jobs=ctx.threads,
        random_state=ctx.seed,
    )
    prep = make_pipeline(_categorical_codes(ctx), SimpleImputer(strategy="median", keep_empty_features=True))
    return SklearnModel(Pipeline([("prep", prep), ("model", est)]), ctx.task)
