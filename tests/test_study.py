"""Optuna's machinery for `tune` (pipelines/training/study.py) on real storages and real
processes: workers sharing one budget, a SIGKILLed worker whose trial is failed and retried,
pruner choice, and torch models reporting each epoch to the trial. PostgreSQL runs the same
checks in tests/test_study_postgres.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from pipelines.core.context import ModelContext
from pipelines.core.metrics import get_metric
from pipelines.training.cv import CVOptions, FoldData, cross_validate
from pipelines.training.study import WORKER, TrialSteps, make_pruner
from tests.conftest import ROOT
from tests.study_worker import storage_of


def new_study(spec: str, name: str = "s") -> optuna.Study:
    return optuna.create_study(study_name=name, storage=storage_of(spec))


def worker(spec: str, name: str, n_trials: int, seconds: float, start_at: float | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tests.study_worker", spec, name, str(n_trials), str(seconds)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.Popen([*cmd, *([str(start_at)] if start_at else [])], cwd=ROOT, env=env)


def run_two_workers(spec: str, n_trials: int = 8) -> list[optuna.trial.FrozenTrial]:
    """Two workers started together on one study; returns its trials once both are done."""
    new_study(spec)
    start_at = time.time() + 3  # both have imported optuna by then
    procs = [worker(spec, "s", n_trials, 0.3, start_at) for _ in range(2)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    return optuna.load_study(study_name="s", storage=storage_of(spec)).trials


def check_shared_budget(trials, n_trials: int = 8) -> None:
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == n_trials  # the study's total, not each worker's
    assert len({t.number for t in trials}) == len(trials)  # unique trial numbers
    # a trial past the budget (two workers taking the last slot at once) fails before it suggests anything
    assert all(t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL and not t.params) for t in trials)
    assert len({t.user_attrs[WORKER] for t in done}) == 2  # both workers contributed


def test_two_workers_share_a_journal_study(tmp_path):
    check_shared_budget(run_two_workers(str(tmp_path / "study.journal")))


def kill_mid_trial_and_restart(spec: str, n_trials: int = 5) -> list[optuna.trial.FrozenTrial]:
    """Start a worker, SIGKILL it while a trial runs (after at least one completed), restart it."""
    study = new_study(spec)
    proc = worker(spec, "s", n_trials, 0.5)
    deadline = time.time() + 60
    while time.time() < deadline:  # mid-trial: it has suggested its point (the window before is tested below)
        trials = study.get_trials(deepcopy=False)
        states, running = Counter(t.state for t in trials), [t for t in trials if t.state == TrialState.RUNNING]
        if states[TrialState.COMPLETE] >= 1 and len(running) == 1 and running[0].params:
            break
        time.sleep(0.05)
    before = {t.number: t.params for t in study.get_trials(states=(TrialState.COMPLETE,))}
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert worker(spec, "s", n_trials, 0.5).wait(timeout=60) == 0
    trials = study.get_trials()
    kept = {t.number: t.params for t in trials if t.number in before}
    assert kept == before and all(trials[n].state == TrialState.COMPLETE for n in before)  # nothing lost
    return trials


def check_killed_trial_retried(trials, n_trials: int = 5) -> None:
    (failed,) = [t for t in trials if t.state == TrialState.FAIL]
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == failed.number]
    assert retry.state == TrialState.COMPLETE and retry.params == failed.params  # the same point, run again
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == n_trials and len(trials) == n_trials + 1  # the budget, and no trial repeated


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_killed_worker_trial_is_failed_and_retried(tmp_path, kind):
    # SQLite: by heartbeat (grace period 2 s); journal (no heartbeats): the dead pid on this machine
    spec = f"sqlite:///{tmp_path / 'study.db'}" if kind == "sqlite" else str(tmp_path / "study.journal")
    check_killed_trial_retried(kill_mid_trial_and_restart(spec))


def test_a_journal_trial_its_worker_never_claimed_is_failed_and_retried(tmp_path, monkeypatch):
    """A worker killed between starting a trial and recording itself leaves no owner to ask."""
    from pipelines.training import study as study_mod
    from tests.study_worker import make_objective

    monkeypatch.setattr(study_mod, "UNCLAIMED_S", 0.5)
    study = optuna.load_study(study_name="s", storage=new_study(str(tmp_path / "study.journal"))._storage)
    orphan = study.ask()  # RUNNING, with no WORKER: its process is gone before claim_slot ran
    study_mod.run_trials(study, make_objective(3, 0.1), 3, poll=0.1)
    trials = study.get_trials()
    assert trials[orphan.number].state == TrialState.FAIL
    assert [t.system_attrs.get("failed_trial") for t in trials].count(orphan.number) == 1
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("median", optuna.pruners.MedianPruner),
        ("successive_halving", optuna.pruners.SuccessiveHalvingPruner),
        ("hyperband", optuna.pruners.HyperbandPruner),
        ("none", optuna.pruners.NopPruner),
    ],
)
def test_pruner_by_name(name, kind):
    assert isinstance(make_pruner(name), kind)


def test_torch_models_report_each_epoch_to_the_trial(tmp_path):
    """cross_validate hands the trial to the torch loop (ctx.trial): steps are fold x epochs + epoch."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    y = (X["a"] > 0).to_numpy().astype(int)
    folds = np.arange(60) % 3
    ctx = ModelContext(
        "binary", get_metric("accuracy"), 2, roles={"numeric": ["a", "b"]}, epochs=3, threads=1, progress=False
    )
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize", pruner=make_pruner("none")
    )
    trial = study.ask()
    steps = TrialSteps(trial, ctx.epochs)
    data = FoldData(X, y, X.iloc[:1], folds)
    cross_validate("mlp", {"hidden": 8, "layers": 1}, data, replace(ctx, trial=steps), CVOptions(on_fold=steps.on_fold))
    study.tell(trial, 1.0)
    assert sorted(study.trials[0].intermediate_values) == list(range(9))  # 3 folds x 3 epochs, no fold-level step
