"""Ensembles over prediction arrays only (OOF and test), never over the test labels.

- `hill_climb`: Caruana et al. ensemble selection with replacement, greedy on the
  competition's metric over OOF predictions, started from the best single model.
- `Stacker`: a linear model (logistic / ridge) over the models' OOF outputs.
- `nested_oof`: honest OOF of a method: fitted on the other folds, applied to each fold,
  so methods are compared on equal terms.
Regression outputs are blended in the metric's space (log1p for rmsle).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.linear_model import LogisticRegression, RidgeCV

from pipelines.cv import target_transform
from pipelines.metrics import Metric


def blend(preds: list[np.ndarray], weights: np.ndarray, metric: Metric, task: str) -> np.ndarray:
    forward, inverse = target_transform(metric, task)
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    return inverse(sum(wi * forward(p) for wi, p in zip(w, preds)))


def hill_climb(preds: list[np.ndarray], y: np.ndarray, metric: Metric, task: str, iterations: int = 50) -> np.ndarray:
    """Weights (summing to 1) from greedy forward selection with replacement."""
    forward, inverse = target_transform(metric, task)
    space = [forward(p) for p in preds]
    scores = [metric(y, p, task) for p in preds]
    best_i = max(range(len(preds)), key=lambda i: scores[i] if metric.greater_is_better else -scores[i])
    counts = np.zeros(len(preds))
    counts[best_i] = 1
    current, best_score = space[best_i].copy(), scores[best_i]
    for _ in range(1, iterations):
        n = counts.sum()
        trial = [metric(y, inverse((current * n + s) / (n + 1)), task) for s in space]
        i = max(range(len(preds)), key=lambda j: trial[j] if metric.greater_is_better else -trial[j])
        if not metric.better(trial[i], best_score):
            break
        counts[i] += 1
        current = (current * n + space[i]) / (n + 1)
        best_score = trial[i]
    return counts / counts.sum()


def _features(preds: list[np.ndarray], task: str) -> np.ndarray:
    if task == "regression":
        return np.column_stack(preds)
    eps = 1e-6
    if task == "binary":
        return np.column_stack([np.log(np.clip(p, eps, 1 - eps) / np.clip(1 - p, eps, 1)) for p in preds])
    return np.hstack([np.log(np.clip(p, eps, 1)) for p in preds])


class Stacker:
    """Level-2 linear model on the level-1 outputs."""

    def __init__(self, metric: Metric, task: str, seed: int = 0):
        self.metric, self.task, self.seed = metric, task, seed

    def fit(self, preds: list[np.ndarray], y: np.ndarray) -> Stacker:
        forward, _ = target_transform(self.metric, self.task)
        X = _features([forward(p) for p in preds] if self.task == "regression" else preds, self.task)
        if self.task == "regression":
            self.model_ = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(X, forward(y))
        else:
            self.model_ = LogisticRegression(C=1.0, max_iter=2000, random_state=self.seed).fit(X, y)
        return self

    def predict(self, preds: list[np.ndarray]) -> np.ndarray:
        forward, inverse = target_transform(self.metric, self.task)
        if self.task == "regression":
            return inverse(self.model_.predict(_features([forward(p) for p in preds], self.task)))
        proba = self.model_.predict_proba(_features(preds, self.task))
        return proba[:, 1] if self.task == "binary" else proba


def nested_oof(fit_apply: Callable, preds: list[np.ndarray], y: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """OOF of an ensembling method: `fit_apply(train_preds, y_train, apply_preds)` per fold."""
    out = np.zeros_like(preds[0], dtype=np.float64)
    for k in range(int(folds.max()) + 1):
        tr, va = folds != k, folds == k
        out[va] = fit_apply([p[tr] for p in preds], y[tr], [p[va] for p in preds])
    return out


def methods(metric: Metric, task: str, iterations: int, seed: int) -> dict[str, Callable]:
    """name -> fit_apply(train_preds, y, apply_preds) -> (blended apply_preds, description)."""

    def hill(train, y, apply):
        w = hill_climb(train, y, metric, task, iterations)
        return blend(apply, w, metric, task), {"weights": w.round(4).tolist()}

    def stack(train, y, apply):
        st = Stacker(metric, task, seed).fit(train, y)
        coef = np.ravel(getattr(st.model_, "coef_", [])).round(4).tolist()
        return st.predict(apply), {"coef": coef}

    def mean(train, y, apply):
        w = np.ones(len(apply)) / len(apply)
        return blend(apply, w, metric, task), {"weights": w.round(4).tolist()}

    return {"hill_climb": hill, "stacking": stack, "mean": mean}
