"""Tuning at scale: pruning against none, and two workers against one, on one study budget.

    flock /tmp/kp-cpu.lock python benchmarks/tuning.py [--competition titanic] [--trials 30]

The competition (embedded Titanic or House Prices) is downloaded and cleaned once; then the
`tune` stage runs in this process (`python -m pipelines tune` as a function) on a fresh
study for each setting, LightGBM, the default 5 folds, the same number of trials:

- pruning: `tune.pruner: none` against `median` (the default) and `successive_halving`,
  `train.threads: 2`, one worker;
- workers: one worker on one thread against `tune.workers: 2` (a JournalStorage, one thread
  each: `train.threads: 2`), both without pruning so that every trial costs the same.

Per setting: wall seconds, trials complete / pruned, the best CV and its standard error over
the best trial's folds (the noise a difference in best CV is measured against).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import default_params, table  # noqa: E402
from pipelines.__main__ import main as cli  # noqa: E402

SPECS = {
    "titanic": {"source": "embedded", "kaggle": "titanic", "id": "PassengerId", "target": "Survived",
                "task": "binary", "metric": "accuracy"},
    "house-prices": {"source": "embedded", "kaggle": "house-prices", "id": "Id",
                     "target": "SalePrice", "task": "regression", "metric": "rmsle"},
}  # fmt: skip
SETTINGS = {
    "no pruning": {"pruner": "none"},
    "median pruner": {"pruner": "median"},
    "successive halving": {"pruner": "successive_halving"},
    "1 worker x 1 thread": {"pruner": "none", "threads": 1},
    "2 workers x 1 thread": {"pruner": "none", "workers": 2, "storage": "journal"},
}


def tune_once(root: Path, name: str, spec: dict, trials: int, setting: dict) -> dict:
    params = default_params()
    params["competitions"] = {name: spec}
    params["train"]["threads"] = setting.get("threads", 2)
    params["tune"].update(models=["lightgbm"], n_trials=trials, **{k: v for k, v in setting.items() if k != "threads"})
    folder = root / f"run{len(list(root.glob('run*')))}"
    folder.mkdir()
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    common = [name, "--params", str(folder / "params.yaml")]
    clean = root / "clean"
    if not clean.exists():
        assert cli(["download", *common, "--out", str(root / "raw")]) == 0
        assert cli(["clean", *common, "--raw", str(root / "raw"), "--out", str(clean)]) == 0
    start = time.perf_counter()
    assert cli(["tune", *common, "--clean", str(clean), "--out", str(folder / "tune")]) == 0
    seconds = time.perf_counter() - start
    return {"seconds": seconds, **summary(folder / "tune", setting.get("storage"))}


def summary(out: Path, storage: str | None) -> dict:
    if storage == "journal":
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "study.journal")))
    else:
        storage = f"sqlite:///{out / 'study.db'}"
    (s,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=s.study_name, storage=storage)
    states = [t.state for t in study.trials]
    folds = study.best_trial.user_attrs.get("fold_scores", [])
    best = json.loads((out / "best_params.json").read_text())["lightgbm"]["cv"]
    return {
        "complete": states.count(optuna.trial.TrialState.COMPLETE),
        "pruned": states.count(optuna.trial.TrialState.PRUNED),
        "best cv": float(best),
        "se": float(np.std(folds, ddof=1) / np.sqrt(len(folds))) if len(folds) > 1 else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--competition", choices=sorted(SPECS), default="titanic")
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--only", default=",".join(SETTINGS), help="comma-separated: " + ", ".join(SETTINGS))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label in args.only.split(","):
            result = tune_once(Path(tmp), args.competition, SPECS[args.competition], args.trials, SETTINGS[label])
            rows.append({"setting": label, **result})
            print(table(rows[-1:]), flush=True)
    by = {r["setting"]: r for r in rows}
    ratios = []
    base = by.get("no pruning")
    for label in ("median pruner", "successive halving"):
        if base and label in by:
            saved = 1 - by[label]["seconds"] / base["seconds"]
            delta = by[label]["best cv"] - base["best cv"]
            ratios.append({"comparison": f"{label} vs none", "time saved": f"{saved:.0%}", "best cv diff": delta})
    if "1 worker x 1 thread" in by and "2 workers x 1 thread" in by:
        speedup = by["1 worker x 1 thread"]["seconds"] / by["2 workers x 1 thread"]["seconds"]
        delta = by["2 workers x 1 thread"]["best cv"] - by["1 worker x 1 thread"]["best cv"]
        ratios.append({"comparison": "2 workers vs 1", "time saved": f"{speedup:.2f}x faster", "best cv diff": delta})
    print(f"\n{args.competition}, lightgbm, {args.trials} trials per setting\n")
    print(table(rows))
    if ratios:
        print()
        print(table(ratios))


if __name__ == "__main__":
    main()
