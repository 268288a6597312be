"""CatBoost behind the registry's contract: oblivious trees with CatBoost's own ordered
statistics for categorical columns (given as integer codes), rounds from early stopping on a
holdout of the fold's training rows (`BoostedModel`), seeded, on pinned threads, and no
`catboost_info/` folder written beside the run."""

from __future__ import annotations

from sklearn.pipeline import Pipeline

from pipelines.core.context import TABULAR, ModelContext
from pipelines.features.preprocess import categorical_frame, categorical_positions
from pipelines.models.gbdt import BoostedModel, TimeLimit
from pipelines.models.registry import register_model


def catboost_space(trial) -> dict:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        "depth": trial.suggest_int("depth", 3, 8),
        "l2_leaf_reg": trial.suggest_float("l2_leaf_reg", 0.5, 30.0, log=True),
        "n_estimators": trial.suggest_int("n_estimators", 100, 1000, log=True),  # small data only
    }


class CatBoostModel(BoostedModel):
    rounds_param, threads_param = "iterations", "thread_count"

    def fit_stopped(self, est, x_fit, y_fit, x_stop, y_stop, limit: TimeLimit) -> int:
        est.fit(
            x_fit, y_fit, eval_set=(x_stop, y_stop), early_stopping_rounds=self.patience, callbacks=[_InTime(limit)]
        )
        return est.get_best_iteration() + 1


class _InTime:
    """CatBoost's callback protocol: `after_iteration` returns False to stop boosting."""

    def __init__(self, limit: TimeLimit):
        self.limit = limit

    def after_iteration(self, info) -> bool:
        return not self.limit.expired()


# From this many training rows catboost boosts at 0.1 (as CatBoost's own automatic rate grows
# with the rows): on flights' 105,000 it fitted in 290 s instead of 503, CV 0.7793 -> 0.7786,
# held out 0.7880 -> 0.7893, the blend with lightgbm and xgboost 0.7828 -> 0.7830 (held out
# 0.7899 -> 0.7904) (benchmarks/README.md, "CatBoost's cost at size").
FAST_ROWS, FAST_RATE = 100_000, 0.1


def catboost_at_size(rows: int, task: str) -> dict:
    return {"learning_rate": FAST_RATE} if rows >= FAST_ROWS else {}


@register_model(
    "catboost",
    modality=TABULAR,
    search_space=catboost_space,
    at_size=catboost_at_size,
    defaults=dict(learning_rate=0.05, n_estimators=500, depth=6, l2_leaf_reg=3.0, max_rounds=3000, final_fit=True),
)
def catboost(ctx: ModelContext, *, learning_rate, n_estimators, depth, l2_leaf_reg, max_rounds, final_fit):
    """`n_estimators`: the rounds on small data; from EARLY_STOPPING_ROWS training rows early
    stopping picks them, up to `max_rounds` (see BoostedModel); `final_fit` as for lightgbm."""
    import catboost as cb

    kw = dict(
        learning_rate=learning_rate,
        depth=depth,
        l2_leaf_reg=l2_leaf_reg,
        cat_features=categorical_positions(ctx.roles) or None,  # the frame's names are safe_names
        random_seed=ctx.seed,
        thread_count=ctx.threads,
        verbose=False,
        allow_writing_files=False,
    )
    est = cb.CatBoostRegressor(**kw) if ctx.task == "regression" else cb.CatBoostClassifier(**kw)
    pipeline = Pipeline([("prep", categorical_frame(ctx, codes=True)), ("model", est)])
    return CatBoostModel.for_fold(pipeline, ctx, n_estimators, max_rounds, final_fit)
