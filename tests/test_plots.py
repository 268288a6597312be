"""The ensemble's plots: the frames (fast), and what `dvc plots show` / `dvc plots diff` draw in
headless Chromium after a real tiny `dvc repro` of a binary and a regression competition
(slow; see tests/plots_page.py for how the page is drawn and counted). Multiclass plots use
the binary ones' templates; their frames are checked here too."""

from __future__ import annotations

import io
import os

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.training.cv import CVResult
from pipelines.training.plots import COLUMNS, ensemble_plots, learning_curves
from tests.conftest import ROOT, TITANIC, run, tiny_params
from tests.plots_page import chromium, div_id, draw, show
from tests.test_pipeline import houses, write_layout

RNG = np.random.default_rng(0)


def frames_for(task: str, n: int = 300):
    if task == "regression":
        y = RNG.lognormal(10, 0.5, n)
        oof, classes = y * RNG.lognormal(0, 0.1, n), []
    elif task == "binary":
        y = RNG.integers(0, 2, n)
        oof, classes = np.clip(0.3 * y + 0.7 * RNG.random(n), 0, 1), [0, 1]
    else:
        y = RNG.integers(0, 3, n)
        oof = RNG.dirichlet(np.ones(3), n) + np.eye(3)[y]
        oof, classes = oof / oof.sum(axis=1, keepdims=True), ["a", "b", "c"]
    curves = CVResult(None, None, [], 0.0, curves=[np.array([[0, 0.9, 0.7], [1, 0.6, 0.8]]), np.empty((0, 3))])
    frames = ensemble_plots(y, oof, task, classes, ["m1", "m2"], {"weights": [0.75, 0.25]},
                            {"mlp": curves.curve_frame()}, "accuracy")  # fmt: skip
    return y, frames


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_each_task_fills_its_plots_and_leaves_the_others_empty(task):
    y, frames = frames_for(task)
    assert set(frames) == set(COLUMNS)
    for name, frame in frames.items():
        assert list(frame.columns) == COLUMNS[name], name
    filled = {name for name, frame in frames.items() if len(frame)}
    shared = {"ensemble_weights", "learning_curves"}
    expected = {
        "binary": {"confusion", "roc", "precision_recall"},
        "multiclass": {"confusion", "roc", "precision_recall"},
        "regression": {"residuals", "predicted_vs_actual"},
    }[task]
    assert filled == expected | shared
    if task != "regression":
        assert len(frames["confusion"]) == len(y)
        roc = frames["roc"]
        assert (roc.fpr.iloc[0], roc.tpr.iloc[0], roc.fpr.iloc[-1], roc.tpr.iloc[-1]) == (0, 0, 1, 1)
        assert roc.fpr.is_monotonic_increasing and roc.tpr.is_monotonic_increasing
        assert frames["precision_recall"].recall.between(0, 1).all()
    else:
        pva, res = frames["predicted_vs_actual"], frames["residuals"]
        assert np.allclose(res.residual, pva.predicted - pva.actual)


def test_learning_curves_are_long_one_row_per_model_fold_epoch_and_curve():
    _, frames = frames_for("binary")
    curves = frames["learning_curves"]
    assert len(curves) == 4 and set(curves.curve) == {"training loss", "validation accuracy"}
    assert list(curves.query("curve == 'validation accuracy'").value) == [0.7, 0.8]
    assert len(learning_curves({}, "rmse")) == 0


def test_weights_without_one_per_member_leave_the_plot_empty():
    _, frames = frames_for("binary")
    assert list(frames["ensemble_weights"].weight) == [0.75, 0.25]
    from pipelines.training.plots import weights_frame

    assert len(weights_frame(["a", "b"], {"coef": [0.1, 0.2, 0.3]})) == 0


def ensemble_plot_declarations() -> dict[str, dict]:
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["ensemble"]["do"]
    return {path.split("/plots/")[1]: props for item in stage["plots"] for path, props in item.items()}


def test_every_plot_written_is_declared_with_a_template_and_its_columns():
    declared = ensemble_plot_declarations()
    assert set(declared) == {f"{name}.csv" for name in COLUMNS} | {"oof.png"}
    for name, props in declared.items():
        assert props["cache"] is False, name
        if name.endswith(".csv"):
            columns = COLUMNS[name.removesuffix(".csv")]
            assert props["template"] and props["x"] in columns and props["y"] in columns, name


# --- drawn in a browser ----------------------------------------------------------------

# the Vega marks (with their item counts) each template draws: a plot declared without its
# template (DVC's default line chart of `step`) or with no rows fails these
CLASSIFY = {
    "confusion.csv": {"rect", "text"},
    "roc.csv": {"line"},
    "precision_recall.csv": {"line"},
    "ensemble_weights.csv": {"rect"},
    "learning_curves.csv": {"line", "symbol"},
    "oof.png": {"image"},
}
REGRESS = {
    "residuals.csv": {"symbol"},
    "predicted_vs_actual.csv": {"symbol"},
    "ensemble_weights.csv": {"rect"},
    "learning_curves.csv": {"line", "symbol"},
    "oof.png": {"image"},
}
EXPECTED = {"titanic": CLASSIFY, "prices": REGRESS}


def check_drawn(drawn: dict, name: str, expected: dict[str, set]) -> None:
    for plot in ensemble_plot_declarations():
        got = drawn.get(div_id(f"submissions/{name}/plots/{plot}"))
        want = expected.get(plot, set())
        if not want:  # the plot is not this task's: an empty spec, nothing drawn
            assert got is None or got["marks"] == {}, (name, plot, got)
            continue
        assert got is not None and got["error"] is None, (name, plot, got)
        marks = {mark for mark, items in got["marks"].items() if items > 0}
        assert marks == want, (name, plot, got)


def commit(repo, message):
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", message], repo, env=env)


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None and not os.environ.get("CI"), reason="needs chromium (.ci/run installs it)")
def test_dvc_plots_show_and_diff_draw_every_declared_plot(dvc_repo, tmp_path):
    hp = houses(300)
    write_layout(tmp_path / "prices", hp.iloc[:220], hp.iloc[220:], "Id", "Price", 1.0)
    prices = {"id": "Id", "target": "Price", "task": "regression", "metric": "rmsle"}
    params = tiny_params(titanic=TITANIC, prices={"source": "local", "path": str(tmp_path / "prices"), **prices})
    params["train"]["models"]["tabular"] = ["logreg", "mlp"]
    (dvc_repo / "params.yaml").write_text(yaml.safe_dump(params))
    run(["dvc", "repro"], dvc_repo, env={"PIPELINES_PROGRESS": ""}, timeout=900)
    curves = pd.read_csv(dvc_repo / "data/train/titanic/mlp/curves.csv")
    assert list(curves.columns) == ["fold", "epoch", "train_loss", "val_score"] and set(curves.fold) == {0, 1, 2}
    # CV against the leaderboard: one point once a submission is scored
    run(["python", "-m", "pipelines", "submit", "titanic", "-m", "first"], dvc_repo)
    run(["python", "-m", "pipelines", "leaderboard", "titanic"], dvc_repo)

    drawn = draw(show(dvc_repo, tmp_path / "show"))
    for name, expected in EXPECTED.items():
        check_drawn(drawn, name, expected)
    assert drawn[div_id("submissions/titanic/cv_vs_public.csv")]["marks"]["symbol"] == 1

    # two revisions in one chart: a line per revision, the weights' bars side by side
    commit(dvc_repo, "first")
    params["ensemble"]["methods"] = ["mean"]
    (dvc_repo / "params.yaml").write_text(yaml.safe_dump(params))
    run(["dvc", "repro", "ensemble@titanic"], dvc_repo, env={"PIPELINES_PROGRESS": ""}, timeout=300)
    diff = draw(show(dvc_repo, tmp_path / "diff", "diff", "HEAD"))
    check_drawn(diff, "titanic", CLASSIFY)
    for plot, mark in (("roc.csv", "line"), ("ensemble_weights.csv", "rect"), ("learning_curves.csv", "line")):
        path = f"submissions/titanic/plots/{plot}"
        rows = len(pd.read_csv(dvc_repo / path)) + len(
            pd.read_csv(io.StringIO(run(["git", "show", f"HEAD:{path}"], dvc_repo).stdout))
        )
        assert diff[div_id(path)]["marks"][mark] == rows, (plot, rows, diff[div_id(path)])  # every point of both
