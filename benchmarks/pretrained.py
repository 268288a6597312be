"""Pretrained backbones: the default pipeline against a frozen-embedding baseline and against
the from-scratch pipeline, on the same held-out rows.

    python benchmarks/pretrained.py [--tasks sms-spam,airline-sentiment,solar-cells] [--splits 3]
                                    [--first-split 0] [--columns pipeline,frozen,scratch]
                                    [--results FILE.jsonl] [--report FILE.jsonl] [--keep DIR]

Text splits carve the labelled rows 70/30 with seed 3000 + K (stratified, as
`benchmarks/text_tasks.py` does); solar-cell splits carve the 2,624 elpv cells 75/25 with the
same seeds (`benchmarks/image_files.py`, 32x32 images, roc_auc on `defective`). Three columns
are scored on the held-out rows, each with its wall time:

- `pipeline`: `dvc repro` with the default params (text: tfidf_linear, text_finetune and
  text_embed on all-MiniLM-L6-v2, lightgbm; images: resnet, image_finetune and image_embed on
  EfficientNet-Lite0);
- `frozen`: the same frozen backbone's embeddings (MiniLM sentence embeddings; EfficientNet-Lite0
  ImageNet features at 224 px) with scikit-learn's `LogisticRegression()` at its defaults
  (after standardising), fitted once on the training rows: what a Kaggler tries first;
- `scratch`: `dvc repro` with the models these competitions played before pretrained
  backbones (text: tfidf_linear, a from-scratch text_bert, lightgbm; images: resnet).

`--columns` runs some of them; `--results` appends each (task, split, column) row to a JSON
lines file, and `--report` prints the side-by-side table of such a file (the latest row of
each), so the columns of one split can be run apart (e.g. while the code of one changes).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import image_files  # noqa: E402
from benchmarks.common import kept_or_temporary, table  # noqa: E402
from benchmarks.text_tasks import TASKS, play  # noqa: E402
from pipelines.core.config import TrainParams  # noqa: E402

SCRATCH = {"text": ["tfidf_linear", "text_bert", "lightgbm"], "image": ["resnet"]}  # before pretrained backbones
COLUMNS = ("pipeline", "frozen", "scratch")
SOLAR = "solar-cells"


def cold() -> None:
    """Forget the embeddings and encoders this process holds, so each split pays for its own."""
    from pipelines.models import embeddings

    embeddings._SEEN.clear()
    embeddings._ENCODERS.clear()


def frozen_text(train: pd.DataFrame, test: pd.DataFrame, target: str) -> tuple[np.ndarray, float]:
    """Frozen MiniLM sentence embeddings + LogisticRegression(): held-out labels, seconds."""
    from pipelines.models.embeddings import TextEmbedder

    cold()
    start = time.perf_counter()
    embed = TextEmbedder(TrainParams().weights["text"])
    model = LogisticRegression(max_iter=1000).fit(embed.transform(train["text"]), train[target])
    return model.predict(embed.transform(test["text"])), time.perf_counter() - start


def frozen_image(x: np.ndarray, y: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, float]:
    """Frozen EfficientNet-Lite0 ImageNet features (224 px) + LogisticRegression(): P(1), seconds."""
    from pipelines.models.embeddings import ImageEmbedder

    cold()
    start = time.perf_counter()
    embed = ImageEmbedder(TrainParams().weights["image"], "tf_efficientnet_lite0", 224)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(embed.transform(x), y)
    return model.predict_proba(embed.transform(x_test))[:, 1], time.perf_counter() - start


def carve_text(name: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) of text task `name`'s split `seed` (3000 + K): 70/30, stratified."""
    target = TASKS[name]["spec"]["target"]
    full = TASKS[name]["load"]()
    train, test = train_test_split(full, test_size=0.3, random_state=seed, stratify=full[target])
    return train.reset_index(drop=True), test.reset_index(drop=True)


def text_column(name: str, column: str, seed: int, workdir: Path, threads: int) -> dict:
    task = TASKS[name]
    target = task["spec"]["target"]
    train, test = carve_text(name, seed)
    truth = test[target].to_numpy()
    if column == "frozen":
        pred, seconds = frozen_text(train, test, target)
        return {"score": task["score"](truth, pred), "seconds": round(seconds), "rows": len(train)}
    models = SCRATCH["text"] if column == "scratch" else None
    pred, metrics, seconds = play(name, train, test, task, workdir, threads, models=models)
    row = {"score": task["score"](truth, pred), "seconds": round(seconds), "rows": len(train), **_cv(metrics)}
    return {**row, **_model_seconds(workdir / "repo", name)}


def solar_column(column: str, seed: int, workdir: Path, threads: int) -> dict:
    folder = workdir / "data"
    train, test = image_files.write_split(folder, seed - 3000)
    truth = test["defective"].to_numpy()
    if column == "frozen":
        x, x_test = (image_files.pixels(folder, p, f["id"], 32) for p, f in (("train", train), ("test", test)))
        pred, seconds = frozen_image(x, train["defective"].to_numpy(), x_test)
        return {"score": float(roc_auc_score(truth, pred)), "seconds": round(seconds), "rows": len(train)}
    args = SimpleNamespace(
        size=32, threads=threads, models=",".join(SCRATCH["image"]) if column == "scratch" else None,
        epochs=None, budget=None, params=None,
    )  # fmt: skip
    pred, metrics, seconds = image_files.play(folder, workdir, args)
    row = {"score": float(roc_auc_score(truth, pred)), "seconds": round(seconds), "rows": len(train), **_cv(metrics)}
    return {**row, **_model_seconds(workdir / "repo", image_files.NAME)}


def _model_seconds(repo: Path, name: str) -> dict:
    """Each model's training seconds, from the run's `data/logs/<name>/train.json`."""
    log = repo / "data" / "logs" / name / "train.json"
    if not log.is_file():
        return {}
    models = json.loads(log.read_text())["models"]
    return {"train s": " ".join(f"{m}={t['seconds']:.0f}" for m, t in models.items())}


def _cv(metrics: dict) -> dict:
    return {"cv": round(metrics["cv"], 4), "models": " ".join(f"{m}={v:.4f}" for m, v in metrics["models"].items())}


def report(path: Path) -> list[dict]:
    """One row per (task, split): each column's latest score and seconds from `path`."""
    latest = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        latest[(r["task"], r["split"], r["column"])] = r
    rows = {}
    for (task, split, column), r in sorted(latest.items()):
        row = rows.setdefault((task, split), {"task": task, "split": split, "rows": r["rows"]})
        row[column], row[f"{column} s"] = r["score"], r["seconds"]
        if column == "pipeline":
            row["pipeline cv"], row["models cv"] = r.get("cv"), r.get("models")
    keys = ["task", "split", "rows", *(k for c in COLUMNS for k in (c, f"{c} s")), "pipeline cv", "models cv"]
    out = [{k: r.get(k, "") for k in keys} for r in rows.values()]
    for r in out:
        scores = [r[c] for c in COLUMNS if isinstance(r[c], float)]
        best = max(COLUMNS, key=lambda c: r[c] if isinstance(r[c], float) else -1) if len(scores) == 3 else ""
        r["best"] = "tie" if best and sorted(scores)[-1] == sorted(scores)[-2] else best
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=f"sms-spam,airline-sentiment,{SOLAR}")
    ap.add_argument("--splits", type=int, default=3)
    ap.add_argument("--first-split", type=int, default=0, help="split seeds are 3000 + first-split + i")
    ap.add_argument("--columns", default=",".join(COLUMNS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--results", type=Path, default=None, help="append each row to this JSON lines file")
    ap.add_argument("--report", type=Path, default=None, help="only print the table of this JSON lines file")
    ap.add_argument("--keep", type=Path, default=None, help="play in this folder and keep it (default: temporary)")
    args = ap.parse_args()
    if args.report is not None:
        print(table(report(args.report)))
        return
    results = args.results or Path(tempfile.mkdtemp()) / "pretrained.jsonl"
    with kept_or_temporary(args.keep) as tmp:
        for name in args.tasks.split(","):
            for i in range(args.first_split, args.first_split + args.splits):
                for column in args.columns.split(","):
                    workdir = Path(tmp) / f"{name}-{i}-{column}"
                    if name == SOLAR:
                        row = solar_column(column, 3000 + i, workdir, args.threads)
                    else:
                        row = text_column(name, column, 3000 + i, workdir, args.threads)
                    row = {"task": name, "split": 3000 + i, "column": column, **row}
                    with results.open("a") as fh:
                        fh.write(json.dumps(row) + "\n")
                    print(json.dumps(row), flush=True)
    print(table(report(results)))


if __name__ == "__main__":
    main()
