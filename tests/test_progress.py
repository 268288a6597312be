"""Progress bars: one setting (params.yaml's `progress`, overridden by `--[no-]progress`), one
helper (`pipelines/core/progress.py`), bars on stderr only when asked or on a terminal, and
toggling the setting re-runs no stage."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.__main__ import main
from pipelines.core import progress
from pipelines.core.config import parse_params
from pipelines.core.context import ModelContext
from pipelines.core.errors import PipelineError
from pipelines.core.metrics import get_metric
from pipelines.training.cv import FoldData, cross_validate
from tests.conftest import ROOT, TITANIC, run, tiny_params


@pytest.fixture(autouse=True)
def _reset():
    yield
    progress.configure("auto")


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(("setting", "tty", "shown"), [("auto", True, True), ("auto", False, False),
                         (True, False, True), (False, True, False)])  # fmt: skip
def test_setting_and_terminal_decide(monkeypatch, setting, tty, shown):
    stream = _Stream(tty)
    monkeypatch.setattr("sys.stderr", stream)
    progress.configure(setting)
    assert progress.enabled() is shown
    for _ in progress.bar(range(3), desc="demo folds"):
        pass
    assert ("demo folds" in stream.getvalue()) is shown


def test_param_accepts_auto_true_false_only():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert parse_params(raw).progress == "auto"
    for value in (True, False, "auto"):
        assert parse_params({**raw, "progress": value}).progress == value
    with pytest.raises(PipelineError, match=r"params.yaml: progress: .*'sometimes'"):
        parse_params({**raw, "progress": "sometimes"})


def test_flag_overrides_the_param(tmp_path):
    params = tiny_params(titanic=TITANIC)
    params["progress"] = True
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    # `report` on an empty folder: a user error (exit 2) after the setting is applied
    argv = ["report", "titanic", "--params", str(path), "--dir", str(tmp_path)]
    assert main(argv) == 2 and progress.enabled() is True
    assert main([*argv, "--no-progress"]) == 2 and progress.enabled() is False
    params["progress"] = False
    path.write_text(yaml.safe_dump(params))
    assert main([*argv, "--progress"]) == 2 and progress.enabled() is True


def test_folds_get_a_bar(capsys):
    rng = np.random.default_rng(0)
    X, y = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"]), np.tile([0, 1], 30)
    roles = {"numeric": ["a", "b", "c"]}
    ctx = ModelContext(task="binary", metric=get_metric("accuracy"), n_classes=2, roles=roles, threads=1, progress=True)
    cross_validate("logreg", {}, FoldData(X, y, X.iloc[:5], np.arange(60) % 3), ctx)
    assert "logreg folds" in capsys.readouterr().err
    cross_validate("logreg", {}, FoldData(X, y, X.iloc[:5], np.arange(60) % 3), replace(ctx, progress=False))
    assert "logreg folds" not in capsys.readouterr().err


def test_toggling_progress_reruns_nothing(dvc_repo):
    params = tiny_params(titanic=TITANIC)
    (dvc_repo / "params.yaml").write_text(yaml.safe_dump(params))
    run(["dvc", "repro", "clean@titanic"], dvc_repo)  # clean lists `seed` and `folds`: top-level params
    params["progress"] = False
    (dvc_repo / "params.yaml").write_text(yaml.safe_dump(params))
    assert run(["dvc", "status", "--with-deps", "--json", "clean@titanic"], dvc_repo).stdout.strip() == "{}"
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert not [s for s, d in stages.items() if "progress" in d["do"].get("params", [])]
