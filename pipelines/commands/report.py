"""Command `report`: one self-contained HTML page per competition.

    python -m pipelines report <name> [--dir submissions/<name>] [--clean data/clean/<name>] \
        [--tune data/tune/<name>] [--distill data/distill/<name>] [--logs data/logs/<name>] \
        [--out <dir>/report.html]

Gathers what the stages and `submit` wrote: the CV table with its spread (the ensemble and
each model: cv, fold std, fold scores from `details.json`; seconds and rows/s from the run's
log, `train.json`), the ensemble (method and the rule that chose it, members, weights, each
method's nested cv), the student against the teachers' blend it learned from (`speed.json`:
scores and blend weights; the log's `distill.json`: rows/s), the plots (PNG files of `plots/`
inlined; CSV plots and the Optuna history drawn as inline SVG by `outputs/charts.py`, each as
its dvc.yaml template draws it), the submission history (CV, public, private) and the drift
check (`drift.json`). A part that does not exist yet (no submission, no student, no drift
check) is said so on the page; a missing `metrics.json` or `details.json` is an error naming
it. Charts are inline and nothing is fetched: the page opens offline. Not a DVC stage: the
history changes outside DVC, so the report is re-written on demand.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.core.errors import PipelineError
from pipelines.core.io import atomic_file, read_json
from pipelines.core.paths import Paths
from pipelines.outputs.charts import chart_svg, chart_title
from pipelines.outputs.history import load_history
from pipelines.training.ensembling import RULE

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.warn { background: #fff3cd; border: 1px solid #e0b000; padding: 0.6em 1em; }
.note { color: #666; } img, figure svg { max-width: 100%; height: auto; margin: 0.5em 0; }
"""


def add_arguments(parser) -> None:
    where = Paths("<name>")
    parser.add_argument("--dir", type=Path, default=None, help=f"default: {where.submissions}")
    parser.add_argument("--clean", type=Path, default=None, help=f"default: {where.clean} (drift.json)")
    parser.add_argument("--tune", type=Path, default=None, help=f"default: {where.tune} (history.csv)")
    parser.add_argument("--distill", type=Path, default=None, help=f"default: {where.distill} (speed.json)")
    parser.add_argument("--logs", type=Path, default=None, help=f"default: {where.logs} (timings)")
    parser.add_argument("--out", type=Path, default=None, help="default: <dir>/report.html")


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def num(value, digits: int = 5) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def rate(value) -> str:
    """Rows/s; 0 means not measured (every fold came from the cache)."""
    return "" if value is None else num(float(value), 1) if value else "not measured"


def table(rows: list[dict]) -> str:
    """An HTML table of `rows` (pandas escapes every cell)."""
    return pd.DataFrame(rows).to_html(index=False, escape=True, na_rep="", border=0)


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def read_optional(path: Path) -> dict | None:
    return read_json(path) if path.is_file() else None


def cv_section(details: dict, timings: dict) -> str:
    """`timings`: train's log, by model (seconds, rows_per_s); a model without them shows blanks."""
    ens, rows = details["ensemble"], []
    for name, d in [(f"ensemble ({ens['method']})", ens), *details["models"].items()]:
        row = {"": name, "cv": num(d["cv"]), "fold std": num(d["cv_std"])}
        row.update({k: num(v) for k, v in d["folds"].items()})
        t = timings.get(name, {})
        row.update({"seconds": num(t.get("seconds"), 2), "rows/s": rate(t.get("rows_per_s"))})
        rows.append(row)
    spread = f"{details['metric']} on out-of-fold predictions; the fold std says how far a difference is noise."
    left = details.get("left_out", {})
    out = [f"<h2>Cross-validation</h2>{note(spread)}{table(rows)}"]
    out += [note(f"left out: {name}: {why}") for name, why in left.items()]
    return "".join(out)


def ensemble_section(details: dict) -> str:
    ens = details["ensemble"]
    weights = ens.get("weights")
    if isinstance(weights, dict):
        members = table([{"member": m, "weight": num(w, 4)} for m, w in weights.items()])
    else:
        members = note("members: " + ", ".join(ens["members"]))
    extra = "".join(note(f"{key}: {ens[key]}") for key in ("coef", "thresholds") if key in ens)
    methods = table([{"method": m, "nested out-of-fold cv": num(s), "chosen": "yes" if m == ens["method"] else ""}
                     for m, s in details["methods_nested_cv"].items()])  # fmt: skip
    why = ens.get("chosen_by") or f"{ens['method']}: {RULE}"  # details.json of older runs: the rule alone
    chosen = f"chosen method: {why}"
    return f"<h2>Ensemble</h2>{note(chosen)}{members}{extra}<h3>Methods compared</h3>{methods}"


def teachers_label(speed: dict) -> str:
    """What the student learned from: distill's hill-climbing blend of the teachers, weights
    fitted on the same OOF rows it is scored on (speed.json's `teacher_weights`); with all the
    weight on one teacher, that teacher alone, not an ensemble."""
    used = {n: w for n, w in (speed.get("teacher_weights") or {}).items() if w > 0}
    if len(used) == 1:
        return f"teachers' blend = {next(iter(used))} alone (hill climbing gave it all the weight)"
    weights = f": {', '.join(f'{n} {w:g}' for n, w in used.items())}" if used else ""
    return f"teachers' blend (hill climbing on the OOF rows it is scored on{weights})"


def student_section(speed: dict | None, details: dict, distill: Path, timings: dict, rates: dict) -> str:
    """`timings`: train's log by model; `rates`: distill's log (rows/s and speed-ups)."""
    if speed is None:
        left = details.get("left_out", {})
        why = left.get("distill:student") or left.get("student") or f"{distill / 'speed.json'} not found"
        return f"<h2>Student against teachers</h2>{note(f'no student: {why}')}"
    blend = {"": teachers_label(speed), "cv": num(speed["teacher_cv"]), "rows/s": rate(rates.get("teacher_rows_per_s"))}
    rows = [blend]
    for name, d in details["models"].items():
        if not name.startswith("distill:"):
            rows.append(
                {"": f"teacher {name}", "cv": num(d["cv"]), "rows/s": rate(timings.get(name, {}).get("rows_per_s"))}
            )
    rows.append({"": "student", "cv": num(speed["student_cv"]), "rows/s": rate(rates.get("student_rows_per_s"))})
    if speed.get("onnx"):
        rows.append({"": "student, ONNX fp32", "cv": "", "rows/s": rate(rates.get("onnx_rows_per_s"))})
    if speed.get("int8_kept"):
        rows.append({"": "student, ONNX int8", "cv": "", "rows/s": rate(rates.get("int8_rows_per_s"))})
    speedup = rates.get("speedup")
    said = f"student {speedup}x the teachers' speed" if speedup else "student's speed not measured"
    if rates.get("onnx_speedup"):
        said += f", {rates['onnx_speedup']}x in onnxruntime"
    if speed.get("onnx_note"):
        said += f"; {speed['onnx_note']}"
    said += f" (cv: {speed['metric']})"
    return f"<h2>Student against teachers</h2>{note(said)}{table(rows)}"


def history_section(history: pd.DataFrame, name: str) -> str:
    if history.empty:
        return f"<h2>Submissions</h2>{note(f'no submissions yet: python -m pipelines submit {name}')}"
    rows = [
        {"submission": r["submission"], "time": r["time"], "commit": r["commit"], "cv": num(r["cv"]),
         "cv std": num(r["cv_std"]), "public": num(r["public"]), "private": num(r["private"]), "message": r["message"]}
        for _, r in history.iterrows()
    ]  # fmt: skip
    return f"<h2>Submissions</h2>{table(rows)}"


def drift_section(drift: dict | None, clean: Path) -> str:
    title = "<h2>Train against test</h2>"
    if drift is None:
        return title + note(f"no drift check: {clean / 'drift.json'} not found")
    if drift.get("auc") is None:
        return title + note(drift.get("note", "no drift check"))
    telling = ", ".join(f"{f['name']} ({f['importance']:.2f})" for f in drift.get("features", []))
    if drift["drift"]:
        text = (f"Drift: a classifier tells test rows from training rows (adversarial AUC {drift['auc']:.3f} > "
                f"{drift['warn_auc']}); CV may not predict the leaderboard. Most telling: {telling}")  # fmt: skip
        return f'{title}<p class="warn">{esc(text)}</p>'
    return title + note(f"train and test look alike (adversarial AUC {drift['auc']:.3f})")


def png_tag(data: bytes, title: str) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f'<figure><img alt="{esc(title)}" src="data:image/png;base64,{encoded}"><figcaption>{esc(title)}</figcaption></figure>'  # noqa: E501


def svg_tag(svg: str, title: str) -> str:
    return f"<figure>{svg}<figcaption>{esc(title)}</figcaption></figure>"


def plots_section(folder: Path | None, extra: list[Path], title: str = "Plots") -> str:
    """Every PNG and CSV plot under `folder`, then the `extra` files that exist; each captioned
    with what it shows and its file name. A CSV with no rows is not the task's: left out."""
    files = sorted(p for p in folder.rglob("*") if p.suffix in (".png", ".csv")) if folder and folder.is_dir() else []
    figures = []
    for path in [*files, *(p for p in extra if p.is_file())]:
        if path.suffix == ".png":
            figures.append(png_tag(path.read_bytes(), chart_title(path)))
        elif (svg := chart_svg(path, prefix=f"{title.split()[0].lower()}{len(figures)}-")) is not None:
            figures.append(svg_tag(svg, chart_title(path)))
    return f"<h2>{esc(title)}</h2>" + ("".join(figures) or note("no plots found"))


def page(name: str, metrics: dict, sections: list[str]) -> str:
    when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    head = f"{name}: {metrics['metric']} {num(metrics['cv'])} +/- {num(metrics['cv_std'])} (cv, fold std)"
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(name)} report</title>'
        f"<style>{STYLE}</style></head><body><h1>{esc(head)}</h1>{note(f'written {when}')}"
        + "".join(sections)
        + "</body></html>\n"
    )


def main(args, params) -> None:
    params.competition(args.name)
    paths = Paths(args.name)
    folder = args.dir or paths.submissions
    clean = args.clean or paths.clean
    tune = args.tune or paths.tune
    distill = args.distill or paths.distill
    logs = args.logs or paths.logs
    out = args.out or folder / "report.html"
    for required in (folder / "metrics.json", folder / "details.json"):
        if not required.is_file():
            raise PipelineError(f"{required}: not found; run `dvc repro ensemble@{args.name}` first")
    metrics, details = read_json(folder / "metrics.json"), read_json(folder / "details.json")
    timings = (read_optional(logs / "train.json") or {}).get("models", {})
    sections = [
        drift_section(read_optional(clean / "drift.json"), clean),
        cv_section(details, timings),
        ensemble_section(details),
        student_section(
            read_optional(distill / "speed.json"), details, distill, timings, read_optional(logs / "distill.json") or {}
        ),
        plots_section(folder / "plots", [tune / "history.csv"]),
        history_section(load_history(folder / "history.csv"), args.name),
    ]
    if (folder / "cv_vs_public.csv").is_file():
        sections.append(plots_section(None, [folder / "cv_vs_public.csv"], "CV against public"))
    with atomic_file(out) as fh:
        fh.write(page(args.name, metrics, sections))
    print(f"{args.name}: report -> {out}")
