"""Turning test predictions into a Kaggle submission, and checking one against the sample.

`make_submission` orders rows and columns exactly like `sample_submission.csv` and writes
labels, probabilities or values as the metric asks. `validate_submission` is the check the
`submit` command (and tests) run before anything is sent anywhere. `with_ids_as_written`
puts back the sample's ids as text (pandas reads an id `007` as the number 7).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.core.errors import PipelineError
from pipelines.core.io import read_csv
from pipelines.core.metrics import Metric, to_labels


def make_submission(
    pred: np.ndarray, test_ids: pd.Series, sample: pd.DataFrame, classes: list, metric: Metric, task: str, id_col: str
) -> pd.DataFrame:
    values = prediction_values(pred, [c for c in sample.columns if c != id_col], classes, metric, task)
    values.insert(0, id_col, test_ids.to_numpy())
    sub = values.set_index(id_col).reindex(sample[id_col]).reset_index()
    return sub[list(sample.columns)]


def prediction_values(pred: np.ndarray, value_cols: list, classes: list, metric: Metric, task: str) -> pd.DataFrame:
    """The submission's value columns for `pred` (a row per prediction, no id): labels,
    probabilities or values as the metric asks (also what `serve` answers)."""
    if metric.submits == "labels":
        labels = np.asarray(classes, dtype=object)[to_labels(pred, task)]
        values = pd.DataFrame({value_cols[0]: pd.Series(labels).infer_objects()})
    elif task == "multiclass" and len(value_cols) == len(classes):
        values = pd.DataFrame(pred, columns=value_cols)  # one probability column per class
    elif task == "regression" or task == "binary":
        values = pd.DataFrame({value_cols[0]: np.asarray(pred, dtype=np.float64)})
    else:
        raise PipelineError(
            f"sample_submission.csv: {len(value_cols)} prediction column(s) for {len(classes)} classes; "
            f"metric {metric.name} submits probabilities"
        )
    return values


def validate_submission(sub: pd.DataFrame, sample: pd.DataFrame, id_col: str, where: str = "submission") -> None:
    if list(sub.columns) != list(sample.columns):
        raise PipelineError(f"{where}: columns {list(sub.columns)} differ from the sample's {list(sample.columns)}")
    if len(sub) != len(sample):
        raise PipelineError(f"{where}: {len(sub)} rows, the sample has {len(sample)}")
    if not (sub[id_col].astype(str).to_numpy() == sample[id_col].astype(str).to_numpy()).all():
        raise PipelineError(f"{where}: ids differ from the sample's (or are in another order)")
    nan_cols = sub.columns[sub.isna().any()].tolist()
    if nan_cols:
        raise PipelineError(f"{where}: missing values in column(s) {nan_cols}")


def with_ids_as_written(sub: pd.DataFrame, sample_path, id_col: str) -> pd.DataFrame:
    """`sub` (in the sample's row order, as `make_submission` gives it) with the id column
    exactly as `sample_submission.csv` writes it: '007' stays '007', '1.50' stays '1.50'."""
    written = read_csv(sample_path, usecols=[id_col], dtype={id_col: str})[id_col]
    return sub.assign(**{id_col: written.to_numpy()})
