"""Safe reading and atomic writing.

Every stage writes into a temporary sibling of its output and renames it into place only on
success (`atomic_dir`, `atomic_file`), so an interrupted or failed stage never leaves a
half-written output that DVC or the next stage could mistake for a good one. Arrays are
saved with `np.save` and loaded with `allow_pickle=False`: nothing we read is unpickled.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from pipelines.errors import PipelineError


@contextlib.contextmanager
def atomic_dir(path: Path | str) -> Iterator[Path]:
    """Yield an empty temporary folder that replaces `path` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.with_name(f".{path.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path: Path | str, mode: str = "w") -> Iterator:
    """Open a temporary file that replaces `path` (atomically, by rename) when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: Path | str, obj) -> None:
    with atomic_file(path) as fh:
        json.dump(obj, fh, indent=2, sort_keys=False, default=_json_default)
        fh.write("\n")


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: Path | str) -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise PipelineError(f"{path}: file not found (run the stage that writes it first)") from None
    except json.JSONDecodeError as err:
        raise PipelineError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None


def save_array(path: Path | str, arr: np.ndarray) -> None:
    np.save(path, np.ascontiguousarray(arr), allow_pickle=False)


def load_array(path: Path | str) -> np.ndarray:
    path = Path(path)
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise PipelineError(f"{path}: file not found (run the stage that writes it first)") from None
    except ValueError as err:
        raise PipelineError(f"{path}: not a plain numpy array ({err})") from None


def read_csv(path: Path | str, **kwargs) -> pd.DataFrame:
    """Read a Kaggle CSV, turning parser failures into one-line errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise PipelineError(f"{path}: file is empty")
    try:
        df = pd.read_csv(path, low_memory=False, **kwargs)
    except UnicodeDecodeError as err:
        raise PipelineError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except pd.errors.EmptyDataError:
        raise PipelineError(f"{path}: no columns to read (empty file?)") from None
    except pd.errors.ParserError as err:
        detail = str(err).strip().splitlines()[-1]
        raise PipelineError(f"{path}: malformed CSV ({detail})") from None
    if df.shape[1] == 1 and any(sep in df.columns[0] for sep in (";", "\t", "|")):
        raise PipelineError(f"{path}: only one column {df.columns[0][:40]!r}; expected comma-separated values")
    if len(df) == 0:
        raise PipelineError(f"{path}: header only, no rows")
    dup = df.columns[df.columns.duplicated()].tolist()
    if dup:
        raise PipelineError(f"{path}: duplicate column names {dup}")
    return df
