"""Ensembles over prediction arrays only (OOF and test), never over the test labels.

- `hill_climb`: Caruana et al. ensemble selection with replacement, greedy on the
  competition's metric over OOF predictions, started from the best single model.
- `Stacker`: a linear model (logistic / ridge) over the models' OOF outputs.
- `nested_oof`: honest OOF of a method: fitted on the other folds, applied to each fold,
  so methods are compared on equal terms.
- `clearly_worse`: members that `mean` leaves out: beaten by another member on every fold and
  by more than two standard errors overall (a weak distilled student averaged in cost the
  solar cells 0.007 roc_auc held out). Hill climbing and stacking weigh every member.
- `with_thresholds`: for metrics scored on labels cut from an ordered score (`qwk`, binary
  `f1`), a method whose blend is followed by thresholds fitted on the same OOF rows; its
  blend weights then minimise the squared error of that score (a smooth stand-in).
Regression outputs are blended in the metric's space (log1p for rmsle).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.preprocessing import StandardScaler

from pipelines.core.metrics import (
    Metric,
    apply_thresholds,
    as_outputs,
    decision_score,
    fit_thresholds,
    target_transform,
    threshold_levels,
)


def blend(preds: list[np.ndarray], weights: np.ndarray, metric: Metric, task: str) -> np.ndarray:
    forward, inverse = target_transform(metric, task)
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    return inverse(sum(wi * forward(p) for wi, p in zip(w, preds, strict=True)))


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
    """Level-2 linear model on the level-1 outputs. Multiclass log-probabilities are
    standardised first: unscaled (down to log 1e-6) they made lbfgs crawl for minutes."""

    def __init__(self, metric: Metric, task: str, seed: int = 0):
        self.metric, self.task, self.seed = metric, task, seed

    def fit(self, preds: list[np.ndarray], y: np.ndarray) -> Stacker:
        forward, _ = target_transform(self.metric, self.task)
        X = _features([forward(p) for p in preds] if self.task == "regression" else preds, self.task)
        if self.task == "regression":
            self.model_ = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(X, forward(y))
        else:
            self.scaler_ = StandardScaler().fit(X) if self.task == "multiclass" else None
            X = self.scaler_.transform(X) if self.scaler_ is not None else X
            self.model_ = LogisticRegression(C=1.0, max_iter=2000, random_state=self.seed).fit(X, y)
        return self

    def predict(self, preds: list[np.ndarray]) -> np.ndarray:
        forward, inverse = target_transform(self.metric, self.task)
        if self.task == "regression":
            return inverse(self.model_.predict(_features([forward(p) for p in preds], self.task)))
        X = _features(preds, self.task)
        proba = self.model_.predict_proba(self.scaler_.transform(X) if self.scaler_ is not None else X)
        return proba[:, 1] if self.task == "binary" else proba


def nested_oof(fit_apply: Callable, preds: list[np.ndarray], y: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """OOF of an ensembling method: `fit_apply(train_preds, y_train, apply_preds)` per fold."""
    out = np.zeros_like(preds[0], dtype=np.float64)
    for k in range(int(folds.max()) + 1):
        tr, va = folds != k, folds == k
        out[va] = fit_apply([p[tr] for p in preds], y[tr], [p[va] for p in preds])
    return out


@dataclass
class Blend:
    """A fitted ensembling method: `apply(preds)` blends the members' outputs (in the order it
    was fitted on): weights (mean, hill climbing) or a `Stacker`, then, with `cuts`, thresholds
    into `levels`. `state()` is it as JSON (`from_state` reads it back), which `export` ships."""

    method: str
    metric: Metric
    task: str
    size: int  # members it was fitted on
    weights: np.ndarray | None = None
    stacker: Stacker | None = None
    cuts: np.ndarray | None = None
    levels: np.ndarray | None = None

    def apply(self, preds: list[np.ndarray]) -> np.ndarray:
        if self.stacker is not None:
            out = self.stacker.predict(preds)
        else:
            out = blend(preds, self.weights, self.metric, self.task)
        if self.cuts is None:
            return out
        labels = apply_thresholds(decision_score(out, self.task), self.cuts, self.levels)
        return as_outputs(labels, self.task, len(self.levels))

    def detail(self) -> dict:
        """What details.json records of it (rounded)."""
        if self.stacker is not None:
            out = {"coef": np.ravel(getattr(self.stacker.model_, "coef_", [])).round(4).tolist()}
        else:
            out = {"weights": np.asarray(self.weights).round(4).tolist()}
        return out if self.cuts is None else {**out, "thresholds": self.cuts.round(4).tolist()}

    def used(self) -> list[int]:
        """The members whose outputs it reads: those of weight > 0 (a stacker reads them all)."""
        if self.stacker is not None:
            return list(range(self.size))
        return np.flatnonzero(np.asarray(self.weights) > 0).tolist()

    def only(self, members: list[int]) -> Blend:
        """The same blend of `members` alone (weighted methods: the others weigh 0)."""
        if self.stacker is not None:
            if list(members) != list(range(self.size)):
                raise ValueError("a stacker reads every member")
            return self
        return replace(self, size=len(members), weights=np.asarray(self.weights, dtype=np.float64)[members])

    def state(self) -> dict:
        from pipelines.core.safe_state import encode

        st = self.stacker
        return {
            "method": self.method,
            "size": self.size,
            "weights": None if self.weights is None else np.asarray(self.weights, dtype=np.float64).tolist(),
            "stacker": None
            if st is None
            else {"model": encode(st.model_), "scaler": encode(getattr(st, "scaler_", None))},
            "cuts": None if self.cuts is None else self.cuts.tolist(),
            "levels": None if self.levels is None else self.levels.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict, metric: Metric, task: str) -> Blend:
        from pipelines.core.safe_state import decode

        stacker = None
        if state["stacker"] is not None:
            stacker = Stacker(metric, task)
            stacker.model_, stacker.scaler_ = decode(state["stacker"]["model"]), decode(state["stacker"]["scaler"])
        arrays = {k: None if state[k] is None else np.asarray(state[k], dtype=np.float64) for k in ("weights", "cuts")}
        levels = None if state["levels"] is None else np.asarray(state["levels"])
        return cls(state["method"], metric, task, state["size"], stacker=stacker, levels=levels, **arrays)


def fitters(metric: Metric, task: str, iterations: int, seed: int, mean_of=None) -> dict[str, Callable]:
    """name -> fit(train_preds, y) -> Blend. `mean_of`: the indices of the members that `mean`
    averages (None: all)."""

    def hill(train, y):
        return Blend("hill_climb", metric, task, len(train), weights=hill_climb(train, y, metric, task, iterations))

    def stack(train, y):
        return Blend("stacking", metric, task, len(train), stacker=Stacker(metric, task, seed).fit(train, y))

    def mean(train, y):
        n = len(train)
        w = np.ones(n) if mean_of is None else np.isin(np.arange(n), mean_of).astype(np.float64)
        return Blend("mean", metric, task, n, weights=w / w.sum())

    return {"hill_climb": hill, "stacking": stack, "mean": mean}


def fit_apply_of(fit: Callable) -> Callable:
    """`fit(train, y)` as `fit_apply(train_preds, y, apply_preds)` -> (blended apply_preds, detail)."""

    def fit_apply(train, y, apply):
        fitted = fit(train, y)
        return fitted.apply(apply), fitted.detail()

    return fit_apply


def methods(metric: Metric, task: str, iterations: int, seed: int, mean_of=None) -> dict[str, Callable]:
    """name -> fit_apply(train_preds, y, apply_preds) -> (blended apply_preds, description)."""
    return {name: fit_apply_of(fit) for name, fit in fitters(metric, task, iterations, seed, mean_of).items()}


def score_error(task: str) -> Metric:
    """Squared error of the decision score (expected class, P(class 1), value): what blends
    minimise when thresholds turn the score into labels afterwards."""

    def fn(y, p, t):
        return float(np.mean((decision_score(p, t) - np.asarray(y, dtype=np.float64)) ** 2))

    return Metric("score_error", fn, False, (task,), "values")


def with_thresholds(fit: Callable, metric: Metric, task: str) -> Callable:
    """`fit` followed by thresholds fitted on its own output for the training rows."""

    def fit_cut(train, y):
        fitted = fit(train, y)
        levels = threshold_levels(y, train[0], task)
        cuts = fit_thresholds(y, decision_score(fitted.apply(train), task), levels, metric, task)
        return replace(fitted, method=f"{fitted.method}+thresholds", cuts=cuts, levels=levels)

    return fit_cut


def candidate_fitters(
    names: list[str], metric: Metric, task: str, iterations: int, seed: int, mean_of=None
) -> dict[str, Callable]:
    """The methods named in params, in that order, as `fit(train_preds, y) -> Blend`; where the
    metric wants thresholds, each method also comes as `<method>+thresholds` (blend weights
    chosen on `score_error`), and those come first: argmax / rounding is the known-worse
    default for such metrics, so a plain method must beat them clearly (`choose_method`
    prefers earlier methods)."""
    plain = fitters(metric, task, iterations, seed, mean_of)
    out = {}
    if task in metric.thresholds:
        smooth = fitters(score_error(task), task, iterations, seed, mean_of)
        out.update({f"{name}+thresholds": with_thresholds(smooth[name], metric, task) for name in names})
    out.update({name: plain[name] for name in names})
    return out


def candidate_methods(
    names: list[str], metric: Metric, task: str, iterations: int, seed: int, mean_of=None
) -> dict[str, Callable]:
    """`candidate_fitters` as `fit_apply(train_preds, y, apply_preds)` -> (blended, detail)."""
    return {
        m: fit_apply_of(fit) for m, fit in candidate_fitters(names, metric, task, iterations, seed, mean_of).items()
    }


def clearly_worse(scores: dict[str, dict], metric: Metric, min_folds: int = 3) -> dict[str, str]:
    """name -> why, for each member (`scores`: name -> {"cv", "folds"}) that another member
    beats on every one of at least `min_folds` folds and overall by more than two standard
    errors of that member's fold scores. Members within noise of each other all stay (blends
    of near-equals are where averaging pays); the best member always stays."""
    out = {}
    for name, mine in scores.items():
        for other, theirs in scores.items():
            a, b = np.asarray(theirs["folds"], dtype=float), np.asarray(mine["folds"], dtype=float)
            if other == name or len(a) != len(b) or len(a) < min_folds:
                continue
            se = float(np.std(a, ddof=1) / np.sqrt(len(a)))
            gap = abs(theirs["cv"] - mine["cv"])
            if all(metric.better(x, z) for x, z in zip(a, b, strict=True)) and gap > 2 * se:
                out[name] = f"below {other} on every fold, by {gap:.4f} overall (2 SE: {2 * se:.4f})"
                break
    return out


def fold_scores(y: np.ndarray, pred: np.ndarray, folds: np.ndarray, metric: Metric, task: str, rows=None) -> list:
    """The score of each fold's rows (only the `rows` that CV scores, when a mask is given)."""
    ks = range(int(folds.max()) + 1)
    return [metric.on(y[folds == k], pred[folds == k], task, None if rows is None else rows[folds == k]) for k in ks]


# how `choose_method` chooses, in the words the report and details.json use
RULE = (
    "methods are tried simplest first (the order of ensemble.methods); the first within 1 SE of the best "
    "one (the SE of their per-fold score differences) is chosen, so a later method must beat it by more than 1 SE"
)


def choose_method(
    nested: dict[str, np.ndarray], y: np.ndarray, folds: np.ndarray, metric: Metric, task: str, rows=None
) -> str:
    """The first (simplest) method whose nested-OOF score (on the `rows` CV scores) is within
    one standard error of the best one's: OOF scores on a few hundred rows are noisy, and a
    greedy method that wins by noise alone does worse on the leaderboard than a plain mean
    (measured on Titanic splits: mean 0.855 vs hill climbing 0.847 held-out accuracy). The SE
    is that of the two methods' per-fold differences: both are scored on the same rows, so
    what the folds share (some are harder) cancels, and a method ahead on every fold by a
    steady margin wins even when the folds' scores spread widely (on 17 held-out splits,
    `benchmarks/ensemble_rules.py`: never worse than the SE of the best one's fold scores,
    better on three, flights' roc_auc 0.7948 -> 0.7968)."""
    return method_choice(nested, y, folds, metric, task, rows)[0]


def method_choice(
    nested: dict[str, np.ndarray],
    y: np.ndarray,
    folds: np.ndarray,
    metric: Metric,
    task: str,
    rows=None,
    paired: bool = True,
) -> tuple[str, str]:
    """`choose_method`'s method, and why, in words: the rule and the scores it compared.
    `paired=False` takes the SE of the best method's fold scores instead of that of the
    per-fold differences (the rule before; `benchmarks/ensemble_rules.py` compares them)."""
    scores = {m: metric.on(y, p, task, rows) for m, p in nested.items()}
    best = max(scores, key=lambda m: scores[m] if metric.greater_is_better else -scores[m])
    per_fold = {m: np.asarray(fold_scores(y, p, folds, metric, task, rows)) for m, p in nested.items()}

    def se_of(m: str) -> float:  # of the differences from the best (of its scores unpaired)
        values = per_fold[best] - per_fold[m] if paired else per_fold[best]
        return float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0

    order = list(scores)  # insertion order: simplest first
    chosen = next(m for m in order if m == best or abs(scores[m] - scores[best]) <= se_of(m))
    earlier = order[: order.index(chosen)]
    trail = f"; {', '.join(earlier)} {'trails' if len(earlier) == 1 else 'trail'} it by more" if earlier else ""
    if chosen == best:  # the SE it beat: against the simpler method before it (first of all: none)
        shown = earlier[-1] if earlier else (None if paired else best)
        se = f"; 1 SE: {se_of(shown):.4f}" if shown else ""
        why = f"{best} has the best nested cv ({scores[best]:.4f}{se}){trail}"
    else:
        gap, se = abs(scores[best] - scores[chosen]), se_of(chosen)
        why = f"{best}'s nested cv ({scores[best]:.4f}) is better by {gap:.4f}, within 1 SE ({se:.4f}){trail}"
    return chosen, f"{chosen}: {RULE}; {why}"
