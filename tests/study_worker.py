"""A worker process for the shared-study tests: the budget, heartbeats and retries of
`pipelines/training/study.py` on an objective that sleeps (so trials overlap and can be killed
mid-way, in seconds, without training anything).

    python -m tests.study_worker STORAGE STUDY N_TRIALS SECONDS [START_AT]

STORAGE: an RDB URL, or a path ending in `.journal` (a JournalStorage file). The study must
exist. START_AT (epoch seconds): wait until then, so that several workers start together.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import optuna

from pipelines.training.study import claim_slot, open_storage, run_trials

HEARTBEAT, GRACE = 1, 2  # seconds: a killed worker's trial is found dead within ~3 s


def storage_of(spec: str):
    if spec.endswith(".journal"):
        return open_storage("journal", None, Path(spec), HEARTBEAT, GRACE)
    return open_storage(spec, None, None, HEARTBEAT, GRACE)


def make_objective(n_trials: int, seconds: float):
    def objective(trial: optuna.Trial) -> float:
        claim_slot(trial, n_trials)
        x = trial.suggest_float("x", -1.0, 1.0)
        time.sleep(seconds)
        return x * x

    return objective


def main(argv: list[str]) -> None:
    spec, name, n_trials, seconds = argv[0], argv[1], int(argv[2]), float(argv[3])
    study = optuna.load_study(study_name=name, storage=storage_of(spec), sampler=optuna.samplers.RandomSampler())
    if len(argv) > 4:
        time.sleep(max(0.0, float(argv[4]) - time.time()))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run_trials(study, make_objective(n_trials, seconds), n_trials, poll=0.2)


if __name__ == "__main__":
    main(sys.argv[1:])
