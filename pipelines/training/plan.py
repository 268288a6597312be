"""One resolved plan per competition: params.yaml plus clean's metadata -> what will run.

    python -m pipelines plan <name>     # prints it; `train` writes it beside its outputs

`make_plan(params, name, data)` decides once what the stages used to re-derive each on its
own: which models train (size and image rules applied, logreg swapped for ridge on
regression), each with its arguments from params.yaml, which of them tune searches and
with which fixed arguments, the folds, how many refits on every row join each model's test
predictions, the student and its distillation arguments, the epochs, threads and seed, and
each stage's share of the time budget. The `Plan` is frozen: a stage reads load -> plan ->
run -> write, and asks the plan, not the params, what to do.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

from pipelines.core.budget import Deadline, process_start, stage_seconds
from pipelines.core.config import Params
from pipelines.core.errors import PipelineError
from pipelines.core.paths import Paths
from pipelines.models.registry import get_entry, serves
from pipelines.models.selection import models_for, student_for

log = logging.getLogger(__name__)
TIMED_STAGES = ("tune", "train", "distill")


@dataclass(frozen=True)
class ModelPlan:
    """One model the competition trains: its registry name and params.yaml's arguments for it
    (`train.params`, over tuned values and the factory's defaults)."""

    name: str
    args: dict = field(default_factory=dict)
    tuned: bool = False  # whether `tune` searches its space (its best params then come first)
    # the defaults that differ at this data size (`ModelEntry.defaults_at`), beneath tuned
    # values and `args`: what "the defaults" mean for this competition
    sized: dict = field(default_factory=dict)
    folds: int | None = None  # fold fits when fewer than the folds (`train.max_folds`: merged), else None
    refits: int = 0  # refits on every row (seeds) beside the folds (`train.refit`)


@dataclass(frozen=True)
class Plan:
    name: str
    task: str
    metric: str
    modality: str
    rows: int  # training rows
    n_splits: int
    student_refit: int  # the student's refits on every row (0 or 1: a student is there for speed, not seeds)
    seed: int
    threads: int
    nproc: int  # torch processes per torch model (torchrun)
    epochs: int  # upper bound for torch models
    models: tuple[ModelPlan, ...]
    student: ModelPlan  # args: distillation's (temperature, alpha where it takes them) and train.params
    student_epochs: int
    tune_models: tuple[str, ...]  # the models tune searches, in tune.models' order
    tune_trials: int  # per tuned model (the study's total), after tune.row_budget
    tune_rows: int  # the rows a trial sees (tune.max_rows)
    budget: dict = field(default_factory=dict)  # stage -> seconds of its share (None: no limit)

    @property
    def fits(self) -> int:
        """The student's fits: one per fold, and its refit."""
        return self.n_splits + self.student_refit

    def model(self, name: str) -> ModelPlan:
        """The planned model `name`."""
        return next(m for m in self.models if m.name == name)

    def fits_of(self, model: ModelPlan) -> int:
        """The fits of one planned model: its fold fits (fewer where its folds are merged), and its refits."""
        return (model.folds or self.n_splits) + model.refits

    def deadline(self, stage: str) -> Deadline:
        """The stage's share of the time budget, its clock started when this process did."""
        return Deadline(self.budget.get(stage), start=process_start())

    @property
    def paths(self) -> Paths:
        return Paths(self.name)

    def to_dict(self) -> dict:
        return {**asdict(self), "paths": {k: str(v) for k, v in self.paths.folders().items()}}


def make_plan(params: Params, name: str, data) -> Plan:
    """The plan of competition `name` for the cleaned data `data` (`outputs.cleaned.CleanData`,
    or anything with its `meta`, `y` and `folds`)."""
    spec, meta = params.competition(name), data.meta
    rows, n_splits = len(data.y), int(data.folds.max()) + 1
    modality = meta["modality"]
    tunable = [m for m in params.tune.models if _tunable(m, meta["task"], modality)] if params.tune.n_trials else []
    chosen = _playable(models_for(params, name, rows), params, spec.weights, modality)
    if not chosen:
        raise PipelineError(
            f"params.yaml: competitions.{name}: every model needs pretrained weights; give the competition `weights:`"
        )
    tunable = [m for m in tunable if m in chosen]
    merge = {m: k for m, k in params.train.max_folds.items() if k < n_splits}
    models = tuple(
        ModelPlan(m, args, tuned=m in tunable, folds=merge.get(m), refits=_refits(params, modality, rows, m in merge),
                  sized=get_entry(m).defaults_at(rows, meta["task"]))
        for m, args in chosen.items()
    )  # fmt: skip
    student = student_for(params, modality, rows, name)
    takes = get_entry(student).defaults  # a tree student has no temperature to soften
    kd = {k: v for k, v in (("temperature", params.distill.temperature), ("alpha", params.distill.alpha)) if k in takes}
    tune_rows = min(rows, params.tune.max_rows or rows)
    return Plan(
        name=name,
        task=meta["task"],
        metric=meta["metric"],
        modality=modality,
        rows=rows,
        n_splits=n_splits,
        student_refit=min(_refits(params, modality, rows), 1),
        seed=params.seed,
        threads=params.train.threads,
        nproc=params.train.nproc,
        epochs=params.train.epochs,
        models=models,
        student=ModelPlan(student, {**kd, **params.train.params_for(student)}),
        student_epochs=params.distill.epochs,
        tune_models=tuple(tunable),
        tune_trials=params.tune.trials_for(tune_rows, meta["n_classes"]),
        tune_rows=tune_rows,
        budget={stage: stage_seconds(params.budget, stage) for stage in TIMED_STAGES},
    )


def _refits(params: Params, modality: str, rows: int, merged: bool = False) -> int:
    """A model's refits on every row (`train.refit`); under a `budget`, `auto` gives one at
    most: the time goes to the folds and one refit, not to seeds (each fit also predicts the
    test rows, which on 28,000 digits costs a short fit's time)."""
    refits = params.train.refit_for(modality, rows, merged)
    return min(refits, 1) if params.budget is not None and params.train.refit == "auto" else refits


def _arguments(model: str, params: Params, weights: str | None, modality: str) -> dict:
    """params.yaml's arguments for `model`; a pretrained one also gets its weights source: its
    own `weights` argument, else the competition's `weights:`, else `train.weights`."""
    args = params.train.params_for(model)
    if get_entry(model).pretrained and not args.get("weights"):
        args["weights"] = weights or params.train.weights.get(modality)
    return args


def _playable(models: list[str], params: Params, weights: str | None, modality: str) -> dict[str, dict]:
    """The models that can play, with their arguments: one with a pretrained backbone needs a
    weights source, else it is skipped with a log line."""
    playable = {}
    for model in models:
        args = _arguments(model, params, weights, modality)
        if get_entry(model).pretrained and not args.get("weights"):
            log.info("%s skipped: no pretrained weights (the competition's `weights:` or train.weights.%s)",
                     model, modality)  # fmt: skip
            continue
        playable[model] = args
    return playable


def _tunable(model: str, task: str, modality: str) -> bool:
    entry = get_entry(model)
    return entry.search_space is not None and task in entry.tasks and serves(entry.modality, modality)


def describe(plan: Plan) -> str:
    """The plan as a person reads it (`python -m pipelines plan <name>`): each model's
    arguments merged, those params.yaml sets marked `*` (tuned values replace the rest)."""
    refits = {m.refits for m in plan.models}
    refit = f" + {_refits_words(refits.pop())}" if len(refits) == 1 and max(refits) else ""
    lines = [
        f"{plan.name}: {plan.task} ({plan.modality}), metric {plan.metric}, {plan.rows} training rows",
        f"  folds: {plan.n_splits}{refit}; seed {plan.seed}, {plan.threads} threads, {plan.nproc} process(es)",
        f"  epochs: up to {plan.epochs} (student: {plan.student_epochs})",
    ]
    for m in plan.models:
        tuned = f"; tuned: {plan.tune_trials} trials on {plan.tune_rows} rows" if m.tuned else ""
        folds = f"; {plan.n_splits} folds merged into {m.folds} fits" if m.folds else ""
        folds += f"; + {_refits_words(m.refits)}" if not refit and m.refits else ""
        lines.append(f"  model {m.name}: {_args(m)}{tuned}{folds}")
    student = f"; + {_refits_words(plan.student_refit)}" if plan.student_refit else ""
    lines.append(f"  student {plan.student.name}: {_args(plan.student)}{student}")
    shares = [f"{s} {v:.0f}s" for s, v in plan.budget.items() if v is not None]
    lines.append(f"  budget: {', '.join(shares) if shares else 'none'}")
    p = plan.paths
    lines.append(f"  writes: {p.tune}, {p.train}, {p.distill}, {p.submissions} (timings and this plan: {p.logs})")
    return "\n".join(lines)


def _refits_words(n: int) -> str:
    return "a refit on every row" if n == 1 else f"{n} refits on every row (seeds)"


def _args(model: ModelPlan) -> str:
    """The model's arguments, merged: params.yaml's (marked *) over the factory's defaults."""
    merged = {**get_entry(model.name).defaults, **model.sized, **model.args}
    return ", ".join(f"{k}={v!r}{'*' if k in model.args else ''}" for k, v in merged.items())
