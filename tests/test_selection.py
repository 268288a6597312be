"""Model names in params.yaml (`models/selection.py`): every name registered, of the right
modality, fit for its task, and given only arguments its factory takes; checked before a
stage runs, each failure one line naming the key (see tests/bad_inputs.py)."""

import logging

import pytest
import yaml

from pipelines.core.config import load_params, parse_params
from pipelines.core.errors import PipelineError
from pipelines.models.selection import check_models, models_for
from tests.bad_inputs import Case, assert_refused, ids, param, spec
from tests.conftest import ROOT

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
        "text model for a table",
        spec(models=["lightgbm", "tfidf_linear"]),
        ("competitions.comp.models[1]", "'tfidf_linear' is a model for text data; 'comp' is tabular"),
        stage="train",
    ),
    Case(
        "tabular student for images",
        param(distill={"student": {"image": "student_gbdt"}}),
        ("distill.student.image", "'student_gbdt' is not an image model"),
        stage="distill",
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


def test_default_models_follow_the_size_of_the_data():
    params = load_params(ROOT / "params.yaml")
    assert models_for(params, "titanic", 891) == ["lightgbm", "logreg", "svm", "mlp"]
    assert models_for(params, "titanic", 34_000) == ["lightgbm", "xgboost", "catboost"]
    assert models_for(params, "house-prices", 1_000) == ["lightgbm", "ridge", "svm", "mlp"]  # logreg -> ridge
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["competitions"]["titanic"]["models"] = ["svm", "catboost"]  # a competition's own list is kept as it is
    assert models_for(parse_params(raw), "titanic", 34_000) == ["svm", "catboost"]


def test_default_image_models_follow_the_size_of_the_images():
    """Digits (28x28) keep the compact cnn; from 32 px timm's resnet, the fine-tuned and the
    frozen ImageNet backbones take over (the solar cells); a competition's own list is kept."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    cells = {"source": "local", "path": "cells", "id": "id", "target": "defective", "task": "binary",
             "metric": "roc_auc", "modality": "image", "image": {"height": 32, "width": 48, "channels": 1}}  # fmt: skip
    raw["competitions"]["cells"] = cells
    params = parse_params(raw)
    assert models_for(params, "digit-recognizer", 42_000) == ["cnn"]
    assert models_for(params, "cells", 1_968) == ["resnet", "image_finetune", "image_embed"]
    raw["competitions"]["cells"] = {**cells, "image": {"height": 31, "width": 300, "channels": 3}}
    assert models_for(parse_params(raw), "cells", 1_968) == ["cnn"]  # the shorter side decides
    raw["competitions"]["cells"]["models"] = ["cnn", "resnet"]
    assert models_for(parse_params(raw), "cells", 1_968) == ["cnn", "resnet"]
    raw["competitions"]["cells"]["models"] = None
    raw["train"]["models"]["image"] = ["resnet"]
    with pytest.raises(PipelineError, match=r"no model fits 1968 training rows \(31x300 px images\) of 'cells'"):
        models_for(parse_params(raw), "cells", 1_968)


def test_no_model_left_by_the_size_rules_is_one_clear_error():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["train"]["models"]["tabular"] = ["svm", "mlp"]
    with pytest.raises(PipelineError, match="train.models.tabular: no model fits 50000 training rows of 'titanic'"):
        models_for(parse_params(raw), "titanic", 50_000)


def test_tabular_models_also_play_text_competitions():
    """A text competition's other columns and its texts' statistics are a table."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["competitions"]["spam"] = {"source": "embedded", "kaggle": "sms-spam", "id": "id", "target": "target",
                                   "task": "binary", "metric": "f1", "modality": "text"}  # fmt: skip
    params = parse_params(raw)
    check_models(params)
    assert models_for(params, "spam", 3_000) == ["tfidf_linear", "text_finetune", "text_embed", "lightgbm"]
    raw["competitions"]["spam"]["models"] = ["catboost", "cnn"]
    with pytest.raises(PipelineError, match=r"models\[1\]: 'cnn' is a model for image data; 'spam' is text"):
        check_models(parse_params(raw))


def test_playing_one_competition_logs_nothing_about_another(tmp_path, caplog):
    """Every competition is checked, but a stage of Titanic says nothing of House Prices'
    logreg -> ridge swap; House Prices' own stages still say it."""
    from pipelines.__main__ import main

    caplog.set_level(logging.DEBUG, logger="pipelines")
    params = str(ROOT / "params.yaml")
    assert main(["zoo", "titanic", "--params", params, "--out", str(tmp_path / "titanic")]) == 0
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert not [line for line in said if "house-prices" in line or "digit-recognizer" in line], said
    assert any("house-prices: model logreg" in r.getMessage() for r in caplog.records)  # checked, at debug level
    caplog.clear()
    assert main(["zoo", "house-prices", "--params", params, "--out", str(tmp_path / "hp")]) == 0
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert "house-prices: model logreg does not support task regression; ridge instead" in said
    assert not [line for line in said if "titanic" in line], said
