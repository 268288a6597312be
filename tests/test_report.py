"""`report <name>`: a self-contained HTML page built from the outputs of a tiny real run.

The stage mains run in-process on Titanic (two models, two trials, three folds), `submit`
scores two submissions on the offline leaderboard, then the report must hold the CV figures,
the fold scores, the submission history (escaped), the drift warning when `drift.json` says
drift, the student against its teachers, the plots as inline images, and no external URL.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from pipelines.__main__ import main
from pipelines.outputs.history import load_history
from tests.conftest import TITANIC, tiny_params


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report")
    params = tiny_params(titanic=TITANIC)
    params["train"]["models"]["tabular"] = ["lightgbm", "logreg"]
    params["train"]["epochs"] = params["distill"]["epochs"] = 2
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    d = {k: root / k for k in ("raw", "clean", "tune", "train", "distill", "sub", "logs")}
    common = ["titanic", "--params", str(path)]
    steps = [
        ["download", "--out", d["raw"]],
        ["clean", "--raw", d["raw"], "--out", d["clean"]],
        ["tune", "--clean", d["clean"], "--out", d["tune"]],
        ["train", "--clean", d["clean"], "--tuned", d["tune"], "--cache", root / "c1", "--out", d["train"],
         "--logs", d["logs"]],
        ["distill", "--clean", d["clean"], "--train", d["train"], "--cache", root / "c2", "--out", d["distill"],
         "--logs", d["logs"]],
        ["ensemble", "--raw", d["raw"], "--clean", d["clean"], "--train", d["train"], "--distill", d["distill"],
         "--out", d["sub"]],
    ]  # fmt: skip
    for stage, *paths in steps:
        assert main([stage, *common, *map(str, paths)]) == 0, stage
    submit = ["submit", *common, "--dir", str(d["sub"]), "--raw", str(d["raw"])]
    assert main([*submit, "-m", "first <b>try</b> & more"]) == 0
    assert main([*submit, "-m", "again", "--force"]) == 0
    assert main(["leaderboard", *common, "--dir", str(d["sub"]), "--no-refresh"]) == 0
    return root


def report(root: Path, out: Path, **dirs: Path) -> tuple[int, Path]:
    d = {k: root / k for k in ("clean", "tune", "distill", "logs")} | {"dir": root / "sub"} | dirs
    out = out / "report.html"
    argv = ["report", "titanic", "--params", str(root / "params.yaml"), "--out", str(out)]
    argv += [f"--{k}={v}" for k, v in d.items()]
    return main(argv), out


def test_report_holds_cv_history_student_and_plots(run_dir, tmp_path):
    rc, out = report(run_dir, tmp_path)
    assert rc == 0
    page = out.read_text()
    metrics = json.loads((run_dir / "sub/metrics.json").read_text())
    details = json.loads((run_dir / "sub/details.json").read_text())
    assert f"{metrics['cv']:.5f}" in page and f"{metrics['cv_std']:.5f}" in page
    for name, model in details["models"].items():
        assert f"<td>{name}</td>" in page and f"{model['cv']:.5f}" in page
        assert all(f"{score:.5f}" in page for score in model["folds"].values())
    assert all(f"{score:.5f}" in page for score in details["ensemble"]["folds"].values())
    assert f"ensemble ({details['ensemble']['method']})" in page
    # the history: both submissions with their public and private scores, the message escaped
    history = load_history(run_dir / "sub/history.csv")
    assert list(history["submission"]) == ["offline-1", "offline-2"]
    for _, row in history.iterrows():
        assert all(f"<td>{row[col]:.5f}</td>" in page for col in ("cv", "public", "private"))
    assert "first &lt;b&gt;try&lt;/b&gt; &amp; more" in page and "<b>try" not in page
    # the ensemble: the rule that chose its method, as the code applies it, not "the best score"
    text = html.unescape(page)
    assert f"chosen method: {details['ensemble']['chosen_by']}" in text and "methods are tried simplest first" in text
    assert "best nested out-of-fold score" not in text
    # the student against the teachers (speed.json): the blend it learned from, named as what it is
    speed = json.loads((run_dir / "distill/speed.json").read_text())
    used = [n for n, w in speed["teacher_weights"].items() if w > 0]
    assert "teacher ensemble" not in text and f"{speed['student_cv']:.5f}" in page
    assert f"teachers' blend = {used[0]} alone" in text if len(used) == 1 else "teachers' blend (hill climbing" in text
    # the timings come from the run's log (train.json, distill.json), not from hashed outputs
    timings = json.loads((run_dir / "logs/train.json").read_text())["models"]
    assert all(f"<td>{t['seconds']:.2f}</td>" in page for t in timings.values())
    assert f"student {json.loads((run_dir / 'logs/distill.json').read_text())['speedup']}x" in page
    # the plots: CSVs drawn as inline SVG, each captioned with what it shows and its file
    captions = [html.unescape(c) for c in re.findall(r"<figcaption>([^<]*)</figcaption>", page)]
    files = {c.rsplit("(", 1)[1].rstrip(")") for c in captions}
    assert {"confusion.csv", "roc.csv", "history.csv", "cv_vs_public.csv", "oof.png"} <= files, captions
    assert "ROC curve, out-of-fold (multiclass: micro-average over classes) (roc.csv)" in captions
    assert page.count("<figure><svg ") == len(captions) - 1  # all but oof.png, the one PNG the stage writes
    # self-contained: every image inline, no URL to fetch
    assert re.findall(r'src="([^"]{0,22})', page) == ["data:image/png;base64,"]
    assert "http://" not in page and "https://" not in page and "//" not in re.sub(r"base64,[^\"]*", "", page)
    assert len(set(re.findall(r' id="([^"]+)"', page))) == len(re.findall(r' id="([^"]+)"', page))  # ids unique
    assert "train and test look alike" in page
    assert not list(out.parent.glob("*.tmp"))  # written atomically


def test_report_warns_of_drift(run_dir, tmp_path):
    clean = tmp_path / "clean"
    shutil.copytree(run_dir / "clean", clean)
    drift = json.loads((clean / "drift.json").read_text())
    drift.update(auc=0.9312, drift=True, features=[{"name": "Fare<script>", "importance": 0.61}])
    (clean / "drift.json").write_text(json.dumps(drift))
    rc, out = report(run_dir, tmp_path, clean=clean)
    page = out.read_text()
    assert rc == 0 and '<p class="warn">Drift:' in page and "adversarial AUC 0.931" in page
    assert "Fare&lt;script&gt; (0.61)" in page and "<script>" not in page


def test_missing_parts_are_stated(run_dir, tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    for name in ("metrics.json", "details.json"):
        shutil.copy(run_dir / "sub" / name, sub / name)
    rc, out = report(run_dir, tmp_path, dir=sub, clean=tmp_path / "no-clean", distill=tmp_path / "no-distill")
    page = out.read_text()
    assert rc == 0
    assert "no submissions yet: python -m pipelines submit titanic" in page
    assert f"no student: {tmp_path / 'no-distill' / 'speed.json'} not found" in page
    assert f"no drift check: {tmp_path / 'no-clean' / 'drift.json'} not found" in page


def test_missing_output_is_a_one_line_error(run_dir, tmp_path, capsys):
    empty = tmp_path / "sub"
    empty.mkdir()
    rc, out = report(run_dir, tmp_path, dir=empty)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == f"error: {empty / 'metrics.json'}: not found; run `dvc repro ensemble@titanic` first"
    assert not out.exists()


def test_a_plot_that_is_not_the_tasks_draws_nothing(tmp_path):
    from pipelines.outputs.charts import chart_svg

    (tmp_path / "residuals.csv").write_text("predicted,residual\n")  # what a classification writes
    (tmp_path / "confusion.csv").write_text("actual,predicted\n")  # what a regression writes
    assert chart_svg(tmp_path / "residuals.csv") is None and chart_svg(tmp_path / "confusion.csv") is None
    (tmp_path / "roc.csv").write_text("fpr,tpr\n0,0\n0.5,0.8\n1,1\n")
    assert chart_svg(tmp_path / "roc.csv").startswith("<svg ")
