"""House Prices: the default pipeline on held-out data vs a default LightGBM, per model.

    python benchmarks/house_prices.py [--splits 2] [--test-size 0.3] [--threads 2]

Split 0 is the embedded competition itself (`source: embedded`, Kaggle's 1,460 labelled
rows with a carved hidden test, scored by the offline leaderboard); splits 1..N carve the
same rows with their own seeds (stratified by price decile) and are played as `local`
competitions. Each runs `dvc repro` with the default params. The table lists, per split,
every model's CV RMSLE (out-of-fold, from metrics.json) and held-out RMSLE (its test
predictions), the ensemble's (the submission), and the wall time of `dvc repro`; next to
them `lightgbm default`: `LGBMRegressor()` with default settings on the raw columns (text
as pandas categories), 5-fold CV and held-out, fitted in this process on the same rows.
The summary gives, per split and on average, the ratio ours / baseline of the held-out
(and of the CV) RMSLE: the issue's target is AutoGluon's 0.1209 against a default
LightGBM's 0.136 on its owner's split, a ratio of 0.889. `--threads` sets `train.threads`
(and the baseline's `n_jobs`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import default_params, make_repo, repro, table  # noqa: E402
from pipelines.core.config import parse_params  # noqa: E402
from pipelines.core.metrics import get_metric  # noqa: E402
from pipelines.sources.embedded import (  # noqa: E402
    carve,
    get_embedded,
    score_offline,  # noqa: E402
)

NAME = "house-prices"
SPEC = {"id": "Id", "target": "SalePrice", "task": "regression", "metric": "rmsle"}
RMSLE = get_metric("rmsle")


def lightgbm_default(train: pd.DataFrame, test: pd.DataFrame, threads: int = 1) -> tuple[float, np.ndarray, float]:
    """(5-fold CV RMSLE, test predictions, seconds) of LGBMRegressor() on the raw columns."""
    import lightgbm as lgb

    start = time.perf_counter()
    X, X_test = train.drop(columns=["Id", "SalePrice"]), test.drop(columns=["Id"])
    for c in X.columns:
        if not pd.api.types.is_numeric_dtype(X[c]):
            cats = pd.CategoricalDtype(sorted(X[c].dropna().unique()))
            X[c], X_test[c] = X[c].astype(cats), X_test[c].astype(cats)
    y = train["SalePrice"].to_numpy(np.float64)

    def fit(rows):
        return lgb.LGBMRegressor(random_state=0, verbose=-1, n_jobs=threads).fit(X.iloc[rows], y[rows])

    oof = np.zeros(len(y))
    for fit_rows, val_rows in KFold(5, shuffle=True, random_state=0).split(X):
        oof[val_rows] = fit(fit_rows).predict(X.iloc[val_rows])
    test_pred = fit(np.arange(len(y))).predict(X_test)
    return RMSLE(y, oof, "regression"), test_pred, time.perf_counter() - start


def splits(n: int, test_size: float):
    """(label, train, test, answers) per split; split 0 is the embedded competition's carve."""
    parts = carve(NAME)
    yield "embedded", parts["train.csv"], parts["test.csv"], parts["answers"]
    full = get_embedded(NAME).load()
    deciles = pd.qcut(full["SalePrice"].rank(method="first"), 10, labels=False)
    for seed in range(1, n + 1):
        train, test = train_test_split(full, test_size=test_size, random_state=1000 + seed, stratify=deciles)
        yield f"seed {1000 + seed}", train, test.drop(columns="SalePrice"), test[["Id", "SalePrice"]]


def play(label: str, train, test, workdir: Path, threads: int) -> tuple[Path, float]:
    """Run the default pipeline on one split; returns the repo and the wall time."""
    params = default_params()
    params["train"]["threads"] = threads
    spec = dict(params["competitions"][NAME])
    if label != "embedded":
        folder = workdir / "split"
        folder.mkdir(parents=True)
        train.to_csv(folder / "train.csv", index=False)
        test.to_csv(folder / "test.csv", index=False)
        test[["Id"]].assign(SalePrice=float(train["SalePrice"].mean())).to_csv(
            folder / "sample_submission.csv", index=False
        )
        spec = {"source": "local", "path": str(folder), **SPEC}
    params["competitions"] = {NAME: spec}
    repo = make_repo(workdir / "repo", params)
    return repo, repro(repo)


def rows_for(label: str, repo: Path, seconds: float, answers: pd.DataFrame, baseline) -> list[dict]:
    truth = answers.set_index("Id")["SalePrice"]
    metrics = json.loads((repo / f"submissions/{NAME}/metrics.json").read_text())
    ids = pd.read_csv(repo / f"data/clean/{NAME}/test_ids.csv")["Id"]
    rows = []
    for model, cv in metrics["models"].items():
        folder = repo / ("data/distill" if model.startswith("distill:") else "data/train") / NAME / model.split(":")[-1]
        pred = pd.Series(np.load(folder / "test.npy"), index=ids).loc[truth.index]
        rows.append(
            {
                "split": label,
                "model": model,
                "cv": cv,
                "held-out": RMSLE(truth.to_numpy(), pred.to_numpy(), "regression"),
            }
        )
    sub = pd.read_csv(repo / f"submissions/{NAME}/submission.csv")
    method = json.loads((repo / f"submissions/{NAME}/details.json").read_text())["ensemble"]["method"]
    held_out = RMSLE(truth.to_numpy(), sub.set_index("Id").loc[truth.index, "SalePrice"].to_numpy(), "regression")
    ensemble = {"split": label, "model": f"ENSEMBLE ({method})", "cv": metrics["cv"], "held-out": held_out}
    if label == "embedded":
        spec = parse_params({"competitions": {NAME: default_params()["competitions"][NAME]}}).competitions[NAME]
        public, private = score_offline(sub, NAME, spec)
        ensemble["model"] += f" public {public:.4f} private {private:.4f}"
    rows.append({**ensemble, "seconds": round(seconds, 1)})
    base_cv, base_pred, base_s = baseline
    base = RMSLE(
        truth.to_numpy(), pd.Series(base_pred, index=answers["Id"].to_numpy()).loc[truth.index].to_numpy(), "regression"
    )
    rows.append(
        {
            "split": label,
            "model": "lightgbm default (baseline)",
            "cv": base_cv,
            "held-out": base,
            "seconds": round(base_s, 1),
        }
    )
    return [{"seconds": "", **r} if "seconds" not in r else r for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", type=int, default=2, help="seeded splits besides the embedded one")
    ap.add_argument("--test-size", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=2, help="train.threads for the pipeline, n_jobs for the baseline")
    args = ap.parse_args()
    rows, summary = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, train, test, answers) in enumerate(splits(args.splits, args.test_size)):
            baseline = lightgbm_default(train, test, args.threads)
            repo, seconds = play(label, train, test, Path(tmp) / f"split{i}", args.threads)
            new = rows_for(label, repo, seconds, answers, baseline)
            rows += new
            print(table([{k: r[k] for k in ("split", "model", "cv", "held-out", "seconds")} for r in new]), flush=True)
            ens, base = new[-2], new[-1]
            summary.append({"split": label, "ensemble": ens["held-out"], "lightgbm default": base["held-out"],
                            "ratio": ens["held-out"] / base["held-out"], "ensemble cv": ens["cv"],
                            "baseline cv": base["cv"], "cv ratio": ens["cv"] / base["cv"],
                            "dvc repro s": ens["seconds"]})  # fmt: skip
    print(f"\nAll splits (RMSLE, lower is better; ratio = ours / default LightGBM, target <= {0.1209 / 0.136:.3f}):")
    mean = {k: (float(np.mean([r[k] for r in summary])) if k != "split" else "mean") for k in summary[0]}
    print(table([*summary, mean]))


if __name__ == "__main__":
    main()
