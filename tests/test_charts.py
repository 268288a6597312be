"""The report's charts (`outputs/charts.py`): each plot file drawn as what it is. A ROC or
precision-recall file is one curve, never its threshold column as a second one; learning
curves are a panel per model and curve with one line per fold against epoch; a confusion
matrix is k x k cells; weights are bars from zero. The SVG tags every data series and keeps
ids apart between charts (what the browser test in test_plots.py counts)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from pipelines.outputs.charts import DRAW, chart_svg, chart_title


def data_lines(fig) -> list:
    """The figure's data lines (those the chart tags as a series), panel by panel."""
    return [line for ax in fig.axes for line in ax.get_lines() if (line.get_gid() or "").startswith("mark-line")]


@pytest.fixture
def curves() -> pd.DataFrame:
    """Two models, two curves, three folds, four epochs: `training/plots.py`'s long format."""
    rows = [
        {"model": model, "fold": fold, "epoch": epoch, "curve": curve, "value": 10 * m + fold + epoch / 10}
        for m, model in enumerate(["mlp", "distill:student"])
        for curve in ["training loss", "validation accuracy"]
        for fold in range(3)
        for epoch in range(4)
    ]
    return pd.DataFrame(rows)


def test_learning_curves_are_a_line_per_fold_against_epoch(curves):
    fig = DRAW["learning_curves"](curves)
    axes = np.asarray(fig.axes[:4]).reshape(2, 2)
    for row, curve in enumerate(["training loss", "validation accuracy"]):
        for col, model in enumerate(["mlp", "distill:student"]):
            ax = axes[row][col]
            assert ax.get_ylabel() == curve and (row > 0 or ax.get_title() == model)
            lines = [line for line in ax.get_lines() if line.get_gid()]
            assert len(lines) == 3  # one per fold
            for fold, line in enumerate(lines):
                assert list(line.get_xdata()) == [0, 1, 2, 3]  # epochs along x, not folds
                assert np.allclose(line.get_ydata(), [10 * col + fold + e / 10 for e in range(4)])
    assert len(data_lines(fig)) == 12


@pytest.mark.parametrize("name,columns", [("roc", ["fpr", "tpr"]), ("precision_recall", ["recall", "precision"])])
def test_roc_and_precision_recall_are_one_curve_without_the_threshold(name, columns):
    x = np.linspace(0, 1, 20)
    frame = pd.DataFrame({columns[0]: x, columns[1]: np.sqrt(x), "threshold": 1 - x})  # an older run's file
    fig = DRAW[name](frame)
    (line,) = data_lines(fig)
    assert np.allclose(line.get_xdata(), x) and np.allclose(line.get_ydata(), np.sqrt(x))
    ax = fig.axes[0]
    assert ax.get_xlim() == (0, 1) and ax.get_ylim()[0] == 0
    if name == "roc":
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("false positive rate", "true positive rate (recall)")


def test_confusion_matrix_is_cells_of_counts():
    frame = pd.DataFrame({"actual": ["a", "a", "b", "c", "c", "c"], "predicted": ["a", "b", "b", "c", "c", "a"]})
    fig = DRAW["confusion"](frame)
    (mesh,) = [c for c in fig.axes[0].collections if (c.get_gid() or "").startswith("mark-cell")]
    assert mesh.get_array().reshape(3, 3).tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert fig.axes[0].get_xlabel() == "predicted class (out-of-fold)" and fig.axes[0].get_ylabel() == "actual class"


def test_weights_are_bars_from_zero():
    fig = DRAW["ensemble_weights"](pd.DataFrame({"model": ["a", "b"], "weight": [0.6, 0.4]}))
    bars = [p for p in fig.axes[0].patches if (p.get_gid() or "").startswith("mark-bar")]
    assert [b.get_width() for b in bars] == [0.6, 0.4] and fig.axes[0].get_xlim()[0] == 0


def test_svg_tags_series_and_prefixes_ids(tmp_path, curves):
    curves.to_csv(tmp_path / "learning_curves.csv", index=False)
    svg = chart_svg(tmp_path / "learning_curves.csv", prefix="c7-")
    assert svg.startswith("<svg ") and "<?xml" not in svg and "xmlns" not in svg and "http" not in svg
    assert len(re.findall(r'<g data-mark="line" id="c7-mark-line-\d+"', svg)) == 12
    ids = re.findall(r' id="([^"]+)"', svg)
    assert ids and all(i.startswith("c7-") for i in ids) and len(set(ids)) == len(ids)
    refs = re.findall(r'(?:href="#|url\(#)([^")]+)', svg)
    assert refs and set(refs) <= set(ids)  # every reference points inside the chart
    assert chart_title(tmp_path / "learning_curves.csv").endswith("a line per fold (learning_curves.csv)")
