"""Command `leaderboard`: print a competition's submission history (CV next to public/private).

python -m pipelines leaderboard <name> [--history submissions/<name>/history.csv]
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipelines.core.io import read_csv


def add_arguments(parser) -> None:
    parser.add_argument("--history", type=Path, default=None, help="default: submissions/<name>/history.csv")


def main(args, params) -> None:
    params.competition(args.name)
    path = args.history or Path("submissions") / args.name / "history.csv"
    history = read_csv(path)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(history.to_string(index=False))
