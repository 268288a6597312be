"""The ensemble's plots: pure functions from predictions to frames, and a small writer.

    frames = ensemble_plots(y, oof, task, classes, members, detail, curves, metric_name)
    write_plots(folder, frames, y, oof, task, classes)

Each frame becomes `<folder>/<name>.csv`, declared in `dvc.yaml` with the DVC template
that draws it (confusion matrix, ROC and precision-recall, residuals and predicted vs
actual, ensemble weights, learning curves); `oof.png` shows the same out-of-fold rows as an
image. Every file is written for every task, so that one `foreach` declaration fits all
competitions: a plot that does not apply to the task (a ROC for a regression) is a CSV
with its header and no rows, which `dvc plots show` leaves out.

Learning curves: `train` and `distill` write `curves.csv` per model with epochs
(`CVResult.curve_frame`: one row per fold and epoch of the torch loop's history); the
ensemble stacks them with `learning_curves`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve, roc_curve
from sklearn.preprocessing import label_binarize

from pipelines.core.io import atomic_file
from pipelines.core.metrics import to_labels

# the columns each plot's dvc.yaml declaration names (x, y): header-only files keep them. Only
# what a chart draws: a plotting tool that draws every numeric column (DVC without a template,
# a spreadsheet) must not draw a threshold as a second curve on the ROC's axes
COLUMNS = {
    "confusion": ["actual", "predicted"],
    "roc": ["fpr", "tpr"],
    "precision_recall": ["recall", "precision"],
    "residuals": ["predicted", "residual"],
    "predicted_vs_actual": ["actual", "predicted"],
    "ensemble_weights": ["model", "weight"],
    "learning_curves": ["model", "fold", "epoch", "curve", "value"],
}
MAX_POINTS = 2000  # rows kept in scatter and curve plots: the browser draws every one


def confusion_frame(y: np.ndarray, oof: np.ndarray, task: str, classes: list) -> pd.DataFrame:
    """One row per training row: actual and out-of-fold predicted class (DVC counts them)."""
    if task == "regression":
        return _empty("confusion")
    names = np.asarray([str(c) for c in classes], dtype=object)
    return pd.DataFrame({"actual": names[y], "predicted": names[to_labels(oof, task)]})


def roc_frame(y: np.ndarray, oof: np.ndarray, task: str) -> pd.DataFrame:
    """ROC of the positive class; for multiclass, micro-averaged over one-vs-rest classes."""
    if task == "regression":
        return _empty("roc")
    truth, score = _one_vs_rest(y, oof, task)
    fpr, tpr, _ = roc_curve(truth, score, drop_intermediate=True)
    return _thin(pd.DataFrame({"fpr": fpr, "tpr": tpr}))


def precision_recall_frame(y: np.ndarray, oof: np.ndarray, task: str) -> pd.DataFrame:
    if task == "regression":
        return _empty("precision_recall")
    truth, score = _one_vs_rest(y, oof, task)
    precision, recall, _ = precision_recall_curve(truth, score, drop_intermediate=True)
    return _thin(pd.DataFrame({"recall": recall, "precision": precision}))


def regression_frames(y: np.ndarray, oof: np.ndarray, task: str) -> dict[str, pd.DataFrame]:
    if task != "regression":
        return {"residuals": _empty("residuals"), "predicted_vs_actual": _empty("predicted_vs_actual")}
    rows = _sample(len(y))
    actual, predicted = y[rows], oof[rows]
    return {
        "residuals": pd.DataFrame({"predicted": predicted, "residual": predicted - actual}),
        "predicted_vs_actual": pd.DataFrame({"actual": actual, "predicted": predicted}),
    }


def weights_frame(members: list[str], detail: dict) -> pd.DataFrame:
    """The chosen blend's weight per member (stacking: its coefficient, when one per member)."""
    weights = detail.get("weights", detail.get("coef"))
    if weights is None or len(weights) != len(members):
        return _empty("ensemble_weights")
    return pd.DataFrame({"model": members, "weight": np.asarray(weights, dtype=np.float64)})


def learning_curves(per_model: dict[str, pd.DataFrame], metric_name: str) -> pd.DataFrame:
    """Every model's `curves.csv` (`CVResult.curve_frame`: fold, epoch, train_loss,
    val_score), long: one row per model, fold, epoch and curve."""
    parts = []
    for model, frame in per_model.items():
        for column, label in (("train_loss", "training loss"), ("val_score", f"validation {metric_name}")):
            part = frame[["fold", "epoch"]].assign(model=model, curve=label, value=frame[column])
            parts.append(part.dropna(subset=["value"]))
    if not parts:
        return _empty("learning_curves")
    return pd.concat(parts, ignore_index=True)[COLUMNS["learning_curves"]]


def ensemble_plots(y, oof, task, classes, members, detail, curves, metric_name) -> dict[str, pd.DataFrame]:
    """Every plot frame of the ensemble stage, by file name (without `.csv`)."""
    return {
        "confusion": confusion_frame(y, oof, task, classes),
        "roc": roc_frame(y, oof, task),
        "precision_recall": precision_recall_frame(y, oof, task),
        **regression_frames(y, oof, task),
        "ensemble_weights": weights_frame(members, detail),
        "learning_curves": learning_curves(curves, metric_name),
    }


def write_plots(folder: Path, frames: dict[str, pd.DataFrame], y, oof, task: str, classes: list) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        with atomic_file(folder / f"{name}.csv") as fh:
            frame.round(6).to_csv(fh, index=False)
    write_png(folder / "oof.png", y, oof, task, classes)


# --- the image -------------------------------------------------------------------------


def write_png(path: Path, y: np.ndarray, oof: np.ndarray, task: str, classes: list) -> None:
    """Out-of-fold rows at a glance: predicted vs actual and residuals (regression), or the
    row-normalised confusion matrix (classification)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if task == "regression":
        fig = _regression_figure(plt, y, oof)
    else:
        fig = _confusion_figure(plt, y, to_labels(oof, task), [str(c) for c in classes])
    fig.tight_layout()
    with atomic_file(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=80)
    plt.close(fig)


def _regression_figure(plt, y: np.ndarray, pred: np.ndarray):
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.5))
    lo, hi = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
    a.scatter(y, pred, s=6, alpha=0.5)
    a.plot([lo, hi], [lo, hi], color="k", lw=1)
    a.set(xlabel="actual", ylabel="predicted (out-of-fold)", title="Predicted vs actual")
    b.scatter(pred, pred - y, s=6, alpha=0.5)
    b.axhline(0, color="k", lw=1)
    b.set(xlabel="predicted (out-of-fold)", ylabel="predicted - actual", title="Residuals")
    if y.min() > 0 and pred.min() > 0 and y.max() / y.min() > 100:  # e.g. prices: log axes
        a.set(xscale="log", yscale="log")
        b.set_xscale("log")
    return fig


def _confusion_figure(plt, y: np.ndarray, labels: np.ndarray, names: list[str]):
    k = len(names)
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (y, labels), 1)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    side = 3 + 0.45 * k
    fig, ax = plt.subplots(figsize=(side + 1, side))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i, j in np.ndindex(k, k):
        ax.text(j, i, counts[i, j], ha="center", va="center", color="white" if share[i, j] > 0.5 else "black")
    ax.set(xticks=range(k), yticks=range(k), xticklabels=names, yticklabels=names)
    ax.set(xlabel="predicted (out-of-fold)", ylabel="actual", title="Confusion matrix (share of each actual class)")
    fig.colorbar(image, ax=ax, fraction=0.046)
    return fig


# --- small helpers ---------------------------------------------------------------------


def _empty(name: str) -> pd.DataFrame:
    return pd.DataFrame(columns=COLUMNS[name])


def _one_vs_rest(y: np.ndarray, oof: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray]:
    if task == "binary":
        return y, oof
    truth = label_binarize(y, classes=np.arange(oof.shape[1]))
    return truth.ravel(), oof.ravel()


def _sample(n: int) -> np.ndarray:
    """Rows kept for a scatter: all up to MAX_POINTS, else an even, fixed subset."""
    return np.arange(n) if n <= MAX_POINTS else np.linspace(0, n - 1, MAX_POINTS).round().astype(np.int64)


def _thin(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.iloc[_sample(len(frame))].reset_index(drop=True)
