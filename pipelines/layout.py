"""The Kaggle layout: train.csv, test.csv, sample_submission.csv, read and checked.

`read_layout(folder, spec)` returns the three tables after checking what every later stage
relies on: the id and target columns exist, test.csv has train's feature columns, the
sample submission lists exactly test's ids, no id repeats, the target fits the task. Each
failure is one `PipelineError` naming the file and column.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.config import CompetitionSpec
from pipelines.errors import PipelineError
from pipelines.io import read_csv

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


def _check_unique(frame: pd.DataFrame, col: str, path: Path) -> None:
    dup = frame[col][frame[col].duplicated()]
    if len(dup):
        raise PipelineError(f"{path}: column {col!r} has {len(dup)} duplicate id(s), e.g. {dup.iloc[0]!r}")


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
    if pd.api.types.is_float_dtype(y) and not np.isfinite(y.to_numpy(np.float64)).all():
        raise PipelineError(f"{path}: target {spec.target!r} has inf values")
    n = y.nunique()
    if spec.task == "binary" and n != 2:
        raise PipelineError(f"{path}: task binary needs 2 classes in {spec.target!r}, found {n}")
    if spec.task == "multiclass" and n < 2:
        raise PipelineError(f"{path}: target {spec.target!r} has a single class; nothing to learn")
    return train


def read_layout(folder: Path | str, spec: CompetitionSpec) -> Layout:
    folder = Path(folder)
    check_files(folder)
    tr_path, te_path, ss_path = (folder / f for f in FILES)
    train, test, sample = read_csv(tr_path), read_csv(te_path), read_csv(ss_path)

    if spec.target not in train:
        raise PipelineError(f"{tr_path}: target column {spec.target!r} not found (columns: {_few(train.columns)})")
    if spec.id not in sample or len(sample.columns) < 2:
        raise PipelineError(
            f"{ss_path}: needs the id column {spec.id!r} and a prediction column (columns: {_few(sample.columns)})"
        )
    id_col = spec.id
    train = _check_target(train, spec, tr_path)

    features = [c for c in train.columns if c not in (spec.target, spec.id)]
    test_features = [c for c in test.columns if c != spec.id]
    missing = [c for c in features if c not in test.columns]
    extra = [c for c in test_features if c not in train.columns]
    if missing or extra:
        detail = "; ".join(filter(None, [missing and f"missing {_few(missing)}", extra and f"extra {_few(extra)}"]))
        raise PipelineError(f"{te_path}: columns differ from train.csv's ({detail})")

    if spec.id in train:
        _check_unique(train, spec.id, tr_path)
    _check_unique(sample, id_col, ss_path)
    if len(sample) != len(test):
        raise PipelineError(f"{ss_path}: {len(sample)} rows but test.csv has {len(test)}")
    if spec.id in test:
        _check_unique(test, spec.id, te_path)
        test_ids = test[spec.id]
        unknown = set(sample[id_col]) ^ set(test_ids)
        if unknown:
            raise PipelineError(
                f"{ss_path}: ids differ from test.csv's ({len(unknown)} not in both, e.g. {sorted(unknown, key=str)[0]!r})"
            )
    else:  # Kaggle's digit-recognizer: test rows are numbered by the sample submission
        test_ids = sample[id_col]
    return Layout(train, test, sample, test_ids.reset_index(drop=True))


def _few(cols, n: int = 6) -> str:
    cols = list(cols)
    return ", ".join(map(str, cols[:n])) + (f", ... ({len(cols)} in all)" if len(cols) > n else "")
