"""The time budget holds: `dvc repro` with `budget: B` ends within +10% of B (download and
clean aside) with a valid submission, at every size.

    python benchmarks/budget.py [--tasks titanic,digits-full,large] [--budgets 60,300,600]
                                [--results FILE.jsonl]

Each task is played in a throw-away repo with the default params and its budget: the
`download` and `clean` stages first (not timed: the budget leaves them out), then the rest
of `dvc repro` (zoo, tune, train, distill, ensemble), timed. One row per task: the budget,
the seconds the timed part took and their ratio, whether the submission has the sample's
rows and ids, the held-out score where the hidden labels are known, the ensemble's members,
and what the budget left out or cut (from `details.json`).

- `titanic`: the embedded Titanic (891 rows), budget 60 s; no hidden labels.
- `digits-full`: Digit Recognizer at Kaggle's size (42,000 / 28,000 of all 70,000 MNIST
  digits), budget 300 s; hidden accuracy.
- `large`: `large_tabular.py`'s synthetic 300,000-row binary competition (100,000 test
  rows), budget 600 s; held-out roc_auc.
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
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import digits, large_tabular  # noqa: E402
from benchmarks.common import default_params, digit_frames, make_repo, repro, table  # noqa: E402

BUDGETS = {"titanic": 60, "digits-full": 300, "large": 600}


def titanic(_tmp: Path) -> tuple[str, dict, None]:
    return "titanic", default_params()["competitions"]["titanic"], None


def digits_full(_tmp: Path):
    """The embedded digits at full size: the spec and a scorer on the 28,000 hidden labels."""
    truth = digit_frames(None, "full")[2]
    return digits.NAME, {**digits.SPEC, "size": "full"}, lambda sub: float((sub["Label"].to_numpy() == truth).mean())


def large(tmp: Path):
    """300,000 synthetic rows in Kaggle's layout: the spec and a held-out roc_auc scorer."""
    full = large_tabular.synthetic(400_000, 0)
    train, test = full.iloc[:300_000], full.iloc[300_000:]
    folder = tmp / "large"
    folder.mkdir()
    train.to_csv(folder / "train.csv", index=False)
    test.drop(columns="target").to_csv(folder / "test.csv", index=False)
    test[["id"]].assign(target=0.5).to_csv(folder / "sample_submission.csv", index=False)
    truth = test["target"].to_numpy()
    spec = {**large_tabular.SPEC, "path": str(folder)}
    return large_tabular.NAME, spec, lambda sub: float(roc_auc_score(truth, sub["target"].to_numpy()))


TASKS = {"titanic": titanic, "digits-full": digits_full, "large": large}


def play(task: str, budget: float, tmp: Path) -> dict:
    name, spec, score = TASKS[task](tmp)
    params = default_params()
    params["competitions"] = {name: spec}
    params["budget"] = budget
    repo = make_repo(tmp / f"repo-{task}", params)
    untimed = repro(repo, f"download@{name}", f"clean@{name}")
    seconds = repro(repo)
    sub = pd.read_csv(repo / f"submissions/{name}/submission.csv")
    sample = pd.read_csv(repo / f"data/raw/{name}/sample_submission.csv")
    details = json.loads((repo / f"submissions/{name}/details.json").read_text())
    id_col = spec["id"]
    valid = len(sub) == len(sample) and np.array_equal(sub[id_col], sample[id_col]) and sub.notna().all().all()
    cuts = details.get("budget_cuts", {})
    return {
        "task": task,
        "budget s": budget,
        "seconds": round(seconds),
        "ratio": round(seconds / budget, 3),
        "within +10%": seconds <= 1.1 * budget,
        "valid submission": bool(valid),
        "held-out": round(score(sub), 4) if score is not None else "-",
        "members": " ".join(details["ensemble"]["members"]),
        "left out": " ".join(details.get("left_out", {})) or "-",
        "cut": "; ".join(f"{m}: {len(c)} fits, e.g. {next(iter(c.values()))}" for m, c in cuts.items()) or "-",
        "download+clean s": round(untimed),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--budgets", default=None, help="comma-separated seconds, one per task (default: 60,300,600)")
    ap.add_argument("--results", type=Path, default=None, help="append each row to this JSON lines file")
    args = ap.parse_args()
    tasks = args.tasks.split(",")
    budgets = [float(b) for b in args.budgets.split(",")] if args.budgets else [BUDGETS[t] for t in tasks]
    rows = []
    for task, budget in zip(tasks, budgets, strict=True):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            row = play(task, budget, Path(tmp))
            print(
                f"{task}: {row['seconds']} s of {budget:.0f} ({time.perf_counter() - start:.0f} s in all)", flush=True
            )
        rows.append(row)
        if args.results is not None:
            with args.results.open("a") as fh:
                fh.write(json.dumps({**row, "date": time.strftime("%Y-%m-%d")}) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
