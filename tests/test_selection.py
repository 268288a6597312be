"""Model names in params.yaml (`models/selection.py`): every name registered, of the right
modality, fit for its task, and given only arguments its factory takes; checked before a
stage runs, each failure one line naming the key (see tests/bad_inputs.py)."""

import pytest

from tests.bad_inputs import Case, assert_refused, ids, param, spec

CASES = [
    Case(
        "unknown model",
        param(train={"models": {"tabular": ["lgbm"]}}),
        ("train.models.tabular[0]", "unknown model 'lgbm'"),
        stage="train",
    ),
    Case(
        "model of other modality",
        spec(models=["logreg", "cnn"]),
        ("competitions.comp.models[1]", "'cnn' is a model for image data"),
        stage="train",
    ),
    Case(
        "no models at all",
        param(train={"models": {"tabular": []}}),
        ("train.models.tabular", "no models to train for task 'binary'"),
        stage="train",
    ),
    Case(
        "arguments for an unknown model",
        param(train={"params": {"lgbm": {"n_estimators": 10}}}),
        ("train.params.lgbm", "unknown model 'lgbm'"),
        stage="train",
    ),
    Case(
        "unknown model argument",
        param(train={"params": {"logreg": {"c": 1.0}}}),
        ("train.params.logreg.c", "no such argument", "it takes C"),
        stage="tune",
    ),
    Case(
        "unknown tuned model",
        param(tune={"models": ["lightgmb"]}),  # a typo ('xgboost', used here before, is registered now)
        ("tune.models[0]", "unknown model 'lightgmb'"),
        stage="tune",
    ),
    Case(
        "student without soft targets",
        param(distill={"student": {"tabular": "lightgbm"}}),
        ("distill.student.tabular", "soft targets"),
        stage="distill",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_bad_input_is_one_clear_line(case: Case, tmp_path, capsys):
    assert_refused(case, tmp_path, capsys)
