"""Talking to Kaggle through the official `kaggle` client: download data, submit.

    download_competition(slug, dest)     # train.csv, test.csv, sample_submission.csv into dest
    submission_limits(slug)              # -> {"left", "today"} or None when Kaggle cannot say
    submit(slug, csv, message)           # -> {"ref", "status", "public", "private", "error"}
    list_submissions(slug)               # -> every submission's record, newest first

Credentials come from where the client looks (`~/.kaggle/kaggle.json`, `KAGGLE_USERNAME` /
`KAGGLE_KEY`, `KAGGLE_API_TOKEN`); the client's warning about a kaggle.json readable by
others becomes one log warning (its other output is kept off ours), and no secret is ever
logged. Archives are extracted safely (`io.safe_extract_zip`): a member whose path would
escape the target folder, or an archive over the zip-bomb limits, is refused before
anything is written.
What users run into becomes one line saying what to do: no credentials, 401 (rejected
credentials), 403 (competition rules not accepted: only a browser can accept them), 404,
a submission Kaggle did not accept or could not score. Rate limits (429) and transient
server errors are retried with backoff, honouring `Retry-After`; a submission is retried
only on 429, which guarantees it was not recorded (a 5xx might have been). A record's
`status` is Kaggle's, lower-cased: pending, complete or error.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import time
from pathlib import Path

from pipelines.core import io as core_io
from pipelines.core import progress
from pipelines.core.errors import PipelineError
from pipelines.core.io import safe_extract_zip
from pipelines.sources.layout import copy_layout

log = logging.getLogger(__name__)

TRANSIENT = (429, 500, 502, 503, 504)
ATTEMPTS = 5
BACKOFF = 2.0  # seconds before the first retry; doubles each time (unless Retry-After says otherwise)
MAX_DELAY = 120.0
CREDENTIALS_HELP = (
    "put kaggle.json (from kaggle.com/settings, 'Create New Token') in ~/.kaggle, "
    "or set KAGGLE_USERNAME and KAGGLE_KEY, or KAGGLE_API_TOKEN"
)


def _api():
    """An authenticated `KaggleApi`. The client prints on stdout (help text, and a warning about
    a kaggle.json readable by others): that is kept out of ours, its warnings passed to the log."""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):  # `import kaggle` authenticates and may print
            from kaggle.api.kaggle_api_extended import KaggleApi
    except Exception as err:
        raise PipelineError(f"kaggle: client unavailable ({_first_line(err)})") from None
    api = KaggleApi()
    try:
        with contextlib.redirect_stdout(printed):
            api.authenticate()
    except SystemExit:  # the client calls exit(1) when it finds no credentials at all
        raise PipelineError(f"kaggle: no credentials found; {CREDENTIALS_HELP}") from None
    except Exception as err:
        raise PipelineError(_explain(err, "authentication")) from None
    finally:
        _pass_on_warnings(printed.getvalue(), api)
    return api


_WARNED: set[str] = set()  # the client's warnings already logged by this process


def _pass_on_warnings(printed: str, api) -> None:
    """Each warning the client printed, once, as one log line; a secret never goes with it."""
    values = getattr(api, "config_values", None) or {}
    secrets = [values.get("key"), values.get("token"), os.environ.get("KAGGLE_KEY"), os.environ.get("KAGGLE_API_TOKEN")]
    for line in printed.splitlines():
        line = line.strip()
        if not line.lower().startswith("warning") or line in _WARNED:
            continue
        _WARNED.add(line)
        for secret in filter(None, secrets):
            line = line.replace(secret, "***")
        log.warning("kaggle: %s", line)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _status(err: BaseException) -> int | None:
    return getattr(getattr(err, "response", None), "status_code", None)


def _retry_after(err: BaseException) -> float | None:
    headers = getattr(getattr(err, "response", None), "headers", None) or {}
    try:
        return max(0.0, float(headers.get("Retry-After")))
    except (TypeError, ValueError):
        return None


def _explain(err: BaseException, slug: str) -> str:
    status, detail = _status(err), _first_line(err)
    if status == 401:
        return f"kaggle: credentials rejected (HTTP 401: {detail}); {CREDENTIALS_HELP}"
    if status == 403:
        return (
            f"kaggle: {slug}: access denied (HTTP 403: {detail}); accept the competition's rules at "
            f"https://www.kaggle.com/c/{slug}/rules (only a browser can), then re-run"
        )
    if status == 404:
        return f"kaggle: {slug}: not found (HTTP 404); check the competition slug"
    if status == 429:
        return f"kaggle: {slug}: rate limited (HTTP 429) {ATTEMPTS} times in a row; wait a while and re-run"
    if status is not None:
        return f"kaggle: {slug}: HTTP {status}: {detail}"
    return f"kaggle: {slug}: {type(err).__name__}: {detail}"


def _is_network_error(err: BaseException) -> bool:
    import requests

    return isinstance(err, (requests.ConnectionError, requests.Timeout))


def with_retry(call, slug: str, retry_on: tuple[int, ...] = TRANSIENT, network: bool = True):
    """`call()`, retried on the given HTTP statuses (and network errors); failures become one line."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return call()
        except PipelineError:
            raise
        except Exception as err:
            transient = _status(err) in retry_on or (network and _is_network_error(err))
            if not transient or attempt == ATTEMPTS:
                raise PipelineError(_explain(err, slug)) from None
            delay = _retry_after(err)
            delay = min(MAX_DELAY, BACKOFF * 2 ** (attempt - 1) if delay is None else delay)
            log.warning("kaggle: %s: %s; retry %d/%d in %.0fs", slug, _first_line(err), attempt, ATTEMPTS - 1, delay)
            time.sleep(delay)


def _archives_unpacked(folder: Path) -> list[Path]:
    """Files of the download, with zips (and zips inside them, one level) extracted safely; the
    zips inside share one size budget with their archive (`io.MAX_ZIP_BYTES`)."""
    files = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() == ".zip":
            outer = safe_extract_zip(path, folder / f"{path.stem}.files")
            left = core_io.MAX_ZIP_BYTES - sum(f.stat().st_size for f in outer)
            for inner in outer:
                if inner.suffix.lower() == ".zip":  # large files come zipped inside the archive
                    extracted = safe_extract_zip(inner, inner.with_name(f"{inner.stem}.files"), max(left, 0))
                    left -= sum(f.stat().st_size for f in extracted)
                    files += extracted
                else:
                    files.append(inner)
        elif path.is_file() and not path.name.startswith("."):
            files.append(path)
    return files


def download_competition(slug: str, dest: Path, images: bool = False) -> None:
    """Download `slug`'s files and put its Kaggle layout files (with `images`, its train/ and
    test/ folders of image files too) into `dest`."""
    api = _api()
    dest = Path(dest)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".download.") as tmp:  # inside the atomic folder
        tmp = Path(tmp)
        with contextlib.redirect_stdout(io.StringIO()):
            quiet = not progress.enabled()  # the client's own tqdm bar (stderr); its chatter on stdout is caught
            with_retry(lambda: api.competition_download_files(slug, path=str(tmp), force=True, quiet=quiet), slug)
        copy_layout(_archives_unpacked(tmp), f"kaggle: {slug}: download", dest, images)


def _score(value) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _record(sub) -> dict:
    """What we keep of one `ApiSubmission` (scores arrive as strings, "" while hidden)."""
    return {
        "ref": str(sub.ref),
        "status": sub.status.name.lower(),
        "public": _score(getattr(sub, "public_score", None)),
        "private": _score(getattr(sub, "private_score", None)),
        "error": (getattr(sub, "error_description", None) or "").strip(),
    }


def submission_limits(slug: str) -> dict | None:
    """How many submissions Kaggle still takes today: {"left", "today"}; None when it cannot
    say (an older client, an endpoint that fails, or all zeros: not on a team yet). Only
    advice before a submit, so it is never retried and never fails the submit itself."""
    api = _api()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            limits = with_retry(lambda: api.competition_get_submission_limits(slug), slug, retry_on=(), network=False)
    except PipelineError as err:
        log.info("kaggle: %s: submission limits unavailable (%s)", slug, err)
        return None
    left, today, total = (int(getattr(limits, k, 0) or 0) for k in ("num_allowed_now", "num_today", "num_total"))
    return None if not (left or today or total) else {"left": left, "today": today}


def list_submissions(slug: str, page_size: int = 100, max_pages: int = 50) -> list[dict]:
    """Our submissions to `slug`, newest first, every page of them: the client's own
    `competition_submissions` returns one page and drops the next-page token, so the same
    `ListSubmissions` request is made through its SDK client, page after page."""
    from kagglesdk.competitions.types.competition_api_service import ApiListSubmissionsRequest

    api = _api()

    def page(token: str):
        with api.build_kaggle_client() as kaggle:
            request = ApiListSubmissionsRequest()
            request.competition_name, request.page_size, request.page_token = slug, page_size, token
            return kaggle.competitions.competition_api_client.list_submissions(request)

    records, token = [], ""
    for _ in range(max_pages):
        response = with_retry(lambda token=token: page(token), slug)
        records += [_record(s) for s in response.submissions or [] if s is not None]
        token = response.next_page_token
        if not token:
            break
    return records


def submit(slug: str, csv: Path, message: str, wait: float = 120.0, poll: float = 5.0) -> dict:
    """Submit `csv` to Kaggle, wait up to `wait` seconds for its score, and return its record
    (`status` complete, pending or error, with Kaggle's reason in `error`; `public`/`private`
    floats or None while hidden). A failed scoring is returned, not raised: the submission
    exists and counts against the daily limit, so the caller records it first."""
    api = _api()
    with contextlib.redirect_stdout(io.StringIO()):
        created = with_retry(
            lambda: api.competition_submit(str(csv), message, slug, quiet=True), slug, retry_on=(429,), network=False
        )
    ref = getattr(created, "ref", 0)
    if not ref:  # e.g. the daily limit, or an upload that failed ("Could not submit to competition")
        reason = (getattr(created, "message", "") or "no reason given").strip().splitlines()[0]
        raise PipelineError(f"kaggle: {slug}: submission not accepted: {reason}")
    deadline = time.monotonic() + wait
    while True:
        subs = with_retry(lambda: api.competition_submissions(slug), slug) or []
        sub = next((s for s in subs if s is not None and str(s.ref) == str(ref)), None)
        record = _record(sub) if sub is not None else {"ref": str(ref), "status": "pending"}
        if record["status"] != "pending" or time.monotonic() + poll > deadline:
            break
        time.sleep(poll)
    record = {"public": None, "private": None, "error": "", **record}
    if record["status"] == "error" and not record["error"]:
        record["error"] = "Kaggle gave no reason"
    return record
