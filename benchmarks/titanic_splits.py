"""Titanic on held-out splits: the default pipeline as a `local` competition vs baselines.

    python benchmarks/titanic_splits.py [--splits 5] [--first-split 0] [--test-size 0.3] [--keep DIR]

Each split carves Kaggle's 891 labelled rows into train/test with its own seed (not the
embedded competition's), plays it with the default params through `dvc repro`, and scores
the submission on the held-out labels, next to two baselines fitted in this process on
the same rows: "women survive" and LightGBM with default settings on the raw columns.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import default_params, kept_or_temporary, make_repo, repro, table  # noqa: E402
from pipelines.sources.embedded import get_embedded  # noqa: E402

SPEC = {"source": "local", "id": "PassengerId", "target": "Survived", "task": "binary", "metric": "accuracy"}


def lightgbm_raw(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    import lightgbm as lgb

    cols = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]
    X, X_test = train[cols].copy(), test[cols].copy()
    for c in ("Sex", "Embarked"):
        cats = pd.CategoricalDtype(sorted(X[c].dropna().unique()))
        X[c], X_test[c] = X[c].astype(cats), X_test[c].astype(cats)
    model = lgb.LGBMClassifier(random_state=0, verbose=-1, n_jobs=2).fit(X, train["Survived"])
    return model.predict(X_test)


def carve(full: pd.DataFrame, seed: int, test_size: float = 0.3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) of split `seed`: the labelled rows carved with random_state 1000 + seed."""
    return train_test_split(full, test_size=test_size, random_state=1000 + seed, stratify=full["Survived"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", type=int, default=5)
    ap.add_argument("--test-size", type=float, default=0.3)
    ap.add_argument("--first-split", type=int, default=0, help="split seeds are 1000 + first-split + i")
    ap.add_argument("--keep", type=Path, default=None, help="play in this folder and keep it (default: temporary)")
    args = ap.parse_args()
    full = get_embedded("titanic").load()
    rows = []
    with kept_or_temporary(args.keep) as tmp:
        for seed in range(args.first_split, args.first_split + args.splits):
            train, test = carve(full, seed, args.test_size)
            folder = Path(tmp) / f"split{seed}"
            folder.mkdir(exist_ok=True)
            train.to_csv(folder / "train.csv", index=False)
            test.drop(columns="Survived").to_csv(folder / "test.csv", index=False)
            test[["PassengerId"]].assign(Survived=0).to_csv(folder / "sample_submission.csv", index=False)
            params = default_params()
            params["competitions"] = {"split": {**SPEC, "path": str(folder)}}
            repo = make_repo(Path(tmp) / f"repo{seed}", params)
            seconds = repro(repo)
            sub = pd.read_csv(repo / "submissions/split/submission.csv").set_index("PassengerId")
            truth = test.set_index("PassengerId")["Survived"]
            cv = json.loads((repo / "submissions/split/metrics.json").read_text())["cv"]
            details = json.loads((repo / "submissions/split/details.json").read_text())
            weak = list(details["ensemble"].get("not_in_mean", {}))
            rows.append(
                {
                    "split": seed,
                    "pipeline": float((sub.loc[truth.index, "Survived"] == truth).mean()),
                    "pipeline cv": float(cv),
                    "women survive": float(((test["Sex"] == "female").astype(int) == test["Survived"]).mean()),
                    "lightgbm raw": float((lightgbm_raw(train, test) == test["Survived"].to_numpy()).mean()),
                    "seconds": round(seconds, 1),
                    "blend": f"{details['ensemble']['method']} of {len(details['ensemble']['members'])}",
                    "not in mean": " ".join(weak) or "-",
                }
            )
            print(table(rows[-1:]), flush=True)
    mean = {k: (float(np.mean([r[k] for r in rows])) if isinstance(v, float) else "") for k, v in rows[0].items()}
    mean["split"] = "mean"
    print(table([*rows, mean]))


if __name__ == "__main__":
    main()
