"""Command `submit`: send a submission and record how CV tracks the leaderboard.

    python -m pipelines submit <name> [--dir submissions/<name>] [--message "..."]

Validates `submission.csv` against the raw `sample_submission.csv`, then scores it on the
offline leaderboard (embedded competitions) or submits it through the Kaggle client
(`source: kaggle`); `local` competitions have no leaderboard, only CV is recorded. Each
submission appends a row to `history.csv`: time, git commit, params digest, CV, public and
private score. Not a DVC stage: it has side effects.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pandas as pd

from pipelines.core.errors import PipelineError
from pipelines.core.io import atomic_file, read_csv, read_json
from pipelines.sources.embedded import dataset_of, score_offline
from pipelines.sources.submission import validate_submission
from pipelines.training.cv import fingerprint


def add_arguments(parser) -> None:
    parser.add_argument("--dir", type=Path, default=None, help="default: submissions/<name>")
    parser.add_argument("--raw", type=Path, default=None, help="default: data/raw/<name>")
    parser.add_argument("-m", "--message", default="", help="description stored with the submission")


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def _fmt(score) -> str:
    return "hidden" if score is None else f"{score:.5f}"


def main(args, params) -> None:
    spec = params.competition(args.name)
    folder = args.dir or Path("submissions") / args.name
    raw = args.raw or Path("data/raw") / args.name
    sub = read_csv(folder / "submission.csv")
    sample = read_csv(raw / "sample_submission.csv")
    validate_submission(sub, sample, spec.id, str(folder / "submission.csv"))
    metrics = read_json(folder / "metrics.json")
    if not isinstance(metrics.get("cv"), (int, float)) or "metric" not in metrics:
        raise PipelineError(f"{folder / 'metrics.json'}: needs 'metric' and a numeric 'cv' (re-run the ensemble stage)")
    public = private = None
    status = "scored"
    if spec.source == "embedded":
        public, private = score_offline(sub, dataset_of(spec, args.name), spec)
    elif spec.source == "kaggle":
        from pipelines.sources.kaggle_api import submit

        record = submit(spec.kaggle, folder / "submission.csv", args.message or f"cv {metrics['cv']:.5f}")
        public, private, status = record["public"], record["private"], record["status"]
    row = {
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "params": fingerprint(params.model_dump()),
        "metric": metrics["metric"],
        "cv": metrics["cv"],
        "public": public,
        "private": private,
        "message": args.message,
    }
    history_path = folder / "history.csv"
    history = read_csv(history_path) if history_path.exists() else pd.DataFrame()
    history = pd.concat([history, pd.DataFrame([row])], ignore_index=True)
    with atomic_file(history_path) as fh:
        history.to_csv(fh, index=False)
    scores = f"public {_fmt(public)}, private {_fmt(private)}"
    if spec.source == "local":
        scores = "no leaderboard for a local competition"
    elif status != "scored" and status != "complete":
        scores = f"Kaggle is still scoring it ({status}); see kaggle.com/c/{spec.kaggle}/submissions"
    print(f"{args.name}: cv {metrics['cv']:.5f}; {scores} (recorded in {history_path})")
