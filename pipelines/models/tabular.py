"""Tabular models: LightGBM and scikit-learn estimators behind the registry's contract.

Each factory builds a scikit-learn `Pipeline` (preprocessing from
`pipelines.features.preprocess` + estimator) for one fold. Preprocessing is fitted inside
the fold, so nothing leaks from validation rows.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.pipeline import Pipeline, make_pipeline

from pipelines.core.context import TABULAR, ModelContext
from pipelines.features.preprocess import categorical_codes, make_preprocessor
from pipelines.models.registry import register_model

# scikit-learn 1.9 deprecates SVC(probability=True) (gone in 1.11, hence the pin in
# pyproject.toml); its stand-in CalibratedClassifierCV fails on a class rarer than its inner
# folds, so `svm` keeps libsvm's Platt scaling and the warning stays out of stage logs
warnings.filterwarnings("ignore", message="The `probability` parameter was deprecated", category=FutureWarning)


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
        return all_classes(proba, self.pipeline.classes_, self.n_classes)


def all_classes(proba: np.ndarray, seen, n_classes: int) -> np.ndarray:
    seen = np.asarray(seen, dtype=np.int64)
    if n_classes <= proba.shape[1]:
        return proba
    full = np.zeros((len(proba), n_classes))
    full[:, seen] = proba
    return full


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


# ---------------------------------------------------------------- linear


def logreg_space(trial) -> dict:
    return {"C": trial.suggest_float("C", 1e-3, 10.0, log=True)}


@register_model(
    "logreg", modality=TABULAR, tasks=("binary", "multiclass"), search_space=logreg_space, defaults=dict(C=0.3)
)
def logreg(ctx: ModelContext, *, C):
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


@register_model(
    "ridge", modality=TABULAR, tasks=("regression",), search_space=ridge_space,
    defaults=dict(alpha=None, outlier_z=5.0),  # alpha None: chosen by leave-one-out (RobustRidge)
)  # fmt: skip
def ridge(ctx: ModelContext, *, alpha, outlier_z):
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


@register_model(
    "hgb",
    modality=TABULAR,
    search_space=hgb_space,
    defaults=dict(learning_rate=0.05, max_iter=300, max_leaf_nodes=15, l2_regularization=1.0, min_samples_leaf=20),
)
def hgb(ctx: ModelContext, *, learning_rate, max_iter, max_leaf_nodes, l2_regularization, min_samples_leaf):
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
    pipeline = Pipeline([("prep", categorical_codes(ctx)), ("model", est)])
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


@register_model(
    "random_forest",
    modality=TABULAR,
    defaults=dict(n_estimators=500, min_samples_leaf=2, max_features=0.5, rows_per_tree=20_000),
)
def random_forest(ctx: ModelContext, *, n_estimators, min_samples_leaf, max_features, rows_per_tree):
    cls = RandomForestRegressor if ctx.task == "regression" else RandomForestClassifier
    est = cls(
        n_estimators=n_estimators,
        min_samples_leaf=min_samples_leaf,
        max_features=max_features,
        n_jobs=ctx.threads,
        random_state=ctx.seed,
    )
    prep = make_pipeline(categorical_codes(ctx), SimpleImputer(strategy="median", keep_empty_features=True))
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


@register_model(
    "svm", modality=TABULAR, search_space=svm_space,
    defaults=dict(C=None, gamma="scale", max_fit_rows=5_000),  # C None: 1 for classes, 3 for values
)  # fmt: skip
def svm(ctx: ModelContext, *, C, gamma, max_fit_rows):
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
