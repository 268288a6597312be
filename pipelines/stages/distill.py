"""Stage `distill`: one small, fast student trained on the teacher ensemble's soft targets.

    python -m pipelines distill <name> --clean data/clean/<name> --train data/train/<name> \
        --cache data/cache/<name>/distill --out data/distill/<name>

The teacher is the hill-climbing blend of the trained models (weights chosen on their OOF
predictions). The student is cross-validated on the same folds (KD loss with temperature
and alpha); in fold k its soft targets come from the teachers' fold-k models, which never
saw fold k's labels, so the student's CV is as honest as the teachers'. This gives
`student/oof.npy`, `student/test.npy` and `student/scores.json` like any model, so
`ensemble` may use it too.

With `train.refit` on (image models by default), a student is also refitted on every
training row, with the teachers' fold-averaged soft targets, for half of its test predictions.

The deployed student is the last fold's model as cross-validated (not a refit on all rows:
no extra training, and its score on that fold's held-out rows is an honest one). A torch
student is exported to ONNX (`student.onnx`: pixel scaling, net and output head in one
graph) and run with onnxruntime; its outputs must match torch's within 1e-4 on that fold's
held-out rows and on the test rows, or the stage fails. Beside it: the graph's outputs on the
test rows (`student.onnx_test.npy`) and, for a table, the fitted preprocessor as plain JSON
(`student.preprocess.json`, `features/portable.py`), which `export` ships with the graph.
An int8 copy (dynamic quantisation, `student.int8.onnx`) is kept only when its score on
those held-out rows stays within 0.001 of the fp32 graph's. `speed.json` compares teachers
and student: CV scores (`teacher_cv`: the blend's, its `teacher_weights` fitted on those same
OOF rows; with all the weight on one teacher, that teacher's cv) and the ONNX student's score
on its fold's held-out rows; the log's
`distill.json` their rows/s: the teachers' blend's (every fold model and refit of every blended
teacher runs for each row, as for the submission; the student is one model),
the student's in torch and in onnxruntime (fp32 and int8). The speeds are the machine's, not results: they go to
`--logs/distill.json` (beside the outputs, which a fixed seed keeps byte for byte the same).
"""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

from pipelines.core.budget import OverBudget
from pipelines.core.context import set_threads
from pipelines.core.errors import PipelineError
from pipelines.core.io import atomic_dir, read_json, save_array, write_json
from pipelines.core.metrics import target_transform
from pipelines.core.tables import take_rows
from pipelines.features.portable import preprocessor_state
from pipelines.models.selection import check_models
from pipelines.outputs.cleaned import CleanData
from pipelines.stages.common import load_predictions, model_context, save_predictions, teacher_targets, trained
from pipelines.training.cv import CVOptions, cross_validate
from pipelines.training.parallel import fold_workers
from pipelines.training.plan import make_plan


def add_arguments(parser) -> None:
    for flag in ("clean", "train", "cache", "out"):
        parser.add_argument(f"--{flag}", type=Path, required=True)
    parser.add_argument("--logs", type=Path, default=None, help="timings: train's are read, distill's written here")


PARITY_TOL = 1e-4  # max difference between torch and ONNX outputs, relative to their scale (at least 1)
INT8_TOL = 0.001  # how much score int8 quantisation may cost (on the fold's held-out rows)


def _rate(fn, X, repeats: int = 3) -> float:
    """Rows per second of `fn(X)`: best of a few timed runs after one warm-up."""
    fn(X)
    best = min(_timed(fn, X) for _ in range(repeats))
    return len(X) / max(best, 1e-9)


def _timed(fn, X) -> float:
    t0 = time.perf_counter()
    fn(X)
    return time.perf_counter() - t0


def export_student(model, X_val, y_val, X_test, out: Path, metric, task: str, inverse) -> dict:
    """Export a fitted torch student to `out/student.onnx`, check parity, maybe quantise.

    `X_val`/`y_val` are the held-out rows of the fold the model was fitted on (in the
    model's own target space: `inverse` maps outputs back, e.g. expm1 for rmsle).
    Returns the figures for speed.json; raises PipelineError when ONNX and torch disagree.
    """
    from pipelines.models.onnx_export import export_onnx, onnx_predict, onnx_session, quantize_onnx
    from pipelines.models.torch_adapter import TorchModel

    threads = model.ctx.threads if hasattr(model, "ctx") else 1
    if not isinstance(model, TorchModel):
        return {"onnx": None, "onnx_note": f"{type(model).__name__} is not a torch model: no ONNX export"}
    path = export_onnx(model, out / "student.onnx")
    worst, scale = 0.0, 1.0
    for X in (X_val, X_test):
        torch_out, onnx_out = model.predict_output(X), onnx_predict(model, X, path)
        if torch_out.shape != onnx_out.shape:
            raise PipelineError(f"ONNX student: output shape {onnx_out.shape}, torch {torch_out.shape}")
        worst = max(worst, float(np.max(np.abs(torch_out - onnx_out))) if len(torch_out) else 0.0)
        # float32 rounds relative to the value: prices of 1e5 (rmse) differ by ~1e-3 in absolute terms
        scale = max(scale, float(np.max(np.abs(torch_out))) if len(torch_out) else 0.0)
    if not worst <= PARITY_TOL * scale:
        raise PipelineError(
            f"ONNX student differs from torch by {worst:.3g} (tolerance {PARITY_TOL:g} x {scale:.3g}): not exported"
        )
    save_array(out / "student.onnx_test.npy", onnx_out)  # what `export` must reproduce from raw test.csv
    if hasattr(model, "preprocessor_"):  # a table's inputs: the fitted preprocessor, as JSON (no pickle)
        write_json(out / "student.preprocess.json", preprocessor_state(model.preprocessor_))
    fp32_score = metric(y_val, inverse(onnx_predict(model, X_val, path)), task)
    info = {
        "onnx": path.name,
        "onnx_parity_max_abs_diff": worst,
        "onnx_fold_score": fp32_score,
        "torch_rows_per_s": round(_rate(model.predict_output, X_test), 1),
        "onnx_rows_per_s": round(_rate(partial(onnx_predict, model, path=onnx_session(path, threads)), X_test), 1),
    }
    int8 = quantize_onnx(path, out / "student.int8.onnx")
    int8_score = metric(y_val, inverse(onnx_predict(model, X_val, int8)), task)
    kept = abs(int8_score - fp32_score) <= INT8_TOL + 1e-12
    info.update(int8_fold_score=int8_score, int8_kept=kept)
    if kept:
        session = onnx_session(int8, threads)
        info.update(int8=int8.name, int8_rows_per_s=round(_rate(partial(onnx_predict, model, path=session), X_test), 1))
    else:
        int8.unlink()
    return info


def main(args, params) -> None:
    check_models(params, args.params)
    set_threads(params.train.threads)
    data = CleanData(args.clean)
    plan = make_plan(params, args.name, data)
    ctx = model_context(data, params, epochs=plan.student_epochs)
    student = plan.student
    teachers = load_predictions(args.train, trained(args.train)[0])
    weights, teacher_oof, soft = teacher_targets(teachers, data.y, ctx.metric, ctx.task, params.ensemble.iterations)
    deadline, workers = plan.deadline("distill"), fold_workers(student.name, ctx, plan.n_splits)
    opts = CVOptions(
        soft_targets=soft, cache_dir=args.cache, keep_last_model=True, workers=workers, refit=plan.student_refit,
        on_fold=deadline.guard(student.name, plan.fits) if workers == 1 else None, deadline=deadline,
    )  # fmt: skip
    try:
        result = cross_validate(
            student.name, student.args, data, replace(ctx, fit_seconds=deadline.share(plan.fits)), opts
        )
    except OverBudget as err:
        with atomic_dir(args.out) as tmp:
            write_json(tmp / "left_out.json", {"student": str(err)})
        if args.logs is not None:  # a declared output: it says why there are no speeds
            write_json(args.logs / "distill.json", {"left_out": str(err)})
        print(f"{args.name}: student {student.name} left out: {err}")
        return
    teacher_cv = ctx.metric.on(data.y, teacher_oof, ctx.task, data.score_rows)
    with atomic_dir(args.out) as tmp:
        save_predictions(tmp / "student", result, {"model": student.name, "teachers": weights})
        last = np.flatnonzero(data.folds == data.folds.max())  # rows the exported (last fold's) model never saw
        forward, inverse = target_transform(ctx.metric, ctx.task)
        onnx = export_student(
            result.last_model, take_rows(data.X, last), data.y[last], data.X_test, tmp, ctx.metric, ctx.task, inverse
        )
        # rmsle: models learn log1p(target), so the graph's outputs need expm1
        transformed = not np.array_equal(forward(np.ones(1)), np.ones(1))
        speed = {
            "metric": ctx.metric.name,
            "teacher_cv": teacher_cv,
            "teacher_weights": weights,
            "student_cv": result.score,
        }
        speed.update({k: v for k, v in onnx.items() if not timed(k)})
        write_json(tmp / "speed.json", {**speed, "onnx_output_transform": "expm1" if transformed else None})
    used = [n for n, w in weights.items() if w > 0]
    rates = speed_figures(result.rows_per_s, teacher_rate(args.logs, used), {k: v for k, v in onnx.items() if timed(k)})
    if args.logs is not None:  # machine facts: beside the outputs, never in what later stages hash
        write_json(args.logs / "distill.json", rates)
    line = f"{args.name}: student {student.name} cv {result.score:.5f} vs the teachers' blend {teacher_cv:.5f}"
    line += f"; {rates['speedup']:.1f}x faster" if rates["speedup"] else ""
    if onnx.get("onnx"):
        line += f"; ONNX {onnx['onnx_rows_per_s']:.0f} rows/s, parity {onnx['onnx_parity_max_abs_diff']:.1e}"
    print(line)


def timed(key: str) -> bool:
    """Whether a figure of `export_student`'s is a speed (the machine's), not a result."""
    return key.endswith(("rows_per_s", "speedup"))


def teacher_rate(logs: Path | None, used: list[str]) -> float | None:
    """Rows/s of the teacher blend as the submission (and the ensemble export) predicts: every
    fitted model of every blended teacher runs for each row (its fold models and refits: `fits`
    in `train`'s log of timings, 1 in older logs), so their times add up. None when the log is
    not there or a rate was not measured. The student it is compared with is one model."""
    path = None if logs is None else logs / "train.json"
    if path is None or not path.is_file():
        return None
    timings = [read_json(path)["models"].get(n, {}) for n in used]
    if not timings or not all(t.get("rows_per_s") for t in timings):
        return None
    return 1.0 / sum(t.get("fits", 1) / t["rows_per_s"] for t in timings)


def speed_figures(student_rate: float, teacher_rate: float | None, onnx_rates: dict) -> dict:
    """Rows/s of teachers and student, and the student's speed-ups (the log's distill.json)."""

    def ratio(rate):
        return round(rate / teacher_rate, 2) if rate and teacher_rate else None

    return {
        "teacher_rows_per_s": None if teacher_rate is None else round(teacher_rate, 1),
        "student_rows_per_s": round(student_rate, 1),
        "speedup": ratio(student_rate),
        **onnx_rates,
        "onnx_speedup": ratio(onnx_rates.get("onnx_rows_per_s")),
    }
