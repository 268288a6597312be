"""params.yaml validation: strict keys, known names, clear messages."""

import pytest
import yaml

from pipelines.config import load_params, parse_params
from pipelines.errors import PipelineError
from tests.conftest import ROOT, TITANIC


def test_repo_params_are_valid():
    params = load_params(ROOT / "params.yaml")
    assert "titanic" in params.competitions
    assert params.models_for("titanic") == params.train.models["tabular"]
    assert set(params.competitions) == {"titanic", "house-prices", "digit-recognizer"}  # the README's defaults
    assert params.models_for("digit-recognizer") == params.train.models["image"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"metric": "accuracyy"}, "unknown metric 'accuracyy'"),
        ({"task": "ranking"}, "competitions.t.task"),
        ({"colour": "red"}, "competitions.t.colour: unknown key"),
        ({"source": "local"}, "needs 'path'"),
        ({"metric": "rmse"}, "does not apply to task 'binary'"),
        ({"modality": "image"}, "needs 'image"),
    ],
)
def test_bad_spec_names_the_key(change, message):
    with pytest.raises(PipelineError, match=message.replace("(", r"\(").replace("'", "'")):
        parse_params({"competitions": {"t": {**TITANIC, **change}}})


def test_bad_types_and_ranges():
    with pytest.raises(PipelineError, match=r"folds.n_splits"):
        parse_params({"competitions": {"t": TITANIC}, "folds": {"n_splits": 1}})
    with pytest.raises(PipelineError, match=r"tune.n_trials"):
        parse_params({"competitions": {"t": TITANIC}, "tune": {"n_trials": "many"}})


def test_unknown_competition_and_bad_yaml(tmp_path):
    params = parse_params({"competitions": {"t": TITANIC}})
    with pytest.raises(PipelineError, match="no competition 'x'"):
        params.competition("x")
    bad = tmp_path / "params.yaml"
    bad.write_text("competitions: [\n")
    with pytest.raises(PipelineError, match="not valid YAML"):
        load_params(bad)
    bad.write_text(yaml.safe_dump(["a"]))
    with pytest.raises(PipelineError, match="mapping"):
        load_params(bad)


def test_refit_auto_means_image_models_only():
    auto = parse_params({"competitions": {"t": TITANIC}}).train
    assert auto.refit == "auto" and auto.refit_for("image") and not auto.refit_for("tabular")
    on = parse_params({"competitions": {"t": TITANIC}, "train": {"refit": True}}).train
    assert on.refit_for("tabular") and on.refit_for("image")
    with pytest.raises(PipelineError, match=r"train.refit"):
        parse_params({"competitions": {"t": TITANIC}, "train": {"refit": "sometimes"}})
