"""The model registry: name -> factory, like `timm.create_model`.

A factory is registered with `@register_model(name, modality=..., defaults={...})`: what a
model can do is declared on its `ModelEntry` (as timm declares a `pretrained_cfg` and
scikit-learn its estimator tags), never read back from signatures. `defaults` names every
argument the factory takes, with its default, once; `create_model(name, ctx, **params)`
rejects any other name, then calls `factory(ctx, **{**defaults, **params})` for one fold.

Every model honours one small contract (so train, tune, distill and ensemble treat them
alike):

    model.fit(X, y, eval_set=(X_val, y_val), soft_targets=None) -> model
    model.predict_output(X) -> np.ndarray   # binary: P(class 1), (n,); multiclass: (n, k);
                                            # regression: values, (n,)

`X` is a pandas DataFrame for tabular competitions and a uint8 array (n, C, H, W) for image
ones; `y` holds encoded classes 0..k-1 (or values). `soft_targets`, when given, are the
teacher's outputs for the training rows, in the same form as `predict_output` returns.

The families register themselves when imported, and are imported by need: `FAMILIES` names
each model's module, `get_entry`/`create_model` import only that one (a LightGBM run never
loads torch), `list_models` imports them all. This module imports none of them at the top
(`tests/dag.py` reads `FAMILIES` to list them among the deps of the stages that build models).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from pipelines.core.context import TABULAR, TEXT, ModelContext
from pipelines.core.errors import PipelineError

# every registered model -> the module that registers it (a test keeps this and the modules in step)
FAMILIES = {
    "catboost": "pipelines.models.catboost_model",
    "lightgbm": "pipelines.models.gbdt",
    "lightgbm_ordinal": "pipelines.models.gbdt",
    "student_gbdt": "pipelines.models.gbdt",
    "hgb": "pipelines.models.tabular",
    "logreg": "pipelines.models.tabular",
    "random_forest": "pipelines.models.tabular",
    "ridge": "pipelines.models.tabular",
    "svm": "pipelines.models.tabular",
    "student_tfidf": "pipelines.models.text",
    "image_embed": "pipelines.models.embeddings",
    "image_finetune": "pipelines.models.finetune",
    "text_embed": "pipelines.models.embeddings",
    "text_finetune": "pipelines.models.finetune",
    "tfidf_linear": "pipelines.models.text",
    "cnn": "pipelines.models.torch_zoo",
    "mlp": "pipelines.models.mlp",
    "resnet": "pipelines.models.torch_zoo",
    "student_cnn": "pipelines.models.torch_zoo",
    "student_mlp": "pipelines.models.mlp",
    "tabm": "pipelines.models.mlp",
    "text_bert": "pipelines.models.torch_zoo",
    "vit": "pipelines.models.torch_zoo",
    "xgboost": "pipelines.models.xgb",
}


@dataclass(frozen=True)
class ModelEntry:
    """What a model is and can do, declared where it is registered."""

    name: str
    factory: Callable  # (ctx, **arguments) -> model; `create_model` passes every argument of `defaults`
    family: str  # the module that registers it
    modality: str  # the data it fits: tabular, image or text (`serves`: tabular models also play text)
    tasks: tuple[str, ...]
    defaults: Mapping[str, object]  # every argument the factory takes -> its default (read-only)
    search_space: Callable | None = None  # trial -> arguments, for Optuna (tune)
    accepts_soft_targets: bool = False  # learns from a teacher's outputs (a distillation student)
    final_fit: bool = False  # takes `final_fit`; False is its cheaper mode, for tuning trials
    export: str | None = None  # what a fitted model exports to: "onnx" (torch models), else nothing
    # starts from a pretrained backbone: its `weights` argument takes a source (`nn.pretrained`),
    # which the plan fills from the competition's `weights:` or `train.weights`
    pretrained: bool = False
    # its folds share what one process holds (a frozen encoder's embeddings): they run one after
    # another in one process on every thread, never in fold workers that would each embed again
    one_process: bool = False
    # (training rows, task) -> the defaults that differ at that size (`defaults_at`)
    at_size: Callable[[int, str], dict] | None = None

    def defaults_at(self, rows: int, task: str) -> dict:
        """The defaults that replace `defaults` for `rows` training rows of `task` (the plan
        passes them beneath tuned values and params.yaml's): {} where none differ."""
        return dict(self.at_size(rows, task)) if self.at_size is not None else {}


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    *,
    modality: str,
    defaults: Mapping[str, object],
    tasks: tuple[str, ...] = ("binary", "multiclass", "regression"),
    search_space: Callable | None = None,
    accepts_soft_targets: bool = False,
    export: str | None = None,
    pretrained: bool = False,
    one_process: bool = False,
    at_size: Callable[[int, str], dict] | None = None,
):
    """Register the decorated factory `(ctx, **arguments)` as `name`; `defaults` declares
    every argument it takes and its default (`at_size`: those that differ by data size)."""

    def decorator(factory: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelEntry(
            name, factory, factory.__module__, modality, tuple(tasks), MappingProxyType(dict(defaults)),
            search_space, accepts_soft_targets, final_fit="final_fit" in defaults, export=export, pretrained=pretrained,
            one_process=one_process, at_size=at_size,
        )  # fmt: skip
        return factory

    return decorator


def serves(model_modality: str, competition_modality: str) -> bool:
    """Whether a model of one modality plays a competition of another: its own, and tabular
    models also play text competitions (on their other columns and the texts' statistics)."""
    return model_modality == competition_modality or (model_modality, competition_modality) == (TABULAR, TEXT)


def known_models() -> list[str]:
    """Every model name, without importing a family (`FAMILIES`, and any registered elsewhere)."""
    return sorted(set(FAMILIES) | set(_REGISTRY))


def list_models(modality: str | None = None, task: str | None = None) -> list[str]:
    for module in sorted(set(FAMILIES.values())):
        importlib.import_module(module)
    return sorted(
        e.name
        for e in _REGISTRY.values()
        if (modality is None or e.modality == modality) and (task is None or task in e.tasks)
    )


def get_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY and name in FAMILIES:
        importlib.import_module(FAMILIES[name])
    if name not in _REGISTRY:
        raise PipelineError(f"unknown model {name!r}; registered: {', '.join(known_models())}")
    return _REGISTRY[name]


def unknown_params(name: str, params) -> tuple[list[str], list[str]]:
    """The names in `params` that model `name` does not take, and those it takes."""
    takes = sorted(get_entry(name).defaults)
    return sorted(set(params) - set(takes)), takes


def create_model(name: str, ctx: ModelContext, **params):
    entry = get_entry(name)
    if ctx.task not in entry.tasks:
        raise PipelineError(f"model {name!r} does not support task {ctx.task!r} (supports {entry.tasks})")
    unknown, takes = unknown_params(name, params)
    if unknown:
        raise PipelineError(f"model {name!r}: unknown parameter(s) {unknown}; accepted: {takes}")
    return entry.factory(ctx, **{**entry.defaults, **params})
