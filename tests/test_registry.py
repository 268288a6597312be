"""The registry's declarations: `FAMILIES` names where each model is registered, families load
by need, and each entry's `defaults` is the one statement of its factory's arguments."""

from __future__ import annotations

import inspect
import subprocess
import sys
from dataclasses import fields

import pytest

from pipelines.core.errors import PipelineError
from pipelines.models.registry import FAMILIES, create_model, get_entry, known_models, list_models
from tests.dag import ROOT, families


def test_the_families_table_is_what_the_families_register():
    registered = {name: get_entry(name).family for name in list_models()}
    assert registered == FAMILIES  # none missing from the table, none listed that no family registers
    assert all(get_entry(name).factory.__module__ == module for name, module in FAMILIES.items())
    assert families() == tuple(sorted(set(FAMILIES.values())))  # what tests/dag.py reads from the source


def test_a_family_is_imported_only_when_one_of_its_models_is_asked_for():
    script = """
import sys
import pipelines.models
from pipelines.models.registry import FAMILIES, get_entry, known_models
from pipelines.models.selection import models_for
loaded = lambda: sorted(m for m in set(FAMILIES.values()) if m in sys.modules)
assert loaded() == [] and sorted(known_models()) == sorted(FAMILIES), loaded()
get_entry("logreg")
assert loaded() == ["pipelines.models.tabular"] and "torch" not in sys.modules, loaded()
"""
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True)


def test_unknown_names_list_every_model_without_loading_them():
    with pytest.raises(PipelineError, match="unknown model 'xgbost'; registered: catboost, cnn, "):
        get_entry("xgbost")
    assert known_models() == list_models()


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_defaults_are_stated_once_and_name_every_argument(name):
    """A factory's keyword arguments have no defaults of their own: `entry.defaults` holds them
    (torch models: the net's here, the training ones from `Recipe`)."""
    from pipelines.models.torch_recipe import Recipe

    entry = get_entry(name)
    params = {n: p for n, p in inspect.signature(entry.factory).parameters.items() if n != "ctx"}
    assert all(p.default is p.empty for p in params.values()), f"{name}: a default outside entry.defaults"
    assert type(entry.defaults).__name__ == "mappingproxy"  # read-only
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):  # a variant passing its arguments on
        return
    own = set(entry.defaults) - ({f.name for f in fields(Recipe)} if entry.export == "onnx" else set())
    assert own <= set(params) <= set(entry.defaults)  # a fine-tune's net takes `weights`, a Recipe name too
    assert all(p.kind is p.KEYWORD_ONLY for p in params.values())
    assert entry.final_fit == ("final_fit" in entry.defaults)


def test_lightgbm_ordinal_takes_lightgbm_s_arguments_but_ordinal():
    assert set(get_entry("lightgbm_ordinal").defaults) == set(get_entry("lightgbm").defaults) - {"ordinal"}
    from pipelines.core.context import ModelContext
    from pipelines.core.metrics import get_metric

    ctx = ModelContext(task="multiclass", metric=get_metric("qwk"), n_classes=3)
    with pytest.raises(PipelineError, match=r"unknown parameter\(s\) \['ordinal'\]"):
        create_model("lightgbm_ordinal", ctx, ordinal=False)
    assert create_model("lightgbm_ordinal", ctx).ordinal


def test_torch_models_export_to_onnx_and_nothing_else_does():
    from pipelines.core.context import ModelContext
    from pipelines.core.metrics import get_metric
    from pipelines.models.torch_adapter import TorchModel

    ctx = ModelContext(task="binary", metric=get_metric("roc_auc"), n_classes=2, image_shape=(1, 8, 8))
    for name in list_models():
        if "binary" in get_entry(name).tasks:
            weights = {"weights": "any-source"} if get_entry(name).pretrained else {}  # resolved only at fit
            model = create_model(name, ctx, **weights)
            assert (get_entry(name).export == "onnx") == isinstance(model, TorchModel), name
