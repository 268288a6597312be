"""The resolved plan (`training/plan.py`): what the stages will run, decided once."""

from __future__ import annotations

import json

import pytest
import yaml

from pipelines.__main__ import main
from pipelines.core.config import parse_params
from pipelines.outputs.cleaned import CleanData
from pipelines.training.plan import make_plan
from tests.conftest import TITANIC, tiny_params


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory):
    root = tmp_path_factory.mktemp("plan")
    params = tiny_params(titanic=TITANIC)
    params["tune"]["models"] = ["lightgbm", "mlp"]
    params["train"]["params"] = {"mlp": {"hidden": 16}}
    params["budget"] = 100
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    common = ["titanic", "--params", str(root / "params.yaml")]
    assert main(["download", *common, "--out", str(root / "raw")]) == 0
    assert main(["clean", *common, "--raw", str(root / "raw"), "--out", str(root / "clean")]) == 0
    return root, params


def test_plan_resolves_models_folds_student_and_budget(cleaned):
    root, raw = cleaned
    data = CleanData(root / "clean")
    plan = make_plan(parse_params(raw), "titanic", data)
    assert [m.name for m in plan.models] == ["lightgbm", "logreg", "mlp"]
    assert {m.name: m.args for m in plan.models}["mlp"] == {"hidden": 16}
    assert plan.tune_models == ("lightgbm", "mlp") and tuple(m.name for m in plan.models if m.tuned) == plan.tune_models
    assert plan.n_splits == 3 and plan.fits == 3 and not plan.student_refit and plan.rows == len(data.y)
    # the tabular student takes the distillation arguments; the budget is shared out once
    assert plan.student.name == "student_mlp" and plan.student.args == {"temperature": 2.0, "alpha": 0.7}
    assert plan.budget == pytest.approx({"tune": 12.0, "train": 58.0, "distill": 18.0})
    assert plan.deadline("train").seconds == pytest.approx(58.0)
    assert json.loads(json.dumps(plan.to_dict()))["paths"]["train"] == "data/train/titanic"


def test_plan_command_prints_it(cleaned, capsys):
    root, raw = cleaned
    argv = ["plan", "titanic", "--params", str(root / "params.yaml"), "--clean", str(root / "clean")]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "model mlp: hidden=16*, layers=2, " in text and "; tuned: 2 trials on 623 rows" in text
    assert "student student_mlp: " in text and "temperature=2.0*" in text
    assert "folds: 3;" in text and "train 58s" in text
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(
        json.dumps(make_plan(parse_params(raw), "titanic", CleanData(root / "clean")).to_dict())
    )


def test_plan_before_clean_is_one_line(cleaned, tmp_path, capsys):
    root, _ = cleaned
    rc = main(["plan", "titanic", "--params", str(root / "params.yaml"), "--clean", str(tmp_path / "nothing")])
    err = capsys.readouterr().err
    assert rc == 2 and "no cleaned data; run `dvc repro clean@titanic` first" in err and len(err.splitlines()) == 1


def test_a_competition_whose_models_all_need_missing_weights_is_one_line(tmp_path):
    from types import SimpleNamespace

    import numpy as np

    from pipelines.core.errors import PipelineError

    raw = tiny_params(texts={"source": "local", "path": str(tmp_path), "id": "id", "target": "y", "task": "binary",
                             "metric": "f1", "modality": "text", "models": ["text_embed"]})  # fmt: skip
    raw["train"]["weights"] = {}
    meta = {"modality": "text", "task": "binary", "metric": "f1", "n_classes": 2}
    data = SimpleNamespace(meta=meta, y=np.zeros(10), folds=np.arange(10) % 2)
    with pytest.raises(PipelineError, match="every model needs pretrained weights; give the competition `weights:`"):
        make_plan(parse_params(raw), "texts", data)
    raw["competitions"]["texts"]["weights"] = "pip:some-weights==1.0"
    plan = make_plan(parse_params(raw), "texts", data)
    assert plan.models[0].args == {"weights": "pip:some-weights==1.0"}


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_from_20000_rows_the_boosters_defaults_are_pytabkits(task):
    """From 20,000 rows a regression's lightgbm and xgboost defaults are pytabkit's
    meta-learned ones, a classification's xgboost AutoGluon's, beneath tuned values and
    params.yaml's; below, none differ."""
    from types import SimpleNamespace

    import numpy as np

    from pipelines.models.gbdt import LIGHTGBM_LARGE_REGRESSION
    from pipelines.stages.train import _arguments
    from pipelines.stages.tune import default_params

    meta = {"modality": "tabular", "task": task, "metric": "rmse" if task == "regression" else "roc_auc"}
    raw = tiny_params(t={"source": "local", "path": "x", "id": "id", "target": "y", "task": task,
                         "metric": meta["metric"], "models": ["lightgbm", "xgboost"]})  # fmt: skip
    raw["train"]["params"] = {"lightgbm": {"num_leaves": 7}}

    def plan_of(rows):
        data = SimpleNamespace(meta={**meta, "n_classes": 2}, y=np.zeros(rows), folds=np.arange(rows) % 3)
        return make_plan(parse_params(raw), "t", data)

    small, large = plan_of(1_000), plan_of(20_000)
    assert [m.sized for m in small.models] == [{}, {}]
    lgb, xgb = large.model("lightgbm"), large.model("xgboost")
    tuned = {"lightgbm": {"params": {"learning_rate": 0.2}}}
    if task != "regression":
        assert lgb.sized == {} and _arguments(lgb, tuned) == {"learning_rate": 0.2, "num_leaves": 7}
        want = {"learning_rate": 0.1, "max_depth": 6, "subsample": 1.0, "colsample_bytree": 1.0}
        assert xgb.sized == {**want, "max_cat_to_onehot": 64}  # AutoGluon's settings, its one-hot categories
        return
    want = LIGHTGBM_LARGE_REGRESSION
    assert lgb.sized == want and xgb.sized["max_depth"] == 9
    assert _arguments(lgb, tuned) == {**want, "learning_rate": 0.2, "num_leaves": 7}  # params.yaml > tuned > sized
    first = default_params("lightgbm", lgb.sized)  # the study's first trial: what its space can hold
    assert first["learning_rate"] == 0.05 and first["subsample"] == 0.7 and first["colsample_bytree"] == 1.0
    assert not {"num_leaves", "min_child_samples", "reg_lambda"} & set(first)  # 100 > 64, 3 < 5, 0 in a log range


def test_catboost_boosts_faster_from_100k_rows_unless_params_say_otherwise():
    """From 100,000 training rows catboost's learning rate is 0.1 (its cost at size), below
    it 0.05; params.yaml's value still wins."""
    from types import SimpleNamespace

    import numpy as np

    from pipelines.stages.train import _arguments

    meta = {"modality": "tabular", "task": "binary", "metric": "roc_auc", "n_classes": 2}
    raw = tiny_params(t={"source": "local", "path": "x", "id": "id", "target": "y", "task": "binary",
                         "metric": "roc_auc", "models": ["catboost"]})  # fmt: skip

    def catboost_at(rows):
        data = SimpleNamespace(meta=meta, y=np.zeros(rows), folds=np.arange(rows) % 3)
        return make_plan(parse_params(raw), "t", data).model("catboost")

    assert catboost_at(99_999).sized == {} and catboost_at(100_000).sized == {"learning_rate": 0.1}
    raw["train"]["params"] = {"catboost": {"learning_rate": 0.03}}
    assert _arguments(catboost_at(150_000), {})["learning_rate"] == 0.03


def test_refits_per_model_merged_fine_tune_on_small_text_and_seeds_on_large_images(tmp_path):
    from types import SimpleNamespace

    import numpy as np

    from pipelines.training.plan import describe

    text = {"source": "local", "path": str(tmp_path), "id": "id", "target": "y", "task": "binary", "metric": "f1",
            "modality": "text", "models": ["tfidf_linear", "text_finetune"], "weights": "pip:w==1.0"}  # fmt: skip
    raw = tiny_params(texts=text)
    raw["folds"]["n_splits"] = 5
    meta = {"modality": "text", "task": "binary", "metric": "f1", "n_classes": 2}
    for rows, want in ((3_000, 1), (9_000, 0)):
        data = SimpleNamespace(meta=meta, y=np.zeros(rows), folds=np.arange(rows) % 5)
        plan = make_plan(parse_params(raw), "texts", data)
        assert {m.name: (m.folds, m.refits) for m in plan.models} == {"tfidf_linear": (None, 0),
                                                                     "text_finetune": (2, want)}  # fmt: skip
        assert plan.fits_of(plan.model("text_finetune")) == 2 + want and plan.student_refit == 0
    assert "model text_finetune: " in describe(make_plan(parse_params(raw), "texts", SimpleNamespace(
        meta=meta, y=np.zeros(3_000), folds=np.arange(3_000) % 5)))  # fmt: skip
    images = {**text, "modality": "image", "models": ["cnn"], "metric": "accuracy",
              "image": {"height": 28, "width": 28, "channels": 1}}  # fmt: skip
    raw = tiny_params(digits=images)
    raw["folds"]["n_splits"] = 3
    data = SimpleNamespace(meta={**meta, "modality": "image"}, y=np.zeros(42_000), folds=np.arange(42_000) % 3)
    plan = make_plan(parse_params(raw), "digits", data)
    assert plan.model("cnn").refits == 3 and plan.fits_of(plan.model("cnn")) == 6 and plan.student_refit == 1
    assert "folds: 3 + 3 refits on every row (seeds);" in describe(plan) and plan.fits == 4
    raw["budget"] = 300  # a budget's time goes to the folds and one refit, not to seeds
    assert make_plan(parse_params(raw), "digits", data).model("cnn").refits == 1
