"""Which models a competition trains, and the check that every model named in the params
exists, fits its modality and task, and takes the arguments given to it.

Lives beside the registry (not in `core.config`) because it needs the registered models (names
from `registry.FAMILIES`; a model's family is imported once its entry is asked for).
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipelines.core.config import Params
from pipelines.core.errors import PipelineError
from pipelines.models.registry import get_entry, known_models, serves, unknown_params

log = logging.getLogger(__name__)
# a listed model that does not support the competition's task is replaced by its counterpart
TASK_COUNTERPART = {"logreg": "ridge", "ridge": "logreg"}


def models_for(params: Params, name: str, n_rows: int | None = None, level: int = logging.INFO) -> list[str]:
    """The competition's models: its own list, else `train.models` for its modality; a model
    that does not support the task is replaced by its counterpart (logreg <-> ridge) or
    dropped, with a log line at `level`, so one default list serves every task. With `n_rows` (training
    rows), a model of `train.models` is skipped outside its `train.min_rows` / `max_rows`, and
    an image model outside its `train.min_side` / `max_side` (a competition's own `models:`
    list is taken as it is)."""
    spec = params.competition(name)
    known = set(known_models())  # names only: no family is imported for them
    chosen: list[str] = []
    for model in spec.models or params.train.models.get(spec.modality, []):
        use = model
        if model in known and spec.task not in get_entry(model).tasks:
            use = TASK_COUNTERPART.get(model)
            if use is None or spec.task not in get_entry(use).tasks:
                log.log(level, "%s: model %s does not support task %s; skipped", name, model, spec.task)
                continue
            log.log(level, "%s: model %s does not support task %s; %s instead", name, model, spec.task, use)
        if n_rows is not None and not spec.models and not fits_size(params, use, n_rows, name):
            continue
        if n_rows is not None and not spec.models and not fits_image(params, use, spec.image, name):
            continue
        if use not in chosen:
            chosen.append(use)
    if n_rows is not None and not chosen:
        images = f" ({spec.image.height}x{spec.image.width} px images)" if spec.image else ""
        raise PipelineError(
            f"params.yaml: train.models.{spec.modality}: no model fits {n_rows} training rows{images} of {name!r} "
            "(see train.min_rows / max_rows / min_side / max_side, or list the competition's own models)"
        )
    return chosen


def within(name: str, model: str, value: int, bounds: tuple[dict, dict], what: str, keys: tuple[str, str]) -> bool:
    """Whether `value` lies within the model's entries in the (low, high) bounds dicts; logs why not."""
    low, high = bounds[0].get(model), bounds[1].get(model)
    for out, limit, sign, key in ((low is not None and value < low, low, "<", keys[0]),
                                  (high is not None and value > high, high, ">", keys[1])):  # fmt: skip
        if out:
            log.info("%s: %s skipped: %d %s %s train.%s.%s = %d", name, model, value, what, sign, key, model, limit)
            return False
    return True


def fits_size(params: Params, model: str, n_rows: int, name: str) -> bool:
    """Whether `n_rows` training rows lie within the model's `train.min_rows` / `max_rows`."""
    bounds = (params.train.min_rows, params.train.max_rows)
    return within(name, model, n_rows, bounds, "training rows", ("min_rows", "max_rows"))


def fits_image(params: Params, model: str, image, name: str) -> bool:
    """Whether the competition's images (`ImageShape`, None when not images) lie within the
    model's `train.min_side` / `max_side` (pixels of the shorter side): digits' 28x28 get the
    compact `cnn`, larger images timm's `resnet` (benchmarks/README.md has the measurements)."""
    if image is None:
        return True
    bounds = (params.train.min_side, params.train.max_side)
    return within(name, model, min(image.height, image.width), bounds, "px images", ("min_side", "max_side"))


def _students(params: Params):
    """(modality, student, params key) for every student named in `distill.student`."""
    for modality, names in params.distill.student.items():
        if isinstance(names, str):
            yield modality, names, f"distill.student.{modality}"
        else:
            yield from ((modality, n, f"distill.student.{modality}[{i}]") for i, n in enumerate(names))


def student_for(params: Params, modality: str, n_rows: int, name: str) -> str:
    """The competition's student: `distill.student`'s for its modality; of a list, the first
    whose `train.min_rows` / `max_rows` admit `n_rows` training rows (else the last)."""
    names = params.distill.student[modality]
    names = [names] if isinstance(names, str) else names
    return next((s for s in names if fits_size(params, s, n_rows, name)), names[-1])


def check_models(params: Params, path: Path | str = "params.yaml") -> None:
    """Every model name in the params is registered, of the right modality, and fits its task.

    The stages that build models (tune, train, distill) call it before anything runs. Every
    competition is checked, silently: the one being played says what it swaps or skips when
    its plan is made, and a stage of one competition says nothing about the others.
    """
    known = set(known_models())  # names only: no family is imported for them

    def entry(key: str, name: str):
        if name not in known:
            raise PipelineError(f"{path}: {key}: unknown model {name!r}; registered: {', '.join(sorted(known))}")
        return get_entry(name)

    for modality, names in params.train.models.items():
        for i, name in enumerate(names):
            if not serves(entry(f"train.models.{modality}[{i}]", name).modality, modality):
                raise PipelineError(f"{path}: train.models.{modality}[{i}]: {name!r} is not {_a(modality)} model")
    for i, name in enumerate(params.tune.models):
        entry(f"tune.models[{i}]", name)
    for key in ("min_rows", "max_rows", "min_side", "max_side"):
        for name in getattr(params.train, key):
            entry(f"train.{key}.{name}", name)
    for name, arguments in params.train.params.items():
        entry(f"train.params.{name}", name)
        unknown, takes = unknown_params(name, arguments)
        if unknown:
            raise PipelineError(
                f"{path}: train.params.{name}.{unknown[0]}: {name!r} has no such argument; it takes {', '.join(takes)}"
            )
    for modality, name, key in _students(params):
        e = entry(key, name)
        if not serves(e.modality, modality) or not e.accepts_soft_targets:
            raise PipelineError(
                f"{path}: distill.student.{modality}: {name!r} is not {_a(modality)} model "
                "that learns from soft targets"
            )
    for comp, spec in params.competitions.items():
        key = f"competitions.{comp}.models" if spec.models is not None else f"train.models.{spec.modality}"
        for i, name in enumerate(spec.models or params.train.models.get(spec.modality, [])):
            e = entry(f"{key}[{i}]", name)
            if not serves(e.modality, spec.modality):
                raise PipelineError(
                    f"{path}: {key}[{i}]: {name!r} is a model for {e.modality} data; {comp!r} is {spec.modality}"
                )
        if not models_for(params, comp, level=logging.DEBUG):  # models that do not fit the task are swapped or skipped
            raise PipelineError(f"{path}: {key}: no models to train for task {spec.task!r} of competition {comp!r}")


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"
