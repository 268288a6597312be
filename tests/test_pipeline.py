"""End to end: real `dvc repro` in a temporary git repo on tiny settings."""

import json

import numpy as np
import pandas as pd
import yaml

from pipelines.metrics import get_metric
from tests.conftest import TITANIC, run, tiny_params


def repro(repo, *targets):
    return run(["dvc", "repro", *targets], repo, env={"PIPELINES_PROGRESS": ""}, timeout=900)


def test_titanic_repro_end_to_end_and_noop(dvc_repo):
    (dvc_repo / "params.yaml").write_text(yaml.safe_dump(tiny_params(titanic=TITANIC)))
    out = repro(dvc_repo)
    for stage in ("download", "clean", "tune", "train", "distill", "ensemble"):
        assert f"'{stage}@titanic'" in out.stdout, stage

    sub_dir = dvc_repo / "submissions" / "titanic"
    sub = pd.read_csv(sub_dir / "submission.csv")
    sample = pd.read_csv(dvc_repo / "data/raw/titanic/sample_submission.csv")
    assert list(sub.columns) == list(sample.columns) and list(sub.PassengerId) == list(sample.PassengerId)
    assert set(sub.Survived) <= {0, 1} and not sub.isna().any().any()

    # the reported CV is the metric of the saved OOF predictions
    metrics = json.loads((sub_dir / "metrics.json").read_text())
    y = np.load(dvc_repo / "data/clean/titanic/target.npy")
    oof = np.load(sub_dir / "oof.npy")
    assert metrics["cv"] == get_metric("accuracy")(y, oof, "binary")
    assert set(metrics["models"]) == {"lightgbm", "logreg", "mlp", "distill:student"}
    assert metrics["cv"] > 0.78
    for model, cv in metrics["models"].items():
        if not model.startswith("distill"):
            model_oof = np.load(dvc_repo / f"data/train/titanic/{model}/oof.npy")
            assert cv == get_metric("accuracy")(y, model_oof, "binary")
    assert (sub_dir / "plots" / "confusion.csv").exists() and (sub_dir / "plots" / "roc.csv").exists()
    speed = json.loads((dvc_repo / "data/distill/titanic/speed.json").read_text())
    assert speed["student_rows_per_s"] > 0 and speed["teacher_rows_per_s"] > 0

    # nothing changed: nothing runs
    again = repro(dvc_repo)
    assert "Running stage" not in again.stdout, again.stdout

    # a changed ensemble param re-runs only the ensemble
    params = yaml.safe_load((dvc_repo / "params.yaml").read_text())
    params["ensemble"]["methods"] = ["mean"]
    (dvc_repo / "params.yaml").write_text(yaml.safe_dump(params))
    third = repro(dvc_repo)
    assert "Running stage 'ensemble@titanic'" in third.stdout
    assert "Running stage 'train@titanic'" not in third.stdout
    assert "Running stage 'distill@titanic'" not in third.stdout

    # the submit command scores on the offline leaderboard and records history
    run(["python", "-m", "pipelines", "submit", "titanic", "--message", "first"], dvc_repo)
    history = pd.read_csv(sub_dir / "history.csv")
    assert len(history) == 1 and 0.6 < history.loc[0, "public"] <= 1 and 0.6 < history.loc[0, "private"] <= 1
    assert history.loc[0, "cv"] == json.loads((sub_dir / "metrics.json").read_text())["cv"]


def test_local_competition_from_spec_alone(dvc_repo, tmp_path):
    """A Kaggle-layout folder plus one spec entry is all a new competition needs."""
    from pipelines.embedded import carve

    folder = tmp_path / "split"
    folder.mkdir()
    for name, frame in carve("titanic").items():
        if name.endswith(".csv"):
            frame.to_csv(folder / name, index=False)
    spec = {**TITANIC, "source": "local", "path": str(folder)}
    spec.pop("kaggle")
    params = tiny_params(mysplit=spec)
    params["train"]["models"]["tabular"] = ["logreg"]
    (dvc_repo / "params.yaml").write_text(yaml.safe_dump(params))
    repro(dvc_repo, "ensemble@mysplit")
    sub = pd.read_csv(dvc_repo / "submissions/mysplit/submission.csv")
    assert len(sub) == len(pd.read_csv(folder / "sample_submission.csv"))
