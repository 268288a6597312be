"""Registry of Kaggle's usual metrics, each with its direction and submission kind.

Every metric scores model *outputs* as the pipeline stores them: for `binary` the
probability of the positive class, shape (n,); for `multiclass` a probability matrix
(n, k); for `regression` the predicted values (n,). Labels are the encoded classes 0..k-1.
`Metric.to_submission` turns outputs into what Kaggle expects (labels or probabilities).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from sklearn import metrics as skm


def to_labels(pred: np.ndarray, task: str) -> np.ndarray:
    """Class index per row from stored outputs (threshold 0.5 for binary)."""
    pred = np.asarray(pred)
    if task == "binary":
        return (pred >= 0.5).astype(np.int64)
    if task == "multiclass":
        return pred.argmax(axis=1).astype(np.int64)
    raise ValueError(f"labels need a classification task, got {task!r}")


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[np.ndarray, np.ndarray, str], float]
    greater_is_better: bool
    tasks: tuple[str, ...]
    submits: str  # "labels" | "probabilities" | "values"

    def __call__(self, y: np.ndarray, pred: np.ndarray, task: str) -> float:
        return float(self.fn(np.asarray(y), np.asarray(pred), task))

    def better(self, a: float, b: float) -> bool:
        """True when score `a` beats score `b`."""
        return a > b if self.greater_is_better else a < b

    def loss(self, y: np.ndarray, pred: np.ndarray, task: str) -> float:
        """The score as something to minimise (for optimisers)."""
        s = self(y, pred, task)
        return -s if self.greater_is_better else s


def _accuracy(y, p, task):
    return skm.accuracy_score(y, to_labels(p, task))


def _f1(y, p, task):
    return skm.f1_score(y, to_labels(p, task), average="binary" if task == "binary" else "macro")


def _roc_auc(y, p, task):
    if task == "binary":
        return skm.roc_auc_score(y, p)
    return skm.roc_auc_score(y, p, multi_class="ovr", labels=np.arange(p.shape[1]))


def _logloss(y, p, task):
    labels = [0, 1] if task == "binary" else list(range(p.shape[1]))
    return skm.log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=labels)


def _rmse(y, p, task):
    return float(np.sqrt(skm.mean_squared_error(y, p)))


def _rmsle(y, p, task):
    return float(np.sqrt(skm.mean_squared_log_error(y, np.clip(p, 0, None))))


def _mae(y, p, task):
    return skm.mean_absolute_error(y, p)


def _qwk(y, p, task):
    labels = np.rint(p).astype(np.int64) if task == "regression" else to_labels(p, task)
    return skm.cohen_kappa_score(y, labels, weights="quadratic")


_CLS = ("binary", "multiclass")
METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("accuracy", _accuracy, True, _CLS, "labels"),
        Metric("f1", _f1, True, _CLS, "labels"),
        Metric("f1_macro", _f1, True, _CLS, "labels"),
        Metric("roc_auc", _roc_auc, True, _CLS, "probabilities"),
        Metric("logloss", _logloss, False, _CLS, "probabilities"),
        Metric("rmse", _rmse, False, ("regression",), "values"),
        Metric("rmsle", _rmsle, False, ("regression",), "values"),
        Metric("mae", _mae, False, ("regression",), "values"),
        Metric("qwk", _qwk, True, ("multiclass", "regression"), "labels"),
    ]
}


def get_metric(name: str) -> Metric:
    if name not in METRICS:
        from pipelines.errors import PipelineError

        raise PipelineError(f"unknown metric {name!r}; known: {', '.join(sorted(METRICS))}")
    return METRICS[name]
