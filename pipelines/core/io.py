"""Safe reading and atomic writing.

Every stage writes into a temporary sibling of its output and renames it into place only on
success (`atomic_dir`, `atomic_file`, and `save_array`/`write_json` through them), so an
interrupted or failed stage never leaves a half-written output that DVC or the next stage
could mistake for a good one. A temporary carries its writer's pid; one left behind by a
killed process (SIGKILL skips all cleanup) is removed by the next writer of the same path.

Nothing we read is unpickled: arrays are loaded with `allow_pickle=False`, archives are
extracted after checking that no path escapes the target folder and that the directory
promises no zip bomb (`safe_extract_zip`: total size, member count, compression ratio),
and CSVs are checked for what pandas lets through silently (a binary
or zipped file, a line cut short at the end of a truncated file); their encoding is the
spec's or detected (`core/encodings.py`: UTF-8, UTF-16/32 with or without a byte-order mark,
cp1252, latin-1).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from pipelines.core.encodings import choose_encoding, first_undecodable, plain_codec
from pipelines.core.errors import PipelineError

log = logging.getLogger(__name__)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _remove_stale_temporaries(path: Path) -> None:
    """Temporaries of `path` left by a process that was killed before it could clean up."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()


def _prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _plain_mode(path: Path | str, mode: int) -> None:
    """mkstemp/mkdtemp create private (0600/0700) entries; outputs get the usual permissions."""
    os.chmod(path, mode & ~_umask())


@contextlib.contextmanager
def atomic_dir(path: Path | str) -> Iterator[Path]:
    """Yield an empty temporary folder that replaces `path` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        _plain_mode(tmp, 0o777)
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.with_name(f".{path.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    try:
        if path.exists():
            path.rename(old)
        tmp.rename(path)
    except BaseException:  # e.g. a signal between the two renames: put the old output back
        if not path.exists() and old.exists():
            old.rename(path)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path: Path | str, mode: str = "w") -> Iterator:
    """Open a temporary file that replaces `path` (atomically, by rename) when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
        _plain_mode(tmp, 0o666)
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
    with atomic_file(path, "wb") as fh:
        np.save(fh, np.ascontiguousarray(arr), allow_pickle=False)


def load_array(path: Path | str) -> np.ndarray:
    path = Path(path)
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise PipelineError(f"{path}: file not found (run the stage that writes it first)") from None
    except (ValueError, EOFError, OSError) as err:  # pickled objects, torn or foreign files
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise PipelineError(f"{path}: not a plain numpy array ({detail})") from None


def read_csv(path: Path | str, where: Path | str | None = None, encoding: str | None = None, **kwargs) -> pd.DataFrame:
    """Read a Kaggle CSV, turning parser failures into one-line errors that name the file
    (`where`: the name to show instead of `path`, e.g. the user's file a temporary copy came from).

    `encoding` None: detected (UTF-8 with or without a byte-order mark, UTF-16/32 with or
    without one, else cp1252 or latin-1, said in the log); see `core/encodings.py`."""
    path = Path(path)
    where = where or path
    if not path.is_file():
        raise PipelineError(f"{where}: file not found")
    size = path.stat().st_size
    if size == 0:
        raise PipelineError(f"{where}: file is empty")
    with open(path, "rb") as fh:
        head = fh.read(4096)
        fh.seek(max(0, size - 65536))
        tail = fh.read()
    if head.startswith(b"PK\x03\x04"):
        raise PipelineError(f"{where}: is a zip archive, not CSV text (extract it first)")
    encoding = choose_encoding(path, where, encoding, head)
    try:
        df = pd.read_csv(path, low_memory=False, encoding=encoding, **kwargs)
    except UnicodeDecodeError:
        raise PipelineError(f"{where}: not {encoding} text ({first_undecodable(path, encoding)})") from None
    except pd.errors.EmptyDataError:
        raise PipelineError(f"{where}: no columns to read (empty file?)") from None
    except pd.errors.ParserError as err:
        detail = str(err).strip().splitlines()[-1]
        raise PipelineError(f"{where}: malformed CSV ({detail})") from None
    df = df.rename(columns={df.columns[0]: str(df.columns[0]).removeprefix("\ufeff")}) if len(df.columns) else df
    _check_header(df, where, _header_names(path, encoding))
    _check_last_line(where, tail.decode(plain_codec(encoding, head), errors="replace"), df.shape[1])
    return placeholders_to_missing(df, where)


def _header_names(path: Path, encoding: str) -> list[str]:
    """The header's names as written (pandas renames a repeated one 'x.1')."""
    with open(path, encoding=encoding, errors="replace", newline="") as fh:
        names = next(csv.reader(fh), [])
    return [n.removeprefix("\ufeff") for n in names]


def _check_header(df: pd.DataFrame, where, names: list[str]) -> None:
    if df.shape[1] == 1 and any(sep in df.columns[0] for sep in (";", "\t", "|")):
        raise PipelineError(f"{where}: only one column {df.columns[0][:40]!r}; expected comma-separated values")
    if len(df) == 0:
        raise PipelineError(f"{where}: header only, no rows")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise PipelineError(f"{where}: duplicate column names {dup}")
    unnamed = [c for c in df.columns if str(c).startswith("Unnamed: ")]
    if unnamed:
        raise PipelineError(
            f"{where}: {len(unnamed)} column(s) without a name in the header (a trailing comma, or a saved index?)"
        )


# what files write for a missing number ("?" in UCI's Adult; pandas already reads NA, N/A, null)
PLACEHOLDERS = frozenset({"?", "-", "--", ".", "na", "n/a", "nan", "null", "none", "missing"})


def placeholders_to_missing(df: pd.DataFrame, where: Path | str = "") -> pd.DataFrame:
    """A text column whose every value but placeholders (`PLACEHOLDERS`, e.g. "?") is a number
    becomes numeric, the placeholders missing values (said in the log)."""
    for col in df.columns:
        values = df[col]
        if values.dtype.kind in "biufcmM" or values.isna().all():
            continue
        text = values.astype("string").str.strip()
        placeholder = text.str.lower().isin(PLACEHOLDERS)
        numbers = pd.to_numeric(text.mask(placeholder), errors="coerce")
        if placeholder.any() and not placeholder.all() and numbers.notna().sum() == (text.notna() & ~placeholder).sum():
            df[col] = numbers.astype(np.float64)
            shown = sorted(set(text[placeholder]))
            log.info("%s: column %r: %d %s read as missing numbers", where, col, int(placeholder.sum()), shown)
    return df


def _check_last_line(where: Path | str, tail: str, n_columns: int) -> None:
    """A file cut off mid-row (an interrupted download or copy) ends in a short last line;
    pandas would quietly fill the missing fields with NaN."""
    if tail.endswith(("\n", "\r")):
        return  # a cut exactly at a line end cannot be told from a whole file
    last = tail.rsplit("\n", 1)[-1]
    if '"' in last:  # a quoted field may span lines; pandas rejects an unclosed quote itself
        return
    fields = next(csv.reader(io.StringIO(last)), [])
    if 0 < len(fields) < n_columns:
        raise PipelineError(
            f"{where}: last line has {len(fields)} of {n_columns} fields and no line end (truncated file?)"
        )


# Zip bombs: limits checked on the archive's directory before anything is written. The
# declared sizes can be trusted: zipfile stops a member at its declared size (and fails its
# CRC), so a member cannot write more than the directory says. Generous for real
# competitions (most ship a few GiB at most; image sets tens of thousands of files); a bomb
# claims terabytes or millions of files. Raise them here for a larger competition.
MAX_ZIP_BYTES = 20 * 2**30  # total uncompressed size of an archive (of one download, nested zips included)
MAX_ZIP_MEMBERS = 100_000  # files in one archive
MAX_ZIP_RATIO = 1000  # uncompressed:compressed, for a member of at least...
RATIO_MIN_BYTES = 16 * 2**20  # ...16 MiB (small files of zeros compress absurdly and harmlessly)


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,} bytes"


def _check_zip_limits(archive: Path, members: list[zipfile.ZipInfo], max_bytes: int | None = None) -> None:
    """Refuse an archive whose directory promises a zip bomb."""
    max_bytes = MAX_ZIP_BYTES if max_bytes is None else max_bytes
    if len(members) > MAX_ZIP_MEMBERS:
        raise PipelineError(f"{archive}: {len(members):,} members, over the limit of {MAX_ZIP_MEMBERS:,} (zip bomb?)")
    total = sum(info.file_size for info in members)
    if total > max_bytes:
        raise PipelineError(f"{archive}: {_size(total)} uncompressed, over the limit of {_size(max_bytes)} (zip bomb?)")
    for info in members:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size >= RATIO_MIN_BYTES and ratio > MAX_ZIP_RATIO:
            raise PipelineError(
                f"{archive}: member {info.filename!r} expands {ratio:,.0f}:1 to {_size(info.file_size)}, "
                f"over the limit of {MAX_ZIP_RATIO}:1 (zip bomb?)"
            )


def _check_member_path(archive: Path, root: Path, info: zipfile.ZipInfo) -> None:
    name = PurePosixPath(info.filename.replace("\\", "/"))
    is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
    target = (root / name).resolve()
    if name.is_absolute() or ".." in name.parts or ":" in info.filename or is_link or root not in target.parents:
        raise PipelineError(f"{archive}: unsafe member {info.filename!r} (path escapes the folder)")


def safe_extract_zip(archive: Path | str, dest: Path | str, max_bytes: int | None = None) -> list[Path]:
    """Extract a zip into `dest` and return the files, refusing before writing anything an
    archive over the limits above (`max_bytes`, when given, lowers the size limit: what is
    left of a download's budget) or a member whose path would land outside `dest` (absolute,
    `..`, a drive letter, a symbolic link)."""
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            _check_zip_limits(archive, members, max_bytes)
            for info in members:
                _check_member_path(archive, root, info)
            zf.extractall(root)  # checks each member's CRC as it goes
    except zipfile.BadZipFile as err:
        if "CRC" in str(err):
            raise PipelineError(f"{archive}: corrupt member ({err}); download it again") from None
        raise PipelineError(f"{archive}: not a valid zip archive ({err}; truncated download?)") from None
    except (EOFError, zipfile.LargeZipFile) as err:
        raise PipelineError(f"{archive}: unreadable zip archive ({err or type(err).__name__})") from None
    return [root / info.filename for info in members if not info.is_dir()]
