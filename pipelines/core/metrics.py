"""Registry of Kaggle's usual metrics, each with its direction and submission kind.

Every metric scores model *outputs* as the pipeline stores them: for `binary` the
probability of the positive class, shape (n,); for `multiclass` a probability matrix
(n, k); for `regression` the predicted values (n,). Labels are the encoded classes 0..k-1.
`Metric.submits` says what Kaggle expects (labels, probabilities or values).

Metrics scored on labels that are ordered or imbalanced (`qwk`, binary `f1`) carry
`thresholds=True`: the ensemble turns outputs into one score per row (`decision_score`:
the expected class for multiclass, P(class 1) for binary, the value for regression) and
cuts it into labels with thresholds fitted on out-of-fold predictions (`fit_thresholds`,
`apply_thresholds`), which beats argmax / rounding for these metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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
    thresholds: tuple[str, ...] = ()  # tasks whose labels come from thresholds fitted on OOF predictions

    def __call__(self, y: np.ndarray, pred: np.ndarray, task: str) -> float:
        return float(self.fn(np.asarray(y), np.asarray(pred), task))

    def on(self, y: np.ndarray, pred: np.ndarray, task: str, rows: np.ndarray | None = None) -> float:
        """The score on the rows that CV scores: `rows` is a boolean mask (`folds.adversarial`:
        the training rows most like the test set), None every row; a mask that selects no row
        (a fold holding none of them) scores every row."""
        if rows is None or not rows.any():
            return self(y, pred, task)
        return self(np.asarray(y)[rows], np.asarray(pred)[rows], task)

    def better(self, a: float, b: float) -> bool:
        """True when score `a` beats score `b`."""
        return a > b if self.greater_is_better else a < b

    def best_score(self, y: np.ndarray, pred: np.ndarray, task: str) -> float:
        """The better of the plain score and the score after thresholds fitted on these very
        rows (optimistic; for comparing models in tuning, where each gets the same treatment)."""
        if task not in self.thresholds:
            return self(y, pred, task)
        levels = threshold_levels(y, pred, task)
        cuts = fit_thresholds(y, decision_score(pred, task), levels, self, task)
        labels = apply_thresholds(decision_score(pred, task), cuts, levels)
        cut = self(y, as_outputs(labels, task, len(levels)), task)
        plain = self(y, pred, task)
        return cut if self.better(cut, plain) else plain


def _accuracy(y, p, task):
    return skm.accuracy_score(y, to_labels(p, task))


def _balanced_accuracy(y, p, task):
    return skm.balanced_accuracy_score(y, to_labels(p, task))


def _f1(y, p, task):
    return skm.f1_score(y, to_labels(p, task), average="binary" if task == "binary" else "macro")


def _mcc(y, p, task):
    return skm.matthews_corrcoef(y, to_labels(p, task))


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


def _r2(y, p, task):
    return skm.r2_score(y, p)


def _qwk(y, p, task):
    labels = np.rint(p).astype(np.int64) if task == "regression" else to_labels(p, task)
    return quadratic_kappa(np.asarray(y), labels)


def quadratic_kappa(y: np.ndarray, labels: np.ndarray) -> float:
    """Cohen's kappa with quadratic weights (equal to scikit-learn's, but fast for repeated calls)."""
    levels, codes = np.unique(np.concatenate([y, labels]), return_inverse=True)
    k, n = len(levels), len(y)
    if k < 2:
        return 1.0
    observed = np.bincount(codes[:n] * k + codes[n:], minlength=k * k).reshape(k, k).astype(np.float64)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / n
    weights = (np.arange(k)[:, None] - np.arange(k)[None, :]) ** 2
    denom = (weights * expected).sum()
    return float(1 - (weights * observed).sum() / denom) if denom > 0 else 0.0


_CLS = ("binary", "multiclass")
METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("accuracy", _accuracy, True, _CLS, "labels"),
        Metric("balanced_accuracy", _balanced_accuracy, True, _CLS, "labels"),
        Metric("f1", _f1, True, _CLS, "labels", thresholds=("binary",)),
        Metric("f1_macro", _f1, True, _CLS, "labels"),
        Metric("mcc", _mcc, True, _CLS, "labels"),
        Metric("roc_auc", _roc_auc, True, _CLS, "probabilities"),
        Metric("logloss", _logloss, False, _CLS, "probabilities"),
        Metric("rmse", _rmse, False, ("regression",), "values"),
        Metric("rmsle", _rmsle, False, ("regression",), "values"),
        Metric("mae", _mae, False, ("regression",), "values"),
        Metric("r2", _r2, True, ("regression",), "values"),
        Metric("qwk", _qwk, True, ("multiclass", "regression"), "labels", thresholds=("multiclass", "regression")),
    ]
}


def get_metric(name: str) -> Metric:
    if name not in METRICS:
        from pipelines.core.errors import PipelineError

        raise PipelineError(f"unknown metric {name!r}; known: {', '.join(sorted(METRICS))}")
    return METRICS[name]


# ---------------------------------------------------------------- thresholds fitted on OOF


def threshold_levels(y: np.ndarray, pred: np.ndarray, task: str) -> np.ndarray:
    """What thresholds cut scores into: the class indices, or the target's distinct values."""
    if task == "regression":
        return np.unique(np.asarray(y, dtype=np.float64))
    return np.arange(np.asarray(pred).shape[1] if task == "multiclass" else 2)


def decision_score(pred: np.ndarray, task: str) -> np.ndarray:
    """One ordered number per row: expected class index (multiclass), P(class 1) (binary),
    the value itself (regression)."""
    pred = np.asarray(pred, dtype=np.float64)
    if task == "multiclass":
        return pred @ np.arange(pred.shape[1])
    return pred


def as_outputs(labels: np.ndarray, task: str, n_classes: int) -> np.ndarray:
    """Labels back in the stored output form: one-hot (multiclass), 0/1 (binary), values."""
    if task == "multiclass":
        return np.eye(n_classes)[np.asarray(labels, dtype=np.int64)]
    return np.asarray(labels, dtype=np.float64)


def apply_thresholds(score: np.ndarray, cuts: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Level per row: levels[i] where cuts[i-1] <= score < cuts[i]."""
    return np.asarray(levels)[np.searchsorted(np.asarray(cuts), np.asarray(score), side="right")]


def fit_thresholds(
    y: np.ndarray, score: np.ndarray, levels: np.ndarray, metric: Metric, task: str, sweeps: int = 3
) -> np.ndarray:
    """Increasing cut points between consecutive `levels` that maximise `metric` on (y, score).

    Coordinate ascent from the midpoints between levels (plain rounding; 0.5 for binary):
    each cut in turn moves to the best of up to 32 quantiles of the scores lying between
    its neighbours; a few sweeps converge. Deterministic.
    """
    y, score, levels = np.asarray(y), np.asarray(score, dtype=np.float64), np.asarray(levels, dtype=np.float64)
    cuts = (levels[:-1] + levels[1:]) / 2

    def score_of(c: np.ndarray) -> float:
        labels = apply_thresholds(score, c, levels)
        if metric.name == "qwk":  # the hot loop: skip building one-hot outputs
            return quadratic_kappa(y, labels)
        return metric(y, as_outputs(labels, task, len(levels)), task)

    best = score_of(cuts)
    for _ in range(sweeps):
        improved = False
        for i in range(len(cuts)):
            lo = cuts[i - 1] if i > 0 else -np.inf
            hi = cuts[i + 1] if i + 1 < len(cuts) else np.inf
            inside = score[(score > lo) & (score < hi)]
            if inside.size == 0:
                continue
            for c in np.unique(np.quantile(inside, np.linspace(0, 1, 32))):
                trial = cuts.copy()
                trial[i] = c
                value = score_of(trial)
                if metric.better(value, best):
                    best, cuts, improved = value, trial, True
        if not improved:
            break
    return cuts


def target_transform(metric: Metric, task: str):
    """(forward, inverse) applied to regression targets: log1p for rmsle, else identity."""
    if task == "regression" and metric.name == "rmsle":
        return np.log1p, np.expm1
    return (lambda v: v), (lambda v: v)
