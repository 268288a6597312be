"""k-fold cross-validation of one registered model on the competition's fixed folds.

`cross_validate(model, params, FoldData(...), ctx, CVOptions(...))` returns a `CVResult` (OOF
predictions, averaged test predictions, per-fold scores, each fold's learning curve when the
model has epochs), the nyaggle way. The options below are `CVOptions` fields.
Each finished fold is saved in `cache_dir` under a key of the model, its params and the
data, so an interrupted run resumes where it stopped and a finished fold is never trained
twice. `on_fold(k, running_score)` lets Optuna prune.

`fold_train` keeps each fold model's outputs on all training rows: distillation labels the
student's fold-k training rows with the fold-k teachers, which never saw fold k's labels.
`soft_targets` may be (n, ...) or per fold (n_splits, n, ...).

`FoldData.score_rows` (a boolean mask, `folds.adversarial`) makes the fold scores and the score those
of the masked rows only; the OOF predictions still cover every row.

`workers > 1` trains that many folds at once, each in its own (spawned) process on one
thread: on a CPU, two one-thread folds of a small CNN side by side train faster than one
fold after another on two threads (tiny convolutions barely use a second thread). Each
worker writes its fold to the cache, which the parent then reads in order; folds left over
(5 folds on 2 workers: the last) train in the parent on all threads. It needs `cache_dir`
and no `on_fold` (Optuna prunes one fold at a time); `fold_workers` picks the number.

`refit=R` (an int; True is 1) also fits R models on every training row (seeds `seed +
n_splits + r`, no validation rows: torch models run their whole epoch schedule), and the test
predictions are the mean of R + 1 parts alike: the fold models' mean and each refit (one
refit: half its own, half the folds'). A refit has seen a quarter more rows than any fold
model (5 folds), half more with 3; seeds of it average some errors away (large image sets,
`train.refit`; on the full digits they mostly erred together: benchmarks/README.md).
The OOF predictions, and so the CV score, are the fold models' alone. With `workers > 1` the
refits are more jobs for the workers (5 folds + refit on 2 workers: three full rounds, no
fold left over for the parent).

Under torchrun (`train.nproc`; `nn/distributed.py`) every rank calls `cross_validate` with the
same arguments and `writer=True` on rank 0 only: all ranks train each fold together (DDP),
rank 0 alone writes the cache (and checkpoints), and whether a fold is cached is rank 0's
answer. `ctx.processes > 1` is part of the cache key: such a fit is another result.

`keep_last_model=True` also hands back the last fold's fitted model (`CVResult.last_model`,
e.g. for distillation to export it to ONNX). When that fold came from the cache, its model is
fitted again with the same fold context: torch models then only reload their `final.pt`
checkpoint (same fingerprint), other models retrain (deterministic for a fixed seed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.core.budget import Deadline
from pipelines.core.context import ModelContext
from pipelines.core.io import atomic_file
from pipelines.core.metrics import target_transform
from pipelines.core.progress import bar
from pipelines.core.tables import take_rows
from pipelines.models.registry import create_model
from pipelines.nn.distributed import agree
from pipelines.training.parallel import run_parallel

log = logging.getLogger(__name__)


@dataclass
class CVResult:
    oof: np.ndarray
    test: np.ndarray
    fold_scores: list[float]
    score: float
    seconds: float = 0.0
    params: dict = field(default_factory=dict)
    rows_per_s: float = 0.0  # test-set prediction throughput of one fold model
    refit: int = 0  # refits on every training row in `test` (see the module doc)
    fold_train: np.ndarray | None = None  # (n_splits, n, ...): fold model k's outputs on every train row
    last_model: object | None = None  # the last fold's fitted model, with keep_last_model=True
    curves: list[np.ndarray] = field(default_factory=list)  # per fold fit: (epochs, 3) epoch, train loss, val score
    fold_fits: int = 0  # fold models: the folds, or fewer with `CVOptions.max_folds`
    budget_cuts: dict[str, str] = field(default_factory=dict)  # fit ("fold 0", "refit") -> what the budget cut

    def curve_frame(self) -> pd.DataFrame:
        """The folds' learning curves, one row per fold and epoch (no rows without epochs)."""
        columns = ["fold", "epoch", "train_loss", "val_score"]
        parts = [pd.DataFrame(c, columns=columns[1:]).assign(fold=k) for k, c in enumerate(self.curves) if len(c)]
        if not parts:
            return pd.DataFrame(columns=columns)
        return pd.concat(parts, ignore_index=True)[columns].astype({"fold": np.int64, "epoch": np.int64})


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


NO_CURVE = np.empty((0, 3))
FULL = -1  # the job index of the (first) refit on every training row; refit r is FULL - r


def refit_jobs(refits: int) -> list[int]:
    """The job indices of `refits` refits on every row: FULL, FULL - 1, ..."""
    return [FULL - r for r in range(int(refits))]


def refit_weight(refits: int) -> float:
    """The refits' share of the test predictions: each weighs as much as the folds' mean."""
    return int(refits) / (int(refits) + 1)


@dataclass
class FoldPreds:
    """One fitted fold's outputs: on its validation rows, the test set and every training row
    (the refit, FULL: the test set only), and its learning curve (`NO_CURVE` for models
    without epochs). `predict_s`: seconds to predict the test set, None when the fold came
    from the cache."""

    val: np.ndarray
    test: np.ndarray
    train: np.ndarray
    curve: np.ndarray = field(default_factory=lambda: NO_CURVE)
    predict_s: float | None = None
    budget_cut: str = ""  # what the time budget cut of the fit, in words ("": nothing)

    def save(self, path: Path) -> None:
        seconds = np.nan if self.predict_s is None else self.predict_s  # kept: rows/s of a resumed (or torchrun) run
        with atomic_file(path, "wb") as fh:
            np.savez(fh, val=self.val, test=self.test, train=self.train, curve=self.curve, predict_s=seconds,
                     budget_cut=np.array(self.budget_cut))  # fmt: skip

    @classmethod
    def load(cls, path: Path) -> FoldPreds:
        with np.load(path, allow_pickle=False) as data:
            seconds = float(data["predict_s"]) if "predict_s" in data.files else math.nan
            curve = data["curve"] if "curve" in data.files else NO_CURVE  # folds cached before curves were kept
            cut = str(data["budget_cut"]) if "budget_cut" in data.files else ""
            return cls(data["val"], data["test"], data["train"], curve, None if math.isnan(seconds) else seconds, cut)


def job_name(k: int) -> str:
    """A fit's file stem: fold<k>, or for refit r on every row full (r = 0), full<r>."""
    return f"fold{k}" if k >= 0 else "full" + (str(FULL - k) if k < FULL else "")


def _cache_name(k: int) -> str:
    return f"{job_name(k)}.npz"


@dataclass(frozen=True)
class FoldData:
    """The rows one cross-validation sees: training table or images `X`, encoded targets `y`,
    the test rows, each training row's fold, and (`folds.adversarial`) the rows CV scores.
    `outputs.cleaned.CleanData` has the same attributes, so a stage hands it over as it is."""

    X: object
    y: np.ndarray
    X_test: object
    folds: np.ndarray
    score_rows: np.ndarray | None = None


@dataclass(frozen=True)
class CVOptions:
    """How one cross-validation runs, beyond the model and its data (see the module doc):
    teacher targets to learn from, the fold cache, an `on_fold(k, running_score)` callback
    (Optuna's pruning, the budget's check), whether to keep the last fold's model, worker
    processes, refits on every row, and whether this process writes the cache (torchrun)."""

    soft_targets: np.ndarray | None = None
    cache_dir: Path | None = None
    on_fold: Callable[[int, float], None] | None = None
    keep_last_model: bool = False
    workers: int = 1
    refit: int = 0  # refits on every row (seeds; True: one)
    writer: bool = True
    max_folds: int | None = None  # at most this many fold fits: the folds merged (see `merged`)
    deadline: Deadline | None = None  # a time budget: each fit trains for its part of what is left
    fits_after: int = 0  # with `deadline`: fits of later models that share what is left


def merged(data: FoldData, max_folds: int | None) -> FoldData:
    """`data` with its k folds merged into `max_folds` when fewer (fold f joins fit f mod
    max_folds): a costly model (a fine-tuned backbone) fits fewer times on fewer rows and
    still predicts every row out of fold. Each original fold stays whole within one fit, so
    its rows are out of fold for that fit as for every other model's, and the stacking and
    distillation that read them per fold stay clean."""
    n_splits = int(data.folds.max()) + 1
    if max_folds is None or max_folds >= n_splits:
        return data
    if max_folds < 2:
        raise ValueError(f"max_folds must be at least 2, got {max_folds}")
    return FoldData(data.X, data.y, data.X_test, data.folds % max_folds, data.score_rows)  # data: CleanData too


def cross_validate(
    model: str, params: dict, data: FoldData, ctx: ModelContext, opts: CVOptions = CVOptions()
) -> CVResult:
    start = time.perf_counter()
    original, data = data.folds, merged(data, opts.max_folds)
    n_splits = int(data.folds.max()) + 1
    cache_dir = opts.cache_dir
    if cache_dir is not None:
        cache_dir = _cache_folder(Path(cache_dir), model, params, data, ctx, opts.soft_targets)
        if opts.writer:
            cache_dir.mkdir(parents=True, exist_ok=True)
    job = _FoldJob(model, params, data, ctx, replace(opts, cache_dir=cache_dir))
    if opts.workers > 1 and cache_dir is not None and opts.on_fold is None:
        _in_workers(job, n_splits)  # into the cache

    y, score_rows = data.y, data.score_rows
    oof, test_sum, scores, fold_preds, predict_s, last_model = None, 0.0, [], [], [], None
    for k in bar(range(n_splits), desc=f"{model} folds", unit="fold", show=ctx.progress):
        keep = opts.keep_last_model and k == n_splits - 1
        job = _timed(job, n_splits - k + opts.refit + opts.fits_after)
        preds, est = job.cached_or_run(k, keep_model=keep)
        va = data.folds == k
        oof = np.zeros((len(y), *preds.val.shape[1:])) if oof is None else oof
        oof[va] = preds.val
        test_sum = test_sum + preds.test.astype(np.float64)
        fold_preds.append(preds)
        scores.append(ctx.metric.on(y[va], preds.val, ctx.task, None if score_rows is None else score_rows[va]))
        predict_s += [preds.predict_s] if preds.predict_s is not None else []
        last_model = est if keep else last_model
        if opts.on_fold is not None:
            opts.on_fold(k, float(np.mean(scores)))
    test, fits = test_sum / n_splits, list(fold_preds)
    if original is not data.folds:  # merged: the scores and each fold's teachers are the original folds'
        scores = [ctx.metric.on(y[va], oof[va], ctx.task, None if score_rows is None else score_rows[va])
                  for va in (original == k for k in range(int(original.max()) + 1))]  # fmt: skip
        fold_preds = [fold_preds[k % n_splits] for k in range(int(original.max()) + 1)]
    cuts = {f"fold {k}": p.budget_cut for k, p in enumerate(fits) if p.budget_cut}
    refits = refit_jobs(opts.refit)
    if refits:
        fulls = [_timed(job, len(refits) - r + opts.fits_after).cached_or_run(k)[0] for r, k in enumerate(refits)]
        cuts.update({"refit" if k == FULL else f"refit {FULL - k}": p.budget_cut
                     for k, p in zip(refits, fulls, strict=True) if p.budget_cut})  # fmt: skip
        predict_s += [p.predict_s for p in fulls if p.predict_s is not None]
        test = (test + sum(p.test.astype(np.float64) for p in fulls)) / (len(fulls) + 1)
    return CVResult(
        oof=oof,
        test=test,
        fold_scores=scores,
        score=ctx.metric.on(y, oof, ctx.task, score_rows),
        seconds=time.perf_counter() - start,
        params=dict(params),
        rows_per_s=len(data.X_test) / float(np.mean(predict_s)) if predict_s else 0.0,
        fold_train=np.stack([p.train for p in fold_preds]),
        last_model=last_model,
        refit=int(opts.refit),
        curves=[p.curve for p in fold_preds[:n_splits]],
        fold_fits=n_splits,
        budget_cuts=cuts,
    )


def fitted_models(model: str, params: dict, data: FoldData, ctx: ModelContext, opts: CVOptions = CVOptions()):
    """The fitted models whose test predictions `cross_validate` combined, fitted again as
    `keep_last_model` does (torch models reload their `final.pt` from the cache; others refit,
    deterministic for a fixed seed): yields (k, model, the test predictions the fold cache
    kept, None when it has none) for each fold k, then the refits (k = FULL, FULL - 1, ...)
    with `opts.refit`. `export` ships them; the test predictions were the mean of the folds'
    (with refits: `refit_weight` of it the refits' mean, the rest the folds' mean)."""
    cache_dir, data = opts.cache_dir, merged(data, opts.max_folds)
    if cache_dir is not None:
        cache_dir = _cache_folder(Path(cache_dir), model, params, data, ctx, opts.soft_targets)
    job = _FoldJob(model, params, data, ctx, replace(opts, cache_dir=cache_dir, writer=False))
    for k in [*range(int(data.folds.max()) + 1), *refit_jobs(opts.refit)]:
        done = cache_dir / _cache_name(k) if cache_dir is not None else None
        cached = FoldPreds.load(done).test if done is not None and done.exists() else None
        yield k, job.fit(k), cached


def _in_workers(job: _FoldJob, n_splits: int) -> None:
    """Train the folds (and the refit) that go to `opts.workers` worker processes into the
    cache: as many as make full rounds; the rest the caller trains here, on all threads."""
    opts = job.opts
    jobs = list(range(n_splits)) + refit_jobs(opts.refit)
    in_workers = jobs[: opts.workers * (len(jobs) // opts.workers)]
    todo = [k for k in in_workers if not (job.cache_dir / _cache_name(k)).exists()]
    # with a budget, `workers` fits share the time of as many in a row
    run_parallel(_timed(job, len(jobs) + opts.fits_after, opts.workers), todo, opts.workers)


def _timed(job: _FoldJob, fits: int, at_once: int = 1) -> _FoldJob:
    """`job` with a time budget (`opts.deadline`): its next fit trains for its part of what
    is left, `fits` fits (this one included) being still to run in the stage, `at_once` of
    them side by side."""
    deadline = job.opts.deadline
    if deadline is None or deadline.seconds is None:
        return job
    return replace(job, ctx=replace(job.ctx, fit_seconds=deadline.fit_seconds(fits) * at_once))


def _cache_folder(cache_dir: Path, model: str, params: dict, data: FoldData, ctx: ModelContext, soft_targets) -> Path:
    """Where this model's folds are cached: a key of everything that makes them what they are."""
    # a budgeted fit is another result, and so is one split between torch processes (DDP)
    timed = () if ctx.fit_seconds is None else (ctx.fit_seconds,)
    ranks = () if ctx.processes == 1 else (f"processes={ctx.processes}",)
    key = fingerprint(model, params, ctx.seed, ctx.epochs, data.X, data.y, data.folds, soft_targets, *timed, *ranks)
    return cache_dir / f"{model}-{key}"


@dataclass
class _FoldJob:
    """Everything one fold needs, picklable so that a worker process can run it (`opts.cache_dir`
    is the model's own cache folder; `opts.writer` False: a torchrun rank other than 0, which
    reads the cache but never writes it)."""

    model: str
    params: dict
    data: FoldData
    ctx: ModelContext
    opts: CVOptions

    @property
    def cache_dir(self) -> Path | None:
        return self.opts.cache_dir

    def fit(self, k: int):
        """Fit fold k (validated on its rows), or with k <= FULL refit FULL - k on every row."""
        forward, _ = target_transform(self.ctx.metric, self.ctx.task)
        X, y, folds = self.data.X, self.data.y, self.data.folds
        n_splits = int(folds.max()) + 1
        full = k <= FULL
        tr = np.arange(len(y)) if full else np.flatnonzero(folds != k)
        ckpt = self.cache_dir / (f"ckpt_{job_name(k)}" if full else f"ckpt{k}") if self.cache_dir else None
        fold_ctx = replace(self.ctx, seed=self.ctx.seed + (n_splits + FULL - k if full else k), checkpoint_dir=ckpt)
        est = create_model(self.model, fold_ctx, **self.params)
        soft = None
        if self.opts.soft_targets is not None:
            s = self.opts.soft_targets
            if s.shape[0] == n_splits and s.ndim > y.ndim:  # per fold; the refit takes their mean
                s = s.mean(axis=0) if full else s[k]
            soft = forward(s[tr])
        va = None if full else np.flatnonzero(folds == k)
        eval_set = None if full else (take_rows(X, va), forward(y[va]))
        return est.fit(take_rows(X, tr), forward(y[tr]), eval_set=eval_set, soft_targets=soft)

    def run(self, k: int):
        """Fit fold k, predict its validation rows, the test set and every training row, and
        save them to the cache. Returns (model, FoldPreds)."""
        _, inverse = target_transform(self.ctx.metric, self.ctx.task)
        X = self.data.X
        start = time.perf_counter()
        est = self.fit(k)
        fitted = time.perf_counter()
        empty = np.empty(0)
        va = self.data.folds == k
        val = empty if k <= FULL else inverse(est.predict_output(take_rows(X, np.flatnonzero(va))))
        t0 = time.perf_counter()
        test = inverse(est.predict_output(self.data.X_test))
        seconds = time.perf_counter() - t0
        train = empty
        if k > FULL:  # every training row: the fold's own ones predicted, its validation rows as above
            train = np.empty((len(va), *val.shape[1:]), dtype=val.dtype)
            train[~va], train[va] = inverse(est.predict_output(take_rows(X, np.flatnonzero(~va)))), val
        curve = est.learning_curve() if hasattr(est, "learning_curve") else NO_CURVE
        preds = FoldPreds(val, test, train, curve, seconds, getattr(est, "budget_cut_", None) or "")
        if self.opts.deadline is not None:  # the budget plans the next fits with what this one cost beyond training:
            end, granted = time.perf_counter(), self.ctx.fit_seconds  # a cut fit also its setup and last validation
            cut = bool(preds.budget_cut)
            self.opts.deadline.note_fit(end - start - granted if cut else end - fitted, cut)
        if self.cache_dir is not None and self.opts.writer:
            preds.save(self.cache_dir / _cache_name(k))
        return est, preds

    def cached_or_run(self, k: int, keep_model: bool = False):
        """(FoldPreds, model or None): from the cache when fold k is there (its model fitted
        again only with `keep_model`: torch models then reload their final checkpoint)."""
        done = self.cache_dir / _cache_name(k) if self.cache_dir else None
        # under torchrun, rank 0's view: every rank must train (and meet in the collectives of) the same folds
        if done is not None and agree(done.exists()):
            return FoldPreds.load(done), (self.fit(k) if keep_model else None)
        est, preds = self.run(k)
        return preds, est
