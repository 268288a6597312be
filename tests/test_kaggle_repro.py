"""`dvc repro` with `source: kaggle`, the real `kaggle` client against the fake server.

A subprocess reaches tests/fake_kaggle.py through `KAGGLE_API_ENVIRONMENT=LOCALHOST` plus
`HTTP_PROXY` (see /work/shared/KAGGLE-API.md), with HOME and the Kaggle config dir in a
temporary folder outside the repo and no credentials or proxies inherited from the caller.
Two checks: a competition downloaded from Kaggle plays exactly like the same files read from
a local folder (the same submission, byte for byte), and a download leaves no trace of the
key or token anywhere: stdout, stderr, params, dvc.lock, .dvc/, .git/, data/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import make_dvc_repo, tiny_params
from tests.fake_kaggle import FakeKaggle, make_zip

SLUG = "tiny-tabular"
SPEC = {"id": "id", "target": "y", "task": "binary", "metric": "accuracy"}
INHERITED = ("PROXY", "KAGGLE_")  # environment variables of the caller that must not leak in


def competition_files(n_train: int = 120, n_test: int = 40, seed: int = 0) -> dict[str, str]:
    """A small binary competition in Kaggle layout: two numbers and a category drive the label."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    frame = pd.DataFrame({"id": np.arange(1, n + 1), "x1": rng.normal(size=n).round(3)})
    frame["x2"] = rng.normal(size=n).round(3)
    frame["colour"] = rng.choice(["red", "green", "blue"], n)
    latent = frame["x1"] - 0.5 * frame["x2"] + (frame["colour"] == "red") + rng.normal(0, 0.5, n)
    frame["y"] = (latent > 0.3).astype(int)
    train, test = frame.iloc[:n_train], frame.iloc[n_train:]
    return {
        "train.csv": train.to_csv(index=False),
        "test.csv": test.drop(columns="y").to_csv(index=False),
        "sample_submission.csv": test[["id"]].assign(y=0).to_csv(index=False),
    }


def kaggle_env(server: FakeKaggle, home: Path, **credentials: str) -> dict[str, str]:
    """The environment of a subprocess whose `kaggle` client talks to `server`."""
    env = {k: v for k, v in os.environ.items() if not any(part in k.upper() for part in INHERITED)}
    config = home / ".kaggle"
    config.mkdir(parents=True, exist_ok=True)
    return {
        **env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        "HOME": str(home),
        "KAGGLE_CONFIG_DIR": str(config),
        "KAGGLE_API_ENVIRONMENT": "LOCALHOST",
        "HTTP_PROXY": server.url,
        "http_proxy": server.url,
        "DVC_NO_ANALYTICS": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
        **credentials,
    }


def repro(repo: Path, env: dict, *targets: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["dvc", "repro", *targets], cwd=repo, env=env, capture_output=True, text=True, timeout=900
    )  # fmt: skip
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
def test_kaggle_source_plays_like_the_same_files_from_a_local_folder(tmp_path):
    files = competition_files()
    folder = tmp_path / "by-hand"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    params = tiny_params(
        kag={"source": "kaggle", "kaggle": SLUG, **SPEC}, loc={"source": "local", "path": str(folder), **SPEC}
    )
    params["tune"]["n_trials"] = 2
    params["train"]["models"]["tabular"] = ["lightgbm", "logreg"]
    repo = make_dvc_repo(tmp_path / "repo")
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    with FakeKaggle() as server:
        server.archives[SLUG] = make_zip(files)
        repro(repo, kaggle_env(server, tmp_path / "home", KAGGLE_USERNAME="tester", KAGGLE_KEY="secret"))
        assert len(server.called("DownloadDataFiles")) == 1
    for name in files:  # the same raw files, whichever way they came
        assert (repo / "data/raw/kag" / name).read_bytes() == (repo / "data/raw/loc" / name).read_bytes()
    kag, loc = repo / "submissions/kag", repo / "submissions/loc"
    assert (kag / "submission.csv").read_bytes() == (loc / "submission.csv").read_bytes()
    assert json.loads((kag / "metrics.json").read_text()) == json.loads((loc / "metrics.json").read_text())


def _written_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


KEY, TOKEN = "k3y-never-to-be-seen", "t0ken-never-to-be-seen"
CREDENTIALS = {  # way -> (the secret, what the environment carries, kaggle.json or None)
    "kaggle.json readable by others": (KEY, {}, {"username": "tester", "key": KEY}),
    "KAGGLE_KEY": (KEY, {"KAGGLE_USERNAME": "tester", "KAGGLE_KEY": KEY}, None),
    "KAGGLE_API_TOKEN": (TOKEN, {"KAGGLE_API_TOKEN": TOKEN}, None),
}


@pytest.mark.slow
@pytest.mark.parametrize("way", list(CREDENTIALS))
def test_a_download_leaves_no_trace_of_the_secret(tmp_path, way):
    secret, credentials, kaggle_json = CREDENTIALS[way]
    repo = make_dvc_repo(tmp_path / "repo")
    (repo / "params.yaml").write_text(yaml.safe_dump(tiny_params(comp={"source": "kaggle", "kaggle": SLUG, **SPEC})))
    with FakeKaggle(users={"tester": secret}, tokens={secret: "tester"}) as server:
        server.archives[SLUG] = make_zip(competition_files())
        server.fail("DownloadDataFiles", 429, times=1, headers={"Retry-After": "0"})  # a retry is logged too
        env = kaggle_env(server, tmp_path / "home", **credentials)
        if kaggle_json:
            config = Path(env["KAGGLE_CONFIG_DIR"]) / "kaggle.json"
            config.write_text(json.dumps(kaggle_json))
            config.chmod(0o644)
        proc = repro(repo, env, "download@comp")
    assert (repo / "dvc.lock").is_file() and (repo / "data/raw/comp/train.csv").is_file()
    assert "retry 1/4" in proc.stderr + proc.stdout
    if kaggle_json:  # the client's warning reaches the user, once
        assert (proc.stderr + proc.stdout).count("readable by other users") == 1
    assert secret not in proc.stdout + proc.stderr
    leaks = [str(p.relative_to(repo)) for p in _written_files(repo) if secret.encode() in p.read_bytes()]
    assert leaks == []
    assert len(_written_files(repo / "data")) >= 3 and len(_written_files(repo / ".dvc")) >= 1
