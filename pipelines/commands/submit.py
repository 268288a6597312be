"""Command `submit`: send a submission and record how CV tracks the leaderboard.

    python -m pipelines submit <name> [-m "..."] [--force] [--wait 120] [--dir submissions/<name>]

Validates `submission.csv` against the raw `sample_submission.csv`, refuses a file identical
(sha256) to an earlier submission unless `--force` (a wasted daily slot otherwise), then
scores it on the offline leaderboard (embedded competitions) or submits it through the
Kaggle client (`source: kaggle`), first saying how many submissions Kaggle still takes
today; `local` competitions have no leaderboard, only CV is recorded. Each submission
appends a row to `history.csv` (its columns: `pipelines/outputs/history.py`) and keeps a
copy of the file in `submitted/`, so that `leaderboard` can score it again offline. Not a
DVC stage: it has side effects.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pandas as pd

from pipelines.core.errors import PipelineError
from pipelines.core.fetch import file_sha256
from pipelines.core.io import read_csv, read_json
from pipelines.core.paths import Paths
from pipelines.outputs.history import load_history, save_history
from pipelines.outputs.submission import validate_submission
from pipelines.sources.embedded import dataset_of, score_offline
from pipelines.training.cv import fingerprint


def add_arguments(parser) -> None:
    where = Paths("<name>")
    parser.add_argument("--dir", type=Path, default=None, help=f"default: {where.submissions}")
    parser.add_argument("--raw", type=Path, default=None, help=f"default: {where.raw}")
    parser.add_argument("-m", "--message", default="", help="description stored with the submission")
    parser.add_argument("--force", action="store_true", help="submit a file identical to an earlier submission")
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for Kaggle's score (then pending)")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state() -> tuple[str, str]:
    """(short commit, "True"/"False" dirty) of the working tree, ("", "") outside git.
    Untracked files do not count: data and outputs are untracked here."""
    commit = _git("rev-parse", "--short", "HEAD")
    if not commit:
        return "", ""
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return commit, "" if dirty is None else str(bool(dirty))


def chain_params(params, name: str) -> str:
    """Hash of what fed this competition's chain: its spec and the shared sections, not the
    other competitions' specs (adding a competition must not look like a change here)."""
    dump = params.model_dump(exclude={"progress"})  # what is drawn on the terminal feeds nothing
    dump["competitions"] = {name: dump["competitions"][name]}
    return fingerprint(dump)


def read_metrics(path: Path) -> dict:
    metrics = read_json(path)
    if not isinstance(metrics.get("cv"), (int, float)) or "metric" not in metrics:
        raise PipelineError(f"{path}: needs 'metric' and a numeric 'cv' (re-run the ensemble stage)")
    std = metrics.get("cv_std")
    return {"metric": metrics["metric"], "cv": metrics["cv"], "cv_std": std if isinstance(std, (int, float)) else None}


def refuse_duplicate(history: pd.DataFrame, sha: str, csv: Path) -> None:
    same = history[history["file_sha256"] == sha]
    if len(same):
        first = same.iloc[0]
        raise PipelineError(
            f"{csv}: identical (sha256 {sha[:12]}) to submission {first['submission'] or '(unnamed)'} of "
            f"{first['time']}; change it, or pass --force to submit it again"
        )


def _kaggle_submit(spec, csv: Path, message: str, wait: float) -> dict:
    """Say how many submissions Kaggle still takes today (when it can say), then submit."""
    from pipelines.sources.kaggle_api import submission_limits, submit

    limits = submission_limits(spec.kaggle)
    if limits is not None and limits["left"] == 0:
        raise PipelineError(
            f"kaggle: {spec.kaggle}: no submissions left today ({limits['today']} made); "
            "the allowance resets at midnight UTC"
        )
    if limits is not None:
        print(f"kaggle: {spec.kaggle}: {limits['left']} submission(s) left today ({limits['today']} made)")
    return submit(spec.kaggle, csv, message, wait=wait)


def score(spec, name: str, csv: Path, sub: pd.DataFrame, n: int, message: str, wait: float) -> dict:
    """The leaderboard's record of this submission: ref, status, public, private."""
    if spec.source == "kaggle":
        return _kaggle_submit(spec, csv, message, wait)
    if spec.source == "embedded":
        public, private = score_offline(sub, dataset_of(spec, name), spec)
        return {"ref": f"offline-{n}", "status": "complete", "public": public, "private": private}
    return {"ref": f"local-{n}", "status": "unscored", "public": None, "private": None}


def append(history: pd.DataFrame, row: dict) -> pd.DataFrame:
    new = pd.DataFrame([row]).reindex(columns=history.columns)
    return new if history.empty else pd.concat([history, new], ignore_index=True)


def _fmt(value) -> str:
    return "hidden" if value is None or pd.isna(value) else f"{value:.5f}"


def summary(name: str, spec, metrics: dict, record: dict, history_path: Path) -> str:
    cv = f"cv {metrics['cv']:.5f}" + (f" +/- {metrics['cv_std']:.5f}" if metrics["cv_std"] is not None else "")
    scores = f"public {_fmt(record['public'])}, private {_fmt(record['private'])}"
    if spec.source == "local":
        scores = "no leaderboard for a local competition"
    elif record["status"] == "pending":
        scores = f"Kaggle is still scoring it; `leaderboard {name}` fetches the score later"
    return f"{name}: submission {record['ref']}: {cv}; {scores} (recorded in {history_path})"


def main(args, params) -> None:
    spec = params.competition(args.name)
    folder = args.dir or Paths(args.name).submissions
    raw = args.raw or Paths(args.name).raw
    csv, history_path = folder / "submission.csv", folder / "history.csv"
    sub = read_csv(csv)
    validate_submission(sub, read_csv(raw / "sample_submission.csv"), spec.id, str(csv))
    metrics = read_metrics(folder / "metrics.json")
    history = load_history(history_path)
    sha = file_sha256(csv)
    if not args.force:
        refuse_duplicate(history, sha, csv)
    commit, dirty = git_state()
    message = args.message or f"cv {metrics['cv']:.5f}"
    record = score(spec, args.name, csv, sub, len(history) + 1, message, args.wait)
    (folder / "submitted").mkdir(exist_ok=True)
    shutil.copyfile(csv, folder / "submitted" / f"{sha[:16]}.csv")  # leaderboard re-scores it offline
    row = {
        "submission": record["ref"],
        "status": record["status"],
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "dirty": dirty,
        "params": chain_params(params, args.name),
        "file_sha256": sha,
        **metrics,
        "public": record["public"],
        "private": record["private"],
        "message": args.message,
    }
    save_history(history_path, append(history, row))
    if record["status"] == "error":
        raise PipelineError(f"kaggle: {spec.kaggle}: submission {record['ref']} failed to score: {record['error']}")
    print(summary(args.name, spec, metrics, record, history_path))
