"""Optuna's own machinery for `tune`: storages, pruners, a study budget shared by workers,
crash safety and warm starts. The stage (`pipelines/stages/tune.py`) runs it:

    storage = open_storage(tune.storage, folder / "study.db", folder / "study.journal", 10, 60)
    run_trials(study, objective, n_trials)   # in every worker, on this machine or another

Storages: SQLite (one process; the default), Optuna's JournalStorage on a file (several
processes of one machine), any RDB URL such as PostgreSQL (several machines).

The budget: `n_trials` is the study's total over all workers. A trial that is COMPLETE,
PRUNED, RUNNING or WAITING (enqueued, or the retry of a dead worker's trial) holds a slot;
workers stop starting trials once the slots are taken (`MaxTrialsCallback` on those
states), and a trial that two workers started at the same instant for the last slot is
recognised by its number (it ranks past the budget) and fails at once as `Surplus`,
before any training. Each worker then waits until every slot is finished, so whoever
writes the results writes them once the budget is done.

Crash safety: with SQLite and RDB storages a running trial beats (`heartbeat_interval`);
one whose worker died is failed after `grace_period` and re-queued with its params by
`RetryHeartbeatStaleTrialCallback`. Optuna 5's JournalStorage has no heartbeat, so there
a worker fails the running trials of dead processes of its own machine (each trial
records `host:pid:start`) and re-queues them through the same callback.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import warnings
from datetime import datetime

import optuna
import psutil
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState

from pipelines.core import progress

log = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
LIVE = (*FINISHED, TrialState.RUNNING, TrialState.WAITING)  # the states that hold a slot of the budget
RETRIES = 3  # a trial whose worker dies this often is not re-queued again (its params may be the cause)
WORKER = "worker"  # user attribute: host:pid:start time of the process running the trial
UNCLAIMED_S = 10  # a journal trial still without a WORKER after this long lost its worker before it claimed it
PRUNERS = ("median", "successive_halving", "hyperband", "none")


class Surplus(Exception):
    """A trial started past the study's budget (two workers took the last slot at once)."""


def open_storage(
    spec: str | None, sqlite_path, journal_path, heartbeat_interval: int, grace_period: int
) -> optuna.storages.BaseStorage:
    """`spec`: None (SQLite at `sqlite_path`), "journal" (a JournalStorage at `journal_path`) or an RDB URL."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeats are "experimental"
    if spec == "journal":
        return JournalStorage(JournalFileBackend(str(journal_path)))
    url = spec or f"sqlite:///{sqlite_path.resolve()}"
    return optuna.storages.RDBStorage(
        url,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=RETRIES),
        engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else None,
    )


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    """The pruner of `tune.pruner`. Steps are folds (tabular models: the running fold mean) or
    epochs across folds (torch models, see `TrialSteps`); each needs a few trials to compare with."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"unknown pruner {name!r} (one of {', '.join(PRUNERS)})")


class TrialSteps:
    """What one trial reports to its pruner. Tabular models report the running fold mean at
    step k after fold k (`on_fold`); torch models report each epoch's validation score from the
    training loop (`ctx.trial`: `report` / `should_prune`) at step fold x epochs + epoch, so the
    same step means the same fold and epoch in every trial."""

    def __init__(self, trial: optuna.Trial, epochs: int):
        self.trial, self.epochs = trial, epochs
        self.fold, self.per_epoch = 0, False

    def report(self, value: float, epoch: int) -> None:
        self.per_epoch = True
        self.trial.report(value, self.fold * self.epochs + epoch)

    def should_prune(self) -> bool:
        return self.trial.should_prune()

    def on_fold(self, k: int, running: float) -> None:
        if not self.per_epoch:
            self.trial.report(running, k)
            if self.trial.should_prune():
                raise optuna.TrialPruned(f"pruned after fold {k} (running mean {running:.5g})")
        self.fold = k + 1


def claim_slot(trial: optuna.Trial, n_trials: int) -> None:
    """At the start of a trial: record who runs it, and fail it as `Surplus` if its number ranks
    past the budget among the trials holding a slot."""
    trial.set_user_attr(WORKER, _me())
    live = trial.study.get_trials(deepcopy=False, states=LIVE)
    if sum(t.number <= trial.number for t in live) > n_trials:
        trial.study.stop()
        raise Surplus(f"trial {trial.number}: the study's {n_trials} trials are taken")


def run_trials(study: optuna.Study, objective, n_trials: int, timeout: float | None = None, poll: float = 0.5) -> None:
    """Add trials until `n_trials` hold a slot, then wait until all of them are finished (other
    workers' too, and a dead worker's once retried); no new trial starts after `timeout` seconds."""
    end = None if timeout is None else time.monotonic() + timeout
    budget = MaxTrialsCallback(n_trials, states=LIVE)
    while True:
        fail_dead(study)
        # free slots, and the queued trials (enqueued, or retries of a dead worker's) that hold one
        waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        left = n_trials - len(study.get_trials(deepcopy=False, states=LIVE)) + waiting
        seconds = None if end is None else end - time.monotonic()
        if seconds is not None and seconds <= 0:
            return
        if left > 0:
            study.optimize(
                objective, n_trials=left, timeout=seconds, callbacks=[budget], catch=(Surplus,),
                show_progress_bar=progress.enabled(),
            )  # fmt: skip
        elif len(study.get_trials(deepcopy=False, states=FINISHED)) >= n_trials:
            return
        else:
            time.sleep(poll)  # others' trials still run (or a dead worker's, until it is found dead)


def fail_dead(study: optuna.Study) -> None:
    """Fail (and re-queue) the running trials whose worker is dead: by heartbeat where the
    storage has them, else those of dead processes on this machine."""
    storage = study._storage
    if not isinstance(storage, JournalStorage):
        optuna.storages.fail_stale_trials(study)  # heartbeat storages (a no-op where heartbeats are off)
        return
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = str(t.user_attrs.get(WORKER, ""))
        if not owner:  # its worker died between starting the trial and claiming it (milliseconds)
            if t.datetime_start is None or (datetime.now() - t.datetime_start).total_seconds() < UNCLAIMED_S:
                continue
        elif owner.rsplit(":", 2)[0] != host or _alive(owner):
            continue
        try:
            storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker failed it first
        log.warning("tune: trial %d's worker (%s) is gone: failed, re-queued", t.number, owner)
        RetryHeartbeatStaleTrialCallback(max_retry=RETRIES)(study, storage.get_trial(t._trial_id))


def _me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{psutil.Process().create_time():.2f}"


def _alive(owner: str) -> bool:
    """Whether the process `host:pid:start` still runs (a reused pid has another start time)."""
    _, pid, start = owner.rsplit(":", 2)
    try:
        proc = psutil.Process(int(pid))
        return f"{proc.create_time():.2f}" == start and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, ValueError):
        return False


def previous_best(storage, prefix: str, name: str) -> dict | None:
    """The best params of the latest other study named `prefix...` in `storage` (the same model
    and competition before the data or arguments changed), to try first in study `name`."""
    summaries = [
        s
        for s in optuna.get_all_study_summaries(storage, include_best_trial=True)
        if s.study_name.startswith(prefix) and s.study_name != name and s.best_trial is not None
    ]
    if not summaries:
        return None
    return max(summaries, key=lambda s: s.datetime_start).best_trial.params
