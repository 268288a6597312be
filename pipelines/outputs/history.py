"""The submission history, `submissions/<name>/history.csv`: one row per submission.

    history = load_history(path)        # every COLUMNS, in order (older files: missing ones empty)
    save_history(path, history)         # atomically

Written by `submit`, refreshed by `leaderboard`; both read it through here so that the file
has one format. Files of the first version (time, commit with "+dirty", params, metric, cv,
public, private, message) still load: missing columns are empty, the dirty mark is moved to
its own column. Identifiers and hashes stay text (a ref "1001" is not the number 1001.0).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipelines.core.errors import PipelineError
from pipelines.core.io import atomic_file

COLUMNS = [
    "submission",  # Kaggle's submission ref, or offline-<n> / local-<n>
    "status",  # pending | complete | error (Kaggle's words) | unscored (a local competition)
    "time",  # UTC, ISO 8601
    "commit",  # git commit of the code (short hash)
    "dirty",  # True: tracked files differed from that commit
    "params",  # hash of the params that fed this competition's chain
    "file_sha256",  # of the submitted file
    "metric",
    "cv",
    "cv_std",
    "public",
    "private",
    "message",
]
NUMBERS = ("cv", "cv_std", "public", "private")


def _numbers(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Score columns as floats; a value that is not a number is named, not turned into NaN."""
    for col in NUMBERS:
        text = df[col].str.strip()
        values = pd.to_numeric(text.where(text != ""), errors="coerce")
        bad = values.isna() & (text != "")
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise PipelineError(f"{path}: column {col!r} row {row + 1}: {text.iloc[row]!r} is not a number")
        df[col] = values.astype(float)
    return df


def _split_dirty(df: pd.DataFrame) -> pd.DataFrame:
    """The first version wrote the dirty mark into the commit ("abc123+dirty")."""
    old = df["commit"].str.endswith("+dirty") & (df["dirty"] == "")
    df.loc[old, "commit"] = df.loc[old, "commit"].str.removesuffix("+dirty")
    known = (df["commit"] != "") & (df["dirty"] == "")
    df.loc[known, "dirty"] = old[known].map({True: "True", False: "False"})
    return df


def load_history(path: Path) -> pd.DataFrame:
    """The history at `path` with every column of COLUMNS first (extra columns kept after
    them); an empty one when the file does not exist yet."""
    path = Path(path)
    if not path.exists():
        return _numbers(pd.DataFrame({c: pd.Series(dtype=str) for c in COLUMNS}), path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise PipelineError(f"{path}: not a readable history ({str(err).splitlines()[0]})") from None
    for col in COLUMNS:
        if col not in df:
            df[col] = ""
    df = df[COLUMNS + [c for c in df.columns if c not in COLUMNS]]
    return _numbers(_split_dirty(df), path)


def save_history(path: Path, df: pd.DataFrame) -> None:
    with atomic_file(path) as fh:
        df.to_csv(fh, index=False)
