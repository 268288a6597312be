"""Digit Recognizer (embedded MNIST, 4,000 train / 1,000 hidden test) through `dvc repro`.

    python benchmarks/digits.py [--models cnn,resnet] [--epochs 30] [--threads 2] [--keep DIR]
                                [--split-seed N] [--reference K] [--size full] [--table-only]

Plays the embedded `digit-recognizer` competition with the project's params (image models
from `train.models.image` unless --models says otherwise) in a throw-away repo, then prints
one table: per image model its CV accuracy and its hidden-test accuracy (the fold-averaged
test predictions), the same for the ensemble's submission (scored by the offline leaderboard,
public and private parts together) and the distilled student, the teacher ensemble's rows/s
against the ONNX student's, the wall time of the whole `dvc repro` and the peak memory of
its largest stage process.

`--reference K` also trains K seeds of the issue's yardstick, one well-made CNN on all 4,000
training digits (`benchmarks/reference_cnn.py`), two at a time, and adds their rows.

`--split-seed N` carves the 5,000 digits into 4,000 / 1,000 with seed N instead (stratified
by label) and plays them as a `local` competition in Kaggle's layout: a held-out split the
defaults were not chosen on.

`--size full` plays Kaggle's size instead: 42,000 training and 28,000 hidden test digits of
all 70,000 MNIST digits (`size: full`; with `--split-seed N`, re-carved 42,000 / 28,000).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import default_params, digit_frames, make_repo, repro, table  # noqa: E402

NAME = "digit-recognizer"
SPEC = {
    "source": "embedded",
    "kaggle": NAME,
    "id": "ImageId",
    "target": "label",
    "task": "multiclass",
    "metric": "accuracy",
    "modality": "image",
    "image": {"height": 28, "width": 28, "channels": 1},
}


def _test_accuracy(probs: np.ndarray, truth: np.ndarray) -> float:
    # the classes are the digits 0..9, encoded as themselves (sorted labels)
    return float((np.asarray(probs).argmax(1) == truth).mean())


def _local_split(folder: Path, seed: int, size: str) -> np.ndarray:
    """Kaggle's digit-recognizer files for a re-carved split; returns the hidden labels."""
    train, test, truth = digit_frames(seed, size)
    folder.mkdir(parents=True)
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    pd.DataFrame({"ImageId": np.arange(1, len(test) + 1), "Label": 0}).to_csv(
        folder / "sample_submission.csv", index=False
    )
    return truth


def _parts(cache: Path, model: str, truth: np.ndarray) -> list[dict]:
    """Hidden-test rows for the parts of a refitted model's test predictions: the mean of its
    fold models, each model refitted on every training row (a single CNN, one seed each), and
    the refits' mean."""
    folder = max(cache.glob(f"{model}-*"), key=lambda p: p.stat().st_mtime)  # the run just made
    folds = [np.load(f)["test"] for f in sorted(folder.glob("fold*.npz"))]
    fulls = {f.stem: np.load(f)["test"] for f in sorted(folder.glob("full*.npz"))}
    blank = {"cv": "-", "rows/s": "-", "train s": "-"}
    rows = [
        {
            "model": f"  {model}, {len(folds)} fold models",
            **blank,
            "hidden test": _test_accuracy(np.mean(folds, 0), truth),
        }
    ]
    rows += [{"model": f"  {model}, one model on all rows ({stem})", **blank, "hidden test": _test_accuracy(p, truth)}
             for stem, p in fulls.items()]  # fmt: skip
    if len(fulls) > 1:
        mean = _test_accuracy(np.mean(list(fulls.values()), 0), truth)
        rows.append({"model": f"  {model}, mean of the {len(fulls)} refits", **blank, "hidden test": mean})
    return rows


def _reference_rows(split_seed: int | None, k: int, size: str) -> list[dict]:
    """The issue's yardstick on the same split: k seeds of one well-made CNN on all rows."""
    from benchmarks.reference_cnn import run_seeds

    train, test, truth = digit_frames(split_seed, size)
    results = run_seeds(train, test, list(range(k)))
    blank = {"cv": "-", "rows/s": "-"}
    rows = [
        {"model": f"reference CNN, seed {s}", **blank, "hidden test": _test_accuracy(p, truth), "train s": round(sec)}
        for s, (p, sec) in enumerate(results)
    ]
    if k > 1:
        mean = np.mean([p for p, _ in results], axis=0)
        rows.append({"model": f"reference CNN, mean of {k} seeds", **blank, "hidden test": _test_accuracy(mean, truth),
                     "train s": "-"})  # fmt: skip
    return rows


def _onnx_outputs(path: Path, repo: Path) -> np.ndarray:
    """The exported graph's outputs on the competition's test.csv (raw pixels in)."""
    import onnxruntime as ort

    pixels = pd.read_csv(repo / "data/raw" / NAME / "test.csv").to_numpy(np.float32).reshape(-1, 1, 28, 28)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: pixels})[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=None, help="comma-separated image models (default: params.yaml's)")
    ap.add_argument("--epochs", type=int, default=None, help="train.epochs (default: params.yaml's)")
    ap.add_argument("--threads", type=int, default=None, help="train.threads (default: params.yaml's)")
    ap.add_argument("--keep", type=Path, default=None, help="build the repo here and keep it")
    ap.add_argument("--split-seed", type=int, default=None, help="play a re-carved split as a local competition")
    ap.add_argument(
        "--reference", type=int, default=0, help="also train this many seeds of the issue's single reference CNN"
    )
    ap.add_argument("--size", choices=["sample", "full"], default="sample", help="full: 42,000 / 28,000 digits")
    ap.add_argument("--table-only", action="store_true", help="only print the table of the run kept in --keep")
    args = ap.parse_args()
    params = default_params()
    params["competitions"] = {NAME: {**SPEC, "size": args.size}}
    if args.models:
        params["competitions"][NAME]["models"] = args.models.split(",")  # past the image-size rules
    if args.epochs:
        params["train"]["epochs"] = args.epochs
    if args.threads:
        params["train"]["threads"] = args.threads
    truth = digit_frames(None, args.size)[2]
    with tempfile.TemporaryDirectory() as tmp:
        if args.split_seed is not None:
            folder = Path(tmp) / f"split{args.split_seed}"
            truth = _local_split(folder, args.split_seed, args.size)
            params["competitions"][NAME].update(source="local", path=str(folder))
            params["competitions"][NAME].pop("size")
        start = time.perf_counter()
        if args.table_only:  # the table of a run kept with --keep (for --split-seed, give it again)
            repo, seconds = args.keep, float("nan")
        else:
            repo = make_repo(args.keep or Path(tmp) / "repo", params)
            seconds = repro(repo)
        train, logs = repo / "data/train" / NAME, repo / "data/logs" / NAME
        timings = json.loads((logs / "train.json").read_text())["models"]  # machine facts: in the logs
        rates = json.loads((logs / "distill.json").read_text())
        rows = []
        for model in json.loads((train / "cv.json").read_text())["models"]:  # the models the size rules kept
            scores = json.loads((train / model / "scores.json").read_text())
            rows.append(
                {
                    "model": model + (f" (folds + {int(scores['refit'])} refit)" if scores.get("refit") else ""),
                    "cv": float(scores["cv"]),
                    "hidden test": _test_accuracy(np.load(train / model / "test.npy"), truth),
                    "rows/s": round(timings[model]["rows_per_s"]),
                    "train s": round(timings[model]["seconds"]),
                }
            )
            if scores.get("refit"):
                rows += _parts(repo / "data/cache" / NAME / "train", model, truth)
        distill = repo / "data/distill" / NAME
        speed = json.loads((distill / "speed.json").read_text())
        student = json.loads((distill / "student/scores.json").read_text())
        rows.append(
            {
                "model": f"student ({student['model']}, onnx)",
                "cv": float(student["cv"]),
                "hidden test": _test_accuracy(np.load(distill / "student/test.npy"), truth),
                "rows/s": round(rates.get("onnx_rows_per_s") or 0),
                "train s": "-",
            }
        )
        if speed.get("onnx"):  # the one deployable model: the last fold's student, run by onnxruntime
            rows.append(
                {
                    "model": "student, exported (1 fold, onnx)",
                    "cv": float(speed["onnx_fold_score"]),
                    "hidden test": _test_accuracy(_onnx_outputs(distill / speed["onnx"], repo), truth),
                    "rows/s": round(rates["onnx_rows_per_s"]),
                    "train s": "-",
                }
            )
        metrics = json.loads((repo / "submissions" / NAME / "metrics.json").read_text())
        sub = pd.read_csv(repo / "submissions" / NAME / "submission.csv")
        answers = pd.Series(truth, index=pd.RangeIndex(1, len(truth) + 1, name="ImageId"))
        rows.append(
            {
                "model": f"ensemble ({metrics.get('method', 'submission')})",
                "cv": float(metrics["cv"]),
                "hidden test": float((sub.set_index("ImageId")["Label"].loc[answers.index] == answers).mean()),
                "rows/s": round(rates["teacher_rows_per_s"]),
                "train s": "-",
            }
        )
        if args.reference:
            rows += _reference_rows(args.split_seed, args.reference, args.size)
        print(table(rows))
        print(
            f"\nteacher ensemble {rates['teacher_rows_per_s']:.0f} images/s; ONNX student "
            f"{rates.get('onnx_rows_per_s', 0):.0f} images/s (int8: {rates.get('int8_rows_per_s', 'not kept')}); "
            f"student CV {speed['student_cv']:.4f} vs teachers {speed['teacher_cv']:.4f}"
        )
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest stage process
        print(
            f"dvc repro: {seconds / 60:.1f} min (benchmark total {(time.perf_counter() - start) / 60:.1f} min); "
            f"peak memory of one stage process {peak_mb:,.0f} MB"
        )


if __name__ == "__main__":
    main()
