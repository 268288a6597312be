"""How far to trust CV: per held-out split, the ensemble's CV, its fold spread and the score on
rows it never saw.

    python benchmarks/trust_cv.py [--splits 4] [--first-split 0] [--tasks titanic,house-prices] [--threads 2]

Each split carves the labelled rows of the embedded Titanic (accuracy) and House Prices
(rmsle) 70/30 with its own seed, plays the 70% as a `local` competition with the default
params through `dvc repro`, and scores the submission on the 30%. A split counts as
"within" when that hidden score lies in CV ± 2 x `cv_std` (the fold standard deviation in
metrics.json); the last lines give the share of splits within, per task. A fold holds a
fifth of the training rows and the hidden part 30% of all rows, so the hidden score is less
noisy than one fold: most splits should be within, and a task where they are not is one
whose CV should not be trusted to the second decimal.

`--shift` carves a test set that leans one way (Titanic: a first-class passenger goes to
test with probability 0.6, any other with 0.2; House Prices: a house of OverallQual >= 7
likewise), as when Kaggle's test rows come from elsewhere. `--adversarial` plays each split
twice, with `folds.adversarial` off and on, and prints both CVs beside the hidden score:
how far each CV lies from it says whether validating on the test-like rows pays.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import table  # noqa: E402
from benchmarks.tabular_tasks import play  # noqa: E402
from pipelines.core.metrics import get_metric  # noqa: E402
from pipelines.sources.embedded import get_embedded  # noqa: E402

TASKS = {
    "titanic": {"id": "PassengerId", "target": "Survived", "task": "binary", "metric": "accuracy"},
    "house-prices": {"id": "Id", "target": "SalePrice", "task": "regression", "metric": "rmsle"},
}


# --shift: the rows that go to test more often (probability 0.6 against 0.2)
LEANS = {"titanic": lambda f: f["Pclass"] == 1, "house-prices": lambda f: f["OverallQual"] >= 7}


def carve(name: str, seed: int, shift: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    spec, full = TASKS[name], get_embedded(name).load()
    if shift:
        to_test = np.random.default_rng(seed).random(len(full)) < np.where(LEANS[name](full), 0.6, 0.2)
        return full[~to_test].reset_index(drop=True), full[to_test].reset_index(drop=True)
    strata = full[spec["target"]] if spec["task"] != "regression" else pd.qcut(full[spec["target"]], 10, labels=False)
    train, test = train_test_split(full, test_size=0.3, random_state=seed, stratify=strata)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def one_split(name: str, seed: int, workdir: Path, threads: int, shift: bool = False) -> dict:
    spec = TASKS[name]
    train, test = carve(name, seed, shift)
    pred, metrics, seconds = play(name, train, test, spec, workdir, threads)
    metric = get_metric(spec["metric"])
    truth = test[spec["target"]].to_numpy()
    hidden = float(metric(truth, pred.astype(np.float64), spec["task"]))
    cv, std = float(metrics["cv"]), float(metrics["cv_std"])
    return {
        "task": name,
        "split": seed,
        "metric": spec["metric"],
        "cv": cv,
        "cv_std": std,
        "hidden": hidden,
        "(hidden - cv) / std": round((hidden - cv) / std, 2) if std > 0 else float("nan"),
        "within 2 std": abs(hidden - cv) <= 2 * std,
        "seconds": round(seconds),
    }


def paired_split(name: str, seed: int, workdir: Path, threads: int, shift: bool) -> dict:
    """One split played with `folds.adversarial` off and on: both CVs and hidden scores."""
    spec, metric = TASKS[name], get_metric(TASKS[name]["metric"])
    train, test = carve(name, seed, shift)
    truth, row = test[spec["target"]].to_numpy(), {"task": name, "split": seed}
    for tag, folds in (("off", {}), ("adversarial", {"adversarial": True})):
        pred, metrics, seconds = play(name, train, test, spec, workdir / tag, threads, folds=folds)
        hidden = float(metric(truth, pred.astype(np.float64), spec["task"]))
        row.update({f"cv {tag}": float(metrics["cv"]), f"hidden {tag}": hidden})
        row[f"|hidden - cv| {tag}"] = round(abs(hidden - float(metrics["cv"])), 4)
        row[f"s {tag}"] = round(seconds)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", type=int, default=4)
    ap.add_argument("--tasks", default="titanic,house-prices")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--first-split", type=int, default=0, help="split seeds are 4000 + first-split + i")
    ap.add_argument("--shift", action="store_true", help="test rows lean one way (see the module doc)")
    ap.add_argument("--adversarial", action="store_true", help="each split with folds.adversarial off and on")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.tasks.split(","):
            for i in range(args.first_split, args.first_split + args.splits):
                play_one = paired_split if args.adversarial else one_split
                rows.append(play_one(name, 4000 + i, Path(tmp) / f"{name}-{i}", args.threads, args.shift))
                print(table(rows[-1:]), flush=True)
    print()
    print(table(rows))
    if args.adversarial:
        for name in args.tasks.split(","):
            mine = [r for r in rows if r["task"] == name]
            gaps = {tag: np.mean([r[f"|hidden - cv| {tag}"] for r in mine]) for tag in ("off", "adversarial")}
            print(f"{name}: mean |hidden - CV| {gaps['off']:.4f} off, {gaps['adversarial']:.4f} adversarial")
        return
    for name in args.tasks.split(","):
        mine = [r for r in rows if r["task"] == name]
        within = sum(r["within 2 std"] for r in mine)
        print(f"{name}: hidden score within CV ± 2 std on {within} of {len(mine)} splits")


if __name__ == "__main__":
    main()
