"""The model registry: name -> factory, like `timm.create_model`.

A factory is registered with `@register_model(name, tasks=..., modality=...)`, optionally
with a `search_space(trial) -> dict` for Optuna. `create_model(name, ctx, **params)` builds a
fresh model for one fold; unknown names and parameters fail loudly.

Every model honours one small contract (so train, tune, distill and ensemble treat them
alike):

    model.fit(X, y, eval_set=(X_val, y_val), soft_targets=None) -> model
    model.predict_output(X) -> np.ndarray   # binary: P(class 1), (n,); multiclass: (n, k);
                                            # regression: values, (n,)

`X` is a pandas DataFrame for tabular competitions and a uint8 array (n, C, H, W) for image
ones; `y` holds encoded classes 0..k-1 (or values). `soft_targets`, when given, are the
teacher's outputs for the training rows, in the same form as `predict_output` returns.

The families register themselves when imported; `pipelines/models/__init__.py` imports them
all (as timm's `models/__init__.py` does), so importing anything from this package fills
the registry, and this module imports none of them back.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from pipelines.core.context import TABULAR, TEXT, ModelContext
from pipelines.core.errors import PipelineError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Callable
    tasks: tuple[str, ...]
    modality: str
    search_space: Callable | None
    accepts_soft_targets: bool


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    *,
    modality: str,
    tasks: tuple[str, ...] = ("binary", "multiclass", "regression"),
    search_space: Callable | None = None,
    accepts_soft_targets: bool = False,
):
    def decorator(factory: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelEntry(name, factory, tasks, modality, search_space, accepts_soft_targets)
        return factory

    return decorator


def serves(model_modality: str, competition_modality: str) -> bool:
    """Whether a model of one modality plays a competition of another: its own, and tabular
    models also play text competitions (on their other columns and the texts' statistics)."""
    return model_modality == competition_modality or (model_modality, competition_modality) == (TABULAR, TEXT)


def list_models(modality: str | None = None, task: str | None = None) -> list[str]:
    return sorted(
        e.name
        for e in _REGISTRY.values()
        if (modality is None or e.modality == modality) and (task is None or task in e.tasks)
    )


def get_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        raise PipelineError(f"unknown model {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def unknown_params(name: str, params) -> tuple[list[str], list[str]]:
    """The names in `params` that model `name`'s factory does not take, and those it takes."""
    accepted = inspect.signature(get_entry(name).factory).parameters
    takes = sorted(set(accepted) - {"ctx"})
    if any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        return [], takes
    return sorted(set(params) - set(takes)), takes


def create_model(name: str, ctx: ModelContext, **params):
    entry = get_entry(name)
    if ctx.task not in entry.tasks:
        raise PipelineError(f"model {name!r} does not support task {ctx.task!r} (supports {entry.tasks})")
    unknown, takes = unknown_params(name, params)
    if unknown:
        raise PipelineError(f"model {name!r}: unknown parameter(s) {unknown}; accepted: {takes}")
    return entry.factory(ctx, **params)
