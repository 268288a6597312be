"""Tabular models: LightGBM and scikit-learn estimators behind the registry's contract.

Each factory builds a scikit-learn `Pipeline` (preprocessing + estimator) for one fold.
Preprocessing is fitted inside the fold, so nothing leaks from validation rows: the
`GroupTargetEncoder` turns high-cardinality keys (a ticket, a surname, a zip code) into the
target mean of the *other* labelled rows of the same group, out-of-fold within the
training rows, and on all training rows for validation and test rows.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from pipelines.models.registry import ModelContext, register_model

TABULAR = "tabular"

# scikit-learn 1.9 deprecates SVC(probability=True) (gone in 1.11, hence the pin in
# pyproject.toml); its stand-in CalibratedClassifierCV fails on a class rarer than its inner
# folds, so `svm` keeps libsvm's Platt scaling and the warning stays out of stage logs
warnings.filterwarnings("ignore", message="The `probability` parameter was deprecated", category=FutureWarning)


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
        return np.array([f"{c}__te{j}" for c in self.columns_ for j in range(k)] + [f"{c}__n" for c in self.columns_])


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


class SklearnModel:
    """Adapter: an sklearn pipeline behind the registry contract.

    Multiclass outputs always have `n_classes` columns, also when a fold's training rows
    lack a rare class (its probability is then 0). `ordinal`: the pipeline is a regressor
    on the class index of ordered classes; its value comes out as a `two_hot` row.
    Regression outputs are clipped to the range of the training targets: a linear or kernel
    model can extrapolate far beyond any price it saw on a row unlike every training row
    (House Prices: a 5,600 sq ft house sold cheaply, predicted at 6x its price by ridge).
    """

    def __init__(self, pipeline: Pipeline, task: str, eval_kwargs: bool = False, n_classes: int = 0, ordinal=False):
        self.pipeline = pipeline
        self.task = task
        self.eval_kwargs = eval_kwargs
        self.n_classes = n_classes
        self.ordinal = ordinal
        self.max_fit_rows: int | None = None  # set by factories of models that scale badly

    def fit(self, X, y, eval_set=None, soft_targets=None):
        y = np.asarray(y)
        if self.max_fit_rows is not None and len(y) > self.max_fit_rows:
            # a model that scales quadratically fits a seeded subsample of large data
            keep = np.sort(np.random.default_rng(0).choice(len(y), self.max_fit_rows, replace=False))
            X, y = (X.iloc[keep] if hasattr(X, "iloc") else X[keep]), y[keep]
        self.pipeline.fit(X, y.astype(np.float64) if self.ordinal else y)
        if self.task == "regression":
            self.y_range_ = (float(np.min(y)), float(np.max(y)))
        return self

    def predict_output(self, X) -> np.ndarray:
        if self.ordinal:
            return two_hot(self.pipeline.predict(X), self.n_classes)
        if self.task == "regression":
            pred = self.pipeline.predict(X).astype(np.float64)
            return np.clip(pred, *self.y_range_) if hasattr(self, "y_range_") else pred
        proba = self.pipeline.predict_proba(X)
        if self.task == "binary":
            return proba[:, 1]
        return _all_classes(proba, self.pipeline.classes_, self.n_classes)


def _all_classes(proba: np.ndarray, seen, n_classes: int) -> np.ndarray:
    seen = np.asarray(seen, dtype=np.int64)
    if n_classes <= proba.shape[1]:
        return proba
    full = np.zeros((len(proba), n_classes))
    full[:, seen] = proba
    return full


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
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 4, 64, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 60, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 30.0, log=True),
        "n_estimators": trial.suggest_int("n_estimators", 100, 800, log=True),  # small data only
    }


EARLY_STOPPING_ROWS = 5000  # fewer training rows: a fixed number of rounds (a small holdout is too noisy)
ONE_THREAD_ROWS = 20_000  # fewer training rows: LightGBM on one thread (same trees on Titanic, faster)


class LightGBMModel(SklearnModel):
    """LightGBM whose number of trees comes from early stopping inside the training rows.

    From `EARLY_STOPPING_ROWS` training rows on, a seeded `holdout` share of the training
    rows (stratified for classes) stops boosting once the validation loss has not improved
    for `patience` rounds; the model is then refitted on all training rows with the rounds
    scaled up for the extra data (up to `refit_rows` rows; above that, the early-stopped
    model is kept to save time). The fold's own validation rows are never looked at, so CV
    stays honest. Fewer rows: `n_estimators` rounds (a holdout of a few hundred rows stops
    too noisily).

    `ordinal`: ordered classes learnt as a regression on the class index (see SklearnModel).
    """

    def __init__(self, pipeline, task, *, n_classes, n_estimators, max_rounds, holdout=0.1, patience=50,
                 refit_rows=20_000, seed=0, ordinal=False):  # fmt: skip
        # refit_rows=0: keep the early-stopped model (tuning trials do, to halve their cost)
        super().__init__(pipeline, task, n_classes=n_classes, ordinal=ordinal)
        self.n_estimators = n_estimators
        self.max_rounds = max_rounds
        self.holdout = holdout
        self.patience = patience
        self.refit_rows = refit_rows
        self.seed = seed

    def fit(self, X, y, eval_set=None, soft_targets=None):
        import lightgbm as lgb

        y = np.asarray(y)
        est = self.pipeline.named_steps["model"]
        if self.ordinal:
            y = y.astype(np.float64)
        if len(y) < ONE_THREAD_ROWS:  # small data: a second thread only adds sync cost (2x slower measured)
            est.set_params(n_jobs=1)
        if len(y) < EARLY_STOPPING_ROWS:
            est.set_params(n_estimators=self.n_estimators)
            self.pipeline.fit(X, y)
            return self
        prep = self.pipeline.named_steps["prep"]
        x = prep.fit_transform(X, y)
        fit_idx, stop_idx = _holdout_split(y, "regression" if self.ordinal else self.task, self.holdout, self.seed)
        est.set_params(n_estimators=self.max_rounds)
        stop_x, stop_y = _take(x, stop_idx), y[stop_idx]
        if "eval_X" in inspect.signature(est.fit).parameters:  # LightGBM >= 4.6 names it so
            evals = {"eval_X": (stop_x,), "eval_y": (stop_y,)}
        else:
            evals = {"eval_set": [(stop_x, stop_y)]}
        stop = lgb.early_stopping(self.patience, first_metric_only=True, verbose=False)
        est.fit(_take(x, fit_idx), y[fit_idx], callbacks=[stop], **evals)
        self.best_rounds_ = max(1, int(est.best_iteration_ or self.max_rounds))
        if len(y) <= self.refit_rows:
            est.set_params(n_estimators=max(1, int(round(self.best_rounds_ / (1 - self.holdout)))))
            est.fit(x, y)
        return self


def two_hot(value: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows of class probabilities whose expected class index is `value` (clipped to 0..k-1)."""
    v = np.clip(np.asarray(value, dtype=np.float64), 0, n_classes - 1)
    low = np.minimum(np.floor(v).astype(np.int64), n_classes - 2)
    frac = v - low
    out = np.zeros((len(v), n_classes))
    rows = np.arange(len(v))
    out[rows, low] = 1 - frac
    out[rows, low + 1] = frac
    return out


def _take(x, idx):
    return x.iloc[idx] if isinstance(x, pd.DataFrame) else x[idx]


def _holdout_split(y: np.ndarray, task: str, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (stratified where there are classes) split of the rows into fit / early-stop parts."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    strata = None
    if task != "regression":
        counts = np.bincount(np.asarray(y, dtype=np.int64))
        strata = y if counts[counts > 0].min() >= 2 else None
    fit_idx, stop_idx = train_test_split(idx, test_size=share, random_state=seed, stratify=strata)
    return np.sort(fit_idx), np.sort(stop_idx)


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
    max_rounds: int = 3000,
    ordinal: bool = False,
    refit: bool = True,
):
    """`n_estimators`: the rounds below EARLY_STOPPING_ROWS training rows; from there on, early
    stopping on 10% of the fold's training rows picks them, up to `max_rounds`. `ordinal`: a
    regression on the class index of ordered classes. `refit=False` keeps the early-stopped
    model instead of refitting on all training rows (see LightGBMModel)."""
    import lightgbm as lgb

    kw = dict(
        learning_rate=learning_rate,
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
    ordinal = ordinal and ctx.task == "multiclass"
    est = lgb.LGBMRegressor(**kw) if ctx.task == "regression" or ordinal else lgb.LGBMClassifier(**kw)
    pipeline = Pipeline([("prep", _categorical_codes(ctx)), ("model", est)])
    return LightGBMModel(
        pipeline, ctx.task, n_classes=ctx.n_classes, n_estimators=n_estimators, max_rounds=max_rounds, seed=ctx.seed,
        ordinal=ordinal, refit_rows=20_000 if refit else 0,
    )  # fmt: skip


@register_model("lightgbm_ordinal", modality=TABULAR, tasks=("multiclass",), search_space=lightgbm_space)
def lightgbm_ordinal(ctx: ModelContext, **params):
    """LightGBM regressing the class index of ordered classes (ratings, grades): list it in a
    competition's `models:` next to `lightgbm` when the order carries the signal. On
    diamond cut grades the classifier with OOF-fitted thresholds did better (qwk 0.659 vs
    0.633 held out), so it is not a default."""
    return lightgbm(ctx, ordinal=True, **params)


# ---------------------------------------------------------------- linear


def logreg_space(trial) -> dict:
    return {"C": trial.suggest_float("C", 1e-3, 10.0, log=True)}


@register_model("logreg", modality=TABULAR, tasks=("binary", "multiclass"), search_space=logreg_space)
def logreg(ctx: ModelContext, C: float = 0.3):
    est = LogisticRegression(C=C, max_iter=2000, random_state=ctx.seed)
    return SklearnModel(Pipeline([("prep", make_preprocessor(ctx)), ("model", est)]), ctx.task, n_classes=ctx.n_classes)


def ridge_space(trial) -> dict:
    return {"alpha": trial.suggest_float("alpha", 1e-1, 300.0, log=True)}


class RobustRidge(RegressorMixin, BaseEstimator):
    """Ridge regression that ignores gross outliers among its training rows.

    `alpha=None` picks the penalty by efficient leave-one-out (`RidgeCV`) on the training
    rows. Rows whose leave-one-out residual lies more than `outlier_z` robust standard
    deviations (1.4826 MAD) from the median are then dropped (at most `max_outliers` of
    the rows) and the model is refitted: a handful of mislabelled or one-off rows
    (a huge house sold cheaply) would otherwise tilt every coefficient.
    """

    ALPHAS = tuple(np.logspace(-1, 3, 13))

    def __init__(self, alpha: float | None = None, outlier_z: float | None = 5.0, max_outliers: float = 0.01):
        self.alpha = alpha
        self.outlier_z = outlier_z
        self.max_outliers = max_outliers

    def _ridge(self, X, y):
        from threadpoolctl import threadpool_limits

        alphas = self.ALPHAS if self.alpha is None else (self.alpha,)
        # one BLAS thread: for these sizes it is as fast, and far faster on a busy machine
        with threadpool_limits(1, user_api="blas"):
            return RidgeCV(alphas=alphas, gcv_mode="svd", store_cv_results=True).fit(X, y)

    def fit(self, X, y):
        X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
        model = self._ridge(X, y)
        keep = np.ones(len(y), dtype=bool)
        if self.outlier_z is not None and len(y) >= 50:
            best = int(np.argmin(model.cv_results_.mean(axis=0)))
            resid = np.sqrt(model.cv_results_[:, best])  # |leave-one-out residual|
            spread = 1.4826 * np.median(np.abs(resid - np.median(resid))) + 1e-12
            z = (resid - np.median(resid)) / spread
            worst = np.argsort(-z)[: int(self.max_outliers * len(y))]
            keep[worst[z[worst] > self.outlier_z]] = False
            if not keep.all():
                model = self._ridge(X[keep], y[keep])
        self.model_, self.n_outliers_ = model, int((~keep).sum())
        self.alpha_ = float(model.alpha_)
        return self

    def predict(self, X) -> np.ndarray:
        return self.model_.predict(np.asarray(X, dtype=np.float64))


@register_model("ridge", modality=TABULAR, tasks=("regression",), search_space=ridge_space)
def ridge(ctx: ModelContext, alpha: float | None = None, outlier_z: float | None = 5.0):
    est = RobustRidge(alpha=alpha, outlier_z=outlier_z)
    return SklearnModel(Pipeline([("prep", make_preprocessor(ctx)), ("model", est)]), ctx.task)


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
    pipeline = Pipeline([("prep", _categorical_codes(ctx)), ("model", est)])
    return SklearnModel(pipeline, ctx.task, n_classes=ctx.n_classes)


class RowCappedForest(SklearnModel):
    """A random forest whose trees each see at most `rows_per_tree` bootstrap rows, so its
    cost stops growing with the data (all rows still reach some tree)."""

    def __init__(self, pipeline, task, *, n_classes, rows_per_tree):
        super().__init__(pipeline, task, n_classes=n_classes)
        self.rows_per_tree = rows_per_tree

    def fit(self, X, y, eval_set=None, soft_targets=None):
        share = min(1.0, self.rows_per_tree / max(1, len(X)))
        self.pipeline.set_params(model__max_samples=share if share < 1 else None)
        return super().fit(X, y)


@register_model("random_forest", modality=TABULAR)
def random_forest(
    ctx: ModelContext, n_estimators: int = 500, min_samples_leaf: int = 2, max_features: float = 0.5,
    rows_per_tree: int = 20_000,
):  # fmt: skip
    cls = RandomForestRegressor if ctx.task == "regression" else RandomForestClassifier
    est = cls(
        n_estimators=n_estimators,
        min_samples_leaf=min_samples_leaf,
        max_features=max_features,
        n_jobs=ctx.threads,
        random_state=ctx.seed,
    )
    prep = make_pipeline(_categorical_codes(ctx), SimpleImputer(strategy="median", keep_empty_features=True))
    pipeline = Pipeline([("prep", prep), ("model", est)])
    return RowCappedForest(pipeline, ctx.task, n_classes=ctx.n_classes, rows_per_tree=rows_per_tree)


# ---------------------------------------------------------------- kernels


def svm_space(trial) -> dict:
    return {
        "C": trial.suggest_float("C", 0.05, 20.0, log=True),
        "gamma": trial.suggest_float("gamma", 1e-3, 1.0, log=True),
    }


class ScaledSVR(RegressorMixin, BaseEstimator):
    """RBF support vector regression whose kernel width follows the data: gamma is
    `gamma_scale` times scikit-learn's "scale" (1 / (n_features * Var(X))), so the same
    default fits a table with 20 columns or 300 one-hot ones. An explicit `gamma` wins.
    The target is standardised, so `epsilon` is in standard deviations of the target."""

    def __init__(self, C: float = 3.0, gamma_scale: float = 0.25, gamma: float | None = None, epsilon: float = 0.05):
        self.C = C
        self.gamma_scale = gamma_scale
        self.gamma = gamma
        self.epsilon = epsilon

    def fit(self, X, y):
        from sklearn.svm import SVR

        X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
        self.y_mean_, self.y_std_ = float(y.mean()), float(y.std()) or 1.0
        spread = float(X.shape[1] * X.var()) or 1.0
        self.gamma_ = self.gamma if self.gamma is not None else self.gamma_scale / spread
        self.svr_ = SVR(C=self.C, gamma=self.gamma_, epsilon=self.epsilon)
        self.svr_.fit(X, (y - self.y_mean_) / self.y_std_)
        return self

    def predict(self, X) -> np.ndarray:
        return self.svr_.predict(np.asarray(X, dtype=np.float64)) * self.y_std_ + self.y_mean_


@register_model("svm", modality=TABULAR, search_space=svm_space)
def svm(ctx: ModelContext, C: float | None = None, gamma: float | str = "scale", max_fit_rows: int = 5_000):
    """RBF support vector machine on scaled, one-hot features: a different inductive bias
    from the trees, which is what an ensemble needs. Quadratic in rows (and Platt scaling
    fits it 6 times): large data is subsampled to `max_fit_rows`.

    Classification: `C` 1, gamma "scale". Regression (`ScaledSVR`, standardised target):
    `C` 3 and gamma "scale" means a kernel 4 times wider than scikit-learn's "scale"
    (gamma_scale 0.25); with one-hot features the plain "scale" kernel is too narrow (House
    Prices CV RMSLE, mean of 4 splits: 0.149 with the former C=1, "scale", epsilon 0.1;
    0.128 with these)."""
    from sklearn.svm import SVC

    if ctx.task == "regression":
        est = ScaledSVR(C=3.0 if C is None else C, gamma=None if gamma == "scale" else float(gamma))
    else:  # Platt-scaled probabilities (an inner 5-fold CV, seeded)
        est = SVC(C=1.0 if C is None else C, gamma=gamma, probability=True, random_state=ctx.seed)
    pipeline = Pipeline([("prep", make_preprocessor(ctx)), ("model", est)])
    model = SklearnModel(pipeline, ctx.task, n_classes=ctx.n_classes)
    model.max_fit_rows = max_fit_rows
    return model
