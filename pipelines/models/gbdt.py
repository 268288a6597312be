"""Gradient-boosted trees behind the registry's contract: `BoostedModel` (rounds from early
stopping on a seeded holdout of the fold's training rows, never its validation rows) and
LightGBM on it, seeded and deterministic on pinned threads; `lightgbm_ordinal` regresses the
class index of ordered classes. XGBoost and CatBoost live in `xgb.py` and `catboost_model.py`.
"""

from __future__ import annotations

import copy
import math
import re
import time
from abc import ABC, abstractmethod

import numpy as np
from sklearn.pipeline import Pipeline

from pipelines.core.context import KD_ALPHA, LARGE_TABLE_ROWS, TABULAR, ModelContext
from pipelines.core.tables import take_rows
from pipelines.features.preprocess import categorical_codes
from pipelines.models.registry import register_model
from pipelines.models.tabular import SklearnModel


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
# up to this many training rows, fit again on all of them after early stopping; above it the
# early-stopped model is kept. Measured at 100,000 on Adult's 27,000-row folds: +0.0005-0.0006
# CV for each GBDT but only +0.0002-0.0005 held out for the ensemble, at twice the time (160-210 s
# -> 320-420 s a split), a cost that did not pay (benchmarks/levers.py). From there `train.refit:
# auto` fits one more model on every row instead (core/context.py: LARGE_TABLE_ROWS).
FINAL_FIT_ROWS = LARGE_TABLE_ROWS


class BoostedModel(SklearnModel, ABC):
    """Gradient boosting whose number of trees comes from early stopping inside the training rows.

    From `EARLY_STOPPING_ROWS` training rows on, a seeded `holdout` share of the training
    rows (stratified for classes) stops boosting once the validation loss has not improved
    for `patience` rounds; the model is then fitted again on all training rows with the
    rounds scaled up for the extra data (up to `final_fit_rows` rows, `FINAL_FIT_ROWS` by
    default; above that, the early-stopped model is kept to save time). The fold's own validation rows are never
    looked at, so CV stays honest. Fewer rows: `n_estimators` rounds (a holdout of a few
    hundred rows stops too noisily). Below `ONE_THREAD_ROWS` rows boosting runs on one thread.

    With a time budget (`seconds`, the fit's part: `ctx.fit_seconds`), boosting also stops
    when the time is spent, and the final fit on all rows is left out when it would not end
    in time (`budget_cut_` says what was cut).

    A library plugs in with `rounds_param`, `threads_param` and `fit_stopped` (one fit with
    early stopping on the holdout, and a stop once `limit` expires, that returns the best
    number of rounds).
    `ordinal`: ordered classes learnt as a regression on the class index (see SklearnModel).
    """

    rounds_param, threads_param = "n_estimators", "n_jobs"

    def __init__(self, pipeline, task, *, n_classes, n_estimators, max_rounds, holdout=0.1, patience=50,
                 final_fit_rows=FINAL_FIT_ROWS, seed=0, ordinal=False, seconds=None):  # fmt: skip
        # final_fit_rows=0: keep the early-stopped model (tuning trials do, to halve their cost)
        super().__init__(pipeline, task, n_classes=n_classes, ordinal=ordinal)
        self.n_estimators = n_estimators
        self.max_rounds = max_rounds
        self.holdout = holdout
        self.patience = patience
        self.final_fit_rows = final_fit_rows
        self.seed = seed
        self.seconds = seconds
        self.budget_cut_ = None

    @classmethod
    def for_fold(cls, pipeline, ctx: ModelContext, n_estimators: int, max_rounds: int, final_fit: bool, **kw):
        """The adapter as every factory builds it: the fold's task, classes and seed."""
        return cls(pipeline, ctx.task, n_classes=ctx.n_classes, n_estimators=n_estimators, max_rounds=max_rounds,
                   seed=ctx.seed, final_fit_rows=FINAL_FIT_ROWS if final_fit else 0, seconds=ctx.fit_seconds,
                   **kw)  # fmt: skip

    @abstractmethod
    def fit_stopped(self, est, x_fit, y_fit, x_stop, y_stop, limit: TimeLimit) -> int:
        """Fit `est` with early stopping on (x_stop, y_stop), stopping too once `limit`
        expires; the best number of rounds."""

    def fit(self, X, y, eval_set=None, soft_targets=None):
        y = np.asarray(y)
        limit = TimeLimit(self.seconds)  # preparing the columns counts too
        est = self.pipeline.named_steps["model"]
        if self.ordinal:
            y = y.astype(np.float64)
        if len(y) < ONE_THREAD_ROWS:  # small data: a second thread only adds sync cost (2x slower measured)
            est.set_params(**{self.threads_param: 1})
        if len(y) < EARLY_STOPPING_ROWS:
            est.set_params(**{self.rounds_param: self.n_estimators})
            self.pipeline.fit(X, y)
            return self
        x = self.pipeline.named_steps["prep"].fit_transform(X, y)
        fit_idx, stop_idx = _holdout_split(y, "regression" if self.ordinal else self.task, self.holdout, self.seed)
        est.set_params(**{self.rounds_param: self.max_rounds})
        fresh = copy.deepcopy(est)  # unfitted; sklearn's clone rejects CatBoost (it copies cat_features)
        start = time.monotonic()
        best = self.fit_stopped(est, take_rows(x, fit_idx), y[fit_idx], take_rows(x, stop_idx), y[stop_idx], limit)
        self.best_rounds_ = max(1, int(best or self.max_rounds))
        if limit.fired:
            self.budget_cut_ = f"boosting stopped at {self.best_rounds_} rounds"
        if len(y) <= self.final_fit_rows:  # a fresh estimator: CatBoost's cannot change once fitted
            if limit.left() < (time.monotonic() - start) / (1 - self.holdout):  # as long again, on more rows
                cut = "no final fit on all training rows"
                self.budget_cut_ = f"{self.budget_cut_}; {cut}" if self.budget_cut_ else cut
                return self
            final = fresh.set_params(**{self.rounds_param: round(self.best_rounds_ / (1 - self.holdout)) or 1})
            self.pipeline.steps[-1] = ("model", final.fit(x, y))
        return self


class TimeLimit:
    """A fit's time budget as boosting callbacks see it: `expired()` once `seconds` have
    passed since it was made (never with None); `fired` once a callback stopped on it."""

    def __init__(self, seconds: float | None):
        self.end = None if seconds is None else time.monotonic() + seconds
        self.fired = False

    def left(self) -> float:
        return math.inf if self.end is None else self.end - time.monotonic()

    def expired(self) -> bool:
        self.fired = self.fired or self.left() <= 0
        return self.fired


class LightGBMModel(BoostedModel):
    def fit_stopped(self, est, x_fit, y_fit, x_stop, y_stop, limit: TimeLimit) -> int:
        import lightgbm as lgb

        if _version(lgb.__version__) >= (4, 7):  # 4.7 added eval_X / eval_y and deprecated eval_set
            evals = {"eval_X": (x_stop,), "eval_y": (y_stop,)}
        else:
            evals = {"eval_set": [(x_stop, y_stop)]}

        def in_time(env) -> None:
            if limit.expired():  # keep the rounds so far
                raise lgb.callback.EarlyStopException(env.iteration, env.evaluation_result_list)

        stop = lgb.early_stopping(self.patience, first_metric_only=True, verbose=False)
        est.fit(x_fit, y_fit, callbacks=[stop, in_time], **evals)
        return est.best_iteration_


def _version(text: str) -> tuple[int, ...]:
    """(major, minor) of a version string such as "4.7.0" or "4.6.0.99"."""
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


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


def lightgbm_fixed(ctx: ModelContext) -> dict:
    """What every LightGBM here runs with: seeded, deterministic, on the pinned threads, quiet."""
    return dict(random_state=ctx.seed, n_jobs=ctx.threads, deterministic=True, force_row_wise=True, verbose=-1)


LIGHTGBM = dict(  # lightgbm's arguments and defaults (lightgbm_ordinal takes them but `ordinal`)
    learning_rate=0.03,
    n_estimators=300,
    num_leaves=15,
    min_child_samples=20,
    subsample=0.8,
    colsample_bytree=0.7,
    reg_lambda=1.0,
    extra_trees=False,
    max_rounds=3000,
    ordinal=False,
    final_fit=True,
)


# From this many training rows a regression's boosters take pytabkit 1.7.3's meta-learned
# defaults (Holzmueller et al. 2024, `DefaultParams.LGBM_TD_REG`, `XGB_TD_REG`): on diamonds'
# 38,000 rows the blend's rmsle fell from 0.0854 to 0.0844 (held out 0.0850 to 0.0837). Its
# classification defaults (LGBM_TD_CLASS) were mixed: ahead on flights (roc_auc 0.7807 to
# 0.7835), behind on Adult (0.9282 to 0.9261) and on 210,000 synthetic rows (0.8315 to 0.8302),
# so classification keeps these (benchmarks/README.md, "Flights and diamonds"). Below it, the
# defaults measured on the small embedded competitions stay.
LARGE_ROWS = LARGE_TABLE_ROWS
LIGHTGBM_LARGE_REGRESSION = dict(
    learning_rate=0.05, num_leaves=100, min_child_samples=3, subsample=0.7, colsample_bytree=1.0, reg_lambda=0.0
)


def lightgbm_at_size(rows: int, task: str) -> dict:
    """lightgbm's defaults that differ for `rows` training rows of `task`."""
    return LIGHTGBM_LARGE_REGRESSION if task == "regression" and rows >= LARGE_ROWS else {}


@register_model("lightgbm", modality=TABULAR, search_space=lightgbm_space, defaults=LIGHTGBM, at_size=lightgbm_at_size)
def lightgbm(
    ctx: ModelContext, *, learning_rate, n_estimators, num_leaves, min_child_samples, subsample, colsample_bytree,
    reg_lambda, extra_trees, max_rounds, ordinal, final_fit,
):  # fmt: skip
    """`n_estimators`: the rounds below EARLY_STOPPING_ROWS training rows; from there on, early
    stopping on 10% of the fold's training rows picks them, up to `max_rounds`. `ordinal`: a
    regression on the class index of ordered classes. `final_fit=False` keeps the early-stopped
    model instead of fitting again on all training rows (see LightGBMModel). `extra_trees`:
    each split's threshold drawn at random (extremely randomised trees, AutoGluon's LightGBMXT)."""
    import lightgbm as lgb

    kw = dict(
        learning_rate=learning_rate,
        num_leaves=num_leaves,
        min_child_samples=min_child_samples,
        subsample=subsample,
        subsample_freq=1,
        colsample_bytree=colsample_bytree,
        reg_lambda=reg_lambda,
        extra_trees=extra_trees,
        **lightgbm_fixed(ctx),
    )
    ordinal = ordinal and ctx.task == "multiclass"
    est = lgb.LGBMRegressor(**kw) if ctx.task == "regression" or ordinal else lgb.LGBMClassifier(**kw)
    pipeline = Pipeline([("prep", categorical_codes(ctx)), ("model", est)])
    return LightGBMModel.for_fold(pipeline, ctx, n_estimators, max_rounds, final_fit, ordinal=ordinal)


@register_model(
    "lightgbm_ordinal", modality=TABULAR, tasks=("multiclass",), search_space=lightgbm_space,
    defaults={k: v for k, v in LIGHTGBM.items() if k != "ordinal"},
)  # fmt: skip
def lightgbm_ordinal(ctx: ModelContext, **params):
    """LightGBM regressing the class index of ordered classes (ratings, grades): list it in a
    competition's `models:` next to `lightgbm` when the order carries the signal. On
    diamond cut grades the classifier with OOF-fitted thresholds did better (qwk 0.659 vs
    0.633 held out), so it is not a default."""
    return lightgbm(ctx, ordinal=True, **params)


class GBDTStudent(SklearnModel):
    """A small LightGBM that learns the teachers' soft targets (knowledge distillation for
    tabular data, where a tree student keeps up with tree teachers better than a small net).

    Each tree model regresses `alpha * teacher + (1 - alpha) * label`: for probabilities with
    LightGBM's cross-entropy objective (labels in [0, 1]; one model per class, renormalised,
    for multiclass), for values with squared error. Without soft targets it learns the labels.
    """

    def __init__(self, ctx: ModelContext, params: dict, alpha: float):
        super().__init__(Pipeline([("prep", categorical_codes(ctx))]), ctx.task, n_classes=ctx.n_classes)
        self.params, self.alpha = params, alpha

    def _targets(self, y: np.ndarray, soft: np.ndarray | None) -> np.ndarray:
        hard = np.eye(self.n_classes)[y.astype(int)] if self.task == "multiclass" else y.astype(np.float64)
        return hard if soft is None else self.alpha * np.asarray(soft, dtype=np.float64) + (1 - self.alpha) * hard

    def fit(self, X, y, eval_set=None, soft_targets=None):
        import lightgbm as lgb

        y = np.asarray(y)
        x = self.pipeline.fit_transform(X, y)
        target = self._targets(y, soft_targets)
        objective = "regression" if self.task == "regression" else "cross_entropy"
        columns = target.T if target.ndim == 2 else [target]
        self.models_ = [lgb.LGBMRegressor(objective=objective, **self.params).fit(x, t) for t in columns]
        return self

    def predict_output(self, X) -> np.ndarray:
        x = self.pipeline.transform(X)
        out = np.column_stack([m.predict(x) for m in self.models_])
        if self.task == "multiclass":
            out = np.clip(out, 1e-9, None)
            return out / out.sum(axis=1, keepdims=True)
        return out[:, 0]


@register_model(
    "student_gbdt", modality=TABULAR, accepts_soft_targets=True,
    defaults=dict(alpha=KD_ALPHA, n_estimators=400, learning_rate=0.1, num_leaves=31, min_child_samples=20),
)  # fmt: skip
def student_gbdt(ctx: ModelContext, *, alpha, n_estimators, learning_rate, num_leaves, min_child_samples):
    """`alpha`: the teachers' share of each target (the labels' is 1 - alpha)."""
    params = dict(
        n_estimators=n_estimators,
        learning_rate=learning_rate,
        num_leaves=num_leaves,
        min_child_samples=min_child_samples,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        **lightgbm_fixed(ctx),
    )
    return GBDTStudent(ctx, params, alpha)
