"""Stage `ensemble`: blend the models' predictions and write the submission.

    python -m pipelines ensemble <name> --raw data/raw/<name> --clean data/clean/<name> \
        --train data/train/<name> --distill data/distill/<name> --out submissions/<name>

Candidates are every trained model plus the distilled student; `mean` leaves out those clearly
worse than another (`clearly_worse`: beaten on every fold and by more than two standard
errors; details.json's `ensemble.not_in_mean` says why). Each method (Caruana hill
climbing, stacking, plain mean; for `qwk` and binary `f1` also each followed by thresholds
fitted on OOF predictions) is scored on honest nested OOF predictions (fitted on the other
folds); the simplest one within one standard error (of their per-fold differences) of the
best (`choose_method`; details.json's `ensemble.chosen_by` says why, in words) is refitted on
all OOF rows and applied to the test predictions.
Writes `metrics.json`, the headline that `dvc exp show` compares (metric; cv: the chosen
method's nested OOF score; cv_std: its fold spread; cv per model), `details.json` (fold
scores, the ensemble's method, members and weights, each method's nested cv, each model's
spread, what a budget left out), `oof.npy` (those nested OOF predictions), `plots/`
(see `training/plots.py`: confusion matrix, ROC and precision-recall, or residuals and
predicted vs actual, ensemble weights, learning curves, each declared in dvc.yaml with its
template, and `oof.png`) and, last, `submission.csv`.

`details.json` is an out, not a declared metric, so `dvc exp show` leaves it out; DVC 3 still
reads it when named (checked with DVC 3.67): `dvc metrics diff --targets
submissions/<name>/details.json` and `dvc metrics show submissions/<name>/details.json`
(positional: `show` has no `--targets`). DVC compares the numbers of mappings and drops lists,
hence fold scores and weights keyed by fold and member.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.core.io import atomic_file, read_csv, read_json, save_array, write_json
from pipelines.core.metrics import get_metric
from pipelines.outputs.cleaned import CleanData
from pipelines.outputs.submission import make_submission, validate_submission, with_ids_as_written
from pipelines.stages.common import budget_cuts, load_predictions, trained
from pipelines.training.ensembling import candidate_methods, clearly_worse, fold_scores, method_choice, nested_oof
from pipelines.training.plots import ensemble_plots, write_plots


def add_arguments(parser) -> None:
    for flag in ("raw", "clean", "train", "distill", "out"):
        parser.add_argument(f"--{flag}", type=Path, required=True)


def read_curves(folders: dict[str, Path]) -> dict[str, pd.DataFrame]:
    """The `curves.csv` that `train` / `distill` wrote for the models that have epochs."""
    return {name: read_csv(d / "curves.csv") for name, d in folders.items() if (d / "curves.csv").is_file()}


def keyed(scores: list[float]) -> dict[str, float]:
    """Fold scores keyed fold0, fold1, ... (DVC compares the numbers of a mapping, not of a list)."""
    return {f"fold{k}": v for k, v in enumerate(scores)}


def summaries(
    metric, data, oof, chosen: dict, nested_scores: dict, preds: dict, left_out: dict, cuts: dict | None = None
) -> tuple[dict, dict]:
    """metrics.json: the headline that `dvc exp show` and `dvc metrics diff` compare (metric, cv
    and its fold spread, cv per model: one column each, nothing else, so the table stays
    narrow); details.json: the rest (fold scores keyed for `dvc metrics diff`, the ensemble's
    method and why, members and weights, each method's nested cv, each model's spread). With
    folds.adversarial every score is that of the rows CV scores (`cv_rows`)."""
    folds = fold_scores(data.y, oof, data.folds, metric, data.task, data.score_rows)
    cv, cv_std = metric.on(data.y, oof, data.task, data.score_rows), float(np.std(folds))
    models = {}
    for name, pred in preds.items():
        s = pred["scores"]
        models[name] = {
            "cv": s["cv"],
            "cv_std": float(np.std(s["folds"])),
            "folds": keyed(s["folds"]),
        }
    if "weights" in chosen:  # by member, so that each weight is a number DVC can compare
        chosen = {**chosen, "weights": dict(zip(chosen["members"], chosen["weights"], strict=True))}
    rows = {"cv_rows": int(data.score_rows.sum())} if data.score_rows is not None else {}
    headline = {
        "metric": metric.name,
        "cv": cv,
        "cv_std": cv_std,
        "models": {n: m["cv"] for n, m in models.items()},
        **rows,
    }
    details = {
        "metric": metric.name,
        "ensemble": {"cv": cv, "cv_std": cv_std, "folds": keyed(folds), **chosen},
        "methods_nested_cv": nested_scores,
        "models": models,
        **({"left_out": left_out} if left_out else {}),
        **({"budget_cuts": cuts} if cuts else {}),
        **rows,
    }
    return headline, details


def main(args, params) -> None:
    data = CleanData(args.clean)
    task, metric = data.task, get_metric(data.meta["metric"])
    models, left_out = trained(args.train)
    preds = load_predictions(args.train, models)
    if (args.distill / "student").is_dir():  # with a budget, distill may have left the student out
        preds.update({f"distill:{k}": v for k, v in load_predictions(args.distill, ["student"]).items()})
    if (args.distill / "left_out.json").is_file():
        left_out.update(read_json(args.distill / "left_out.json"))
    names = list(preds)
    oofs, tests = [preds[n]["oof"] for n in names], [preds[n]["test"] for n in names]
    weak = clearly_worse({n: p["scores"] for n, p in preds.items()}, metric)
    mean_of = [i for i, n in enumerate(names) if n not in weak]

    ens = params.ensemble
    candidates = candidate_methods(ens.methods, metric, task, ens.iterations, params.seed, mean_of)
    nested, nested_scores = {}, {}
    for method, fit_apply in candidates.items():
        nested[method] = nested_oof(lambda tr, y, ap, f=fit_apply: f(tr, y, ap)[0], oofs, data.y, data.folds)
        nested_scores[method] = metric.on(data.y, nested[method], task, data.score_rows)
    best, why = method_choice(nested, data.y, data.folds, metric, task, data.score_rows)
    final_test, detail = candidates[best](oofs, data.y, tests)
    final_oof = nested[best]

    sample = read_csv(args.raw / "sample_submission.csv")
    # a regression target scored on labels (qwk): thresholds already produced the values
    sub_metric = replace(metric, submits="values") if task == "regression" else metric
    sub = make_submission(final_test, data.test_ids, sample, data.meta["classes"], sub_metric, task, data.meta["id"])
    if task == "regression" and metric.submits == "labels" and np.all(np.mod(data.y, 1) == 0):
        value_cols = [c for c in sub.columns if c != data.meta["id"]]
        sub[value_cols] = sub[value_cols].round().astype(np.int64)  # integer ratings stay integers
    validate_submission(sub, sample, data.meta["id"])
    sub = with_ids_as_written(sub, args.raw / "sample_submission.csv", data.meta["id"])

    args.out.mkdir(parents=True, exist_ok=True)
    save_array(args.out / "oof.npy", final_oof)
    curves = read_curves({n: args.train / n for n in models} | {"distill:student": args.distill / "student"})
    frames = ensemble_plots(data.y, final_oof, task, data.meta["classes"], names, detail, curves, metric.name)
    write_plots(args.out / "plots", frames, data.y, final_oof, task, data.meta["classes"])
    chosen = {"method": best, "chosen_by": why, "members": names, **detail, **({"not_in_mean": weak} if weak else {})}
    cuts = budget_cuts(args.train, args.distill)
    headline, details = summaries(metric, data, final_oof, chosen, nested_scores, preds, left_out, cuts)
    write_json(args.out / "details.json", details)
    write_json(args.out / "metrics.json", headline)
    with atomic_file(args.out / "submission.csv") as fh:  # written last: its presence means success
        sub.to_csv(fh, index=False)
    print(f"{args.name}: ensemble {best} cv {metric.name} {headline['cv']:.5f} -> {args.out}")
