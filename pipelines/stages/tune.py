"""Stage `tune`: Optuna search over each tunable model's space, on the shared folds.

    python -m pipelines tune <name> --clean data/clean/<name> --out data/tune/<name>

One study per model in a real storage (SQLite `study.db` in `--out` unless `tune.storage`
names an RDB URL, so several machines can work on one study). Seeded TPE whose first trial
is the model's defaults (so the best params never score below them); a median pruner stops
trials whose running fold mean is poor (torch models also report per epoch). Trials score
the competition's metric on OOF predictions (after OOF-fitted thresholds where the metric
uses them); on large data they run on a seeded subsample of `tune.max_rows` rows, and
costly data (rows x classes) gets fewer trials (`tune.row_budget`, see `TuneParams`).
Studies resume: `n_trials` is the study's total, so an interrupted run continues and a
re-run adds nothing. Writes `best_params.json` (read by `train`) and `history.csv` (plots).
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from pipelines.core import progress
from pipelines.core.budget import Deadline
from pipelines.core.context import set_threads
from pipelines.core.io import atomic_file, write_json
from pipelines.core.tables import take_rows
from pipelines.models.registry import get_entry, serves
from pipelines.models.selection import check_models, models_for
from pipelines.sources.cleaned import CleanData
from pipelines.stages.common import model_context
from pipelines.training.cv import cross_validate, fingerprint

log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("--clean", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)


def subsample(data: CleanData, max_rows: int | None, seed: int):
    """(X, y, folds, X_test, score_rows) for tuning: at most `max_rows` seeded training rows,
    each keeping its fold (and whether CV scores it); one test row (trials need no test
    predictions)."""
    idx = np.arange(len(data.y))
    if max_rows is not None and len(idx) > max_rows:
        idx = np.sort(np.random.default_rng(seed).choice(idx, size=max_rows, replace=False))
    rows = None if data.score_rows is None else data.score_rows[idx]
    return take_rows(data.X, idx), data.y[idx], data.folds[idx], take_rows(data.X_test, np.arange(1)), rows


def default_params(model: str) -> dict:
    """The factory's own defaults (numbers, strings, booleans): the study's first trial."""
    entry = get_entry(model)
    return {
        name: p.default
        for name, p in inspect.signature(entry.factory).parameters.items()
        if name != "ctx" and isinstance(p.default, (int, float, str, bool)) and p.default is not p.empty
    }


def tune_model(
    model: str,
    data: CleanData,
    ctx,
    tp,
    storage: str,
    study_name: str,
    seed: int = 0,
    fixed: dict | None = None,
    timeout: float | None = None,
) -> optuna.Study:
    """Run (or resume) the study; `fixed` factory arguments (params' `train.params`) hold in
    every trial; no new trial starts after `timeout` seconds."""
    entry = get_entry(model)
    X, y, folds, X_test, rows = subsample(data, tp.max_rows, seed)
    direction = "maximize" if ctx.metric.greater_is_better else "minimize"
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        direction=direction,
        sampler=optuna.samplers.TPESampler(seed=ctx.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
        load_if_exists=True,
    )

    accepted = inspect.signature(entry.factory).parameters
    cheap = {"final_fit": False} if "final_fit" in accepted else {}  # LightGBM: the early-stopped model will do

    def objective(trial: optuna.Trial) -> float:
        params = entry.search_space(trial)

        def on_fold(k: int, running: float) -> None:
            trial.report(running, k)
            if trial.should_prune():
                raise optuna.TrialPruned()

        fit = {**params, **(fixed or {}), **cheap}
        result = cross_validate(model, fit, X, y, X_test, folds, ctx, on_fold=on_fold, score_rows=rows)
        scored = slice(None) if rows is None else rows
        return ctx.metric.best_score(y[scored], result.oof[scored], ctx.task)

    finished = [t for t in study.trials if t.state.is_finished()]
    remaining = max(0, tp.trials_for(len(y), ctx.n_classes) - len(finished))
    if remaining and not study.trials:
        study.enqueue_trial(default_params(model), skip_if_exists=True)
    if remaining:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study.optimize(objective, n_trials=remaining, timeout=timeout, show_progress_bar=progress.enabled())
    return study


def history_of(study: optuna.Study | None, model: str, greater_is_better: bool) -> pd.DataFrame:
    """The study's completed trials with the best value so far (the DVC plot of `history.csv`)."""
    trials = study.trials_dataframe(attrs=("number", "value", "state")) if study else pd.DataFrame()
    if trials.empty:
        return pd.DataFrame(columns=["model", "trial", "value", "best"])
    trials = trials[trials["state"] == "COMPLETE"]
    best = trials["value"].cummax() if greater_is_better else trials["value"].cummin()
    return pd.DataFrame({"model": model, "trial": trials["number"], "value": trials["value"], "best": best})


def main(args, params) -> None:
    check_models(params, args.params)
    spec = params.competition(args.name)
    tp = params.tune
    set_threads(params.train.threads)
    data = CleanData(args.clean)
    ctx = model_context(data, params, progress=False)
    args.out.mkdir(parents=True, exist_ok=True)
    storage = tp.storage or f"sqlite:///{(args.out / 'study.db').resolve()}"
    optuna.storages.RDBStorage(storage)  # creates the database even when nothing is tuned
    # a new study whenever the data, folds or seed change; the same one when resuming
    tag = fingerprint(data.y, data.folds, params.seed, spec.model_dump(), tp.max_rows)
    rows = min(len(data.y), tp.max_rows or len(data.y))
    log.info("tune: %d row(s), up to %d trial(s) per model", rows, tp.trials_for(rows, ctx.n_classes))
    models = [m for m in tp.models if m in models_for(params, args.name, len(data.y))]
    deadline = Deadline.for_stage(params.budget, "tune")
    best, history = {}, []
    for i, model in enumerate(models):
        entry = get_entry(model)
        if entry.search_space is None or ctx.task not in entry.tasks or not serves(entry.modality, spec.modality):
            log.info("tune: skipping %s (no search space for this competition)", model)
            continue
        if tp.n_trials == 0:
            continue
        fixed = params.train.params_for(model)
        name = f"{args.name}-{model}-{tag}" + (f"-{fingerprint(fixed)}" if fixed else "")  # new arguments: new study
        # with a budget, this model's part of what is left of the stage's share
        limits = [t for t in (tp.timeout, deadline.share(len(models) - i)) if t is not None]
        timeout = min(limits) if limits else None
        study = tune_model(model, data, ctx, tp, storage, name, params.seed, fixed, timeout)
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not done:
            continue
        best[model] = {"params": study.best_params, "cv": study.best_value, "trials": len(study.trials)}
        history.append(history_of(study, model, ctx.metric.greater_is_better))
        print(f"{args.name}: tuned {model}: best cv {study.best_value:.5f} after {len(study.trials)} trials")
    write_json(args.out / "best_params.json", best)
    with atomic_file(args.out / "history.csv") as fh:
        (pd.concat(history) if history else history_of(None, "", True)).to_csv(fh, index=False)
