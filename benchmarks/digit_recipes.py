"""Digit Recognizer: recipe variants of one image model, paired on the same digits.

    python benchmarks/digit_recipes.py [--splits embedded,1,2,3] [--fold 0] [--model cnn]
                                       [--variant '{label_smoothing: 0.1}' ...] [--base '{...}']

For each split (the embedded one, or the 5,000 digits re-carved 4,000 / 1,000 with seed N,
as in `digits.py`) the model is trained on fold K of the pipeline's own folds (5 stratified
folds with params' seed 42, as the `clean` stage makes them) once with its default params and
once per `--variant` (a YAML mapping of factory arguments, e.g. `'{width: 48, epochs: 30}'`
or `'{augment: {elastic: 1.5}}'`), two fits at a time on one thread each. It prints the
accuracy on the fold's 800 held-out training digits and on the 1,000 hidden test digits,
and the errors on both together; the last rows sum them over the splits. Every variant is
scored on the same digits as the defaults, so a difference of a few errors in 7,200 is
noise (one fit to another with other seeds differs by about as much), and a recipe has to
win on most splits to count. `--base` changes the defaults for every row (`'{epochs: 1}'`:
a smoke run). One fit of the default cnn takes about 3 minutes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import digit_frames, table  # noqa: E402

SEED, N_SPLITS = 42, 5


def _arrays(split_seed: int | None):
    """Training pixels (n, 1, 28, 28) uint8, labels, the pipeline's folds, test pixels, hidden labels."""
    from pipelines.stages.clean import make_folds

    train, test, truth = digit_frames(split_seed)
    y = train["label"].to_numpy(np.int64)
    pixels = train.drop(columns=["label"]).to_numpy(np.uint8).reshape(-1, 1, 28, 28)
    folds = make_folds(y, "multiclass", N_SPLITS, SEED)
    return pixels, y, folds, test.to_numpy(np.uint8).reshape(-1, 1, 28, 28), truth


def _fit(model: str, params: dict, split_seed: int | None, fold: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Wrong-prediction masks on the fold's held-out rows and on the hidden test digits, and seconds."""
    import torch

    from pipelines.core.context import ModelContext
    from pipelines.core.metrics import get_metric
    from pipelines.models.registry import create_model

    torch.set_num_threads(1)
    x, y, folds, x_test, truth = _arrays(split_seed)
    ctx = ModelContext(
        task="multiclass",
        metric=get_metric("accuracy"),
        n_classes=10,
        image_shape=(1, 28, 28),
        seed=SEED + fold,  # what cross_validate gives fold k
        threads=1,
        progress=False,
    )
    tr, va = folds != fold, folds == fold
    start = time.perf_counter()
    est = create_model(model, ctx, **params).fit(x[tr], y[tr], eval_set=(x[va], y[va]))
    wrong_val = est.predict_output(x[va]).argmax(1) != y[va]
    wrong_test = est.predict_output(x_test).argmax(1) != truth
    return wrong_val, wrong_test, time.perf_counter() - start


def _mapping(text: str, flag: str) -> dict:
    value = yaml.safe_load(text) if text else {}
    if not isinstance(value, dict):
        raise SystemExit(f"error: {flag} {text!r} is not a YAML mapping of factory arguments")
    return value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", default="embedded,1,2,3", help="comma-separated: embedded or split seeds")
    ap.add_argument("--fold", type=int, default=0, help=f"which of the {N_SPLITS} folds to train (0..{N_SPLITS - 1})")
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--variant", action="append", default=[], help="YAML mapping of factory arguments (repeatable)")
    ap.add_argument("--base", default="", help="YAML mapping applied to the defaults and to every variant")
    ap.add_argument("--workers", type=int, default=2, help="fits at a time, one thread each")
    args = ap.parse_args()
    if not 0 <= args.fold < N_SPLITS:
        raise SystemExit(f"error: --fold {args.fold} is not in 0..{N_SPLITS - 1}")
    splits = [None if s.strip() == "embedded" else int(s) for s in args.splits.split(",") if s.strip()]
    base = _mapping(args.base, "--base")
    variants = {"defaults": base} | {v: {**base, **_mapping(v, "--variant")} for v in args.variant}
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before the workers load torch

    start = time.perf_counter()
    jobs = [(name, s) for s in splits for name in variants]
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        futures = {job: pool.submit(_fit, args.model, variants[job[0]], job[1], args.fold) for job in jobs}
        results = {job: f.result() for job, f in futures.items()}

    rows, totals = [], {name: [0, 0, 0, 0, 0.0] for name in variants}  # wrong val, n val, wrong test, n test, s
    for name, s in jobs:
        wrong_val, wrong_test, seconds = results[name, s]
        errors = int(wrong_val.sum() + wrong_test.sum())
        base_val, base_test, _ = results["defaults", s]
        rows.append(
            {
                "split": "embedded" if s is None else f"seed {s}",
                "recipe": name,
                "held-out fold": 1 - wrong_val.mean(),
                "hidden test": 1 - wrong_test.mean(),
                "errors": errors,
                "vs defaults": errors - int(base_val.sum() + base_test.sum()),
                "seconds": round(seconds),
            }
        )
        for i, add in enumerate((wrong_val.sum(), len(wrong_val), wrong_test.sum(), len(wrong_test), seconds)):
            totals[name][i] += add
    base_errors = totals["defaults"][0] + totals["defaults"][2]
    for name, (wv, nv, wt, nt, seconds) in totals.items():
        rows.append(
            {
                "split": "all",
                "recipe": name,
                "held-out fold": 1 - wv / nv,
                "hidden test": 1 - wt / nt,
                "errors": int(wv + wt),
                "vs defaults": int(wv + wt - base_errors),
                "seconds": round(seconds),
            }
        )
    print(table(rows))
    print(f"{args.model}, fold {args.fold}: {len(jobs)} fits in {(time.perf_counter() - start) / 60:.1f} min")


if __name__ == "__main__":
    main()
