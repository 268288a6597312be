"""Shared fixtures: tiny data in tmp_path, and a temporary git + DVC repo for end-to-end runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def run(cmd, cwd, check=True, env=None, **kw):
    full_env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **(env or {})}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=full_env, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def tiny_params(**competitions) -> dict:
    """Params for fast tests: few folds, trials and epochs."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["competitions"] = competitions
    params["folds"] = {"n_splits": 3}
    params["tune"] = {"models": ["lightgbm"], "n_trials": 2, "timeout": None, "storage": None}
    params["train"]["models"] = {
        "tabular": ["lightgbm", "logreg", "mlp"],
        "image": ["cnn"],
        "text": ["tfidf_linear", "text_bert", "lightgbm"],
    }
    params["train"]["epochs"] = 3
    params["distill"]["epochs"] = 3
    params["ensemble"]["iterations"] = 10
    return params


def titanic_folder(raw: Path, full=None, n_train: int = 600) -> dict:
    """Titanic's first `n_train` labelled rows (of `full`, default the embedded set) as train.csv
    and the rest as test.csv + sample_submission.csv in `raw`; returns its local spec."""
    from pipelines.sources.embedded import get_embedded

    full = get_embedded("titanic").load() if full is None else full
    raw.mkdir(parents=True, exist_ok=True)
    full.iloc[:n_train].to_csv(raw / "train.csv", index=False)
    full.iloc[n_train:].drop(columns="Survived").to_csv(raw / "test.csv", index=False)
    full.iloc[n_train:][["PassengerId"]].assign(Survived=0).to_csv(raw / "sample_submission.csv", index=False)
    return {"source": "local", "path": str(raw), "id": "PassengerId", "target": "Survived", "task": "binary"}


def play_stages(root: Path, name: str, params: dict, raw: Path) -> dict[str, Path]:
    """clean, tune, train and ensemble (no student) of competition `name` in-process on the
    Kaggle-layout folder `raw`; returns the stage folders (clean, tune, train, out)."""
    from pipelines.__main__ import main

    (root / "params.yaml").write_text(yaml.safe_dump(params))
    d = {k: root / k for k in ("clean", "tune", "train", "cache", "out")}
    steps = [
        ["clean", "--raw", str(raw), "--out", str(d["clean"])],
        ["tune", "--clean", str(d["clean"]), "--out", str(d["tune"])],
        ["train", "--clean", str(d["clean"]), "--tuned", str(d["tune"]), "--cache", str(d["cache"]),
         "--out", str(d["train"])],
        ["ensemble", "--raw", str(raw), "--clean", str(d["clean"]), "--train", str(d["train"]),
         "--distill", str(root / "no-student"), "--out", str(d["out"])],
    ]  # fmt: skip
    for step in steps:
        assert main([step[0], name, "--params", str(root / "params.yaml"), *step[1:]]) == 0, step[0]
    return d


def make_dvc_repo(repo: Path) -> Path:
    """A git + DVC repo at `repo` holding this project's pipeline; write params, then run `dvc repro`."""
    repo.mkdir()
    shutil.copytree(ROOT / "pipelines", repo / "pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", repo / "dvc.yaml")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    run(["git", "init", "-q"], repo, env=env)
    run(["dvc", "init", "-q"], repo, env=env)
    run(["dvc", "config", "core.autostage", "false"], repo, env=env)
    shutil.copytree(ROOT / ".dvc" / "plots", repo / ".dvc" / "plots")  # the project's own plot templates
    for key, value in project_dvc_config().items():  # and its settings (the offline page of `dvc plots`)
        run(["dvc", "config", key, value], repo, env=env)
    (repo / ".gitignore").write_text("__pycache__/\n/data/cache/\n")
    return repo


def project_dvc_config() -> dict[str, str]:
    """The settings of this project's `.dvc/config`, as `section.key` -> value."""
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / ".dvc" / "config")
    return {f"{section}.{key}": value for section in config.sections() for key, value in config[section].items()}


@pytest.fixture
def dvc_repo(tmp_path):
    """A git + DVC repo holding this project's pipeline (see make_dvc_repo)."""
    return make_dvc_repo(tmp_path / "repo")


TITANIC = {
    "source": "embedded",
    "kaggle": "titanic",
    "id": "PassengerId",
    "target": "Survived",
    "task": "binary",
    "metric": "accuracy",
}
