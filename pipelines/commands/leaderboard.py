"""Command `leaderboard`: refresh past submissions and show how far CV can be trusted.

    python -m pipelines leaderboard <name> [--dir submissions/<name>] [--no-refresh]

Refreshes `history.csv` (pending -> scored, private scores once they are shown) from Kaggle
(the client's submission listing, matched by ref) or, for embedded competitions, from the
offline leaderboard (each file `submit` kept in `submitted/` is scored again), then prints
one row per submission: CV +/- its fold std, public, private and z = (public - CV) / cv_std,
flagging (`!`) a public score outside CV +/- 2 std, and how well CV ranks the submissions
against public (Spearman). Writes `leaderboard.csv` (the table) and `cv_vs_public.csv` (one
point per scored submission, for a DVC scatter plot) beside the history.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from pipelines.core.errors import PipelineError
from pipelines.core.io import atomic_file, read_csv
from pipelines.core.paths import Paths
from pipelines.outputs.history import load_history, save_history
from pipelines.sources.embedded import dataset_of, score_offline

FLAG_STD = 2.0  # a public score further than this many fold stds from CV is flagged
SCORES = ["status", "public", "private"]


def add_arguments(parser) -> None:
    parser.add_argument("--dir", type=Path, default=None, help=f"default: {Paths('<name>').submissions}")
    parser.add_argument("--no-refresh", action="store_true", help="show the history as recorded (offline)")


def refresh_kaggle(history: pd.DataFrame, slug: str) -> pd.DataFrame:
    """Status and scores of every row Kaggle still lists (matched by submission ref)."""
    from pipelines.sources.kaggle_api import list_submissions

    if not (history["submission"] != "").any():
        return history
    records = {r["ref"]: r for r in list_submissions(slug)}
    for i, ref in history["submission"].items():
        if ref in records:
            history.loc[i, SCORES] = [records[ref][k] for k in SCORES]
    return history


def refresh_offline(history: pd.DataFrame, folder: Path, spec, name: str) -> pd.DataFrame:
    """Scores of the kept copies on the offline leaderboard; rows without a copy (written by
    an older `submit`) keep what they recorded."""
    scored: dict[str, tuple[float, float]] = {}
    for i, sha in history["file_sha256"].items():
        copy = folder / "submitted" / f"{sha[:16]}.csv"
        if not sha or not copy.exists():
            continue
        if sha not in scored:
            scored[sha] = score_offline(read_csv(copy), dataset_of(spec, name), spec)
        history.loc[i, SCORES] = ["complete", *scored[sha]]
    return history


def changed(before: pd.DataFrame, after: pd.DataFrame) -> int:
    """Rows whose status or scores differ (NaN equal to NaN)."""
    a, b = before[SCORES].astype(object), after[SCORES].astype(object)
    same = (a == b) | (a.isna() & b.isna())
    return int((~same.all(axis=1)).sum())


def refresh(history: pd.DataFrame, spec, name: str, folder: Path) -> tuple[pd.DataFrame, str]:
    before = history.copy()
    if spec.source == "kaggle":
        history, where = refresh_kaggle(history, spec.kaggle), "Kaggle"
    elif spec.source == "embedded":
        history, where = refresh_offline(history, folder, spec, name), "the offline leaderboard"
    else:
        return history, "a local competition has no leaderboard: CV only"
    return history, f"refreshed from {where}: {changed(before, history)} of {len(history)} submission(s) changed"


def with_deviation(history: pd.DataFrame) -> pd.DataFrame:
    """The history plus z = (public - CV) / cv_std and `outside` (|z| > FLAG_STD); both
    empty where a score or a positive std is missing."""
    out = history.copy()
    std = out["cv_std"].where(out["cv_std"] > 0)
    out["z"] = (out["public"] - out["cv"]) / std
    out["outside"] = (out["z"].abs() > FLAG_STD).astype("boolean").mask(out["z"].isna())
    return out


def rank_correlation(table: pd.DataFrame) -> str:
    """How well CV orders the scored submissions as public does: what a player relies on
    when choosing what to submit (the level can be off; the order must not be)."""
    scored = table.dropna(subset=["cv", "public"])
    n = len(scored)
    if n < 3:
        return f"rank correlation of CV and public: needs 3 scored submissions, {n} so far"
    if scored["cv"].nunique() < 2 or scored["public"].nunique() < 2:
        return f"rank correlation of CV and public over {n} scored submissions: undefined (all scores equal)"
    rho, p = spearmanr(scored["cv"], scored["public"])
    verdict = "CV orders them as public does" if rho >= 0.7 else "CV and public disagree on the order"
    return f"rank correlation of CV and public over {n} scored submissions: Spearman {rho:+.2f} (p {p:.2g}); {verdict}"


def _num(value, digits: int = 5) -> str:
    return "" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def _spread(std) -> str:
    return f" +/- {_num(std)}" if pd.notna(std) else ""


def render(table: pd.DataFrame) -> str:
    shown = pd.DataFrame(
        {
            "submission": table["submission"].replace("", "-"),
            "time": table["time"].str[:16],
            "status": table["status"],
            "cv +/- std": table["cv"].map(_num) + table["cv_std"].map(_spread),
            "public": table["public"].map(_num),
            "private": table["private"].map(_num),
            "z": table["z"].map(lambda z: _num(z, 2)),
            "flag": table["outside"].map(lambda o: "!" if o is True else ""),
            "message": table["message"].str.slice(0, 40),
        }
    )
    return shown.to_string(index=False)


def notes(table: pd.DataFrame) -> list[str]:
    scored = table.dropna(subset=["public"])
    lines = []
    flagged = int(table["outside"].fillna(False).sum())
    if len(scored):
        lines.append(
            f"{flagged} of {len(scored)} scored submission(s) outside CV +/- {FLAG_STD:g} std (marked !)"
            + (": a small public split is noisy, or the test set differs from train (drift.json)" if flagged else "")
        )
    pending = int((table["status"] == "pending").sum())
    if pending:
        lines.append(f"{pending} submission(s) still pending; run `leaderboard` again later")
    return [*lines, rank_correlation(table)]


def write_outputs(table: pd.DataFrame, folder: Path) -> tuple[Path, Path]:
    """leaderboard.csv (the whole table) and cv_vs_public.csv (scored points, for `dvc plots`)."""
    board, plot = folder / "leaderboard.csv", folder / "cv_vs_public.csv"
    with atomic_file(board) as fh:
        table.to_csv(fh, index=False)
    points = table.dropna(subset=["cv", "public"])[["submission", "cv", "cv_std", "public", "z", "outside"]]
    band = FLAG_STD * points["cv_std"]
    points = points.assign(low=points["cv"] - band, high=points["cv"] + band)
    with atomic_file(plot) as fh:
        points.replace({np.nan: None}).to_csv(fh, index=False)
    return board, plot


def main(args, params) -> None:
    spec = params.competition(args.name)
    folder = args.dir or Paths(args.name).submissions
    history_path = folder / "history.csv"
    history = load_history(history_path)
    if history.empty:
        raise PipelineError(f"{history_path}: no submissions yet; run `python -m pipelines submit {args.name}` first")
    if not args.no_refresh:
        history, said = refresh(history, spec, args.name, folder)
        save_history(history_path, history)
        print(said)
    table = with_deviation(history)
    print(render(table))
    for line in notes(table):
        print(line)
    board, plot = write_outputs(table, folder)
    print(f"written: {board}, {plot}")
    # dvc.yaml declares this plot for the shipped competitions only (top-level plots take no foreach)
    print(f"draw it: dvc plots show {plot} -x cv -y public --template scatter")
