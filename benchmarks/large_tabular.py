"""Large tabular data: the default pipeline on a few hundred thousand rows, on 2 cores.

    python benchmarks/large_tabular.py [--rows 300000] [--test-rows 100000] [--seed 0]

Kaggle's big tabular competitions (hundreds of thousands of rows) must still run here. This
writes a synthetic binary competition in Kaggle's layout (numeric columns with missing
values, a skewed amount, low- and high-cardinality categoricals, a date, free text; the
label depends on all of them, with noise), plays it as a `local` competition with the
default params (`n_splits: auto` then means 3 folds, tuning runs on a subsample, models
that scale badly fit a subsample) and prints: the wall time of `dvc repro` and of each
stage, the peak memory of the largest stage process, the per-model CV roc_auc and the
held-out roc_auc of the submission next to a default LightGBM fitted on the raw columns.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import ENV, default_params, make_repo, table  # noqa: E402

NAME = "large"
SPEC = {"source": "local", "id": "id", "target": "target", "task": "binary", "metric": "roc_auc"}


def synthetic(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    num = rng.normal(size=(n, 6))
    amount = np.exp(rng.normal(3, 1.2, size=n))  # skewed
    city = rng.choice([f"c{i}" for i in range(30)], size=n, p=np.r_[np.full(10, 0.07), np.full(20, 0.015)])
    user = rng.integers(0, 20_000, size=n)  # high cardinality: a key-like column
    user_effect = np.random.default_rng(seed + 1).normal(0, 0.8, size=20_000)[user]
    day = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, size=n), unit="D")
    words = rng.integers(1, 30, size=n)
    city_effect = {f"c{i}": v for i, v in enumerate(np.random.default_rng(seed + 2).normal(0, 0.7, size=30))}
    logit = (
        1.2 * num[:, 0]
        - 0.8 * num[:, 1] * num[:, 2]
        + 0.6 * np.sin(2 * num[:, 3])
        + 0.5 * np.log(amount)
        - 1.5
        + pd.Series(city).map(city_effect).to_numpy()
        + user_effect
        + 0.4 * (day.day_of_week.to_numpy() >= 5)
        + 0.05 * words
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(num, columns=[f"x{i}" for i in range(6)])
    frame.loc[rng.random(n) < 0.1, "x1"] = np.nan
    frame.insert(0, "id", np.arange(n))
    frame["amount"] = amount.round(2)
    frame["city"] = city
    frame["user"] = "u" + user.astype(str)
    frame["day"] = day.strftime("%Y-%m-%d")
    frame["note"] = [" ".join(["w"] * int(k)) for k in words]
    frame["target"] = y
    return frame


def lightgbm_default(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    import lightgbm as lgb

    X, X_test = train.drop(columns=["id", "target"]), test.drop(columns=["id", "target"])
    for c in X.columns:
        if not pd.api.types.is_numeric_dtype(X[c]):
            cats = pd.CategoricalDtype(sorted(X[c].dropna().unique()))
            X[c], X_test[c] = X[c].astype(cats), X_test[c].where(X_test[c].isin(cats.categories)).astype(cats)
    model = lgb.LGBMClassifier(random_state=0, verbose=-1, n_jobs=2).fit(X, train["target"])
    return model.predict_proba(X_test)[:, 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=300_000, help="training rows")
    ap.add_argument("--test-rows", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    full = synthetic(args.rows + args.test_rows, args.seed)
    train, test = full.iloc[: args.rows], full.iloc[args.rows :]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "data"
        folder.mkdir()
        train.to_csv(folder / "train.csv", index=False)
        test.drop(columns="target").to_csv(folder / "test.csv", index=False)
        test[["id"]].assign(target=0.5).to_csv(folder / "sample_submission.csv", index=False)
        params = default_params()
        params["competitions"] = {NAME: {**SPEC, "path": str(folder)}}
        repo = make_repo(Path(tmp) / "repo", params)
        start = time.perf_counter()
        proc = subprocess.run(["dvc", "repro"], cwd=repo, env=ENV, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"dvc repro failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        stages = re.findall(r"Running stage '([^']+)'", proc.stdout)
        metrics = json.loads((repo / "submissions" / NAME / "metrics.json").read_text())
        sub = pd.read_csv(repo / "submissions" / NAME / "submission.csv")
        truth = test["target"].to_numpy()
        rows = [{"model": name, "cv roc_auc": float(score), "held-out roc_auc": "-"} for name, score in
                sorted(metrics.get("models", {}).items())]  # fmt: skip
        rows.append(
            {
                "model": f"ensemble ({metrics.get('method', '?')})",
                "cv roc_auc": float(metrics["cv"]),
                "held-out roc_auc": float(roc_auc_score(truth, sub["target"].to_numpy())),
            }
        )
        t0 = time.perf_counter()
        base = lightgbm_default(train, test)
        rows.append(
            {
                "model": f"lightgbm default, raw columns ({time.perf_counter() - t0:.0f}s)",
                "cv roc_auc": "-",
                "held-out roc_auc": float(roc_auc_score(truth, base)),
            }
        )
        print(table(rows))
        print(
            f"\n{args.rows:,} training rows, {args.test_rows:,} test rows; dvc repro {seconds / 60:.1f} min "
            f"({len(stages)} stages); peak memory of one stage process {peak_mb:,.0f} MB"
        )


if __name__ == "__main__":
    main()
