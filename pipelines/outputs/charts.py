"""The plot files the stages write, drawn as inline SVG for the report (`commands/report.py`).

    svg = chart_svg(path, prefix="c1-")   # an <svg> element as text; None for a file with no rows
    title = chart_title(path)             # what the chart shows, in words

Each file is drawn the way its dvc.yaml template draws it (`training/plots.py` writes them):
ROC and precision-recall as one curve on [0, 1] axes (a threshold column, in files of older
runs, is not drawn), the confusion matrix as cells, residuals and predicted against actual
as points, the ensemble weights as bars from zero, the learning curves as a panel per model
and curve with one line per fold against epoch, tune's Optuna history as the best value so
far per trial, CV against public as points; another CSV as its second numeric column against
its first. Every data series is an SVG group whose `data-mark` says what it draws (`line`,
`point`, `cell`, `bar`), so a browser can count what a chart holds; reference lines (chance,
y = x, zero) carry none. Ids are prefixed so that several charts share one page.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

MAX_POINTS = 5_000  # a scatter draws at most this many rows (a seeded sample), so pages stay small
REFERENCE = {"color": "#888", "lw": 1, "ls": ":"}

TITLES = {
    "confusion": "Confusion matrix, out-of-fold (counts)",
    "roc": "ROC curve, out-of-fold (multiclass: micro-average over classes)",
    "precision_recall": "Precision-recall curve, out-of-fold (multiclass: micro-average over classes)",
    "residuals": "Residuals (predicted - actual) against predicted, out-of-fold",
    "predicted_vs_actual": "Predicted (out-of-fold) against actual",
    "ensemble_weights": "Weight of each model in the chosen blend",
    "learning_curves": "Learning curves of the torch models: a line per fold",
    "history": "Optuna history: best objective so far (line) and each trial (points)",
    "cv_vs_public": "CV against the public leaderboard, one point per submission",
    "oof": "Out-of-fold predictions at a glance",
}
DRAW: dict[str, Callable] = {}  # file stem -> draws that file's frame, returns the figure


def draws(*stems: str):
    def register(fn: Callable) -> Callable:
        DRAW.update(dict.fromkeys(stems, fn))
        return fn

    return register


def chart_title(path: Path) -> str:
    return f"{TITLES.get(path.stem, path.stem)} ({path.name})"


def chart_svg(path: Path, prefix: str = "") -> str | None:
    """`path` (a plot CSV) drawn as an inline `<svg>`; None when it has no rows to draw (a plot
    that is not the task's, such as a ROC for a regression)."""
    frame = pd.read_csv(path)
    if frame.empty:
        return None
    fig = DRAW.get(path.stem, _generic)(frame)
    return None if fig is None else _svg(fig, prefix)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _axes(width: float = 6, height: float = 4.5):
    return _plt().subplots(figsize=(width, height))


def _mark(artist, kind: str, n: int) -> None:
    artist.set_gid(f"mark-{kind}-{n}")


def _sample(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sample(MAX_POINTS, random_state=0) if len(frame) > MAX_POINTS else frame


@draws("roc", "precision_recall")
def _curve(frame: pd.DataFrame):
    x, y = frame.columns[:2]  # fpr, tpr / recall, precision
    fig, ax = _axes(5, 5)
    (line,) = ax.plot(frame[x], frame[y], lw=1.5)
    _mark(line, "line", 0)
    if x == "fpr":
        ax.plot([0, 1], [0, 1], **REFERENCE, label="chance")
        ax.legend(loc="lower right", fontsize=8)
    names = {"fpr": "false positive rate", "tpr": "true positive rate (recall)"}
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel=names.get(x, x), ylabel=names.get(y, y))
    return fig


@draws("confusion")
def _confusion(frame: pd.DataFrame):
    counts = pd.crosstab(frame["actual"].astype(str), frame["predicted"].astype(str))
    labels = sorted(set(counts.index) | set(counts.columns))
    counts = counts.reindex(index=labels, columns=labels, fill_value=0)
    k = len(labels)
    fig, ax = _axes(3 + 0.45 * k + 1, 3 + 0.45 * k)
    mesh = ax.pcolormesh(counts.to_numpy(), cmap="Blues", edgecolors="white", linewidth=0.5)
    _mark(mesh, "cell", 0)
    dark = counts.to_numpy().max() / 2
    for (i, j), n in np.ndenumerate(counts.to_numpy()):
        ax.text(j + 0.5, i + 0.5, str(n), ha="center", va="center", fontsize=8, color="white" if n > dark else "black")
    ticks = np.arange(k) + 0.5
    ax.set(xticks=ticks, yticks=ticks, xlabel="predicted class (out-of-fold)", ylabel="actual class")
    ax.set_xticklabels(labels, rotation=90 if k > 6 else 0)
    ax.set_yticklabels(labels)
    ax.invert_yaxis()
    fig.colorbar(mesh, ax=ax, fraction=0.046, label="rows")
    return fig


@draws("residuals", "predicted_vs_actual", "cv_vs_public")
def _scatter(frame: pd.DataFrame):
    x, y = ("cv", "public") if "public" in frame else tuple(frame.columns[:2])
    frame = _sample(frame)
    fig, ax = _axes()
    _mark(ax.scatter(frame[x], frame[y], s=8, alpha=0.6), "point", 0)
    lo, hi = float(frame[[x, y]].min().min()), float(frame[[x, y]].max().max())
    if y == "residual":
        ax.axhline(0, **REFERENCE)
    else:
        ax.plot([lo, hi], [lo, hi], **REFERENCE, label="y = x")
        ax.legend(loc="upper left", fontsize=8)
    names = {"predicted": "predicted (out-of-fold)", "residual": "residual (predicted - actual)",
             "cv": "CV (out-of-fold)", "public": "public leaderboard score"}  # fmt: skip
    ax.set(xlabel=names.get(x, x), ylabel=names.get(y, y))
    return fig


@draws("ensemble_weights")
def _weights(frame: pd.DataFrame):
    fig, ax = _axes(6, 1 + 0.4 * len(frame))
    bars = ax.barh(frame["model"].astype(str), frame["weight"])
    for n, bar in enumerate(bars):
        _mark(bar, "bar", n)
    ax.set(xlim=(0, max(1.0, float(frame["weight"].max()))), xlabel="weight in the chosen blend", ylabel="model")
    ax.invert_yaxis()
    return fig


@draws("learning_curves")
def _learning_curves(frame: pd.DataFrame):
    """A panel per curve (rows) and model (columns), a line per fold against epoch."""
    curves, models = list(dict.fromkeys(frame["curve"])), list(dict.fromkeys(frame["model"]))
    plt = _plt()
    fig, axes = plt.subplots(len(curves), len(models), figsize=(3.4 * len(models) + 1, 2.6 * len(curves)),
                             squeeze=False, sharex="col")  # fmt: skip
    folds = sorted(frame["fold"].unique())
    colours = {fold: plt.get_cmap("tab10")(i % 10) for i, fold in enumerate(folds)}
    n = 0
    for (row, curve), (col, model) in ((r, c) for r in enumerate(curves) for c in enumerate(models)):
        ax, part = axes[row][col], frame[(frame["curve"] == curve) & (frame["model"] == model)]
        for fold, lines in part.groupby("fold"):
            lines = lines.sort_values("epoch")
            (line,) = ax.plot(lines["epoch"], lines["value"], marker="o", ms=3, color=colours[fold], label=str(fold))
            _mark(line, "line", n)
            n += 1
        ax.set(title=model if row == 0 else "", ylabel=curve, xlabel="epoch" if row == len(curves) - 1 else "")
        ax.xaxis.get_major_locator().set_params(integer=True)  # epochs are whole numbers
    axes[0][-1].legend(fontsize=8, title="fold", title_fontsize=8)
    return fig


@draws("history")
def _history(frame: pd.DataFrame):
    """tune's history.csv: per model, each trial's value (points) and the best so far (a line)."""
    fig, ax = _axes()
    for n, (model, part) in enumerate(frame.groupby("model", sort=False)):
        part = part.sort_values("trial")
        (line,) = ax.plot(part["trial"], part["best"], drawstyle="steps-post", label=f"{model}: best so far")
        _mark(line, "line", n)
        _mark(ax.scatter(part["trial"], part["value"], s=10, alpha=0.5, color=line.get_color()), "point", n)
    ax.set(xlabel="trial", ylabel="objective")
    ax.legend(fontsize=8)
    return fig


def _generic(frame: pd.DataFrame):
    numeric = list(frame.select_dtypes("number").columns)
    if len(numeric) < 2:
        return None
    x, y = numeric[:2]
    fig, ax = _axes()
    if frame[x].is_monotonic_increasing:
        _mark(ax.plot(frame[x], frame[y])[0], "line", 0)
    else:
        part = _sample(frame)
        _mark(ax.scatter(part[x], part[y], s=8, alpha=0.6), "point", 0)
    ax.set(xlabel=x, ylabel=y)
    return fig


def _svg(fig, prefix: str) -> str:
    """The figure as an inline `<svg>` (no XML prologue, metadata or namespaces: HTML needs
    none), text kept as text, each id prefixed, each data series tagged with `data-mark`."""
    import matplotlib

    buf = io.StringIO()
    fig.tight_layout()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "report"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    _plt().close(fig)
    text = buf.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>", "", text[text.index("<svg") :], flags=re.S)
    text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)
    text = (
        text.replace(' id="', f' id="{prefix}')
        .replace("url(#", f"url(#{prefix}")
        .replace('href="#', f'href="#{prefix}')
    )
    return re.sub(rf'<g id="{re.escape(prefix)}mark-(\w+)-', lambda m: f'<g data-mark="{m[1]}" {m[0][3:]}', text)
