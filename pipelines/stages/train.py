"""Stage `train`: k-fold training of every model of the competition on the shared folds.

    python -m pipelines train <name> --clean data/clean/<name> --tuned data/tune/<name> \
        --cache data/cache/<name>/train --out data/train/<name>

Per model, `--out/<model>/` holds `oof.npy` (out-of-fold predictions), `test.npy` (mean of
the fold models' test predictions; with `train.refit`, half that and half a model refitted
on every training row) and `scores.json` (CV, per-fold scores, params, time);
`--out/cv.json` sums them up. Tuned params from `tune` replace the defaults. Finished folds
are kept in `--cache`, so an interrupted run resumes without redoing them.
"""

from __future__ import annotations

import logging
from pathlib import Path

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
    summary = {}
    with atomic_dir(args.out) as tmp:
        for model in models_for(params, args.name):
            model_params = {**tuned.get(model, {}).get("params", {}), **params.train.params_for(model)}
            workers = fold_workers(model, ctx, int(data.folds.max()) + 1)
            result = cross_validate(
                model,
                model_params,
                data.X,
                data.y,
                data.X_test,
                data.folds,
                ctx,
                cache_dir=args.cache,
                workers=workers,
                refit=params.train.refit_for(data.meta["modality"]),
            )
            save_predictions(tmp / model, result, {"tuned": model in tuned})
            summary[model] = {"cv": result.score, "seconds": round(result.seconds, 2)}
            print(f"{args.name}: {model:>14} cv {ctx.metric.name} {result.score:.5f} ({result.seconds:.1f}s)")
        write_json(tmp / "cv.json", {"metric": ctx.metric.name, "models": summary})
