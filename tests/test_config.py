"""params.yaml validation: strict keys, known names, clear messages.

`CASES` are broken params files and specs run through the command line (see
tests/bad_inputs.py): each is refused with exit status 2 and one line naming the key.
"""

import pytest
import yaml

from pipelines.core.config import load_params, parse_params
from pipelines.core.errors import PipelineError
from pipelines.models.selection import models_for
from tests.bad_inputs import Case, assert_refused, ids, param, params_text, spec
from tests.conftest import ROOT, TITANIC

CASES = [
    Case("unknown top-level key", param(sed=3), ("params.yaml", "sed: unknown key")),
    Case("unknown spec key", spec(colour="red"), ("competitions.comp.colour: unknown key",)),
    Case("unknown metric", spec(metric="acc"), ("competitions.comp.metric", "unknown metric 'acc'")),
    Case("unknown task", spec(task="ranking"), ("competitions.comp.task", "'ranking'")),
    Case("unknown modality", spec(modality="audio"), ("competitions.comp.modality", "'audio'")),
    Case("metric not for task", spec(metric="rmse"), ("competitions.comp", "'rmse' does not apply to task 'binary'")),
    Case("number as text", param(folds={"n_splits": "5"}), ("folds.n_splits", "valid integer", "'5'")),
    Case("out of range", param(folds={"n_splits": 1}), ("folds.n_splits", "greater than or equal to 2")),
    Case("bool as seed", param(seed=True), ("seed:", "valid integer", "True")),
    Case("fraction above 1", param(distill={"alpha": 1.5}), ("distill.alpha", "less than or equal to 1")),
    Case("unknown ensemble method", param(ensemble={"methods": ["blend"]}), ("ensemble.methods[0]", "'blend'")),
    Case("storage not a URL", param(tune={"storage": "study.db"}), ("tune.storage", "not a database URL")),
    Case("unknown pruner", param(tune={"pruner": "asha"}), ("tune.pruner", "'asha'")),
    Case("no workers", param(tune={"workers": 0}), ("tune.workers", "greater than or equal to 1")),
    Case(
        "grace within a heartbeat",
        param(tune={"grace_period": 5, "heartbeat_interval": 10}),
        ("tune.grace_period", "must exceed"),
    ),
    Case("unknown modality key", param(train={"models": {"tabluar": ["logreg"]}}), ("train.models", "'tabluar'")),
    Case("local without path", spec(path=None), ("competitions.comp", "needs 'path'")),
    Case("bad kaggle slug", spec(source="kaggle", kaggle="Titanic Comp"), ("competitions.comp.kaggle", "slug")),
    Case("id is target", spec(id="y"), ("competitions.comp", "same column 'y'")),
    Case("image shape on tabular", spec(image={"height": 4, "width": 4}), ("competitions.comp", "only for modality")),
    Case("duplicate yaml key", params_text("seed: 1\nseed: 2\ncompetitions: {}\n"), ("duplicate key 'seed'", "line 2")),
    Case("not yaml", params_text("competitions: [\n"), ("params.yaml", "not valid YAML")),
    Case("yaml not a mapping", params_text("- a\n- b\n"), ("params.yaml", "mapping at the top level")),
    Case("params not utf-8", params_text(b"seed: 1 # caf\xe9\ncompetitions: {}\n"), ("params.yaml", "not UTF-8")),
    Case("no such competition", lambda ws: setattr(ws, "name", "other"), ("no competition 'other'", "comp")),
    Case("missing params file", lambda ws: setattr(ws, "params_path", None), ("nope.yaml", "params file not found")),
    Case("no image shape", spec(image=None), ("competitions.comp", "needs 'image"), image=True),
    Case(
        "zero height",
        spec(image={"height": 0, "width": 4}),
        ("competitions.comp.image.height", "greater than 0"),
        image=True,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_bad_input_is_one_clear_line(case: Case, tmp_path, capsys):
    assert_refused(case, tmp_path, capsys)


def test_repo_params_are_valid():
    params = load_params(ROOT / "params.yaml")
    assert "titanic" in params.competitions
    assert models_for(params, "titanic") == params.train.models["tabular"]
    assert set(params.competitions) == {"titanic", "house-prices", "digit-recognizer"}  # the README's defaults
    assert models_for(params, "digit-recognizer") == params.train.models["image"]


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


def test_refit_auto_means_image_models_with_seeds_at_size_and_tables_from_20k_rows():
    auto = parse_params({"competitions": {"t": TITANIC}}).train
    assert auto.refit == "auto" and auto.refit_for("image", 4_000) == 1 and auto.refit_for("tabular", 4_000) == 0
    assert auto.refit_for("image", 42_000) == 3 and auto.refit_for("tabular", 300_000) == 1
    assert auto.refit_for("tabular", 19_999) == 0 and auto.refit_for("tabular", 20_000) == 1
    # a fine-tune fitted on merged folds (about half the rows a fit) refits on small sets only
    assert auto.refit_for("text", 3_385, merged=True) == 1 and auto.refit_for("text", 3_385) == 0
    assert auto.refit_for("text", 10_246, merged=True) == 0
    on = parse_params({"competitions": {"t": TITANIC}, "train": {"refit": True}}).train
    assert on.refit_for("tabular", 891) == 1 and on.refit_for("image", 42_000) == 1
    two = parse_params({"competitions": {"t": TITANIC}, "train": {"refit": 2}}).train
    assert two.refit_for("tabular", 891) == 2
    for bad in ("sometimes", -1):
        with pytest.raises(PipelineError, match=r"train.refit"):
            parse_params({"competitions": {"t": TITANIC}, "train": {"refit": bad}})
