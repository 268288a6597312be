"""k-fold cross-validation of one registered model on the competition's fixed folds.

`cross_validate(...)` returns a `CVResult` (OOF predictions, averaged test predictions,
per-fold scores), the nyaggle way. Each finished fold is saved in `cache_dir` under a key
of the model, its params and the data, so an interrupted run resumes where it stopped
and a finished fold is never trained twice. `on_fold(k, running_score)` lets Optuna prune.

`fold_train` keeps each fold model's outputs on all training rows: distillation labels the
student's fold-k training rows with the fold-k teachers, which never saw fold k's labels.
`soft_targets` may be (n, ...) or per fold (n_splits, n, ...).

`keep_last_model=True` also hands back the last fold's fitted model (`CVResult.last_model`,
e.g. for distillation to export it to ONNX). When that fold came from the cache, its model is
fitted again with the same fold context: torch models then only reload their `final.pt`
checkpoint (same fingerprint), other models retrain (deterministic for a fixed seed).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.io import atomic_file
from pipelines.metrics import Metric
from pipelines.models.registry import ModelContext, create_model


@dataclass
class CVResult:
    oof: np.ndarray
    test: np.ndarray
    fold_scores: list[float]
    score: float
    seconds: float = 0.0
    params: dict = field(default_factory=dict)
    rows_per_s: float = 0.0  # test-set prediction throughput of one fold model
    fold_train: np.ndarray | None = None  # (n_splits, n, ...): fold model k's outputs on every train row
    last_model: object | None = None  # the last fold's fitted model, with keep_last_model=True


def target_transform(metric: Metric, task: str):
    """(forward, inverse) applied to regression targets: log1p for rmsle, else identity."""
    if task == "regression" and metric.name == "rmsle":
        return np.log1p, np.expm1
    return (lambda v: v), (lambda v: v)


def fingerprint(*parts) -> str:
    """Short stable hash of arrays, frames and JSON-able values."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, pd.DataFrame):
            h.update(pd.util.hash_pandas_object(part, index=False).to_numpy().tobytes())
            h.update(str(list(part.columns)).encode())
        elif isinstance(part, np.ndarray):
            h.update(str((part.shape, part.dtype)).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _rows(X, idx):
    return X.iloc[idx] if isinstance(X, pd.DataFrame) else X[idx]


def _save_fold(path: Path, val_pred: np.ndarray, test_pred: np.ndarray, train_pred: np.ndarray) -> None:
    with atomic_file(path, "wb") as fh:
        np.savez(fh, val=val_pred, test=test_pred, train=train_pred)


def _load_fold(path: Path):
    with np.load(path, allow_pickle=False) as data:
        return data["val"], data["test"], data["train"]


def cross_validate(
    model: str,
    params: dict,
    X,
    y: np.ndarray,
    X_test,
    folds: np.ndarray,
    ctx: ModelContext,
    *,
    soft_targets: np.ndarray | None = None,
    cache_dir: Path | None = None,
    on_fold: Callable[[int, float], None] | None = None,
    keep_last_model: bool = False,
) -> CVResult:
    start = time.perf_counter()
    metric, task = ctx.metric, ctx.task
    forward, inverse = target_transform(metric, task)
    n_splits = int(folds.max()) + 1
    key = None
    if cache_dir is not None:
        key = fingerprint(model, params, ctx.seed, ctx.epochs, X, y, folds, soft_targets)
        cache_dir = Path(cache_dir) / f"{model}-{key}"
        cache_dir.mkdir(parents=True, exist_ok=True)

    oof, test_sum, scores, predict_s, fold_train, last_model = None, None, [], [], [], None
    per_fold_soft = soft_targets is not None and soft_targets.shape[0] == n_splits and soft_targets.ndim > y.ndim

    def fit_fold(k: int, tr: np.ndarray, va: np.ndarray):
        fold_ctx = replace(ctx, seed=ctx.seed + k, checkpoint_dir=cache_dir / f"ckpt{k}" if cache_dir else None)
        est = create_model(model, fold_ctx, **params)
        soft = None
        if soft_targets is not None:
            soft = forward((soft_targets[k] if per_fold_soft else soft_targets)[tr])
        return est.fit(_rows(X, tr), forward(y[tr]), eval_set=(_rows(X, va), forward(y[va])), soft_targets=soft)

    for k in range(n_splits):
        tr, va = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        done = cache_dir / f"fold{k}.npz" if cache_dir else None
        keep = keep_last_model and k == n_splits - 1
        if done is not None and done.exists():
            val_pred, test_pred, train_pred = _load_fold(done)
            if keep:
                last_model = fit_fold(k, tr, va)  # torch: a reload of its final.pt checkpoint
        else:
            est = fit_fold(k, tr, va)
            if keep:
                last_model = est
            val_pred = inverse(est.predict_output(_rows(X, va)))
            t0 = time.perf_counter()
            test_pred = inverse(est.predict_output(X_test))
            predict_s.append(time.perf_counter() - t0)
            train_pred = inverse(est.predict_output(X))
            if done is not None:
                _save_fold(done, val_pred, test_pred, train_pred)
        if oof is None:
            oof = np.zeros((len(y), *val_pred.shape[1:]))
            test_sum = np.zeros_like(test_pred, dtype=np.float64)
        oof[va] = val_pred
        test_sum += test_pred
        fold_train.append(train_pred)
        scores.append(metric(y[va], val_pred, task))
        if on_fold is not None:
            on_fold(k, float(np.mean(scores)))
    return CVResult(
        oof=oof,
        test=test_sum / n_splits,
        fold_scores=scores,
        score=metric(y, oof, task),
        seconds=time.perf_counter() - start,
        params=dict(params),
        rows_per_s=len(X_test) / float(np.mean(predict_s)) if predict_s else 0.0,
        fold_train=np.stack(fold_train),
        last_model=last_model,
    )
