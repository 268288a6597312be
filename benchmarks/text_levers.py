"""Text levers for `text_bert`, paired on the same folds and held-out rows, in one process.

    flock /tmp/kp-cpu.lock python benchmarks/text_levers.py [--task sms-spam] [--split 0]
        [--folds 2] [--variants mask0,mask15] [--store /tmp/text-levers]

The split is `benchmarks/text_tasks.py`'s (seed 3000 + split, 70/30, stratified), played as
a `local` competition: `download` and `clean` run once (CLI calls in this process), then
each variant of `text_bert` is fitted on the first `--folds` of clean's folds (the `train`
stage's fold job: same seeds, same rows) and scored on those folds' validation rows (CV)
and, as the mean of its fold models, on the held-out 30% (the competition's metric: f1 for
sms-spam, accuracy for airline-sentiment). A variant is a set of `text_bert` arguments
(`VARIANTS`); `mask15` is text augmentation: 15% of the training tokens masked afresh in
every batch (`train.params: {text_bert: {token_mask: 0.15}}`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import default_params, download_and_clean, table, write_local  # noqa: E402
from benchmarks.text_tasks import TASKS  # noqa: E402
from pipelines.core.config import parse_params  # noqa: E402
from pipelines.outputs.cleaned import CleanData  # noqa: E402
from pipelines.stages.common import model_context  # noqa: E402
from pipelines.training.cv import _FoldJob  # noqa: E402

VARIANTS = {
    "mask0": {},
    "mask10": {"token_mask": 0.10},
    "mask15": {"token_mask": 0.15},
    "mask25": {"token_mask": 0.25},
}


def prepare(root: Path, name: str, split: int) -> tuple[CleanData, dict, np.ndarray]:
    """The split, downloaded and cleaned: (clean data, params, held-out truth in test_ids order)."""
    task = TASKS[name]
    spec = task["spec"]
    full = task["load"]()
    train, test = train_test_split(full, test_size=0.3, random_state=3000 + split, stratify=full[spec["target"]])
    data = root / "data"
    write_local(data, train, test, spec["id"], spec["target"], encoding=task["encoding"])
    params = default_params()
    params["competitions"] = {name: {"source": "local", "path": str(data), **spec}}
    clean = download_and_clean(root, name, params)
    clean_data = CleanData(clean)
    classes = clean_data.meta["classes"]
    labels = test.set_index(spec["id"]).loc[clean_data.test_ids, spec["target"]]
    truth = np.array([classes.index(v) if classes else v for v in labels])
    return clean_data, params, truth


def measure(data: CleanData, params: dict, truth: np.ndarray, label: str, n_folds: int) -> dict:
    ctx = model_context(data, parse_params(params), progress=False)
    job = _FoldJob("text_bert", VARIANTS[label], data.X, data.y, data.X_test, data.folds, ctx, None, None)
    start = time.perf_counter()
    val_scores, tests = [], []
    for k in range(n_folds):
        _, preds = job.run(k)
        va = data.folds == k
        val_scores.append(ctx.metric(data.y[va], preds.val, ctx.task))
        tests.append(preds.test)
    held = ctx.metric(truth, np.mean(tests, axis=0), ctx.task)
    folds = ", ".join(f"{s:.4f}" for s in val_scores)
    return {"variant": label, "cv": float(np.mean(val_scores)), "folds": folds, "held-out": held,
            "seconds": round(time.perf_counter() - start)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="sms-spam", choices=list(TASKS))
    ap.add_argument("--split", type=int, default=0)
    ap.add_argument("--folds", type=int, default=2, help="the first K of clean's folds")
    ap.add_argument("--variants", default="mask0,mask15", help="comma-separated: " + ", ".join(VARIANTS))
    ap.add_argument("--store", type=Path, default=Path("/tmp/text-levers"))
    args = ap.parse_args()
    root = args.store / f"{args.task}-split{args.split}"
    data, params, truth = prepare(root, args.task, args.split)
    rows = []
    for label in args.variants.split(","):
        rows.append(measure(data, params, truth, label, args.folds))
        print(table(rows[-1:]), flush=True)
    print(f"\n{args.task}, split {args.split}, text_bert on {args.folds} folds:\n" + table(rows))


if __name__ == "__main__":
    main()
