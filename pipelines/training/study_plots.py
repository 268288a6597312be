"""Tables of finished Optuna studies, which `tune` writes as the CSVs that `dvc.yaml` declares
as plots: the history (value and best so far per trial), the parameter importances
(`optuna.importance`, PED-ANOVA by default) and one slice per parameter (objective against
the parameter's value, one point per trial). Each function takes `{model: study}`.
"""

from __future__ import annotations

import logging
import warnings

import optuna
import pandas as pd
from optuna.trial import TrialState

log = logging.getLogger(__name__)


def _complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def history_table(studies: dict[str, optuna.Study], greater_is_better: bool) -> pd.DataFrame:
    """Each completed trial's value and the best so far, by trial number (`history.csv`)."""
    frames = []
    for model, study in studies.items():
        trials = sorted(_complete(study), key=lambda t: t.number)
        values = pd.Series([t.value for t in trials], dtype=float)
        best = values.cummax() if greater_is_better else values.cummin()
        frames.append(
            pd.DataFrame({"model": model, "trial": [t.number for t in trials], "value": values, "best": best})
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["model", "trial", "value", "best"])


def importance_table(studies: dict[str, optuna.Study]) -> pd.DataFrame:
    """Each tuned parameter's importance (summing to 1 per model), most important first
    (`importances.csv`); a study with too few distinct trials to tell has no rows."""
    rows = []
    for model, study in studies.items():
        try:
            with warnings.catch_warnings():  # few trials: "importances will be equal", which the table shows
                warnings.simplefilter("ignore", UserWarning)
                importances = optuna.importance.get_param_importances(study)
        except (ValueError, RuntimeError) as err:  # e.g. one completed trial, or every param constant
            log.info("tune: no parameter importances for %s (%s)", model, err)
            continue
        rows += [{"model": model, "param": f"{model}: {p}", "importance": v} for p, v in importances.items()]
    return pd.DataFrame(rows, columns=["model", "param", "importance"])


def slice_tables(studies: dict[str, optuna.Study]) -> dict[str, pd.DataFrame]:
    """Per model and parameter (`<model>-<param>`): the objective of each completed trial
    against the parameter's value (`slices/<model>-<param>.csv`)."""
    tables = {}
    for model, study in studies.items():
        trials = _complete(study)
        for param in sorted({p for t in trials for p in t.params}):
            points = [(t.number, t.params[param], t.value) for t in trials if param in t.params]
            tables[f"{model}-{param}"] = pd.DataFrame(points, columns=["trial", "value", "objective"])
    return tables
