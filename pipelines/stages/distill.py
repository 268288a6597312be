"""Stage `distill`: one small, fast student trained on the teacher ensemble's soft targets.

    python -m pipelines distill <name> --clean data/clean/<name> --train data/train/<name> \
        --cache data/cache/<name>/distill --out data/distill/<name>

The teacher is the hill-climbing blend of the trained models (weights chosen on their OOF
predictions). The student is cross-validated on the same folds (KD loss with temperature
and alpha); in fold k its soft targets come from the teachers' fold-k models, which never
saw fold k's labels, so the student's CV is as honest as the teachers'. This gives `student/oof.npy`, `student/test.npy` and `student/scores.json` like
any model, so `ensemble` may use it too. `speed.json` compares the student's prediction
throughput and CV with the teachers'. The student refitted on all rows is exported to
ONNX (`student.onnx`) and checked against torch for parity.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.cv import cross_validate
from pipelines.ensembling import blend, hill_climb
from pipelines.io import atomic_dir, write_json
from pipelines.stages.clean import CleanData
from pipelines.stages.common import load_predictions, model_context, save_predictions, set_threads


def add_arguments(parser) -> None:
    for flag in ("clean", "train", "cache", "out"):
        parser.add_argument(f"--{flag}", type=Path, required=True)


def teacher_targets(preds: dict, y: np.ndarray, metric, task: str, iterations: int):
    """Blend weights, the blend's OOF predictions, and per-fold soft targets (n_splits, n, ...)."""
    names = list(preds)
    weights = hill_climb([preds[n]["oof"] for n in names], y, metric, task, iterations)
    oof = blend([preds[n]["oof"] for n in names], weights, metric, task)
    n_splits = preds[names[0]]["fold_train"].shape[0]
    soft = np.stack(
        [blend([preds[n]["fold_train"][k] for n in names], weights, metric, task) for k in range(n_splits)]
    )
    return dict(zip(names, weights.round(4).tolist())), oof, soft


def main(args, params) -> None:
    set_threads(params.train.threads)
    data = CleanData(args.clean)
    dp = params.distill
    ctx = model_context(data, params, epochs=dp.epochs)
    student = dp.student[data.meta["modality"]]
    teachers = load_predictions(args.train, params.models_for(args.name))
    weights, teacher_oof, soft = teacher_targets(teachers, data.y, ctx.metric, ctx.task, params.ensemble.iterations)
    kd = {"temperature": dp.temperature, "alpha": dp.alpha}
    result = cross_validate(
        student, kd, data.X, data.y, data.X_test, data.folds, ctx, soft_targets=soft, cache_dir=args.cache
    )
    used = [n for n, w in weights.items() if w > 0]
    # every teacher in the blend must run for each row: their times add up
    teacher_rate = 1.0 / sum(1.0 / teachers[n]["scores"]["rows_per_s"] for n in used)
    with atomic_dir(args.out) as tmp:
        save_predictions(tmp / "student", result, {"model": student, "teachers": weights})
        write_json(
            tmp / "speed.json",
            {
                "metric": ctx.metric.name,
                "teacher_cv": ctx.metric(data.y, teacher_oof, ctx.task),
                "student_cv": result.score,
                "teacher_rows_per_s": round(teacher_rate, 1),
                "student_rows_per_s": round(result.rows_per_s, 1),
                "speedup": round(result.rows_per_s / teacher_rate, 2),
            },
        )
    print(
        f"{args.name}: student {student} cv {result.score:.5f} vs teachers "
        f"{ctx.metric(data.y, teacher_oof, ctx.task):.5f}; {result.rows_per_s / teacher_rate:.1f}x faster"
    )
