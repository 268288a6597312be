"""The writer of `export`'s ensemble folder (`outputs/served.py` reads it), and its checks.

`export_member` fits a member's fold models again (`training/cv.fitted_models`: torch models
reload their checkpoints from the fold cache, others refit, deterministic for a fixed seed),
checks each against the test predictions the fold cache kept, and writes each in a safe format
(`models/saved.py`). `check_ensemble` runs the folder's ensemble on test.csv's raw rows, as a
client would send them, and refuses an export whose members differ from `train`'s test
predictions or whose answers differ from `submission.csv`: labels exactly, probabilities and
values within `SUBMISSION_TOL` of their scale (the ONNX graphs compute in float32).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.core.errors import PipelineError
from pipelines.models.saved import save_fitted
from pipelines.training.cv import CVOptions, fitted_models, job_name, refit_weight

REFIT_TOL = 1e-6  # a fold model fitted again vs the fold cache's test predictions (relative to their scale)
MEMBER_TOL = 1e-4  # a served member (float32 graphs) vs train's test predictions (relative to their scale)
SUBMISSION_TOL = 1e-5  # served probabilities / values vs submission.csv's (relative to their scale)


@dataclass(frozen=True)
class MemberFit:
    """How a member was cross-validated: what `fitted_models` needs to fit its models again."""

    name: str  # as the ensemble names it (the student: distill:student)
    model: str  # registry name
    params: dict
    ctx: object  # the ModelContext it was trained with
    opts: CVOptions
    data: object  # CleanData


def worst(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    """(max |got - want|, the scale it is measured against: max |want|, at least 1)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return np.inf, 1.0
    return (float(np.max(np.abs(got - want))) if got.size else 0.0), max(1.0, float(np.max(np.abs(want), initial=0)))


def export_member(fit: MemberFit, root: Path) -> dict:
    """Write every fitted model of `fit`'s member under `root/members/<name>/`; its manifest entry."""
    from pipelines.core.metrics import target_transform

    folder = f"members/{fit.name.replace(':', '-')}"
    _, inverse = target_transform(fit.ctx.metric, fit.ctx.task)
    folds, refits = [], []
    for k, est, cached in fitted_models(fit.model, fit.params, fit.data, fit.ctx, fit.opts):
        stem = job_name(k)
        if cached is not None:
            diff, scale = worst(inverse(est.predict_output(fit.data.X_test)), cached)
            if not diff <= REFIT_TOL * scale:
                raise PipelineError(
                    f"export: {fit.name} {stem}, fitted again, predicts the test rows {diff:.3g} away from what "
                    "train kept (the fold cache or the params changed?): re-run the pipeline; not exported"
                )
        entry = save_fitted(est, root / folder, stem)
        entry = {**entry, **{k: f"{folder}/{entry[k]}" for k in ("graph", "state") if entry.get(k)}}
        (refits if k < 0 else folds).append(entry)
    weight = refit_weight(len(refits))
    return {"name": fit.name, "model": fit.model, "folds": folds, "refits": refits, "refit_weight": weight}


def check_members(outputs: list[np.ndarray], names: list[str], expected: dict[str, np.ndarray]) -> dict[str, float]:
    """Each served member's outputs for test.csv's raw rows against its recorded test predictions."""
    diffs = {}
    for name, got in zip(names, outputs, strict=True):
        diff, scale = worst(got, expected[name])
        if not diff <= MEMBER_TOL * scale:
            raise PipelineError(
                f"export: member {name} served from raw test.csv rows is {diff:.3g} away from its test predictions "
                f"(tolerance {MEMBER_TOL:g} x {scale:.3g}): features, preprocessing or model not reproduced; "
                "not exported"
            )
        diffs[name] = diff
    return diffs


def check_submission(served: pd.DataFrame, written: pd.DataFrame, id_col: str, labels: bool) -> float:
    """The served answers for every test row against `submission.csv`'s, matched by id: labels
    exactly, numbers within SUBMISSION_TOL of their scale. Returns the largest difference."""
    got = served.assign(**{id_col: served[id_col].astype(str)}).set_index(id_col)
    want = written.assign(**{id_col: written[id_col].astype(str)}).set_index(id_col)
    if list(got.columns) != list(want.columns) or sorted(got.index) != sorted(want.index):
        raise PipelineError("export: the served answers have other columns or ids than submission.csv; not exported")
    got = got.loc[want.index]
    if labels:
        wrong = int((got.astype(str).to_numpy() != want.astype(str).to_numpy()).any(axis=1).sum())
        if wrong:
            raise PipelineError(f"export: {wrong} served label(s) differ from submission.csv's; not exported")
        return 0.0
    diff, scale = worst(got.to_numpy(np.float64), want.to_numpy(np.float64))
    if not diff <= SUBMISSION_TOL * scale:
        raise PipelineError(
            f"export: served answers are {diff:.3g} away from submission.csv's (tolerance {SUBMISSION_TOL:g} x "
            f"{scale:.3g}); not exported"
        )
    return diff
