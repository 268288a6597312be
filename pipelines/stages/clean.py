"""Stage `clean`: typed, validated features and the competition's fixed folds.

    python -m pipelines clean <name> --raw data/raw/<name> --out data/clean/<name>

Writes into `--out`:
- tabular: `train.parquet`, `test.parquet` (features only), image: `train_x.npy`,
  `test_x.npy` (uint8, n x C x H x W; image files are decoded and resized to the spec's
  size here, see `sources/image_files.py`);
- `target.npy` (classes encoded 0..k-1, or values), `folds.npy` (fold index per train row,
  computed once and shared by every model), `test_ids.csv`, `meta.json` (task, metric,
  classes, feature roles, submission columns, `folds`: the folds played, those asked for and,
  when fewer, why: a class rarer than `folds.n_splits` plays as many folds as it has rows,
  never below 2, said in the log too; a class of one row is refused);
- `drift.json`: adversarial validation of train vs test (`features/drift.py`: out-of-fold
  AUC of a classifier telling them apart, the most telling features), warned about in the
  log above 0.7.
- with `folds.adversarial`: `score_rows.npy`, the mask of the `folds.adversarial_share`
  training rows most like the test set; every later stage scores CV on those rows only
  (models still train, and predict out of fold, on every row).

Errors name the user's own files: for `source: local`, those in the spec's `path` (the folder,
or the zip), not their copies in `--raw`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, StratifiedKFold

from pipelines.core.context import IMAGE, TEXT
from pipelines.core.errors import PipelineError
from pipelines.core.io import atomic_dir, save_array, write_json
from pipelines.features.drift import adversarial_validation, most_test_like, report
from pipelines.features.tabular import build_features, check_text, text_columns
from pipelines.sources.image_files import load_images
from pipelines.sources.layout import read_layout, user_folder

log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("--raw", type=Path, required=True, help="folder in Kaggle layout (download's output)")
    parser.add_argument("--out", type=Path, required=True)


def make_folds(y: np.ndarray, task: str, n_splits: int, seed: int, groups=None) -> np.ndarray:
    """Fold index per row: grouped, stratified for classes, binned-stratified for regression
    (`n_splits` as `fold_count` allows it for classes)."""
    if groups is not None:
        splitter, strata = GroupKFold(n_splits, shuffle=True, random_state=seed), None
    elif task == "regression":
        bins = min(10, max(2, len(y) // (n_splits * 5)))
        strata = pd.qcut(pd.Series(y).rank(method="first"), bins, labels=False).to_numpy()
        splitter = StratifiedKFold(n_splits, shuffle=True, random_state=seed)
    else:
        splitter, strata = StratifiedKFold(n_splits, shuffle=True, random_state=seed), y
    folds = np.full(len(y), -1, dtype=np.int64)
    for k, (_, val) in enumerate(splitter.split(np.zeros(len(y)), strata, groups)):
        folds[val] = k
    return folds


def fold_count(y: np.ndarray, classes: list, n_splits: int, target: str, where) -> tuple[int, str | None]:
    """The folds the classes allow, and why when fewer than `n_splits`: every fold validates
    every class, so a class of k < n_splits rows plays k folds (never below 2). A class of
    one row cannot be both learnt from and validated: refused, naming the column and class."""
    counts = np.bincount(y, minlength=len(classes)) if len(classes) else np.array([n_splits])
    if counts.min() >= n_splits:
        return n_splits, None
    single = [c for c, n in zip(classes, counts, strict=True) if n < 2]
    if single:
        more = f" (and {len(single) - 1} more)" if len(single) > 1 else ""
        raise PipelineError(
            f"{where}: class {single[0]!r} of column {target!r} has a single row{more}; a class needs 2 "
            "rows to be learnt in one fold and validated in another (drop the row or merge the class)"
        )
    rarest = int(counts.argmin())
    k = int(counts[rarest])
    return k, f"class {classes[rarest]!r} of column {target!r} has {k} rows, fewer than folds.n_splits={n_splits}"


def encode_target(values: pd.Series, task: str) -> tuple[np.ndarray, list]:
    if task == "regression":
        return values.to_numpy(np.float64), []
    classes = sorted(values.unique().tolist(), key=lambda v: (str(type(v)), v))
    lookup = {c: i for i, c in enumerate(classes)}
    return values.map(lookup).to_numpy(np.int64), classes


def image_array(frame: pd.DataFrame, shape, path) -> np.ndarray:
    """Pixel columns -> uint8 (n, C, H, W), checking row length and value range."""
    c, h, w = shape.channels, shape.height, shape.width
    if frame.shape[1] != c * h * w:
        raise PipelineError(f"{path}: {frame.shape[1]} pixel columns, expected {c}x{h}x{w}={c * h * w}")
    values = frame.to_numpy()
    if not np.issubdtype(values.dtype, np.number):
        raise PipelineError(f"{path}: pixel columns must be numbers")
    if np.isnan(values).any() if values.dtype.kind == "f" else False:
        raise PipelineError(f"{path}: pixel values missing")
    lo, hi = values.min(), values.max()
    if lo < 0 or hi > 255:
        raise PipelineError(f"{path}: pixel values must lie in 0..255, found {lo}..{hi}")
    # Kaggle's pixel CSVs are channel-last per pixel for colour images (h, w, c)
    return values.astype(np.uint8).reshape(len(values), h, w, c).transpose(0, 3, 1, 2).copy()


def images(layout, spec, raw: Path, shown: Path) -> tuple[np.ndarray, np.ndarray]:
    """Train and test images as uint8 (n, C, H, W): image files decoded and resized here, once
    per change of the raw files (DVC keeps the arrays), or pixel columns reshaped. Errors name
    a file as it lies in `shown` (the user's folder) rather than in the copy `raw`."""
    drop = [c for c in (spec.target, spec.id) if c in layout.train]
    if layout.train_files is None:
        train_x = image_array(layout.train.drop(columns=drop), spec.image, shown / "train.csv")
        test_x = image_array(layout.test.drop(columns=[spec.id], errors="ignore"), spec.image, shown / "test.csv")
        return train_x, test_x
    unused = [c for c in layout.train.columns if c not in drop]
    if unused:
        print(f"train.csv: column(s) {', '.join(map(str, unused))} not used (image models read the images only)")

    def load(files, desc):
        names = [shown / Path(f).relative_to(raw) if Path(f).is_relative_to(raw) else f for f in files]
        return load_images(files, spec.image, desc=desc, names=names)

    return load(layout.train_files, "train images"), load(layout.test_files, "test images")


def tables(layout, spec, shown: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The feature tables and their roles; a text competition's text columns must hold text
    in train.csv and in test.csv (a column empty in every test row would predict a constant)."""
    text = []
    if spec.modality == TEXT:
        text = text_columns(layout.train, spec.text, (spec.id, spec.target), str(shown / "train.csv"))
        check_text(layout.test, text, str(shown / "test.csv"))
    return build_features(layout.train, layout.test, spec.id, spec.target, text)


def split(layout, spec, params, shown: Path) -> tuple[np.ndarray, list, np.ndarray, dict]:
    """Encoded target, classes, the fold of each row and what meta.json says of the folds."""
    y, classes = encode_target(layout.train[spec.target], spec.task)
    groups = None
    if spec.group:
        if spec.group not in layout.train:
            raise PipelineError(f"{shown / 'train.csv'}: group column {spec.group!r} not found")
        groups = layout.train[spec.group].to_numpy()
    asked = n_splits = params.folds.resolve(len(y), spec.modality)
    why = None
    if spec.task != "regression" and groups is None:
        n_splits, why = fold_count(y, classes, asked, spec.target, shown / "train.csv")
    if why:
        log.warning("%s: %s: playing %d folds", shown / "train.csv", why, n_splits)
    folds = make_folds(y, spec.task, n_splits, params.seed, groups)
    return y, classes, folds, {"n_splits": n_splits, "asked": asked, **({"why": why} if why else {})}


def main(args, params) -> None:
    spec = params.competition(args.name)
    shown = user_folder(spec, args.raw)  # errors name the user's files, not the copy in args.raw
    layout = read_layout(args.raw, spec, origin=shown)
    y, classes, folds, fold_meta = split(layout, spec, params, shown)
    meta = {
        "name": args.name,
        "task": spec.task,
        "metric": spec.metric,
        "modality": spec.modality,
        "classes": classes,
        "n_classes": len(classes) if classes else 1,
        "id": spec.id,
        "submission_columns": list(layout.sample.columns),
        "n_train": int(len(y)),
        "n_test": int(len(layout.test)),
        "folds": fold_meta,
    }
    with atomic_dir(args.out) as tmp:
        if spec.modality == IMAGE:
            train_x, test_x = images(layout, spec, Path(args.raw), shown)
            save_array(tmp / "train_x.npy", train_x)
            save_array(tmp / "test_x.npy", test_x)
            meta["image_shape"] = [spec.image.channels, spec.image.height, spec.image.width]
        else:
            train_x, test_x, meta["roles"] = tables(layout, spec, shown)
            train_x.to_parquet(tmp / "train.parquet")
            test_x.to_parquet(tmp / "test.parquet")
        drift = adversarial_validation(
            train_x, test_x, meta.get("roles"), seed=params.seed, threads=params.train.threads,
            keep_train_scores=params.folds.adversarial,
        )  # fmt: skip
        rows = most_test_like(drift.pop("train_scores", None), params.folds.adversarial_share)
        if rows is not None:
            save_array(tmp / "score_rows.npy", rows)
            drift["score_rows"] = {"share": params.folds.adversarial_share, "rows": int(rows.sum())}
        write_json(tmp / "drift.json", drift)
        save_array(tmp / "target.npy", y)
        save_array(tmp / "folds.npy", folds)
        layout.test_ids.to_frame(spec.id).to_csv(tmp / "test_ids.csv", index=False)
        write_json(tmp / "meta.json", meta)
    report(drift, args.name)
    said = f"adversarial AUC {drift['auc']:.3f}" if drift["auc"] is not None else "no drift check"
    if "score_rows" in drift:
        said += f"; CV scores the {drift['score_rows']['rows']} most test-like rows"
    print(f"{args.name}: {len(y)} train rows, {fold_meta['n_splits']} folds, {said} -> {args.out}")
