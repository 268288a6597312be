"""The leaderboard loop: `submit` records, `leaderboard` refreshes, compares and flags.

Kaggle competitions run the REAL `kaggle` client against `tests/fake_kaggle.py` on loopback
(as tests/test_kaggle_api.py does; distinctive credentials, so that a leak is findable);
embedded ones the offline leaderboard. Every test checks that no key or token reaches
stdout, stderr, the log or a file the commands write.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipelines.__main__ import main
from pipelines.commands.submit import chain_params
from pipelines.core.config import parse_params
from pipelines.outputs.history import COLUMNS, load_history
from pipelines.sources import embedded
from tests.conftest import ROOT, TITANIC
from tests.fake_kaggle import FakeKaggle
from tests.test_kaggle_api import SAMPLE, SPEC, _isolate, point_client_at

KEY, TOKEN = "k3y-5ecret-9f8e7d6c", "tok-5ecret-a1b2c3"
CVS = [0.80, 0.81, 0.82, 0.83, 0.84]
OUTLIER = 3  # its public score lands 10 fold stds below its CV


class Workspace:
    """params.yaml, the raw sample and a submissions folder in tmp_path; `submit` / `leaderboard` argv."""

    def __init__(self, root: Path, spec: dict, sample: str):
        self.root, self.folder, self.raw = root, root / "submissions" / "comp", root / "raw"
        self.folder.mkdir(parents=True)
        self.raw.mkdir()
        (self.raw / "sample_submission.csv").write_text(sample)
        self.params = root / "params.yaml"
        self.params.write_text(yaml.safe_dump({"competitions": {"comp": spec}}))

    def stage(self, text: str, cv: float, cv_std: float = 0.01) -> None:
        (self.folder / "submission.csv").write_text(text)
        (self.folder / "metrics.json").write_text(json.dumps({"metric": "accuracy", "cv": cv, "cv_std": cv_std}))

    def submit(self, *extra: str) -> int:
        argv = ["submit", "comp", "--params", str(self.params), "--dir", str(self.folder), "--raw", str(self.raw)]
        return main([*argv, "--wait", "0", *extra])

    def leaderboard(self, *extra: str) -> int:
        return main(["leaderboard", "comp", "--params", str(self.params), "--dir", str(self.folder), *extra])

    def written(self) -> str:
        return "".join(p.read_text() for p in self.folder.glob("*.csv"))


def variant(i: int) -> str:
    """A different valid submission for each i (the labels of the five test ids are i's bits)."""
    return "id,y\n" + "".join(f"{101 + k},{(i >> k) & 1}\n" for k in range(5))


def no_secret(*texts: str) -> None:
    for text in texts:
        assert KEY not in text and TOKEN not in text


@pytest.fixture
def fake(tmp_path, monkeypatch):
    config = _isolate(monkeypatch, tmp_path / "home")
    monkeypatch.setenv("KAGGLE_USERNAME", "tester")
    monkeypatch.setenv("KAGGLE_KEY", KEY)
    with FakeKaggle(users={"tester": KEY}) as server:
        point_client_at(server, monkeypatch, config)
        server.daily_limit = 10
        yield server


@pytest.fixture
def ws(tmp_path):
    return Workspace(tmp_path, SPEC, SAMPLE)


def scorer(private: bool):
    """The fake's scores by uploaded file: public = CV + 0.002, but the outlier's 0.10 below."""

    def score(data: bytes) -> dict:
        i = next(i for i in range(len(CVS)) if variant(i).encode() == data)
        public = CVS[i] - 0.10 if i == OUTLIER else CVS[i] + 0.002
        return {"publicScore": f"{public:.5f}", "privateScore": f"{CVS[i] - 0.005:.5f}" if private else ""}

    return score


def test_five_submissions_scored_later_then_refreshed(fake, ws, capsys, caplog):
    fake.scoring, fake.scorer = False, scorer(private=False)
    for i, cv in enumerate(CVS):
        ws.stage(variant(i), cv)
        assert ws.submit("-m", f"try {i}") == 0
        out = capsys.readouterr().out
        assert f"{10 - i} submission(s) left today ({i} made)" in out and "still scoring" in out
    history = load_history(ws.folder / "history.csv")
    assert list(history.columns) == COLUMNS and list(history["status"]) == ["pending"] * 5
    assert list(history["submission"]) == ["1001", "1002", "1003", "1004", "1005"]
    assert history["public"].isna().all() and list(history["cv"]) == CVS and set(history["cv_std"]) == {0.01}
    assert history["file_sha256"].nunique() == 5 and history["params"].nunique() == 1
    assert list(history["message"]) == [f"try {i}" for i in range(5)]

    fake.scoring = True  # Kaggle has scored them since
    assert ws.leaderboard() == 0
    out = capsys.readouterr().out
    history = load_history(ws.folder / "history.csv")
    assert list(history["status"]) == ["complete"] * 5 and history["private"].isna().all()
    expected = [cv - 0.10 if i == OUTLIER else cv + 0.002 for i, cv in enumerate(CVS)]
    assert history["public"].tolist() == pytest.approx(expected)
    assert "refreshed from Kaggle: 5 of 5 submission(s) changed" in out
    assert "1 of 5 scored submission(s) outside CV +/- 2 std" in out
    assert "Spearman +0.40" in out  # ranks of public: 2 3 4 1 5 against CV's 1..5
    assert f"draw it: dvc plots show {ws.folder / 'cv_vs_public.csv'} -x cv -y public --template scatter" in out
    board = pd.read_csv(ws.folder / "leaderboard.csv", dtype={"submission": str})
    assert board["outside"].tolist() == [i == OUTLIER for i in range(5)]
    assert board["z"].tolist() == pytest.approx([(p - c) / 0.01 for p, c in zip(expected, CVS, strict=True)])
    flagged = [line for line in out.splitlines() if line.rstrip().endswith("!") or " ! " in line]
    assert len(flagged) == 1 and "1004" in flagged[0]
    plot = pd.read_csv(ws.folder / "cv_vs_public.csv")
    assert {"cv", "public", "low", "high"} <= set(plot.columns) and len(plot) == 5
    assert plot["public"].tolist() == pytest.approx(expected)

    fake.scorer = scorer(private=True)  # the competition has ended: private scores are shown
    assert ws.leaderboard() == 0
    history = load_history(ws.folder / "history.csv")
    assert history["private"].tolist() == pytest.approx([cv - 0.005 for cv in CVS])
    captured = capsys.readouterr()
    no_secret(captured.out, captured.err, caplog.text, ws.written())


def test_identical_file_is_refused_unless_forced(fake, ws, capsys):
    ws.stage(variant(1), 0.8)
    assert ws.submit() == 0
    assert ws.submit() == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "submission.csv: identical" in err[0]
    assert "--force" in err[0] and "submission 1001" in err[0]
    assert len(fake.called("CreateSubmission")) == 1 and len(load_history(ws.folder / "history.csv")) == 1
    assert ws.submit("--force") == 0
    assert len(fake.called("CreateSubmission")) == 2 and len(load_history(ws.folder / "history.csv")) == 2
    captured = capsys.readouterr()
    no_secret(captured.out, captured.err, ws.written())


def test_no_submissions_left_today_is_refused_before_uploading(fake, ws, capsys):
    fake.daily_limit = 1
    ws.stage(variant(1), 0.8)
    assert ws.submit() == 0
    ws.stage(variant(2), 0.8)
    assert ws.submit() == 2
    assert "no submissions left today (1 made)" in capsys.readouterr().err
    assert len(fake.called("StartSubmissionUpload")) == 1


def test_limits_unavailable_still_submits(fake, ws, capsys):
    fake.fail("GetSubmissionLimits", 404)
    ws.stage(variant(1), 0.8)
    assert ws.submit() == 0
    out = capsys.readouterr().out
    assert "left today" not in out and "submission 1001" in out


def test_failed_scoring_is_recorded_then_reported(fake, ws, capsys):
    fake.error_description = "Submission has 4 rows, expected 5"
    ws.stage(variant(1), 0.8)
    assert ws.submit() == 2
    assert "submission 1001 failed to score: Submission has 4 rows" in capsys.readouterr().err
    history = load_history(ws.folder / "history.csv")
    assert list(history["status"]) == ["error"] and list(history["submission"]) == ["1001"]


def test_leaderboard_and_submit_in_subprocesses_with_an_access_token(tmp_path, monkeypatch):
    """The real command lines, the client sent to the fake through HTTP_PROXY, a Bearer token."""
    _isolate(monkeypatch, tmp_path / "home")
    ws = Workspace(tmp_path, SPEC, SAMPLE)
    with FakeKaggle(users={}, tokens={TOKEN: "tester"}) as fake:
        fake.scoring = False
        env = {**os.environ, "HTTP_PROXY": fake.url, "http_proxy": fake.url, "PYTHONPATH": str(ROOT),
               "KAGGLE_API_TOKEN": TOKEN}  # fmt: skip
        common = ["comp", "--params", str(ws.params), "--dir", str(ws.folder)]
        ws.stage(variant(1), 0.8)
        submit = [sys.executable, "-m", "pipelines", "submit", *common, "--raw", str(ws.raw), "--wait", "0"]
        first = subprocess.run(submit, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert first.returncode == 0, first.stderr
        fake.scoring = True
        board = [sys.executable, "-m", "pipelines", "leaderboard", *common]
        second = subprocess.run(board, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert "0.77512" in second.stdout and "needs 3 scored submissions, 1 so far" in second.stdout
    assert [m for m, _, h in fake.calls if m == "CreateSubmission" and h["Authorization"] == f"Bearer {TOKEN}"]
    history = load_history(ws.folder / "history.csv")
    assert history.loc[0, "commit"] == "" and history.loc[0, "dirty"] == ""  # tmp_path is no git repo
    no_secret(first.stdout, first.stderr, second.stdout, second.stderr, ws.written())


OLD_HISTORY = """time,commit,params,metric,cv,public,private,message
2026-11-01T10:00:00+00:00,abc1234+dirty,0123456789abcdef,accuracy,0.84,0.9,0.81,first
2026-11-02T10:00:00+00:00,def5678,0123456789abcdef,accuracy,0.85,,,
"""


def test_history_of_the_first_version_still_loads(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(OLD_HISTORY)
    history = load_history(path)
    assert list(history.columns) == COLUMNS
    assert list(history["commit"]) == ["abc1234", "def5678"] and list(history["dirty"]) == ["True", "False"]
    assert history["submission"].tolist() == ["", ""] and history["cv_std"].isna().all()
    assert history.loc[0, "public"] == 0.9 and pd.isna(history.loc[1, "public"]) and history.loc[1, "message"] == ""


def titanic_workspace(tmp_path) -> tuple[Workspace, pd.DataFrame]:
    parts = embedded.carve("titanic")
    ws = Workspace(tmp_path, TITANIC, parts["sample_submission.csv"].to_csv(index=False))
    return ws, parts["answers"]


def test_embedded_refresh_through_the_offline_leaderboard(tmp_path, capsys):
    ws, answers = titanic_workspace(tmp_path)
    (ws.folder / "history.csv").write_text(OLD_HISTORY)  # older rows, no file kept: left as recorded
    ws.stage(answers.to_csv(index=False), 0.84, 0.02)
    assert ws.submit("-m", "perfect") == 0
    ws.stage(answers.assign(Survived=1 - answers["Survived"]).to_csv(index=False), 0.83, 0.02)
    assert ws.submit("-m", "inverted") == 0
    assert "submission offline-4: cv 0.83000 +/- 0.02000; public 0.00000" in capsys.readouterr().out
    history = load_history(ws.folder / "history.csv")
    history.loc[2:, ["status", "public", "private"]] = ["pending", None, None]  # as if not scored yet
    history.to_csv(ws.folder / "history.csv", index=False)

    assert ws.leaderboard() == 0
    out = capsys.readouterr().out
    assert "refreshed from the offline leaderboard: 2 of 4 submission(s) changed" in out
    history = load_history(ws.folder / "history.csv")
    assert history.loc[0, "public"] == 0.9 and pd.isna(history.loc[1, "public"]) and history.loc[2, "public"] == 1.0
    assert history["private"].tolist()[2:] == [1.0, 0.0] and history.loc[0, "private"] == 0.81
    board = pd.read_csv(ws.folder / "leaderboard.csv")
    assert board["outside"].tolist()[2:] == [True, True]  # 1.0 and 0.0 are far from 0.84 / 0.83 +/- 0.04
    assert "rank correlation of CV and public over 3 scored submissions: Spearman" in out


def test_local_competition_records_cv_only(tmp_path, capsys):
    spec = {**SPEC, "source": "local", "path": str(tmp_path / "raw")}
    ws = Workspace(tmp_path, spec, SAMPLE)
    ws.stage(variant(3), 0.8)
    assert ws.submit() == 0
    assert ws.leaderboard() == 0
    out = capsys.readouterr().out
    assert "no leaderboard for a local competition" in out and "local-1" in out
    assert "needs 3 scored submissions, 0 so far" in out


def test_leaderboard_without_submissions_is_one_line(tmp_path, capsys):
    ws = Workspace(tmp_path, SPEC, SAMPLE)
    assert ws.leaderboard("--no-refresh") == 2
    assert "history.csv: no submissions yet" in capsys.readouterr().err


def test_params_hash_covers_this_chain_only():
    other = {**TITANIC, "metric": "roc_auc"}
    alone = parse_params({"competitions": {"titanic": TITANIC}})
    with_other = parse_params({"competitions": {"titanic": TITANIC, "other": other}})
    assert chain_params(alone, "titanic") == chain_params(with_other, "titanic")
    assert chain_params(with_other, "titanic") != chain_params(with_other, "other")
    reseeded = parse_params({"competitions": {"titanic": TITANIC}, "seed": 7})
    assert chain_params(reseeded, "titanic") != chain_params(alone, "titanic")
