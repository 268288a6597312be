"""Adversarial validation: can a classifier tell the training rows from the test rows?

`adversarial_validation(train, test, roles)` fits LightGBM to label each cleaned row "train"
or "test" and scores it by out-of-fold roc_auc: near 0.5 the two sets look alike and CV
speaks for the leaderboard; well above it (`WARN_AUC`) the test set differs, CV may mislead,
and the most telling features say where. `clean` writes the result to `drift.json` and
warns in its log. Text columns count by their statistics (length, words), images by their
pixels pooled to at most 8x8 per channel; keys (ids, tickets, names) are left out, since a
value unique to one row tells the sets apart without saying anything about drift. LightGBM
sees safe column names (`core/tables.safe_names`); the result names the user's columns.

`most_test_like(scores, share)` turns the classifier's out-of-fold scores of the training
rows (kept with `keep_train_scores=True`, which then scores every training row rather than a
sample) into the mask that `folds.adversarial` validates on: the `share` of training rows
that look most like the test set.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from pipelines.core.tables import safe_names

log = logging.getLogger(__name__)
WARN_AUC = 0.7  # above this out-of-fold AUC the stage log warns that test differs from train
MAX_ROWS = 20_000  # rows per side: enough for a stable AUC, seconds on 2 cores
TOP = 5  # most telling features reported


def _table(x, roles: dict | None) -> pd.DataFrame:
    """What the classifier sees: numeric and categorical features, or pooled pixels."""
    if isinstance(x, pd.DataFrame):
        columns = [*(roles or {}).get("numeric", []), *(roles or {}).get("categorical", [])]
        return x[columns]
    n, c, h, w = x.shape
    fh, fw = -(-h // 8), -(-w // 8)  # pool by ceil(h / 8) x ceil(w / 8)
    pad = np.zeros((n, c, fh * (-(-h // fh)), fw * (-(-w // fw))), dtype=np.float32)
    pad[:, :, :h, :w] = x
    pooled = pad.reshape(n, c, pad.shape[2] // fh, fh, pad.shape[3] // fw, fw).mean(axis=(3, 5))
    names = [f"pixels_c{k}_r{i}_c{j}" for k in range(c) for i in range(pooled.shape[2]) for j in range(pooled.shape[3])]
    return pd.DataFrame(pooled.reshape(n, -1), columns=names)


def _sample(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    if len(frame) <= MAX_ROWS:
        return frame
    return frame.iloc[np.sort(rng.choice(len(frame), MAX_ROWS, replace=False))]


def adversarial_validation(
    train, test, roles: dict | None = None, *, seed: int = 42, threads: int = 2, keep_train_scores: bool = False
) -> dict:
    """{"auc", "warn_auc", "drift", "rows", "features": [{"name", "importance"}, ...]}; with
    `keep_train_scores`, every training row is compared and "train_scores" holds its
    out-of-fold probability of being a test row (not JSON: `clean` turns it into a mask)."""
    import lightgbm as lgb

    rng = np.random.default_rng(seed)
    a = _table(train, roles) if keep_train_scores else _sample(_table(train, roles), rng)
    b = _sample(_table(test, roles), rng)
    result = {"auc": None, "warn_auc": WARN_AUC, "drift": False, "rows": {"train": len(a), "test": len(b)}}
    if a.shape[1] == 0 or min(len(a), len(b)) < 10:
        result["features"] = []
        result["note"] = "too few rows or features to compare"
        return result
    X = pd.concat([a, b], ignore_index=True)
    names = list(X.columns)  # the user's: LightGBM sees safe ones, drift.json names these
    X.columns = safe_names(names)
    y = np.r_[np.zeros(len(a)), np.ones(len(b))]
    model = lgb.LGBMClassifier(
        n_estimators=100, learning_rate=0.1, num_leaves=15, min_child_samples=20, subsample=0.8, subsample_freq=1,
        colsample_bytree=0.8, random_state=seed, n_jobs=threads, verbose=-1,
    )  # fmt: skip
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    oof = cross_val_predict(model, X, y, cv=folds, method="predict_proba")[:, 1]
    auc = float(roc_auc_score(y, oof))
    gain = model.set_params(importance_type="gain").fit(X, y).feature_importances_
    share = gain / gain.sum() if gain.sum() > 0 else gain
    order = np.argsort(-share, kind="stable")[:TOP]
    result.update(auc=round(auc, 4), drift=auc > WARN_AUC)
    if keep_train_scores:
        result["train_scores"] = oof[: len(a)]
    result["features"] = [{"name": names[i], "importance": round(float(share[i]), 4)} for i in order if share[i] > 0]
    return result


def report(result: dict, where: str) -> None:
    """The stage log's line: a warning when the sets differ, else what the AUC says."""
    if result["auc"] is None:
        return
    telling = ", ".join(f["name"] for f in result["features"][:3])
    if result["drift"]:
        log.warning(
            "%s: test rows differ from training rows (adversarial AUC %.3f > %.2f; most telling: %s): "
            "CV may not predict the leaderboard",
            where, result["auc"], WARN_AUC, telling,
        )  # fmt: skip
    else:
        log.info("%s: train and test look alike (adversarial AUC %.3f)", where, result["auc"])


def most_test_like(scores: np.ndarray | None, share: float) -> np.ndarray | None:
    """Boolean mask of the `share` of training rows most like the test set (the highest
    out-of-fold test probability, `train_scores`; ties keep row order); None (every row
    counts) when there were too few rows or features to compare."""
    if scores is None:
        return None
    mask = np.zeros(len(scores), dtype=bool)
    mask[np.argsort(-scores, kind="stable")[: max(1, int(np.ceil(share * len(scores))))]] = True
    return mask
