"""Two clean `dvc repro` runs with a fixed seed on CPU give byte-identical results.

Two fresh temporary repos (the `dvc_repo` pattern of conftest) get the same tiny params
(Titanic; LightGBM tuned by Optuna, logistic regression and a torch MLP trained on 3 folds,
a distilled student, the ensemble) and run `dvc repro` at the same time, so they also
compete for the two cores as they would on a busy machine. The submission and metrics.json
must have the same sha256; so must every prediction array and Optuna's best params on the
way, which names the first stage to blame when the end results differ.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import TITANIC, make_dvc_repo, tiny_params

COMPARED = ("submissions/titanic/submission.csv", "submissions/titanic/metrics.json")


def _new_repo(path: Path) -> Path:
    repo = make_dvc_repo(path)
    (repo / "params.yaml").write_text(yaml.safe_dump(tiny_params(titanic=TITANIC)))
    return repo


def _digests(repo: Path) -> dict[str, str]:
    files = [repo / f for f in COMPARED]
    files += sorted((repo / "data").rglob("*.npy")) + [repo / "data/tune/titanic/best_params.json"]
    files += sorted((repo / "submissions").rglob("*.npy"))
    return {str(f.relative_to(repo)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


@pytest.mark.slow
def test_two_clean_repros_are_byte_identical(tmp_path):
    repos = [_new_repo(tmp_path / name) for name in ("first", "second")]
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    procs = [
        subprocess.Popen(["dvc", "repro"], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for repo in repos
    ]
    for proc in procs:
        out = proc.communicate(timeout=900)[0].decode()
        assert proc.returncode == 0, out[-3000:]

    first, second = (_digests(repo) for repo in repos)
    assert set(first) == set(second) and len(first) > 10
    differ = [f for f in first if first[f] != second[f]]
    assert differ == [], f"not deterministic: {differ}"
    assert all(first[f] == second[f] for f in COMPARED)
