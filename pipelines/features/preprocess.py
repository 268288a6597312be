"""Preprocessing of the cleaned tabular frame into model inputs, fitted inside each fold.

`make_preprocessor(ctx)` gives dense float features (numeric cleaned and scaled, categories
one-hot, keys target-encoded) for linear, kernel and neural models; `categorical_codes(ctx)`
gives trees the numeric columns as they are and categories as integer codes. The
`GroupTargetEncoder` turns high-cardinality keys (a ticket, a surname, a zip code) into the
target mean of the *other* labelled rows of the same group, out-of-fold within the training
rows, and on all training rows for validation and test rows, so nothing leaks.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from pipelines.core.context import ModelContext
from pipelines.core.tables import with_safe_names


class GroupTargetEncoder(TransformerMixin, BaseEstimator):
    """Out-of-fold target statistics of group keys, smoothed towards the prior.

    For each key column it outputs the smoothed mean target of the other labelled rows in
    the same group (one column per class beyond the first for multiclass) and how many such
    rows there are. Training rows get out-of-fold values (`n_splits` inner folds), so a row
    never sees its own label; `transform` uses all fitted rows.

    Kept instead of scikit-learn's `TargetEncoder` (the same out-of-fold scheme) because that
    one outputs no group size, and the out-of-fold count of rows sharing a ticket or surname
    is a feature of its own (a travelling family) that the models here are fitted with.
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
        denom = np.broadcast_to(n[:, None] + self.smoothing, sums.shape)
        # a key never seen (n = 0) gets the prior, also without smoothing (0 / 0 otherwise)
        means = np.broadcast_to(prior, sums.shape).astype(np.float64)
        np.divide(sums + self.smoothing * prior, denom, out=means, where=denom > 0)
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
        # in `transform`'s order: each column's k target means, then its count
        return np.array([name for c in self.columns_ for name in [*(f"{c}__te{j}" for j in range(k)), f"{c}__n"]])


class NumericCleaner(TransformerMixin, BaseEstimator):
    """Numbers for models that are sensitive to scale and tails (linear models, nets).

    Fitted on the training rows: missing values become the column's median, right-skewed
    non-negative columns (skewness above `skew`) become log1p(x), and every column is
    clipped to its training quantiles [`clip`, 1 - `clip`] so one extreme test row cannot
    extrapolate a linear model far away.
    """

    def __init__(self, skew: float = 0.75, clip: float = 0.001):
        self.skew = skew
        self.clip = clip

    def fit(self, X, y=None):
        x = np.asarray(X, dtype=np.float64)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: median 0
            median = np.nanmedian(x, axis=0) if len(x) else np.zeros(x.shape[1])
        self.median_ = np.nan_to_num(median)
        x = np.where(np.isnan(x), self.median_, x)
        distinct = np.array([len(np.unique(col[:1000])) > 2 for col in x.T], dtype=bool)
        self.log_ = (x.min(axis=0, initial=0) >= 0) & distinct & (_skewness(x) > self.skew)
        x = np.where(self.log_, np.log1p(np.maximum(x, 0)), x)
        self.low_, self.high_ = np.quantile(x, [self.clip, 1 - self.clip], axis=0) if len(x) else (0, 0)
        self.n_features_in_ = x.shape[1]
        return self

    def transform(self, X) -> np.ndarray:
        x = np.asarray(X, dtype=np.float64)
        x = np.where(np.isnan(x), self.median_, x)
        x = np.where(self.log_, np.log1p(np.maximum(x, 0)), x)
        return np.clip(x, self.low_, self.high_)

    def get_feature_names_out(self, input_features=None):
        return np.asarray(input_features, dtype=object)


def _skewness(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(axis=0)
    var = (centred**2).mean(axis=0)
    with np.errstate(all="ignore"):
        skew = (centred**3).mean(axis=0) / var**1.5
    return np.nan_to_num(skew)


def make_preprocessor(ctx: ModelContext, *, scale: bool = True, onehot: bool = True) -> ColumnTransformer:
    """Dense float features from the cleaned frame: numeric (imputed; with `scale`, also
    log1p of skewed columns, clipped tails and standardised), categorical (one-hot, or
    ordinal codes for trees), keys (out-of-fold target encoding). Level frequencies are
    left to trees when categories are one-hot encoded (they would only add noise here)."""
    roles = dict(ctx.roles)
    if onehot:
        skip = set(roles.get("frequency", []))
        roles["numeric"] = [c for c in roles.get("numeric", []) if c not in skip]
    if scale:
        numeric = make_pipeline(NumericCleaner(), StandardScaler())
    else:
        numeric = SimpleImputer(strategy="median", keep_empty_features=True)
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


def category_codes(frame: pd.DataFrame) -> np.ndarray:
    """Categories as float codes, NaN where missing (module level: an export names it, `core/safe_state.py`)."""
    return np.column_stack([frame[c].cat.codes.replace(-1, np.nan).to_numpy(np.float64) for c in frame])


def category_code_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Categories as integer codes, -1 where missing (what CatBoost wants)."""
    return frame.apply(lambda col: col.cat.codes.astype(np.int64))


def categorical_codes(ctx: ModelContext) -> ColumnTransformer:
    """Trees: numeric as is, categories as integer codes (NaN stays NaN), keys target-encoded."""
    roles = ctx.roles
    parts = [
        ("num", "passthrough", roles.get("numeric", [])),
        ("cat", FunctionTransformer(category_codes, feature_names_out="one-to-one"), roles.get("categorical", [])),
        ("key", GroupTargetEncoder(n_classes=ctx.n_classes, random_state=ctx.seed), roles.get("key", [])),
    ]
    return ColumnTransformer([p for p in parts if p[2]], remainder="drop", verbose_feature_names_out=False)


def categorical_frame(ctx: ModelContext, *, codes: bool = False, max_levels: int | None = None) -> Pipeline:
    """Trees with native categorical splits (XGBoost, CatBoost): a DataFrame with numeric
    columns as they are, categories kept as pandas categories (`codes=True`: as integer codes,
    -1 for missing, which CatBoost wants) and keys target-encoded, in that order, its columns
    renamed by `safe_names` (XGBoost refuses `[`, `]`, `<`): name categories by position.
    `max_levels`: a category of more levels enters as its codes, a number (`wide_as_codes`)."""
    roles = ctx.roles
    cats = FunctionTransformer(category_code_frame, feature_names_out="one-to-one") if codes else "passthrough"
    parts = [
        ("num", "passthrough", roles.get("numeric", [])),
        ("cat", cats, roles.get("categorical", [])),
        ("key", GroupTargetEncoder(n_classes=ctx.n_classes, random_state=ctx.seed), roles.get("key", [])),
    ]
    columns = ColumnTransformer([p for p in parts if p[2]], remainder="drop", verbose_feature_names_out=False)
    steps = [columns.set_output(transform="pandas"), FunctionTransformer(with_safe_names)]
    if max_levels is not None and not codes:
        steps.append(FunctionTransformer(wide_as_codes, kw_args={"max_levels": max_levels}))
    return make_pipeline(*steps)


def wide_as_codes(frame: pd.DataFrame, max_levels: int) -> pd.DataFrame:
    """Categories of more than `max_levels` levels as float codes (NaN where missing), as
    LightGBM sees them: XGBoost's native splits partition such a column's levels and overfit
    (flights' 4,000 tail numbers: XGBoost's CV fell from 0.78 to 0.72)."""
    cats = [c for c in frame if isinstance(frame[c].dtype, pd.CategoricalDtype)]
    wide = [c for c in cats if len(frame[c].cat.categories) > max_levels]
    if not wide:
        return frame
    return frame.assign(**{c: frame[c].cat.codes.replace(-1, np.nan).astype(np.float64) for c in wide})


def categorical_positions(roles: dict[str, list[str]]) -> list[int]:
    """Where `categorical_frame` puts the categorical columns: after the numeric ones."""
    start = len(roles.get("numeric", []))
    return list(range(start, start + len(roles.get("categorical", []))))
