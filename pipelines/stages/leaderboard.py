"""Command `leaderboard`: print a competition's submission history (CV next to public/private).

    python -m pipelines leaderboard <name> [--history submissions/<name>/history.csv]

The offline leaderboard itself (`score_offline`) scores an embedded competition's
submission on its hidden answers, split into a public and a private part like Kaggle's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipelines import embedded
from pipelines.errors import PipelineError
from pipelines.io import read_csv
from pipelines.metrics import get_metric


def add_arguments(parser) -> None:
    parser.add_argument("--history", type=Path, default=None, help="default: submissions/<name>/history.csv")


def score_offline(sub: pd.DataFrame, slug: str, spec) -> tuple[float, float]:
    """(public, private) score of a submission on an embedded competition's hidden answers."""
    answers, public = embedded.hidden_answers(slug)
    id_col, value_col = answers.columns[0], answers.columns[1]
    if value_col not in sub.columns:
        raise PipelineError(f"submission: column {value_col!r} missing")
    pred = sub.set_index(id_col).reindex(answers[id_col])[value_col]
    if pred.isna().any():
        raise PipelineError(f"submission: {int(pred.isna().sum())} hidden-test id(s) missing")
    metric = get_metric(spec.metric)
    y, p = answers[value_col].to_numpy(), pred.to_numpy()
    if metric.submits == "labels":  # labels are scored as class indices
        classes = np.unique(np.concatenate([y, p]))
        y, p = np.searchsorted(classes, y), np.searchsorted(classes, p)
        p = p if spec.task != "binary" else p.astype(np.float64)
    if metric.submits == "labels" and spec.task == "multiclass":
        p = np.eye(int(max(y.max(), p.max())) + 1)[p]
    return (
        metric(y[public], p[public], spec.task),
        metric(y[~public], p[~public], spec.task),
    )


def main(args, params) -> None:
    params.competition(args.name)
    path = args.history or Path("submissions") / args.name / "history.csv"
    history = read_csv(path)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(history.to_string(index=False))
