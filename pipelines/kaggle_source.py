"""Talking to Kaggle through the official `kaggle` client: download data, submit.

Credentials come from where the client looks (`~/.kaggle/kaggle.json`, `KAGGLE_USERNAME` /
`KAGGLE_KEY`, `KAGGLE_API_TOKEN`). Archives are extracted safely: a member whose path would
escape the target folder (absolute, `..`, links) is refused. Known failure modes (rules not
accepted, bad credentials, rate limits) become one-line `PipelineError`s saying what to do.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath

from pipelines.errors import PipelineError
from pipelines.layout import FILES


def _api():
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi
    except Exception as err:  # the client raises on import when credentials are missing
        raise PipelineError(f"kaggle client unavailable: {err}") from None
    api = KaggleApi()
    try:
        api.authenticate()
    except Exception as err:
        raise PipelineError(
            f"kaggle: authentication failed ({err}); put kaggle.json in ~/.kaggle or set KAGGLE_API_TOKEN"
        ) from None
    return api


def _explain(err: Exception, slug: str) -> str:
    text = str(err)
    status = getattr(getattr(err, "response", None), "status_code", None)
    if status == 403 or "403" in text:
        return f"kaggle: access to {slug!r} denied (403); accept the competition rules at kaggle.com/c/{slug}/rules"
    if status == 401 or "401" in text:
        return "kaggle: credentials rejected (401); check kaggle.json / KAGGLE_API_TOKEN"
    if status == 404 or "404" in text:
        return f"kaggle: competition {slug!r} not found (404); check the slug"
    return f"kaggle: {slug}: {text.splitlines()[0] if text else type(err).__name__}"


def _with_retry(call, slug: str, attempts: int = 4, wait: float = 2.0):
    for attempt in range(attempts):
        try:
            return call()
        except Exception as err:
            status = getattr(getattr(err, "response", None), "status_code", None)
            retriable = status in (429, 500, 502, 503) or "429" in str(err)
            if not retriable or attempt == attempts - 1:
                raise PipelineError(_explain(err, slug)) from None
            time.sleep(wait * 2**attempt)


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract a zip into `dest`, refusing members that would land outside it."""
    dest = dest.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                name = PurePosixPath(info.filename)
                target = (dest / name).resolve()
                is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
                if name.is_absolute() or ".." in name.parts or is_link or dest not in target.parents:
                    raise PipelineError(f"{archive}: unsafe member {info.filename!r} (path escapes the folder)")
            zf.extractall(dest)
    except zipfile.BadZipFile:
        raise PipelineError(f"{archive}: not a valid zip archive (truncated download?)") from None


def download_competition(slug: str, dest: Path) -> None:
    """Download and extract `slug`'s files; keep the three Kaggle layout files in `dest`."""
    api = _api()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _with_retry(lambda: api.competition_download_files(slug, path=str(tmp), quiet=True), slug)
        for archive in tmp.glob("*.zip"):
            safe_extract(archive, tmp / "files")
            archive.unlink()
        found = {p.name: p for p in tmp.rglob("*.csv")}
        missing = [f for f in FILES if f not in found]
        if missing:
            raise PipelineError(f"kaggle: {slug}: download lacks {', '.join(missing)} (found {sorted(found)})")
        for file in FILES:
            shutil.copyfile(found[file], dest / file)


def submit(slug: str, csv: Path, message: str) -> dict:
    """Submit `csv` to Kaggle and return the newest submission's record."""
    api = _api()
    _with_retry(lambda: api.competition_submit(str(csv), message, slug, quiet=True), slug)
    subs = _with_retry(lambda: api.competition_submissions(slug), slug) or []
    if not subs:
        raise PipelineError(f"kaggle: {slug}: submitted, but Kaggle lists no submission")
    latest = subs[0]
    return {
        "ref": str(getattr(latest, "ref", "")),
        "status": str(getattr(latest, "status", "")),
        "public": getattr(latest, "public_score", None),
        "private": getattr(latest, "private_score", None),
    }
