"""Stage `train`: k-fold training of every model of the competition on the shared folds.

    python -m pipelines train <name> --clean data/clean/<name> --tuned data/tune/<name> \
        --cache data/cache/<name>/train --out data/train/<name>

Per model, `--out/<model>/` holds `oof.npy` (out-of-fold predictions), `test.npy` (mean of
the fold models' test predictions; with `train.refit`, half that and half a model refitted
on every training row) and `scores.json` (CV, per-fold scores, params, time);
`--out/cv.json` sums them up (with a `budget`, also what was left out and why; see
`core/budget.py`). Tuned params from `tune` replace the defaults. Finished folds are kept
in `--cache`, so an interrupted run resumes without redoing them.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from pipelines.core.budget import Deadline, OverBudget
from pipelines.core.context import set_threads
from pipelines.core.io import atomic_dir, read_json, write_json
from pipelines.models.selection import check_models, models_for
from pipelines.sources.cleaned import CleanData
from pipelines.stages.common import model_context, save_predictions
from pipelines.training.cv import cross_validate, fold_workers

log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("--clean", type=Path, required=True)
    parser.add_argument("--tuned", type=Path, required=True, help="tune's folder (best_params.json)")
    parser.add_argument("--cache", type=Path, required=True, help="finished folds and checkpoints, for resuming")
    parser.add_argument("--out", type=Path, required=True)


def main(args, params) -> None:
    check_models(params, args.params)
    set_threads(params.train.threads)
    data = CleanData(args.clean)
    ctx = model_context(data, params)
    tuned = read_json(args.tuned / "best_params.json")
    deadline = Deadline.for_stage(params.budget, "train")
    models = models_for(params, args.name, len(data.y))
    refit = params.train.refit_for(data.meta["modality"])
    fits = data.n_splits + refit
    summary, left_out = {}, {}
    with atomic_dir(args.out) as tmp:
        for i, model in enumerate(models):
            if i and deadline.spent():  # the first model always trains: a submission needs one
                left_out[model] = "the train stage's share of the budget was spent"
                print(f"{args.name}: {model:>14} left out: {left_out[model]}")
                continue
            model_params = {**tuned.get(model, {}).get("params", {}), **params.train.params_for(model)}
            workers = fold_workers(model, ctx, data.n_splits)
            timed = replace(ctx, fit_seconds=deadline.share((len(models) - i) * fits))
            check = deadline.fold_check(model, fits) if i and workers == 1 and params.budget else None
            try:
                result = cross_validate(
                    model, model_params, data.X, data.y, data.X_test, data.folds, timed,
                    cache_dir=args.cache, workers=workers, refit=refit, on_fold=check, score_rows=data.score_rows,
                )  # fmt: skip
            except OverBudget as err:
                left_out[model] = str(err)
                print(f"{args.name}: {model:>14} left out: {err}")
                continue
            save_predictions(tmp / model, result, {"tuned": model in tuned})
            summary[model] = {"cv": result.score, "seconds": round(result.seconds, 2)}
            print(f"{args.name}: {model:>14} cv {ctx.metric.name} {result.score:.5f} ({result.seconds:.1f}s)")
        extra = {"left_out": left_out} if left_out else {}
        write_json(tmp / "cv.json", {"metric": ctx.metric.name, "models": summary, **extra})
