"""Tabular levers one by one, on one held-out split, in one process: each variant's CV and held-out score.

    flock /tmp/kp-cpu.lock python benchmarks/levers.py [--split 0] [--only lgb,lgb-tune-all]
        [--store /tmp/adult-levers] [--task adult-auc]

The split is `benchmarks/tabular_tasks.py`'s (`carve`: `adult-auc`, or another of its tasks
with `--task`, seed 2000 + split, 70/30), played
as a `local` competition: `download` and `clean` run once (in this process, as CLI calls),
then each variant is cross-validated on clean's folds (`training.cv.cross_validate`, the
`train` stage's call) and scored both by CV and on the held-out 30%. A variant may tune
first (the `tune` stage in this process on its own study, with the variant's `tune`
settings). Each variant's OOF and held-out predictions are kept in `--store` (by split and
label), so later runs can blend variants measured earlier; `--blend a+b,c+d` prints
hill-climbing blends (weights from the OOF rows) of stored variants. Paired figures on the
same folds and held-out rows are what a lever is judged by; a lever then goes through
`tabular_tasks.py --tasks adult-auc --splits 3` (the whole pipeline) before it is taken.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import default_params, download_and_clean, table, write_local  # noqa: E402
from benchmarks.tabular_tasks import TASKS, carve  # noqa: E402
from pipelines.__main__ import main as cli  # noqa: E402
from pipelines.core.config import parse_params  # noqa: E402
from pipelines.core.metrics import get_metric  # noqa: E402
from pipelines.models import gbdt  # noqa: E402
from pipelines.outputs.cleaned import CleanData  # noqa: E402
from pipelines.stages.common import model_context  # noqa: E402
from pipelines.training.cv import CVOptions, cross_validate  # noqa: E402
from pipelines.training.ensembling import blend, hill_climb  # noqa: E402

NAME = "adult-auc"  # --task changes it
ORIGINAL = {"FINAL_FIT_ROWS": gbdt.FINAL_FIT_ROWS}
OLD = {"FINAL_FIT_ROWS": 20_000}  # the rule before: no final fit on Adult's 27,000-row folds
SLOW = {"learning_rate": 0.015, "max_rounds": 6000}
TD = {
    "lightgbm": {"learning_rate": 0.04, "num_leaves": 50, "min_child_samples": 40, "subsample": 0.75,
                 "colsample_bytree": 1.0, "reg_lambda": 0.0},
    "xgboost": {"learning_rate": 0.08, "max_depth": 6, "min_child_weight": 5e-6, "subsample": 0.65,
                "colsample_bytree": 0.9, "reg_lambda": 0.0},
    "catboost": {"learning_rate": 0.08, "depth": 7, "l2_leaf_reg": 1e-5},
    # regression: LGBM_TD_REG / XGB_TD_REG / CB_TD_REG
    "lightgbm-reg": {"learning_rate": 0.05, "num_leaves": 100, "min_child_samples": 3, "subsample": 0.7,
                     "colsample_bytree": 1.0, "reg_lambda": 0.0},
    "xgboost-reg": {"learning_rate": 0.05, "max_depth": 9, "min_child_weight": 2.0, "subsample": 0.7,
                    "colsample_bytree": 1.0, "reg_lambda": 0.0},
    "catboost-reg": {"learning_rate": 0.09, "depth": 9, "l2_leaf_reg": 1e-5},
}  # fmt: skip
# label -> (model, factory arguments, tune settings or None: no tuning[, models/gbdt.py constants])
VARIANTS = {
    "lgb-old": ("lightgbm", {}, None, OLD),
    "lgb-tune10k-old": ("lightgbm", {}, {"max_rows": 10_000, "n_trials": 20}, OLD),
    "lgb-tune-all-old": ("lightgbm", {}, {"max_rows": None, "n_trials": 20}, OLD),
    "lgb-lr.015-old": ("lightgbm", SLOW, None, OLD),
    "lgb-leaves31-old": ("lightgbm", {"num_leaves": 31}, None, OLD),
    "xgb-old": ("xgboost", {}, None, OLD),
    "cat-old": ("catboost", {}, None, OLD),
    "cat-lr.03-old": ("catboost", {"learning_rate": 0.03, "max_rounds": 6000}, None, OLD),
    "cat-lr.1": ("catboost", {"learning_rate": 0.1}, None),
    "lgb": ("lightgbm", {}, None),
    "xgb": ("xgboost", {}, None),
    "cat": ("catboost", {}, None),
    "lgb-lr.015": ("lightgbm", SLOW, None),
    "xgb-lr.015": ("xgboost", SLOW, None),
    "lgb-tune10k": ("lightgbm", {}, {"max_rows": 10_000, "n_trials": 20}),
    "lgb-tune-all40": ("lightgbm", {}, {"max_rows": None, "n_trials": 40, "row_budget": None}),
    "xgb-tune-all40": ("xgboost", {}, {"max_rows": None, "n_trials": 40, "row_budget": None}),
    # pytabkit 1.7.3's meta-learned ("tuned") defaults, DefaultParams.LGBM_TD_CLASS / XGB_TD_CLASS /
    # CB_TD_CLASS, as far as the factories take them (XGBoost's colsample_bylevel 0.9 as bytree)
    "lgb-td": ("lightgbm", TD["lightgbm"], None),
    "xgb-td": ("xgboost", TD["xgboost"], None),
    "cat-td": ("catboost", TD["catboost"], None),
    "lgb-tdr": ("lightgbm", TD["lightgbm-reg"], None),
    "xgb-tdr": ("xgboost", TD["xgboost-reg"], None),
    "cat-tdr": ("catboost", TD["catboost-reg"], None),
    "xgb-native": ("xgboost", {"max_cat_levels": 100_000}, None),  # every category as native splits
    "xgb-codes": ("xgboost", {"max_cat_levels": 0}, None),  # every category as codes
    "lgb-xt": ("lightgbm", {"extra_trees": True}, None),
    "lgb-refit": ("lightgbm", {}, None),
    "xgb-refit": ("xgboost", {}, None),
    "cat-refit": ("catboost", {}, None),
    "lgb-refit3": ("lightgbm", {}, None),  # -refitN: N refits on every row, seeds seed + r
    "xgb-refit3": ("xgboost", {}, None),
    "cat-refit3": ("catboost", {}, None),
    # AutoGluon 1.6's XGBoost defaults (learning rate 0.1, depth 6, every row and column)
    "xgb-ag": ("xgboost", {"learning_rate": 0.1, "max_depth": 6, "subsample": 1.0, "colsample_bytree": 1.0}, None),
    # ... with every native category split one level against the rest, as one-hot columns would be
    # (AutoGluon one-hot encodes XGBoost's categories)
    "xgb-ag-ohe": (
        "xgboost",
        {"learning_rate": 0.1, "max_depth": 6, "subsample": 1.0, "colsample_bytree": 1.0, "max_cat_to_onehot": 64},
        None,
    ),
    "rf": ("random_forest", {}, None),
    # AutoGluon 1.6's random forest: 300 deep trees on every row, sqrt of the columns a split
    "rf-ag": (
        "random_forest",
        {"n_estimators": 300, "min_samples_leaf": 1, "max_features": "sqrt", "rows_per_tree": 10**9},
        None,
    ),
    "rf-100k": (
        "random_forest",
        {"n_estimators": 300, "min_samples_leaf": 1, "max_features": "sqrt", "rows_per_tree": 100_000},
        None,
    ),
    "tabm": ("tabm", {}, None),
    "tabm-k16": ("tabm", {"k": 16}, None),
}


def prepare(root: Path, split: int) -> tuple[Path, Path, dict, np.ndarray]:
    """The split as a local competition, downloaded and cleaned: (params file, clean folder,
    params dict, held-out truth in test_ids order)."""
    train, test, spec = carve(NAME, split)
    data = root / "data"
    write_local(data, train, test, spec["id"], spec["target"], filler=train[spec["target"]].mode()[0])
    params = default_params()
    params["competitions"] = {NAME: {"source": "local", "path": str(data), **spec}}
    clean = download_and_clean(root, NAME, params)
    path = root / "params.yaml"
    ids = CleanData(clean).test_ids
    truth = test.set_index(spec["id"]).loc[ids, spec["target"]].to_numpy()  # as the task's score takes it
    return path, clean, params, truth


def tuned_params(root: Path, params: dict, label: str, model: str, tune: dict) -> tuple[dict, float]:
    """The variant's best params from the `tune` stage on its own study, and its seconds."""
    variant = json.loads(json.dumps(params))
    variant["tune"].update(models=[model], **tune)
    path = root / f"params-{label}.yaml"
    path.write_text(yaml.safe_dump(variant, sort_keys=False))
    out = root / f"tune-{label}"
    start = time.perf_counter()
    assert cli(["tune", NAME, "--params", str(path), "--clean", str(root / "clean"), "--out", str(out)]) == 0
    seconds = time.perf_counter() - start
    return json.loads((out / "best_params.json").read_text())[model]["params"], seconds


def measure(root: Path, params: dict, truth: np.ndarray, label: str, store: Path) -> dict:
    model, fixed, tune, *patch = VARIANTS[label]
    for key, value in (patch[0] if patch else {}).items():  # module constants of models/gbdt.py
        setattr(gbdt, key, value)
    tuned, tune_s = tuned_params(root, params, label, model, tune) if tune else ({}, 0.0)
    data = CleanData(root / "clean")
    ctx = model_context(data, parse_params(params), progress=False)
    start = time.perf_counter()
    # -refit: test = half a fit on every row, half the folds; -refitN: N such fits alike with the folds' mean
    refits = re.search(r"-refit(\d*)$", label)
    opts = CVOptions(refit=int(refits.group(1) or 1) if refits else 0)
    result = cross_validate(model, {**tuned, **fixed}, data, ctx, opts)
    seconds = time.perf_counter() - start
    for key in patch[0] if patch else {}:
        setattr(gbdt, key, ORIGINAL[key])
    np.savez(store / f"{label}.npz", oof=result.oof, test=result.test, y=data.y)
    held = TASKS[NAME]["score"](truth, result.test)
    return {"variant": label, "cv": result.score, "held-out": held, "train s": round(seconds, 1),
            "tune s": round(tune_s, 1), "params": json.dumps(tuned, sort_keys=True)[:80]}  # fmt: skip


def blends(store: Path, truth: np.ndarray, spec: str) -> list[dict]:
    metric, task = get_metric(TASKS[NAME]["spec"]["metric"]), TASKS[NAME]["spec"]["task"]
    rows = []
    for combo in spec.split(","):
        parts = [np.load(store / f"{label}.npz") for label in combo.split("+")]
        y = parts[0]["y"]
        w = hill_climb([p["oof"] for p in parts], y, metric, task, 50)
        oof = blend([p["oof"] for p in parts], w, metric, task)
        test = blend([p["test"] for p in parts], w, metric, task)
        rows.append({"blend": combo, "weights": w.round(2).tolist(), "cv (in-sample weights)": metric(y, oof, task),
                     "held-out": TASKS[NAME]["score"](truth, test)})  # fmt: skip
    return rows


def main() -> None:
    global NAME
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", type=int, default=0)
    ap.add_argument("--only", default="", help="comma-separated variants: " + ", ".join(VARIANTS))
    ap.add_argument("--blend", default="", help="comma-separated a+b+... of stored variants")
    ap.add_argument("--store", type=Path, default=Path("/tmp/adult-levers"))
    ap.add_argument("--task", default=NAME, help="one of tabular_tasks.py's: " + ", ".join(TASKS))
    args = ap.parse_args()
    NAME = args.task
    root = args.store / ("" if args.task == "adult-auc" else args.task) / f"split{args.split}"
    root.mkdir(parents=True, exist_ok=True)
    _, _, params, truth = prepare(root, args.split)
    rows = []
    for label in [v for v in args.only.split(",") if v]:
        rows.append(measure(root, params, truth, label, root))
        print(table(rows[-1:]), flush=True)
    if rows:
        print(f"\nsplit {args.split}:\n" + table(rows))
    if args.blend:
        print("\n" + table(blends(root, truth, args.blend)))


if __name__ == "__main__":
    main()
