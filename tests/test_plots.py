"""The ensemble's plots: the frames (fast), and what `dvc plots show` / `dvc plots diff` draw in
headless Chromium after a real tiny `dvc repro` of a binary and a regression competition
(slow; see tests/plots_page.py for how the page is drawn and counted). Multiclass plots use
the binary ones' templates; their frames are checked here too."""

from __future__ import annotations

import importlib.metadata
import io
import os
import re
import shlex

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.training.cv import CVResult
from pipelines.training.plots import COLUMNS, ensemble_plots, learning_curves
from tests.conftest import ROOT, TITANIC, run, tiny_params
from tests.plots_page import (
    TEMPLATE,
    chromium,
    configured_template,
    div_id,
    draw,
    draw_report,
    loads_from_the_network,
    page_template,
    show,
)
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


def test_every_plot_axis_says_what_it_is():
    """Each ensemble plot names its axes in words (not only column names such as fpr)."""
    for name, props in ensemble_plot_declarations().items():
        if name.endswith(".csv"):
            assert props.get("x_label"), name
            assert props.get("y_label") or name == "learning_curves.csv", name  # its panels name their curve


def test_plots_page_is_offline_and_configured():
    """A plain `dvc plots show` uses the shipped page (.dvc/config), which loads nothing from
    the network: Vega, Vega-Lite and vega-embed are inline (the bundle of vl-convert-python)."""
    template = configured_template()
    assert template == TEMPLATE and template.is_file()
    page = template.read_text(encoding="utf-8")
    assert "{plot_divs}" in page and "{scripts}" not in page  # DVC's CDN scripts never enter it
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page[: page.index("(function () {")])
    assert "window.vegaEmbed=" in page and (ROOT / ".dvc/plots/VEGA-LICENSES.txt").is_file()
    installed = importlib.metadata.version("vl-convert-python")
    if f"vl-convert-python {installed}'s" in page:  # the same wheel builds the same page
        assert page == page_template(), "stale: python -m tests.plots_page --write"


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


def curve_groups(repo, name: str) -> int:
    """Lines a learning-curve chart must draw: one per model, curve and fold."""
    curves = pd.read_csv(repo / f"submissions/{name}/plots/learning_curves.csv")
    return len(curves.groupby(["model", "curve", "fold"]))


def check_drawn(drawn: dict, name: str, expected: dict[str, set], revisions: int = 1, groups: int = 0) -> None:
    """What `dvc plots` drew: the right marks for each plot, nothing for another task's plots;
    a ROC and a precision-recall curve are one line per revision (no threshold curve beside
    them), the learning curves one line per model, curve and fold (and revision)."""
    for plot in ensemble_plot_declarations():
        got = drawn.get(div_id(f"submissions/{name}/plots/{plot}"))
        want = expected.get(plot, set())
        if not want:  # the plot is not this task's: an empty spec, nothing drawn
            assert got is None or got["marks"] == {}, (name, plot, got)
            continue
        assert got is not None and got["error"] is None, (name, plot, got)
        marks = {mark for mark, items in got["marks"].items() if items > 0}
        assert marks == want, (name, plot, got)
        if plot in ("roc.csv", "precision_recall.csv"):
            assert got["series"]["line"] == revisions, (name, plot, got)
        if plot == "learning_curves.csv":
            assert got["series"]["line"] == groups, (name, plot, got)


def check_report(repo, name: str) -> None:
    """The report drawn offline: each chart holds the marks of its kind."""
    run(["python", "-m", "pipelines", "report", name], repo)
    drawn = {caption.rsplit("(", 1)[1].rstrip(")"): got for caption, got in draw_report(
        repo / f"submissions/{name}/report.html").items()}  # fmt: skip
    rows = {f: len(pd.read_csv(repo / f"submissions/{name}/plots/{f}")) for f in ("confusion.csv", "residuals.csv")}
    weights = len(pd.read_csv(repo / f"submissions/{name}/plots/ensemble_weights.csv"))
    assert drawn["oof.png"]["image"] > 0 and drawn["ensemble_weights.csv"]["marks"] == {"bar": weights}
    assert drawn["learning_curves.csv"]["series"] == {"line": curve_groups(repo, name)}
    if rows["confusion.csv"]:  # classification
        assert drawn["roc.csv"]["series"] == drawn["precision_recall.csv"]["series"] == {"line": 1}, drawn
        assert drawn["confusion.csv"]["marks"] == {"cell": 4} and drawn["confusion.csv"]["series"] == {"cell": 1}
        assert "residuals.csv" not in drawn
    else:
        for plot in ("residuals.csv", "predicted_vs_actual.csv"):
            assert drawn[plot]["marks"] == {"point": rows["residuals.csv"]} and drawn[plot]["series"] == {"point": 1}
        assert "roc.csv" not in drawn and "confusion.csv" not in drawn


def check_exp_show_width(repo) -> None:
    """README's narrow `dvc exp show` (its one command with --keep) fits a 120-column terminal."""
    line = next(ln for ln in (ROOT / "README.md").read_text().splitlines() if ln.startswith("dvc exp show --drop"))
    command = shlex.split(line.split("  #")[0])
    out = run([*command, "--no-pager"], repo, env={"COLUMNS": "1000"}).stdout  # the table's own width
    assert max(len(ln.rstrip()) for ln in out.splitlines()) <= 120, out
    assert "submissions/titanic/metrics.json:cv" in out and "…" not in out, out


def commit(repo, message):
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", message], repo, env=env)


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None and not os.environ.get("CI"), reason="needs chromium (.ci/run installs it)")
def test_dvc_plots_show_and_diff_draw_every_declared_plot(dvc_repo, tmp_path):
    """Offline (the browser reaches no network): `dvc plots show`, `dvc plots diff` and the
    report draw every chart with marks of its kind."""
    assert loads_from_the_network() is False  # the browser as `draw` runs it fetches nothing
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

    page = show(dvc_repo, tmp_path / "show")
    assert "cdn.jsdelivr.net" not in page.read_text(encoding="utf-8")  # the shipped page, not DVC's
    drawn = draw(page)
    for name, expected in EXPECTED.items():
        check_drawn(drawn, name, expected, groups=curve_groups(dvc_repo, name))
        check_report(dvc_repo, name)
    assert drawn[div_id("submissions/titanic/cv_vs_public.csv")]["marks"]["symbol"] == 1

    # two revisions in one chart: a line per revision, the weights' bars side by side
    commit(dvc_repo, "first")
    check_exp_show_width(dvc_repo)
    params["ensemble"]["methods"] = ["mean"]
    (dvc_repo / "params.yaml").write_text(yaml.safe_dump(params))
    run(["dvc", "repro", "ensemble@titanic"], dvc_repo, env={"PIPELINES_PROGRESS": ""}, timeout=300)
    diff = draw(show(dvc_repo, tmp_path / "diff", "diff", "HEAD"))
    check_drawn(diff, "titanic", CLASSIFY, revisions=2, groups=2 * curve_groups(dvc_repo, "titanic"))
    for plot, mark in (("roc.csv", "line"), ("ensemble_weights.csv", "rect"), ("learning_curves.csv", "line")):
        path = f"submissions/titanic/plots/{plot}"
        rows = len(pd.read_csv(dvc_repo / path)) + len(
            pd.read_csv(io.StringIO(run(["git", "show", f"HEAD:{path}"], dvc_repo).stdout))
        )
        assert diff[div_id(path)]["marks"][mark] == rows, (plot, rows, diff[div_id(path)])  # every point of both
