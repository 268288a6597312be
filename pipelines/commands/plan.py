"""Command `plan`: what `tune`, `train` and `distill` will run for a competition, resolved.

    python -m pipelines plan <name> [--clean data/clean/<name>] [--json]

Reads params.yaml and `clean`'s metadata (so `clean` must have run) and prints the plan:
the models with their arguments, which of them are tuned and on how many trials, folds and
refit, epochs, the student, each stage's share of the budget, and where the outputs go.
`--json` prints it as `train` writes it (`data/logs/<name>/plan.json`).
"""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.core.errors import PipelineError
from pipelines.core.paths import Paths
from pipelines.models.selection import check_models
from pipelines.outputs.cleaned import CleanData
from pipelines.training.plan import describe, make_plan


def add_arguments(parser) -> None:
    parser.add_argument("--clean", type=Path, default=None, help=f"clean's folder (default: {Paths('<name>').clean})")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON, as train writes it")


def main(args, params) -> None:
    check_models(params, args.params)
    params.competition(args.name)
    folder = args.clean or Paths(args.name).clean
    if not (folder / "meta.json").is_file():
        raise PipelineError(f"{folder}: no cleaned data; run `dvc repro clean@{args.name}` first")
    plan = make_plan(params, args.name, CleanData(folder))
    print(json.dumps(plan.to_dict(), indent=2) if args.json else describe(plan))
