"""End to end: real `dvc repro` in a temporary git repo on tiny settings.

Titanic through every stage; a `local` competition from its spec alone; and any task from
its spec alone: a tiny regression and a tiny multiclass (qwk) one, synthetic data in Kaggle
layout, one real `dvc repro` for both on the same default model list (`logreg` must turn
into `ridge` for the regression task by itself).
"""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.core.metrics import get_metric
from tests.conftest import TITANIC, run, tiny_params

QUALITY = np.array(["Po", "Fa", "TA", "Gd", "Ex"])


def repro(repo, *targets):
    return run(["dvc", "repro", *targets], repo, timeout=900)


@pytest.mark.slow
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
    folds = np.load(dvc_repo / "data/clean/titanic/folds.npy")
    per_fold = [get_metric("accuracy")(y[folds == k], oof[folds == k], "binary") for k in range(3)]
    # the headline only: `dvc exp show` stays narrow (fold scores are in details.json)
    assert set(metrics) == {"metric", "cv", "cv_std", "models"}
    details = json.loads((sub_dir / "details.json").read_text())
    assert list(details["ensemble"]["folds"].values()) == per_fold and metrics["cv_std"] == float(np.std(per_fold)) > 0
    assert details["ensemble"]["cv"] == metrics["cv"] and details["ensemble"]["method"] in details["methods_nested_cv"]
    method, why = details["ensemble"]["method"], details["ensemble"]["chosen_by"]
    assert why.startswith(f"{method}: methods are tried simplest first")
    assert set(details["models"]) == set(metrics["models"])
    for model, d in details["models"].items():
        assert d["cv_std"] == float(np.std(list(d["folds"].values()))) and d["cv"] == metrics["models"][model]
    for model, cv in metrics["models"].items():
        if not model.startswith("distill"):
            model_oof = np.load(dvc_repo / f"data/train/titanic/{model}/oof.npy")
            assert cv == get_metric("accuracy")(y, model_oof, "binary")
    assert (sub_dir / "plots" / "confusion.csv").exists() and (sub_dir / "plots" / "roc.csv").exists()
    rates = json.loads((dvc_repo / "data/logs/titanic/distill.json").read_text())
    assert rates["student_rows_per_s"] > 0 and rates["teacher_rows_per_s"] > 0
    plan = json.loads((dvc_repo / "data/logs/titanic/plan.json").read_text())
    assert [m["name"] for m in plan["models"]] == ["lightgbm", "logreg", "mlp"] and plan["n_splits"] == 3

    # nothing changed: nothing runs
    again = repro(dvc_repo)
    assert "Running stage" not in again.stdout, again.stdout

    # a forced re-run of train (every fold from its cache) writes the same outputs: its timings
    # go to the log, so distill and ensemble stay up to date
    before = (dvc_repo / "data/train/titanic/lightgbm/scores.json").read_bytes()
    forced = run(["dvc", "repro", "-f", "-s", "train@titanic"], dvc_repo, timeout=900)
    assert "Running stage 'train@titanic'" in forced.stdout
    assert (dvc_repo / "data/train/titanic/lightgbm/scores.json").read_bytes() == before
    status = run(["dvc", "status", "distill@titanic", "ensemble@titanic"], dvc_repo)
    assert "up to date" in status.stdout, status.stdout

    # editing the image nets touches no code Titanic runs: only its zoo digest is checked again
    with (dvc_repo / "pipelines/models/nets.py").open("a") as fh:
        fh.write("\n# an edit\n")
    changed = run(["dvc", "status"], dvc_repo).stdout
    assert "zoo@titanic" in changed and not [s for s in ("tune", "train", "distill") if f"{s}@titanic" in changed]
    edited = repro(dvc_repo)
    assert "Running stage 'zoo@titanic'" in edited.stdout, edited.stdout
    assert not [s for s in ("tune", "train", "distill", "ensemble") if f"Running stage '{s}@titanic'" in edited.stdout]

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


@pytest.mark.slow
def test_local_competition_from_spec_alone(dvc_repo, tmp_path):
    """A Kaggle-layout folder plus one spec entry is all a new competition needs."""
    from pipelines.sources.embedded import carve

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


def write_layout(folder, train: pd.DataFrame, test: pd.DataFrame, id_col: str, target: str, filler) -> None:
    folder.mkdir(parents=True)
    train.to_csv(folder / "train.csv", index=False)
    test.drop(columns=[target]).to_csv(folder / "test.csv", index=False)
    pd.DataFrame({id_col: test[id_col], target: filler}).to_csv(folder / "sample_submission.csv", index=False)


def houses(n: int, seed: int = 0) -> pd.DataFrame:
    """Prices: skewed, positive, driven by area, an ordinal quality scale and a district."""
    rng = np.random.default_rng(seed)
    quality = rng.integers(0, 5, n)
    area = rng.lognormal(7, 0.4, n)
    district = rng.choice(["north", "south", "east", "west"], n)
    price = np.exp(10 + 0.8 * np.log(area) / 7 + 0.25 * quality + (district == "north") * 0.3 + rng.normal(0, 0.1, n))
    frame = pd.DataFrame({"Id": np.arange(1, n + 1), "Area": area.round(1), "Quality": QUALITY[quality]})
    frame["District"] = district
    frame.loc[rng.random(n) < 0.05, "Area"] = np.nan
    frame["Price"] = price.round(0)
    return frame


def ratings(n: int, seed: int = 1) -> pd.DataFrame:
    """An ordered 1..4 rating from two numbers and a level scale (a QWK competition)."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    level = rng.choice(["low", "medium", "high"], n)
    latent = x1 + 0.5 * x2 + (level == "high") * 0.8 - (level == "low") * 0.8 + rng.normal(0, 0.5, n)
    frame = pd.DataFrame({"row_id": np.arange(n), "x1": x1.round(4), "x2": x2.round(4), "level": level})
    frame["rating"] = np.digitize(latent, [-1.0, 0.0, 1.0]) + 1
    return frame


@pytest.mark.slow
def test_regression_and_multiclass_from_spec_alone(dvc_repo, tmp_path):
    hp, rt = houses(400), ratings(500)
    write_layout(tmp_path / "prices", hp.iloc[:300], hp.iloc[300:], "Id", "Price", 1.0)
    write_layout(tmp_path / "ratings", rt.iloc[:380], rt.iloc[380:], "row_id", "rating", 1)
    regression = {"id": "Id", "target": "Price", "task": "regression", "metric": "rmsle"}
    ordered = {"id": "row_id", "target": "rating", "task": "multiclass", "metric": "qwk"}
    params = tiny_params(
        prices={"source": "local", "path": str(tmp_path / "prices"), **regression},
        ratings={"source": "local", "path": str(tmp_path / "ratings"), **ordered},
    )
    params["train"]["models"]["tabular"] = ["lightgbm", "logreg"]
    params["tune"]["n_trials"] = 2
    params["distill"]["student"]["tabular"] = "student_gbdt"  # a tree student: soft targets, no ONNX
    (dvc_repo / "params.yaml").write_text(yaml.safe_dump(params))
    run(["dvc", "repro"], dvc_repo, timeout=600)
    speed = json.loads((dvc_repo / "data/distill/prices/speed.json").read_text())
    assert speed["onnx"] is None and "not a torch model" in speed["onnx_note"] and speed["student_cv"] < 0.2

    # regression: values, RMSLE per model and for the ensemble; logreg became ridge
    out = dvc_repo / "submissions/prices"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["metric"] == "rmsle"
    assert set(metrics["models"]) == {"lightgbm", "ridge", "distill:student"}
    y = np.load(dvc_repo / "data/clean/prices/target.npy")
    assert metrics["cv"] == get_metric("rmsle")(y, np.load(out / "oof.npy"), "regression")
    assert metrics["cv"] < 0.2 and metrics["models"]["ridge"] < 0.2  # noise alone is 0.1
    sub = pd.read_csv(out / "submission.csv")
    assert list(sub.Id) == list(hp.Id.iloc[300:]) and (sub.Price > 0).all()
    truth = hp.Price.iloc[300:].to_numpy()
    assert get_metric("rmsle")(truth, sub.Price.to_numpy(), "regression") < 0.2
    assert (out / "plots/residuals.csv").exists() and (out / "plots/oof.png").stat().st_size > 1000
    features = pd.read_parquet(dvc_repo / "data/clean/prices/train.parquet")
    assert "Quality__ord" in features and set(features["Quality__ord"]) <= {1.0, 2.0, 3.0, 4.0, 5.0}

    # multiclass scored by qwk: labels from thresholds fitted on OOF predictions
    out = dvc_repo / "submissions/ratings"
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["models"]) == {"lightgbm", "logreg", "distill:student"}
    details = json.loads((out / "details.json").read_text())
    assert any(m.endswith("+thresholds") for m in details["methods_nested_cv"])
    y = np.load(dvc_repo / "data/clean/ratings/target.npy")
    assert metrics["cv"] == get_metric("qwk")(y, np.load(out / "oof.npy"), "multiclass")
    assert metrics["cv"] > 0.7
    sub = pd.read_csv(out / "submission.csv")
    assert list(sub.columns) == ["row_id", "rating"] and set(sub.rating) <= {1, 2, 3, 4}
    truth = rt.rating.iloc[380:].to_numpy()
    assert get_metric("qwk")(truth, sub.rating.to_numpy().astype(float), "regression") > 0.7
