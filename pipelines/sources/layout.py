"""The Kaggle layout: train.csv, test.csv, sample_submission.csv, read and checked.

`read_layout(folder, spec)` returns the three tables after checking what every later stage
relies on: the id and target columns exist, test.csv has train's feature columns (with
compatible types, and no target), the sample submission lists exactly test's ids and has
the prediction columns the metric asks for, no id repeats or is missing, the target fits
the task, and for image competitions every row holds C*H*W integer pixels in 0..255
(`check_pixels`). Each failure is one `PipelineError` naming the file and column. Rows of
train.csv without a target are dropped with a warning that counts them.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.core.config import CompetitionSpec
from pipelines.core.context import IMAGE
from pipelines.core.errors import PipelineError
from pipelines.core.io import read_csv

FILES = ("train.csv", "test.csv", "sample_submission.csv")
log = logging.getLogger(__name__)


@dataclass
class Layout:
    train: pd.DataFrame
    test: pd.DataFrame
    sample: pd.DataFrame
    test_ids: pd.Series  # id per test row, in test.csv order


def check_files(folder: Path) -> None:
    if not folder.is_dir():
        raise PipelineError(f"{folder}: folder not found (expected {', '.join(FILES)})")
    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        raise PipelineError(f"{folder}: missing {', '.join(missing)} (Kaggle layout needs {', '.join(FILES)})")


def copy_layout(files: list[Path], where: str, dest: Path) -> None:
    """Copy the three Kaggle files found among `files` (e.g. an extracted archive) into `dest`."""
    found: dict[str, list[Path]] = {}
    for path in files:
        found.setdefault(Path(path).name, []).append(Path(path))
    missing = [f for f in FILES if f not in found]
    if missing:
        names = sorted({Path(p).name for p in files})
        raise PipelineError(f"{where}: lacks {', '.join(missing)} (found {', '.join(names[:8]) or 'nothing'})")
    twice = [f for f in FILES if len(found[f]) > 1]
    if twice:
        paths = found[twice[0]]
        root = os.path.commonpath([str(p.parent) for p in paths])
        shown = ", ".join(os.path.relpath(p, root) for p in paths)
        raise PipelineError(f"{where}: holds {twice[0]} more than once ({shown}); keep one")
    for file in FILES:
        shutil.copyfile(found[file][0], dest / file)


def _check_unique(frame: pd.DataFrame, col: str, path: Path) -> None:
    missing = int(frame[col].isna().sum())
    if missing:
        raise PipelineError(f"{path}: column {col!r} has {missing} missing id(s)")
    dup = frame[col][frame[col].duplicated()]
    if len(dup):
        raise PipelineError(f"{path}: column {col!r} has {len(dup)} duplicate id(s), e.g. {_plain(dup.iloc[0])!r}")


def check_pixels(frame: pd.DataFrame, shape, path: Path | str) -> None:
    """Pixel columns of an image competition: C*H*W of them, integers in 0..255, none missing."""
    c, h, w = shape.channels, shape.height, shape.width
    if frame.shape[1] != c * h * w:
        raise PipelineError(
            f"{path}: rows hold {frame.shape[1]} pixel columns, expected channels x height x width = "
            f"{c}x{h}x{w} = {c * h * w}"
        )
    text = [col for col in frame.columns if not pd.api.types.is_numeric_dtype(frame[col])]
    if text:
        bad = frame[text[0]][pd.to_numeric(frame[text[0]], errors="coerce").isna()]
        raise PipelineError(f"{path}: pixel column {text[0]!r} holds non-numbers, e.g. {bad.iloc[0]!r}")
    values = frame.to_numpy(np.float64)
    holes = np.isnan(values)
    if holes.any():
        row, col = np.argwhere(holes)[0]
        raise PipelineError(f"{path}: pixel column {frame.columns[col]!r} is empty in row {row + 1} (short row?)")
    outside = (values < 0) | (values > 255) | (values != np.round(values))
    if outside.any():
        row, col = np.argwhere(outside)[0]
        raise PipelineError(
            f"{path}: pixel column {frame.columns[col]!r} has {values[row, col]:g} in row {row + 1}; "
            "expected integers in 0..255"
        )


def _check_target(train: pd.DataFrame, spec: CompetitionSpec, path: Path) -> pd.DataFrame:
    y = train[spec.target]
    missing = y.isna()
    if missing.all():
        raise PipelineError(f"{path}: target column {spec.target!r} is empty")
    if missing.any():
        log.warning("%s: dropped %d row(s) whose target %r is missing", path, int(missing.sum()), spec.target)
        train = train.loc[~missing].reset_index(drop=True)
        y = train[spec.target]
    if spec.task == "regression":
        values = pd.to_numeric(y, errors="coerce")
        if values.isna().any():
            bad = y[values.isna()].iloc[0]
            raise PipelineError(f"{path}: target {spec.target!r} must be numeric for regression, found {bad!r}")
        if not np.isfinite(values.to_numpy(np.float64)).all():
            raise PipelineError(f"{path}: target {spec.target!r} has inf values")
        if spec.metric == "rmsle" and (values < 0).any():
            raise PipelineError(f"{path}: target {spec.target!r} has negative values; metric rmsle needs >= 0")
        return train
    if pd.api.types.is_float_dtype(y):
        values = y.to_numpy(np.float64)
        if not np.isfinite(values).all():
            raise PipelineError(f"{path}: target {spec.target!r} has inf values")
        if (values != np.round(values)).any():
            bad = values[values != np.round(values)][0]
            raise PipelineError(
                f"{path}: target {spec.target!r} has the value {bad:g}; task {spec.task} needs class labels"
            )
    n = y.nunique()
    if spec.task == "binary" and n != 2:
        raise PipelineError(f"{path}: task binary needs 2 classes in {spec.target!r}, found {n}")
    if spec.task == "multiclass" and n < 2:
        raise PipelineError(f"{path}: target {spec.target!r} has a single class; nothing to learn")
    return train


def read_layout(folder: Path | str, spec: CompetitionSpec, origin: Path | str | None = None) -> Layout:
    """The checked tables of `folder`; messages name files as `origin/<file>` when given
    (where a temporary copy came from: the user's folder or archive, `kaggle:<slug>`)."""
    folder = Path(folder)
    check_files(folder)
    tr_path, te_path, ss_path = (Path(origin or folder) / f for f in FILES)
    train, test, sample = (
        read_csv(folder / f, where=shown) for f, shown in zip(FILES, (tr_path, te_path, ss_path), strict=True)
    )

    if spec.target not in train:
        raise PipelineError(f"{tr_path}: target column {spec.target!r} not found (columns: {_few(train.columns)})")
    if spec.id not in sample or len(sample.columns) < 2:
        raise PipelineError(
            f"{ss_path}: needs the id column {spec.id!r} and a prediction column (columns: {_few(sample.columns)})"
        )
    id_col = spec.id
    train = _check_target(train, spec, tr_path)

    if spec.target in test:
        raise PipelineError(f"{te_path}: has the target column {spec.target!r}; test rows must not carry answers")
    features = [c for c in train.columns if c not in (spec.target, spec.id)]
    test_features = [c for c in test.columns if c != spec.id]
    missing = [c for c in features if c not in test.columns]
    extra = [c for c in test_features if c not in train.columns]
    if missing or extra:
        detail = "; ".join(filter(None, [missing and f"missing {_few(missing)}", extra and f"extra {_few(extra)}"]))
        raise PipelineError(f"{te_path}: columns differ from train.csv's ({detail})")
    if spec.modality == IMAGE:
        check_pixels(train[features], spec.image, tr_path)
        check_pixels(test[features], spec.image, te_path)
    else:
        _check_types(train, test, features, te_path)
    _check_sample_columns(sample, spec, train[spec.target].nunique(), ss_path)

    if spec.id in train:
        _check_unique(train, spec.id, tr_path)
    _check_unique(sample, id_col, ss_path)
    if len(sample) != len(test):
        raise PipelineError(f"{ss_path}: {len(sample)} rows but test.csv has {len(test)}")
    if spec.id in test:
        _check_unique(test, spec.id, te_path)
        test_ids = test[spec.id]
        extra, absent = set(sample[id_col]) - set(test_ids), set(test_ids) - set(sample[id_col])
        if extra or absent:
            detail = "; ".join(
                f"{len(ids)} {what}, e.g. {_plain(sorted(ids, key=str)[0])!r}"
                for ids, what in ((extra, "not in test.csv"), (absent, "of test.csv's missing"))
                if ids
            )
            raise PipelineError(f"{ss_path}: ids differ from test.csv's ({detail})")
    else:  # Kaggle's digit-recognizer: test rows are numbered by the sample submission
        test_ids = sample[id_col]
    return Layout(train, test, sample, test_ids.reset_index(drop=True))


def _check_types(train: pd.DataFrame, test: pd.DataFrame, features: list[str], path: Path) -> None:
    """A column that is numeric in train.csv must be numeric (or empty) in test.csv."""
    for col in features:
        if pd.api.types.is_numeric_dtype(train[col]) and not pd.api.types.is_numeric_dtype(test[col]):
            values = test[col].dropna()
            bad = values[pd.to_numeric(values, errors="coerce").isna()]
            if len(bad):
                raise PipelineError(f"{path}: column {col!r} is numeric in train.csv but holds {bad.iloc[0]!r}")


def _check_sample_columns(sample: pd.DataFrame, spec: CompetitionSpec, n_classes: int, path: Path) -> None:
    """What the metric submits decides the prediction columns: one, or one per class."""
    from pipelines.core.metrics import get_metric

    value_cols = [c for c in sample.columns if c != spec.id]
    per_class = spec.task == "multiclass" and get_metric(spec.metric).submits == "probabilities"
    expected = n_classes if per_class else 1
    if len(value_cols) != expected:
        what = f"one probability column per class ({n_classes})" if per_class else "one prediction column"
        raise PipelineError(f"{path}: {len(value_cols)} prediction columns {_few(value_cols)}; expected {what}")


def _plain(value):
    """numpy scalars print as np.int64(3); users wrote 3."""
    return value.item() if isinstance(value, np.generic) else value


def _few(cols, n: int = 6) -> str:
    cols = list(cols)
    return ", ".join(map(str, cols[:n])) + (f", ... ({len(cols)} in all)" if len(cols) > n else "")
