"""AutoGluon on `tabular_tasks.py`'s held-out splits, in a venv of its own, for as long as the pipeline took.

    python benchmarks/autogluon.py (--time-limit SECONDS | --match PIPELINE.jsonl) [--tasks adult-auc]
        [--splits 3] [--first-split 0] [--presets medium_quality] [--threads 2]
        [--ag-python /work/ag-venv/bin/python] [--results benchmarks/results/autogluon.jsonl]
        [--rows N] [--keep DIR]

AutoGluon's venv, once (about 2 minutes; torch comes from the local CPU wheel):
`python3 -m venv /work/ag-venv && /work/ag-venv/bin/pip install "autogluon.tabular[all]==1.6.3"`.

What is compared: AutoGluon's `TabularPredictor` with a preset (default `medium_quality`: its
`default` model set, LightGBM x3, CatBoost, XGBoost, RandomForest, ExtraTrees, fastai and torch
MLPs, then a weighted ensemble; no bagging, stacking or refit on the validation rows it holds
out; TabM and the other foundation models are only in the zeroshot presets) against the default
pipeline's held-out scores from `tabular_tasks.py --results`. Each split is
`tabular_tasks.carve(name, seed)`, the same rows as the pipeline's split `seed`; the train and
test rows go to CSV (the id column dropped) and a small runner, written beside them, fits and
predicts in AutoGluon's own interpreter (`--ag-python`: a venv with `autogluon.tabular[all]`,
kept apart from the project's, whose pins it does not share). The held-out predictions are
scored here with the task's own score function: P(positive class, the last in sorted order) for
roc_auc, labels for the label metrics (qwk, accuracy...), values otherwise; for rmsle AutoGluon
fits root_mean_squared_error on log1p(target) and its predictions are expm1'd (clipped at 0).

The time limit is AutoGluon's `time_limit` for `fit()`: `--time-limit` for every split, or with
`--match` that split's `seconds` in the pipeline's results file (its whole `dvc repro`: the
pipeline's wall time). AutoGluon gets `num_cpus=--threads` and no GPU, OMP_NUM_THREADS the
same and OMP_WAIT_POLICY=PASSIVE. `seconds` is the wall time of the whole AutoGluon process
(import, reading the CSVs, fit, predict); `fit seconds` the fit alone (AutoGluon may overrun
its limit by a few seconds: the model fitting when time runs out finishes). `base fitted` is
how many of the preset's base models were fitted before the time ran out. One row per split,
also appended to `--results` with AutoGluon's leaderboard, failures and package versions.
`--rows N` samples N train and N test rows of each split (smoke tests); `--keep DIR` keeps
the CSVs, the models and AutoGluon's log there.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import table  # noqa: E402
from benchmarks.tabular_tasks import TASKS, carve, higher_is_better  # noqa: E402

AG_PYTHON = "/work/ag-venv/bin/python"
# the project's metric names -> AutoGluon's (rmsle is root_mean_squared_error on log1p(target))
AG_METRICS = {
    "roc_auc": "roc_auc",
    "logloss": "log_loss",
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced_accuracy",
    "f1": "f1",
    "f1_macro": "f1_macro",
    "mcc": "mcc",
    "qwk": "quadratic_kappa",
    "rmse": "root_mean_squared_error",
    "rmsle": "root_mean_squared_error",
    "mae": "mean_absolute_error",
    "r2": "r2",
}
# AutoGluon's log lines for a model it did not fit (out of time, memory or a fit constraint)
SKIPPED = re.compile(r"Skipping (\w+) (?:due|because)|Skipping (\w+)\.$|train (\w+)\.\.\. Skipping", re.MULTILINE)
PLANNED = re.compile(r"^Fitting (\d+) L\d models", re.MULTILINE)  # the models a level would fit, time allowing
PROBABILITIES = {"roc_auc", "logloss"}  # the metrics scored on probabilities, not labels
PACKAGES = ("autogluon.tabular", "torch", "lightgbm", "catboost", "xgboost-cpu", "xgboost", "fastai", "pytabkit")

# Runs in AutoGluon's interpreter with the split's folder as its only argument: imports only
# pandas, numpy and autogluon (never the project), writes out.json beside the CSVs.
RUNNER = r"""
import json, sys, time
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from autogluon.tabular import TabularPredictor

here = Path(sys.argv[1])
cfg = json.loads((here / "config.json").read_text())
train, test = pd.read_csv(here / "train.csv"), pd.read_csv(here / "test.csv")
label = cfg["target"]
if cfg["log1p"]:
    train[label] = np.log1p(train[label])
predictor = TabularPredictor(
    label=label, eval_metric=cfg["eval_metric"], problem_type=cfg["problem_type"], path=str(here / "ag")
)
start = time.perf_counter()
predictor.fit(train, presets=cfg["presets"], time_limit=cfg["time_limit"], num_cpus=cfg["threads"], num_gpus=0)
fit_seconds = time.perf_counter() - start
if cfg["proba"]:
    proba = predictor.predict_proba(test, as_multiclass=True)
    if cfg["problem_type"] == "binary":
        cols = {str(c): c for c in proba.columns}
        pred = proba[cols[str(cfg["positive"])]].to_numpy().tolist()
    else:
        pred = proba[sorted(proba.columns)].to_numpy().tolist()
else:
    pred = predictor.predict(test)
    pred = (np.clip(np.expm1(pred.to_numpy()), 0, None) if cfg["log1p"] else pred).tolist()
board = predictor.leaderboard(silent=True)
failures = predictor.model_failures()
versions = {}
for name in cfg["packages"]:
    try:
        versions[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        pass
out = {
    "pred": pred,
    "fit_seconds": fit_seconds,
    "best": predictor.model_best,
    "leaderboard": [
        {k: r[k] for k in ("model", "score_val", "fit_time", "fit_time_marginal", "pred_time_val")}
        for r in board.to_dict("records")
    ],
    "failures": {r["model"]: f'{r["exc_type"]}: {r["exc_str"]}'[:300] for r in failures.to_dict("records")},
    "versions": versions,
}
(here / "out.json").write_text(json.dumps(out, default=float))
"""


def run_autogluon(train, test, spec: dict, workdir: Path, args, time_limit: float) -> tuple[dict, float]:
    """Fit and predict with AutoGluon in its own interpreter: (the runner's out.json, wall seconds)."""
    workdir.mkdir(parents=True, exist_ok=True)
    target, metric = spec["target"], spec["metric"]
    train.drop(columns=spec["id"]).to_csv(workdir / "train.csv", index=False)
    test.drop(columns=[spec["id"], target]).to_csv(workdir / "test.csv", index=False)
    positive = sorted(train[target].unique())[-1]
    config = {
        "target": target,
        "problem_type": spec["task"],
        "eval_metric": AG_METRICS[metric],
        "log1p": metric == "rmsle",
        "proba": metric in PROBABILITIES,
        "positive": positive.item() if hasattr(positive, "item") else positive,
        "presets": args.presets,
        "time_limit": time_limit,
        "threads": args.threads,
        "packages": PACKAGES,
    }
    (workdir / "config.json").write_text(json.dumps(config))
    (workdir / "runner.py").write_text(RUNNER)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS=str(args.threads), OMP_WAIT_POLICY="PASSIVE")
    env["PATH"] = f"{Path(args.ag_python).parent}{os.pathsep}{env.get('PATH', '')}"
    start = time.perf_counter()
    with (workdir / "autogluon.log").open("w") as log:
        proc = subprocess.run(
            [args.ag_python, str(workdir / "runner.py"), str(workdir)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    seconds = time.perf_counter() - start
    if proc.returncode != 0 or not (workdir / "out.json").is_file():
        tail = (workdir / "autogluon.log").read_text(errors="replace")[-4000:]
        raise RuntimeError(f"the AutoGluon runner failed (exit {proc.returncode}):\n{tail}")
    out = json.loads((workdir / "out.json").read_text())
    log = (workdir / "autogluon.log").read_text(errors="replace")
    out["skipped"] = sorted({m for ms in SKIPPED.findall(log) for m in ms if m})
    out["planned"] = sum(int(n) for n in PLANNED.findall(log))
    return out, seconds


def pipeline_rows(path: Path) -> dict[tuple[str, int], dict]:
    """The pipeline's rows of a `tabular_tasks.py --results` file by (task, split); the last wins."""
    rows = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            rows[row["task"], int(row["split"])] = row
    return rows


def one_split(name: str, seed: int, args, workdir: Path, matched: dict | None) -> tuple[dict, dict]:
    """(the table's row, the results file's record) of AutoGluon on split `seed` of task `name`."""
    train, test, spec = carve(name, seed, args.test_size)
    if args.rows:  # smoke tests: a sample of the split's rows
        train = train.sample(n=min(args.rows, len(train)), random_state=seed)
        test = test.sample(n=min(args.rows, len(test)), random_state=seed)
    time_limit = float(matched["seconds"]) if matched else float(args.time_limit)
    out, seconds = run_autogluon(train, test, spec, workdir, args, time_limit)
    truth = test[spec["target"]].to_numpy()
    score = TASKS[name]["score"](truth, np.asarray(out["pred"]))
    models = [r["model"] for r in out["leaderboard"]]
    row = {"task": name, "split": seed, "metric": spec["metric"], "autogluon": float(score)}
    if matched and "ours" in matched:
        row["pipeline"] = float(matched["ours"])
    row |= {
        "presets": args.presets,
        "time limit": round(time_limit),
        "seconds": round(seconds),
        "fit seconds": round(out["fit_seconds"]),
        "best model": out["best"],
        "n models": len(models),
        "base fitted": f"{sum(not m.startswith('WeightedEnsemble') for m in models)}/{out['planned']}",
    }
    record = {
        **row,
        "time limit": time_limit,
        "seconds": seconds,
        "fit seconds": out["fit_seconds"],
        "higher is better": higher_is_better(name),
        "leaderboard": out["leaderboard"],
        "failures": out["failures"],
        "skipped": out["skipped"],
        "versions": out["versions"],
        "train rows": len(train),
        "test rows": len(test),
        "threads": args.threads,
        "date": time.strftime("%Y-%m-%d"),
    }
    return row, record


def report(row: dict, record: dict, results: Path | None) -> None:
    """Print a split's row and AutoGluon's leaderboard; append the record to `results`."""
    print(table([row]), flush=True)
    board = [f"{r['model']} {r['score_val']:.4f} {r['fit_time_marginal']:.0f}" for r in record["leaderboard"]]
    print("  leaderboard (score_val, own fit s):", ", ".join(board), flush=True)
    if record["failures"] or record["skipped"]:
        print("  failed:", record["failures"], "skipped:", record["skipped"], flush=True)
    if results is not None:
        results.parent.mkdir(parents=True, exist_ok=True)
        with results.open("a") as fh:
            fh.write(json.dumps(record) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    limit = ap.add_mutually_exclusive_group(required=True)
    limit.add_argument("--time-limit", type=float, help="AutoGluon's fit time_limit in seconds, every split")
    limit.add_argument("--match", type=Path, help="a `tabular_tasks.py --results` file: each split's `seconds`")
    ap.add_argument("--tasks", default="adult-auc", help="comma-separated: " + ", ".join(TASKS))
    ap.add_argument("--splits", type=int, default=3)
    ap.add_argument("--first-split", type=int, default=0, help="split seeds are first-split + i (as tabular_tasks)")
    ap.add_argument("--test-size", type=float, default=0.3)
    ap.add_argument("--presets", default="medium_quality")
    ap.add_argument("--threads", type=int, default=2, help="AutoGluon's num_cpus and OMP_NUM_THREADS")
    ap.add_argument("--ag-python", default=AG_PYTHON, help="the interpreter of a venv with autogluon.tabular[all]")
    ap.add_argument("--rows", type=int, default=None, help="smoke tests: sample this many train and test rows")
    ap.add_argument("--keep", type=Path, default=None, help="work here (CSVs, models, AutoGluon's log), not a temp dir")
    ap.add_argument("--results", type=Path, default=None, help="append each split's row to this JSON lines file")
    args = ap.parse_args()
    splits = [(n, s) for n in args.tasks.split(",") for s in range(args.first_split, args.first_split + args.splits)]
    matched = pipeline_rows(args.match) if args.match else {}
    if args.match and (missing := [f"{n} split {s}" for n, s in splits if (n, s) not in matched]):
        raise SystemExit(f"{args.match} has no row for " + ", ".join(missing))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, seed in splits:
            workdir = (args.keep or Path(tmp)) / f"{name}-{seed}"
            row, record = one_split(name, seed, args, workdir, matched.get((name, seed)))
            rows.append(row)
            report(row, record, args.results)
    summary = []
    for name in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == name]
        summary += mine
        means = {k: float(np.mean([r[k] for r in mine])) for k in ("autogluon", "pipeline") if k in mine[0]}
        blank = {k: "" for k in mine[0]}
        summary.append({**blank, "task": name, "split": "mean", "metric": mine[0]["metric"], **means})
    print("\nAll splits (held-out score):\n" + table(summary))


if __name__ == "__main__":
    main()
