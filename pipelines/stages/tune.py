"""Stage `tune`: Optuna search over each tunable model's space, on the shared folds.

    python -m pipelines tune <name> --clean data/clean/<name> --out data/tune/<name>
    python -m pipelines tune <name> --join     # one more worker on the same study, from any machine

One study per model in a real storage (`tune.storage`): SQLite `study.db` in `--out` by
default, Optuna's JournalStorage (`study.journal` beside it) for `tune.workers` processes on
this machine, or an RDB URL (PostgreSQL) that workers on other machines `--join`. Whichever is
used, both files exist (DVC declares them); the unused one stays empty. `n_trials` is the
study's total over every worker (see `pipelines/training/study.py`: budget, heartbeats,
retries); the stage writes its results once the budget is done, whoever ran the trials; a
joining worker writes nothing. Seeded TPE whose first trials are the best params of the
model's previous study (new data or arguments make a new study) and the model's defaults,
so the best params never score below them; `tune.pruner` stops poor trials on their running
fold mean (torch models: on each epoch's score). Trials score the competition's metric on
OOF predictions (after OOF-fitted thresholds where the metric uses them); on large data
they run on a seeded subsample of `tune.max_rows` rows, and costly data (rows x classes)
gets fewer trials (`tune.row_budget`). Writes `best_params.json` (read by `train`) and the
study plots: `history.csv`, `importances.csv`, `slices/<model>-<param>.csv`.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import optuna

from pipelines.core.budget import Deadline
from pipelines.core.context import set_threads
from pipelines.core.errors import PipelineError
from pipelines.core.io import atomic_dir, atomic_file, write_json
from pipelines.core.paths import Paths
from pipelines.core.tables import take_rows
from pipelines.models.registry import get_entry
from pipelines.models.selection import check_models
from pipelines.outputs.cleaned import CleanData
from pipelines.stages.common import model_context
from pipelines.training.cv import CVOptions, FoldData, cross_validate, fingerprint
from pipelines.training.plan import make_plan
from pipelines.training.study import (
    FINISHED,
    TrialSteps,
    claim_slot,
    make_pruner,
    open_storage,
    previous_best,
    run_trials,
)
from pipelines.training.study_plots import history_table, importance_table, slice_tables

log = logging.getLogger(__name__)

STUDY_FILES = ("study.db", "study.journal")  # in --out: SQLite's and the JournalStorage's


def add_arguments(parser) -> None:
    where = Paths("<name>")
    parser.add_argument("--clean", type=Path, default=None, help=f"clean's folder (default: {where.clean})")
    parser.add_argument("--out", type=Path, default=None, help=f"study files and results (default: {where.tune})")
    parser.add_argument("--join", action="store_true", help="only add trials to the study; write no results")
    parser.add_argument("--threads", type=int, default=None, help="this worker's threads (default: train.threads)")


def subsample(data: CleanData, max_rows: int | None, seed: int) -> FoldData:
    """The rows of tuning: at most `max_rows` seeded training rows, each keeping its fold (and
    whether CV scores it); one test row (trials need no test predictions)."""
    idx = np.arange(len(data.y))
    if max_rows is not None and len(idx) > max_rows:
        idx = np.sort(np.random.default_rng(seed).choice(idx, size=max_rows, replace=False))
    rows = None if data.score_rows is None else data.score_rows[idx]
    return FoldData(take_rows(data.X, idx), data.y[idx], take_rows(data.X_test, np.arange(1)), data.folds[idx], rows)


def default_params(model: str, sized: dict | None = None) -> dict:
    """The model's declared defaults (numbers, strings, booleans), with those that differ at
    this data size (`sized`): a study's first trials. A value its search space cannot hold
    (pytabkit's reg_lambda 0 in a log range) is left to the sampler."""
    entry = get_entry(model)
    merged = {**entry.defaults, **(sized or {})}
    space = _distributions(entry.search_space) if entry.search_space is not None else {}
    return {
        name: v
        for name, v in merged.items()
        if isinstance(v, (int, float, str, bool)) and (name not in space or _holds(space[name], v))
    }


def _distributions(search_space) -> dict:
    """The search space's distributions by name (one trial of a throwaway in-memory study)."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created" line
    try:
        trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
        search_space(trial)
        return trial.distributions
    finally:
        optuna.logging.set_verbosity(level)


def _holds(distribution, value) -> bool:
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return value in distribution.choices
    return distribution.low <= value <= distribution.high


def open_study(planned, name: str, family: str, storage, ctx, tp, n_trials: int, *, seed: int | None) -> optuna.Study:
    """Create or load study `name` of the planned model `planned`; a new one queues the best
    params of the latest other study named `family...` (same competition and model,
    `tune.warm_start`) and the model's defaults at this data size, as far as `n_trials` goes."""
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction="maximize" if ctx.metric.greater_is_better else "minimize",
        # several workers: a running trial counts as a (bad) result, so two workers do not try one point
        sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=seed is None or tp.workers > 1),
        pruner=make_pruner(tp.pruner),
        load_if_exists=True,
    )
    if not study.get_trials(deepcopy=False):
        warm = previous_best(storage, family, name) if tp.warm_start else None
        for queued in [p for p in (warm, default_params(planned.name, planned.sized)) if p is not None][:n_trials]:
            study.enqueue_trial(queued, skip_if_exists=True)
    return study


def make_objective(planned, data, ctx, tp, n_trials: int, seed: int, seconds: float | None = None):
    """The trial of a planned model (`plan.ModelPlan`): claim a slot of the budget, suggest
    params, cross-validate on the tuning rows with the model's fixed arguments (on its merged
    folds, as it trains, where `train.max_folds` merges them). With a time budget
    (`seconds`: the study's), a trial's fits also end when the study's time does."""
    model, fixed, max_folds = planned.name, planned.args, planned.folds
    deadline = Deadline(seconds) if seconds is not None else None
    entry = get_entry(model)
    rows = subsample(data, tp.max_rows, seed)
    scored = slice(None) if rows.score_rows is None else rows.score_rows  # folds.adversarial: the test-like rows only
    cheap = {"final_fit": False} if entry.final_fit else {}

    def objective(trial: optuna.Trial) -> float:
        claim_slot(trial, n_trials)
        params = entry.search_space(trial)
        steps = TrialSteps(trial, ctx.epochs)  # torch models report each epoch to it (ctx.trial)
        opts = CVOptions(on_fold=steps.on_fold, max_folds=max_folds, deadline=deadline)
        arguments = {**planned.sized, **params, **fixed, **cheap}  # the defaults at this size beneath the trial's
        result = cross_validate(model, arguments, rows, replace(ctx, trial=steps), opts)
        trial.set_user_attr("fold_scores", [float(s) for s in result.fold_scores])  # the best CV's noise
        return ctx.metric.best_score(rows.y[scored], result.oof[scored], ctx.task)

    return objective


def spawn_workers(args, clean: Path, out: Path, n: int, threads: int) -> list[subprocess.Popen]:
    """`n` more processes on this machine, each `tune <name> --join` on `threads` threads."""
    cmd = [sys.executable, "-m", "pipelines", "tune", args.name, "--join", "--params", str(args.params)]
    cmd += ["--clean", str(clean), "--out", str(out), "--threads", str(threads)]
    return [subprocess.Popen(cmd) for _ in range(n)]  # the CLI sets OMP_WAIT_POLICY=PASSIVE itself


def worker_threads(args, params) -> int:
    tp, total = params.tune, params.train.threads
    if args.threads is not None:
        if args.threads < 1:
            raise PipelineError(f"--threads: must be at least 1 (got {args.threads})")
        return args.threads
    if tp.workers > total:
        raise PipelineError(
            f"{args.params}: tune.workers: {tp.workers} workers of one thread each exceed train.threads ({total})"
        )
    return total // tp.workers


def studies_of(plan, tag: str) -> list[tuple[str, str, dict]]:
    """(model, study name, fixed arguments) of each model the plan tunes."""
    fixed = {m.name: m.args for m in plan.models}
    # new arguments: a new study
    return [
        (m, f"{plan.name}-{m}-{tag}" + (f"-{fingerprint(fixed[m])}" if fixed[m] else ""), fixed[m])
        for m in plan.tune_models
    ]


def main(args, params) -> None:
    check_models(params, args.params)
    spec, tp = params.competition(args.name), params.tune
    clean = args.clean or Paths(args.name).clean
    out = args.out or Paths(args.name).tune
    threads = worker_threads(args, params)
    set_threads(threads)
    data = CleanData(clean)
    ctx = model_context(data, params, progress=False, threads=threads)
    out.mkdir(parents=True, exist_ok=True)
    storage = open_storage(
        tp.storage, out / STUDY_FILES[0], out / STUDY_FILES[1], tp.heartbeat_interval, tp.grace_period
    )
    for path in STUDY_FILES:
        (out / path).touch()  # DVC declares both; an empty file is an empty SQLite database and an empty journal
    # a new study whenever the data, folds or seed change; the same one when resuming
    tag = fingerprint(data.y, data.folds, params.seed, spec.model_dump(), tp.max_rows)
    plan = make_plan(params, args.name, data)
    n_trials = plan.tune_trials
    log.info("tune: %d row(s), up to %d trial(s) per model", plan.tune_rows, n_trials)
    todo = studies_of(plan, tag)
    seed = None if args.join else ctx.seed  # joining workers sample on their own (a shared seed: the same points)
    studies = {
        model: open_study(plan.model(model), name, f"{args.name}-{model}-", storage, ctx, tp, n_trials, seed=seed)
        for model, name, _ in todo
    }
    workers = [] if args.join else spawn_workers(args, clean, out, tp.workers - 1, threads)
    try:
        run_studies(todo, studies, data, ctx, params, plan)
    except BaseException:  # an error or an interruption here: stop the workers (their finished trials are kept)
        for proc in workers:
            proc.terminate()
            proc.wait()
        raise
    for proc in workers:  # they stop once the budget is done
        if proc.wait() != 0:
            raise PipelineError(f"tune: a worker (pid {proc.pid}) exited with code {proc.returncode}")
    if not args.join:
        write_results(out, studies, ctx.metric.greater_is_better, args.name, plan.tune_rows)


def run_studies(todo, studies, data, ctx, params, plan) -> None:
    deadline, n_trials = plan.deadline("tune"), plan.tune_trials
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for i, (model, _, _) in enumerate(todo):
        # with a budget, this model's part of what is left of the stage's share
        share = deadline.share(len(todo) - i)
        limits = [t for t in (params.tune.timeout, share) if t is not None]
        planned = plan.model(model)
        objective = make_objective(planned, data, ctx, params.tune, n_trials, params.seed, share)
        run_trials(studies[model], objective, n_trials, timeout=min(limits) if limits else None)


def write_results(out: Path, studies: dict, greater_is_better: bool, name: str, rows: int) -> None:
    """best_params.json (each model's best params, their CV on the `rows` tuning rows, the
    trials), the history, importances and slices."""
    done = {m: s for m, s in studies.items() if s.get_trials(deepcopy=False, states=FINISHED[:1])}  # COMPLETE
    best = {}
    for model, study in done.items():
        trials = len(study.get_trials(deepcopy=False, states=FINISHED))
        best[model] = {"params": study.best_params, "cv": study.best_value, "trials": trials, "rows": rows}
        print(f"{name}: tuned {model}: best cv {study.best_value:.5f} after {trials} trials")
    write_json(out / "best_params.json", best)
    with atomic_file(out / "history.csv") as fh:
        history_table(done, greater_is_better).to_csv(fh, index=False)
    with atomic_file(out / "importances.csv") as fh:
        importance_table(done).to_csv(fh, index=False)
    with atomic_dir(out / "slices") as folder:
        for key, table in slice_tables(done).items():
            table.to_csv(folder / f"{key}.csv", index=False)
