"""Stage `ensemble`: blend the models' predictions and write the submission.

    python -m pipelines ensemble <name> --raw data/raw/<name> --clean data/clean/<name> \
        --train data/train/<name> --distill data/distill/<name> --out submissions/<name>

Candidates are every trained model plus the distilled student. Each method (Caruana hill
climbing, stacking, plain mean) is scored on honest nested OOF predictions (fitted on the
other folds); the best one is refitted on all OOF rows and applied to the test predictions.
Writes `metrics.json` (metric, cv of the final ensemble's OOF predictions, per-model cv),
`oof.npy`, `plots/` (confusion matrix, ROC or residuals) and, last, `submission.csv`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from pipelines.ensembling import methods, nested_oof
from pipelines.io import atomic_file, read_csv, save_array, write_json
from pipelines.metrics import get_metric, to_labels
from pipelines.stages.clean import CleanData
from pipelines.stages.common import load_predictions
from pipelines.submission import make_submission, validate_submission


def add_arguments(parser) -> None:
    for flag in ("raw", "clean", "train", "distill", "out"):
        parser.add_argument(f"--{flag}", type=Path, required=True)


def write_plots(folder: Path, y: np.ndarray, oof: np.ndarray, task: str, classes: list) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if task == "regression":
        frame = pd.DataFrame({"actual": y, "predicted": oof, "residual": oof - y})
        with atomic_file(folder / "residuals.csv") as fh:
            frame.round(6).to_csv(fh, index=False)
        return
    names = np.asarray([str(c) for c in classes], dtype=object)
    frame = pd.DataFrame({"actual": names[y], "predicted": names[to_labels(oof, task)]})
    with atomic_file(folder / "confusion.csv") as fh:
        frame.to_csv(fh, index=False)
    if task == "binary":
        fpr, tpr, _ = roc_curve(y, oof)
        with atomic_file(folder / "roc.csv") as fh:
            pd.DataFrame({"fpr": fpr, "tpr": tpr}).round(6).to_csv(fh, index=False)


def main(args, params) -> None:
    data = CleanData(args.clean)
    task, metric = data.task, get_metric(data.meta["metric"])
    preds = load_predictions(args.train, params.models_for(args.name))
    preds.update({f"distill:{k}": v for k, v in load_predictions(args.distill, ["student"]).items()})
    names = list(preds)
    oofs, tests = [preds[n]["oof"] for n in names], [preds[n]["test"] for n in names]

    candidates = methods(metric, task, params.ensemble.iterations, params.seed)
    nested = {}
    for method in params.ensemble.methods:
        fit_apply = candidates[method]
        oof = nested_oof(lambda tr, y, ap: fit_apply(tr, y, ap)[0], oofs, data.y, data.folds)
        nested[method] = metric(data.y, oof, task)
    best = max(nested, key=lambda m: nested[m] if metric.greater_is_better else -nested[m])
    final_oof, detail = candidates[best](oofs, data.y, oofs)
    final_test, _ = candidates[best](oofs, data.y, tests)

    sample = read_csv(args.raw / "sample_submission.csv")
    sub = make_submission(final_test, data.test_ids, sample, data.meta["classes"], metric, task, data.meta["id"])
    validate_submission(sub, sample, data.meta["id"])

    args.out.mkdir(parents=True, exist_ok=True)
    save_array(args.out / "oof.npy", final_oof)
    write_plots(args.out / "plots", data.y, final_oof, task, data.meta["classes"])
    write_json(
        args.out / "metrics.json",
        {
            "metric": metric.name,
            "cv": metric(data.y, final_oof, task),
            "method": best,
            "methods_nested_cv": nested,
            "ensemble": {"members": names, **detail},
            "models": {n: preds[n]["scores"]["cv"] for n in names},
        },
    )
    with atomic_file(args.out / "submission.csv") as fh:  # written last: its presence means success
        sub.to_csv(fh, index=False)
    print(f"{args.name}: ensemble {best} cv {metric.name} {metric(data.y, final_oof, task):.5f} -> {args.out}")
