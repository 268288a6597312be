"""Pretrained backbones on text: the default pipeline against a frozen-embedding baseline and
against the from-scratch pipeline, on the same held-out rows.

    python benchmarks/pretrained.py [--tasks sms-spam,airline-sentiment] [--splits 3] [--first-split 0]

Each split carves the labelled rows 70/30 with its own seed (stratified, as
`benchmarks/text_tasks.py` does) and scores three things on the held-out rows:

- `pipeline`: `dvc repro` with the default params (text: tfidf_linear, text_embed on the
  frozen all-MiniLM-L6-v2, lightgbm);
- `frozen+LR`: the same frozen MiniLM embeddings with scikit-learn's `LogisticRegression()`
  at its defaults, fitted once on the training rows (what a Kaggler tries first);
- `scratch`: `dvc repro` with the models the text competitions played before pretrained
  backbones (tfidf_linear, a from-scratch text_bert, lightgbm).

Wall times are printed per column (the baseline's includes embedding the texts).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.text_tasks import TASKS, play, run_splits  # noqa: E402
from pipelines.core.config import TrainParams  # noqa: E402
from pipelines.models.embeddings import TextEmbedder  # noqa: E402

SCRATCH = ["tfidf_linear", "text_bert", "lightgbm"]  # the text defaults before pretrained backbones


def frozen_baseline(train: pd.DataFrame, test: pd.DataFrame, target: str) -> tuple[np.ndarray, float]:
    """Frozen MiniLM sentence embeddings + LogisticRegression(): held-out labels, seconds."""
    start = time.perf_counter()
    embed = TextEmbedder(TrainParams().weights["text"])
    model = LogisticRegression(max_iter=1000).fit(embed.transform(train["text"]), train[target])
    return model.predict(embed.transform(test["text"])), time.perf_counter() - start


def one_split(name: str, full: pd.DataFrame, seed: int, workdir: Path, threads: int) -> dict:
    task = TASKS[name]
    target = task["spec"]["target"]
    train, test = train_test_split(full, test_size=0.3, random_state=seed, stratify=full[target])
    train, test = train.reset_index(drop=True), test.reset_index(drop=True)
    truth = test[target].to_numpy()
    base, base_s = frozen_baseline(train, test, target)
    pred, metrics, seconds = play(name, train, test, task, workdir / "default", threads)
    old, old_metrics, old_s = play(name, train, test, task, workdir / "scratch", threads, models=SCRATCH)
    return {
        "task": name,
        "split": seed,
        "rows": len(train),
        "pipeline": task["score"](truth, pred),
        "frozen+LR": task["score"](truth, base),
        "scratch": task["score"](truth, old),
        "pipeline cv": round(metrics["cv"], 4),
        "models cv": " ".join(f"{m}={v:.4f}" for m, v in metrics["models"].items()),
        "pipeline s": round(seconds),
        "frozen+LR s": round(base_s),
        "scratch s": round(old_s),
    }


def main() -> None:
    rows, args = run_splits(__doc__, one_split)
    for name in args.tasks.split(","):
        mine = [r for r in rows if r["task"] == name]
        wins = sum(r["pipeline"] > max(r["frozen+LR"], r["scratch"]) for r in mine)
        print(f"{name}: the pipeline beats both on {wins} of {len(mine)} splits")


if __name__ == "__main__":
    main()
