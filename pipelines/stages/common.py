"""Small helpers shared by the stages that train models (tune, train, distill, ensemble)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.core import progress
from pipelines.core.context import ModelContext
from pipelines.core.io import load_array, read_json
from pipelines.core.metrics import get_metric
from pipelines.training.ensembling import blend, hill_climb


def model_context(data, params, **overrides) -> ModelContext:
    meta = data.meta
    shape = tuple(meta["image_shape"]) if meta.get("image_shape") else None
    kw = dict(
        task=meta["task"],
        metric=get_metric(meta["metric"]),
        n_classes=meta["n_classes"],
        roles=meta.get("roles", {}),
        image_shape=shape,
        seed=params.seed,
        threads=params.train.threads,
        epochs=params.train.epochs,
        deterministic=params.train.deterministic,
        progress=progress.enabled(),  # params.yaml `progress`, or the --[no-]progress flag
    )
    kw.update(overrides)
    return ModelContext(**kw)


def trained(train_folder: Path) -> tuple[list[str], dict[str, str]]:
    """The models `train` wrote predictions for, and those it left out (with a budget) and why."""
    summary = read_json(Path(train_folder) / "cv.json")
    return list(summary["models"]), summary.get("left_out", {})


def budget_cuts(train_folder: Path, distill_folder: Path) -> dict[str, dict[str, str]]:
    """What the time budget cut of each model's fits (train's and the student's), by model."""
    cuts = dict(read_json(Path(train_folder) / "cv.json").get("budget_cuts", {}))
    student = Path(distill_folder) / "student" / "scores.json"
    if student.is_file() and "budget_cuts" in (scores := read_json(student)):
        cuts["distill:student"] = scores["budget_cuts"]
    return cuts


def load_predictions(folder: Path, models: list[str]) -> dict[str, dict]:
    """OOF and test predictions that `train` (or `distill`) wrote, by model name."""
    out = {}
    for name in models:
        d = Path(folder) / name
        out[name] = {
            "oof": load_array(d / "oof.npy"),
            "test": load_array(d / "test.npy"),
            "fold_train": load_array(d / "fold_train.npy"),
            "scores": read_json(d / "scores.json"),
        }
    return out


def save_predictions(folder: Path, result, extra: dict | None = None) -> None:
    """oof.npy, test.npy, fold_train.npy, scores.json and, for models with epochs, curves.csv
    (per fold and epoch: training loss and validation score, for the ensemble's plots). Only
    what a fixed seed makes the same: timings go to the stage's log file instead."""
    from pipelines.core.io import atomic_file, save_array, write_json

    folder.mkdir(parents=True, exist_ok=True)
    curves = result.curve_frame()
    if len(curves):
        with atomic_file(folder / "curves.csv") as fh:
            curves.round(6).to_csv(fh, index=False)
    save_array(folder / "oof.npy", result.oof.astype(np.float64))
    save_array(folder / "test.npy", result.test.astype(np.float64))
    save_array(folder / "fold_train.npy", result.fold_train.astype(np.float32))
    write_json(
        folder / "scores.json",
        {
            "cv": result.score,
            "folds": result.fold_scores,
            "params": result.params,
            "refit": result.refit,
            **({"budget_cuts": result.budget_cuts} if result.budget_cuts else {}),
            **(extra or {}),
        },
    )


def teacher_targets(preds: dict, y: np.ndarray, metric, task: str, iterations: int):
    """Distillation's teachers: blend weights, the blend's OOF predictions, and per-fold soft
    targets (n_splits, n, ...) (`distill` trains on them; `export` refits its student with them)."""
    names = list(preds)
    weights = hill_climb([preds[n]["oof"] for n in names], y, metric, task, iterations)
    oof = blend([preds[n]["oof"] for n in names], weights, metric, task)
    n_splits = preds[names[0]]["fold_train"].shape[0]
    soft = np.stack([blend([preds[n]["fold_train"][k] for n in names], weights, metric, task) for k in range(n_splits)])
    return dict(zip(names, weights.round(4).tolist(), strict=True)), oof, soft
