"""The Kaggle source and submit path, with the REAL `kaggle` client against a fake server.

`tests/fake_kaggle.py` serves Kaggle's API on loopback. In this process the client is
pointed at it by patching kagglesdk's LOCAL endpoint (and the class attributes `KaggleApi`
computes at import time); a subprocess run of `python -m pipelines download` reaches it
through `KAGGLE_API_ENVIRONMENT=LOCALHOST` plus `HTTP_PROXY`. HOME and the Kaggle config dir
are temporary folders, so no real credentials are ever read.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipelines.__main__ import main
from pipelines.core import io as core_io
from pipelines.core.errors import PipelineError
from pipelines.sources import kaggle_api
from tests.conftest import ROOT
from tests.fake_kaggle import FakeKaggle, make_zip

SLUG = "tiny-comp"
TRAIN = "id,x,y\n" + "".join(f"{i},{i % 5},{i % 2}\n" for i in range(1, 21))
TEST = "id,x\n" + "".join(f"{i},{i % 3}\n" for i in range(101, 106))
SAMPLE = "id,y\n" + "".join(f"{i},0\n" for i in range(101, 106))
FILES = {"train.csv": TRAIN, "test.csv": TEST, "sample_submission.csv": SAMPLE}
SPEC = {"source": "kaggle", "kaggle": SLUG, "id": "id", "target": "y", "task": "binary", "metric": "accuracy"}
PROXY_VARS = (
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
)


def _isolate(monkeypatch, home: Path) -> Path:
    """HOME and the Kaggle config dir in tmp; no proxy; the client sent to LOCALHOST."""
    config = home / ".kaggle"
    config.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(config))
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "LOCALHOST")
    for var in (*PROXY_VARS, "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    return config


def point_client_at(server: FakeKaggle, monkeypatch, config: Path) -> None:
    """The in-process client sent to `server` (kagglesdk's LOCAL endpoint, and what `KaggleApi`
    computed at its first import, perhaps under another environment); retries made fast."""
    from kagglesdk import kaggle_env

    monkeypatch.setitem(kaggle_env._env_to_endpoint, kaggle_env.KaggleEnv.LOCAL, server.url)
    from kaggle.api.kaggle_api_extended import KaggleApi

    monkeypatch.setattr(KaggleApi, "args", ["--local"])
    monkeypatch.setattr(KaggleApi, "config_dir", str(config))
    monkeypatch.setattr(KaggleApi, "config", str(config / "kaggle.json"))
    monkeypatch.setattr(kaggle_api, "BACKOFF", 0.01)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A running fake Kaggle that the in-process client talks to, with legacy key credentials."""
    config = _isolate(monkeypatch, tmp_path / "home")
    monkeypatch.setenv("KAGGLE_USERNAME", "tester")
    monkeypatch.setenv("KAGGLE_KEY", "secret")
    with FakeKaggle() as server:
        point_client_at(server, monkeypatch, config)
        server.archives[SLUG] = make_zip(FILES)
        yield server


def test_download_competition_through_the_real_client(fake, tmp_path):
    # Kaggle zips large files inside the archive: train.csv arrives as train.csv.zip
    fake.archives[SLUG] = make_zip({"train.csv.zip": make_zip({"train.csv": TRAIN}), "test.csv": TEST,
                                    "sample_submission.csv": SAMPLE})  # fmt: skip
    dest = tmp_path / "raw"
    dest.mkdir()
    kaggle_api.download_competition(SLUG, dest)
    assert sorted(os.listdir(dest)) == sorted(FILES)
    assert all((dest / name).read_text() == text for name, text in FILES.items())
    (body,) = fake.called("DownloadDataFiles")
    assert body == {"competitionName": SLUG}
    assert fake.calls[0][2]["Authorization"].startswith("Basic ")


def test_download_stage_with_source_kaggle_in_a_subprocess(tmp_path, monkeypatch):
    """`python -m pipelines download` end to end: env LOCALHOST + HTTP_PROXY to the fake."""
    config = _isolate(monkeypatch, tmp_path / "home")
    (config / "kaggle.json").write_text(json.dumps({"username": "tester", "key": "secret"}))
    (config / "kaggle.json").chmod(0o600)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"competitions": {"comp": SPEC}}))
    out = tmp_path / "data" / "raw" / "comp"
    with FakeKaggle() as fake:
        fake.archives[SLUG] = make_zip(FILES)
        fake.fail("DownloadDataFiles", 429, times=1, headers={"Retry-After": "0"})
        env = {**os.environ, "HTTP_PROXY": fake.url, "http_proxy": fake.url, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "pipelines", "download", "comp", "--out", str(out)]
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert "retry 1/4" in proc.stderr and f"{TRAIN.count(chr(10)) - 1} train rows" in proc.stdout
        assert sorted(os.listdir(out)) == sorted(FILES) and (out / "test.csv").read_text() == TEST
        assert len(fake.called("DownloadDataFiles")) == 2

        fake.rules_not_accepted.add(SLUG)  # the same command now fails cleanly, keeping the old output
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"accept the competition's rules at https://www.kaggle.com/c/{SLUG}/rules" in proc.stderr.splitlines()[-1]
    assert sorted(os.listdir(out)) == sorted(FILES) and sorted(os.listdir(out.parent)) == ["comp"]


def _download_error(fake, tmp_path) -> str:
    dest = tmp_path / "raw"
    dest.mkdir(exist_ok=True)
    with pytest.raises(PipelineError) as err:
        kaggle_api.download_competition(SLUG, dest)
    assert os.listdir(dest) == [], "nothing may be left behind"
    return str(err.value)


def test_path_escaping_member_is_refused(fake, tmp_path):
    fake.archives[SLUG] = make_zip({**FILES, "../evil.csv": "x\n"})
    message = _download_error(fake, tmp_path)
    assert "unsafe member '../evil.csv'" in message and "escapes" in message
    assert not any(p.name == "evil.csv" for p in tmp_path.rglob("*"))


def test_truncated_archive_is_refused(fake, tmp_path):
    whole = make_zip(FILES)
    fake.archives[SLUG] = whole[: len(whole) // 2]
    assert "not a valid zip archive" in _download_error(fake, tmp_path)


def test_zips_inside_the_download_share_its_size_budget(fake, tmp_path, monkeypatch):
    """Each archive alone is under the limit, the outer one plus the zip inside it is not."""
    monkeypatch.setattr(core_io, "MAX_ZIP_BYTES", 4000)
    noise = random.Random(0).randbytes(1500)  # incompressible
    inner = make_zip({"train.csv": TRAIN, "noise.bin": noise})
    fake.archives[SLUG] = make_zip({"train.csv.zip": inner, "test.csv": TEST, "sample_submission.csv": SAMPLE,
                                    "more.bin": noise})  # fmt: skip
    message = _download_error(fake, tmp_path)
    assert "train.csv.zip:" in message and "uncompressed, over the limit of" in message and "zip bomb?" in message


def test_an_archive_with_too_many_members_is_refused(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(core_io, "MAX_ZIP_MEMBERS", 3)
    fake.archives[SLUG] = make_zip({**FILES, "extra.txt": "x"})
    assert f"{SLUG}.zip: 4 members, over the limit of 3 (zip bomb?)" in _download_error(fake, tmp_path)


@pytest.mark.parametrize("mode", [0o644, 0o600])
def test_a_kaggle_json_readable_by_others_is_one_warning(tmp_path, monkeypatch, caplog, capsys, mode):
    """The client prints its warning on stdout, which `_api` keeps out of ours: it reaches the log,
    once per process (two clients here), and the key never goes with it."""
    config = _isolate(monkeypatch, tmp_path / "home")
    key = "k3y-readable-by-others"
    (config / "kaggle.json").write_text(json.dumps({"username": "tester", "key": key}))
    (config / "kaggle.json").chmod(mode)
    monkeypatch.setattr(kaggle_api, "_WARNED", set())
    dest = tmp_path / "raw"
    dest.mkdir()
    with FakeKaggle(users={"tester": key}) as server, caplog.at_level("INFO"):
        point_client_at(server, monkeypatch, config)
        server.archives[SLUG] = make_zip(FILES)
        kaggle_api.download_competition(SLUG, dest)
        assert kaggle_api.submission_limits(SLUG) is not None
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    if mode == 0o600:
        assert warnings == []
    else:
        (line,) = warnings
        assert "readable by other users" in line and f"chmod 600 {config / 'kaggle.json'}" in line
    out, err = capsys.readouterr()
    assert key not in caplog.text + out + err


def test_rules_not_accepted_is_403_with_what_to_do(fake, tmp_path):
    fake.rules_not_accepted.add(SLUG)
    message = _download_error(fake, tmp_path)
    assert "HTTP 403" in message and f"kaggle.com/c/{SLUG}/rules" in message
    assert len(fake.called("DownloadDataFiles")) == 1  # not retried: waiting does not help


def test_bad_credentials_are_401(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLE_KEY", "wrong")
    message = _download_error(fake, tmp_path)
    assert "credentials rejected (HTTP 401" in message and "KAGGLE_API_TOKEN" in message


def test_unknown_competition_is_404(fake, tmp_path):
    del fake.archives[SLUG]
    assert f"{SLUG}: not found (HTTP 404)" in _download_error(fake, tmp_path)


def test_no_credentials_at_all(fake, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    assert "no credentials found" in _download_error(fake, tmp_path)
    assert "Authentication required" not in capsys.readouterr().out  # the client's help text stays out


def test_access_token_is_introspected_then_sent_as_bearer(fake, tmp_path, monkeypatch):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    fake.tokens["tok-123"] = "tester"
    monkeypatch.setenv("KAGGLE_API_TOKEN", "tok-123")
    dest = tmp_path / "raw"
    dest.mkdir()
    kaggle_api.download_competition(SLUG, dest)
    assert fake.called("IntrospectToken") and sorted(os.listdir(dest)) == sorted(FILES)
    assert [h["Authorization"] for m, _, h in fake.calls if m == "DownloadDataFiles"] == ["Bearer tok-123"]


def test_rate_limit_is_retried_then_succeeds(fake, tmp_path):
    fake.fail("DownloadDataFiles", 429, times=2, message="Too many requests", headers={"Retry-After": "0"})
    dest = tmp_path / "raw"
    dest.mkdir()
    kaggle_api.download_competition(SLUG, dest)
    assert len(fake.called("DownloadDataFiles")) == 3 and sorted(os.listdir(dest)) == sorted(FILES)


def test_rate_limit_that_never_ends_gives_up_with_a_message(fake, tmp_path):
    fake.fail("DownloadDataFiles", 429, times=kaggle_api.ATTEMPTS, headers={"Retry-After": "0"})
    assert "rate limited (HTTP 429)" in _download_error(fake, tmp_path)
    assert len(fake.called("DownloadDataFiles")) == kaggle_api.ATTEMPTS


@pytest.fixture
def submission(tmp_path) -> Path:
    path = tmp_path / "submission.csv"
    path.write_text(SAMPLE.replace(",0\n", ",1\n"))
    return path


def test_submit_uploads_creates_and_reads_back_the_score(fake, submission):
    fake.pending_polls = 1  # scored on the second look
    record = kaggle_api.submit(SLUG, submission, "cv 0.81", poll=0.01)
    assert record == {"ref": "1001", "status": "complete", "public": 0.77512, "private": None, "error": ""}
    methods = [m for m, _, _ in fake.calls]
    assert methods[:3] == ["StartSubmissionUpload", "PUT", "CreateSubmission"]
    assert methods[3:] == ["ListSubmissions", "ListSubmissions"]
    (start,) = fake.called("StartSubmissionUpload")
    assert start["competitionName"] == SLUG and start["fileName"] == "submission.csv"
    assert start["contentLength"] == submission.stat().st_size
    assert fake.uploads["blob-1"] == submission.read_bytes()
    (create,) = fake.called("CreateSubmission")
    assert create == {"competitionName": SLUG, "blobFileTokens": "blob-1", "submissionDescription": "cv 0.81"}


def test_submit_that_is_still_scoring_returns_pending(fake, submission):
    fake.pending_polls = 100
    record = kaggle_api.submit(SLUG, submission, "m", wait=0.05, poll=0.01)
    assert record["status"] == "pending" and record["public"] is None


@pytest.mark.parametrize(
    "description, expected", [("Bad column Survived", "Bad column Survived"), ("", "Kaggle gave no reason")]
)
def test_submit_that_fails_to_score_says_why(fake, submission, description, expected):
    """Returned, not raised: the submission exists on Kaggle, so the command records it first."""
    fake.error_description = description
    record = kaggle_api.submit(SLUG, submission, "m", poll=0.01)
    assert record["status"] == "error" and record["error"] == expected and record["ref"] == "1001"


def test_submission_limits_with_the_real_fields(fake, submission):
    assert kaggle_api.submission_limits(SLUG) == {"left": 5, "today": 0}
    kaggle_api.submit(SLUG, submission, "m", poll=0.01)
    assert kaggle_api.submission_limits(SLUG) == {"left": 4, "today": 1}
    assert fake.called("GetSubmissionLimits")[-1] == {"competitionName": SLUG}


def test_submission_limits_unavailable_is_none_not_an_error(fake):
    fake.fail("GetSubmissionLimits", 500)
    assert kaggle_api.submission_limits(SLUG) is None
    assert len(fake.called("GetSubmissionLimits")) == 1  # advice only: never retried
    fake.daily_limit = 0  # all zeros: not on a team yet, Kaggle cannot say
    fake.submissions.clear()
    assert kaggle_api.submission_limits(SLUG) is None


def test_list_submissions_reads_every_page(fake, submission):
    fake.scoring = False
    fake.daily_limit = 10
    for i in range(5):
        submission.write_text(SAMPLE.replace(",0\n", f",{i % 2}\n"))
        kaggle_api.submit(SLUG, submission, f"m{i}", wait=0)
    fake.calls.clear()
    records = kaggle_api.list_submissions(SLUG, page_size=2)
    assert [r["ref"] for r in records] == ["1005", "1004", "1003", "1002", "1001"]
    assert {r["status"] for r in records} == {"pending"} and records[0]["public"] is None
    assert [b.get("pageToken", "") for b in fake.called("ListSubmissions")] == ["", "2", "4"]
    fake.scoring = True
    assert {(r["status"], r["public"]) for r in kaggle_api.list_submissions(SLUG)} == {("complete", 0.77512)}


def test_submit_refused_by_kaggle_is_an_error_not_a_success(fake, submission):
    fake.create_message = "Your team has used its submission allowance (5 of 5). This resets at midnight UTC."
    with pytest.raises(PipelineError, match=r"submission not accepted: Your team has used its submission allowance"):
        kaggle_api.submit(SLUG, submission, "m")


def test_submit_before_accepting_the_rules(fake, submission):
    fake.rules_not_accepted.add(SLUG)
    with pytest.raises(PipelineError, match=r"HTTP 403.*accept the competition's rules"):
        kaggle_api.submit(SLUG, submission, "m")
    assert not fake.called("CreateSubmission")


def test_submit_command_records_the_kaggle_score(fake, tmp_path, monkeypatch, capsys):
    folder, raw = tmp_path / "submissions" / "comp", tmp_path / "raw"
    folder.mkdir(parents=True)
    raw.mkdir()
    (folder / "submission.csv").write_text(SAMPLE.replace(",0\n", ",1\n"))
    (folder / "metrics.json").write_text(json.dumps({"metric": "accuracy", "cv": 0.8, "models": {}}))
    (raw / "sample_submission.csv").write_text(SAMPLE)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"competitions": {"comp": SPEC}}))
    argv = ["submit", "comp", "--params", str(params), "--dir", str(folder), "--raw", str(raw), "--message", "first"]
    assert main(argv) == 0
    history = pd.read_csv(folder / "history.csv")
    assert history.loc[0, "public"] == 0.77512 and history.loc[0, "cv"] == 0.8 and pd.isna(history.loc[0, "private"])
    assert "public 0.77512, private hidden" in capsys.readouterr().out
    assert fake.called("CreateSubmission")[0]["submissionDescription"] == "first"
