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
and student: CV scores, rows/s of the teacher ensemble (every blended teacher runs for each
row), of the student in torch and in onnxruntime (fp32 and int8), and the ONNX student's
score on its fold's held-out rows.
"""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

from pipelines.core.budget import Deadline, OverBudget
from pipelines.core.context import set_threads
from pipelines.core.errors import PipelineError
from pipelines.core.io import atomic_dir, save_array, write_json
from pipelines.core.metrics import target_transform
from pipelines.core.tables import take_rows
from pipelines.features.portable import preprocessor_state
from pipelines.models.registry import unknown_params
from pipelines.models.selection import check_models, student_for
from pipelines.outputs.cleaned import CleanData
from pipelines.stages.common import load_predictions, model_context, save_predictions, trained
from pipelines.training.cv import cross_validate, fold_workers
from pipelines.training.ensembling import blend, hill_climb


def add_arguments(parser) -> None:
    for flag in ("clean", "train", "cache", "out"):
        parser.add_argument(f"--{flag}", type=Path, required=True)


def teacher_targets(preds: dict, y: np.ndarray, metric, task: str, iterations: int):
    """Blend weights, the blend's OOF predictions, and per-fold soft targets (n_splits, n, ...)."""
    names = list(preds)
    weights = hill_climb([preds[n]["oof"] for n in names], y, metric, task, iterations)
    oof = blend([preds[n]["oof"] for n in names], weights, metric, task)
    n_splits = preds[names[0]]["fold_train"].shape[0]
    soft = np.stack([blend([preds[n]["fold_train"][k] for n in names], weights, metric, task) for k in range(n_splits)])
    return dict(zip(names, weights.round(4).tolist(), strict=True)), oof, soft


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
    dp = params.distill
    ctx = model_context(data, params, epochs=dp.epochs)
    student = student_for(params, data.meta["modality"], len(data.y), args.name)
    teachers = load_predictions(args.train, trained(args.train)[0])
    weights, teacher_oof, soft = teacher_targets(teachers, data.y, ctx.metric, ctx.task, params.ensemble.iterations)
    takes = unknown_params(student, {})[1]  # a tree student has no temperature to soften
    kd = {k: v for k, v in (("temperature", dp.temperature), ("alpha", dp.alpha)) if k in takes}
    kd.update(params.train.params_for(student))
    refit = params.train.refit_for(data.meta["modality"])
    deadline, workers = Deadline.for_stage(params.budget, "distill"), fold_workers(student, ctx, data.n_splits)
    check = deadline.fold_check(student, data.n_splits + refit) if params.budget and workers == 1 else None
    try:
        result = cross_validate(
            student, kd, data.X, data.y, data.X_test, data.folds,
            replace(ctx, fit_seconds=deadline.share(data.n_splits + refit)),
            soft_targets=soft, cache_dir=args.cache, keep_last_model=True, workers=workers, refit=refit, on_fold=check,
            score_rows=data.score_rows,
        )  # fmt: skip
    except OverBudget as err:
        with atomic_dir(args.out) as tmp:
            write_json(tmp / "left_out.json", {"student": str(err)})
        print(f"{args.name}: student {student} left out: {err}")
        return
    used = [n for n, w in weights.items() if w > 0]
    # every teacher in the blend must run for each row: their times add up
    teacher_rate = 1.0 / sum(1.0 / teachers[n]["scores"]["rows_per_s"] for n in used)
    teacher_cv = ctx.metric.on(data.y, teacher_oof, ctx.task, data.score_rows)
    with atomic_dir(args.out) as tmp:
        save_predictions(tmp / "student", result, {"model": student, "teachers": weights})
        last = np.flatnonzero(data.folds == data.folds.max())  # rows the exported (last fold's) model never saw
        forward, inverse = target_transform(ctx.metric, ctx.task)
        onnx = export_student(
            result.last_model, take_rows(data.X, last), data.y[last], data.X_test, tmp, ctx.metric, ctx.task, inverse
        )
        speed = {"metric": ctx.metric.name, "teacher_cv": teacher_cv, "student_cv": result.score}
        speed.update(speed_figures(result.rows_per_s, teacher_rate, onnx))
        # rmsle: models learn log1p(target), so the graph's outputs need expm1
        transformed = not np.array_equal(forward(np.ones(1)), np.ones(1))
        write_json(tmp / "speed.json", {**speed, "onnx_output_transform": "expm1" if transformed else None})
    line = f"{args.name}: student {student} cv {result.score:.5f} vs teachers {teacher_cv:.5f}; "
    line += f"{result.rows_per_s / teacher_rate:.1f}x faster"
    if onnx.get("onnx"):
        line += f"; ONNX {onnx['onnx_rows_per_s']:.0f} rows/s, parity {onnx['onnx_parity_max_abs_diff']:.1e}"
    print(line)


def speed_figures(student_rate: float, teacher_rate: float, onnx: dict) -> dict:
    """Rows/s of teachers and student, and the student's speed-ups (speed.json)."""
    return {
        "teacher_rows_per_s": round(teacher_rate, 1),
        "student_rows_per_s": round(student_rate, 1),
        "speedup": round(student_rate / teacher_rate, 2),
        **onnx,
        "onnx_speedup": round(onnx["onnx_rows_per_s"] / teacher_rate, 2) if onnx.get("onnx") else None,
    }
