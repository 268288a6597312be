"""Typed, strict view of `params.yaml`.

`load_params(path)` validates the whole file with pydantic and returns `Params`; unknown
or duplicate keys, wrong types (strictly: `"5"` is not a number, `yes` is not a seed) and
out-of-range values raise `PipelineError` naming the key. `check_models(params)` also
checks every model name against the registry; it imports torch, so only the stages that
train models call it. Defaults live here, next to their declaration; `params.yaml` only
needs what differs.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipelines.errors import PipelineError

Task = Literal["binary", "multiclass", "regression"]
log = logging.getLogger(__name__)
# a listed model that does not support the competition's task is replaced by its counterpart
TASK_COUNTERPART = {"logreg": "ridge", "ridge": "logreg"}
MODALITIES = ("tabular", "image")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")  # Kaggle competition slugs: lowercase, digits, dashes


class Strict(BaseModel):
    # strict: YAML already types its values, so "5" or `true` where a number belongs is a mistake
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _modality_keys(value: dict, what: str) -> dict:
    unknown = [k for k in value if k not in MODALITIES]
    if unknown:
        raise ValueError(f"unknown modality {unknown[0]!r} in {what}; known: {', '.join(MODALITIES)}")
    return value


class ImageShape(Strict):
    height: int = Field(gt=0)
    width: int = Field(gt=0)
    channels: int = Field(default=1, gt=0)


class CompetitionSpec(Strict):
    """One competition: where its files come from and how it is scored (DESIGN.md, contract 1)."""

    source: Literal["embedded", "kaggle", "local"]
    kaggle: str | None = None  # Kaggle slug; for embedded, which shipped dataset (default: the key)
    path: str | None = None  # source local: folder with train.csv, test.csv, sample_submission.csv
    id: str
    target: str
    task: Task
    metric: str
    modality: Literal["tabular", "image"] = "tabular"
    image: ImageShape | None = None  # modality image: shape of the pixel columns
    group: str | None = None  # column for GroupKFold (rows of one group stay in one fold)
    models: list[str] | None = None  # overrides train.models for this competition

    @field_validator("kaggle")
    @classmethod
    def _slug(cls, value: str | None) -> str | None:
        if value is not None and not SLUG.match(value):
            raise ValueError(f"{value!r} is not a Kaggle competition slug (lowercase letters, digits and dashes)")
        return value

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        from pipelines.metrics import METRICS

        if value not in METRICS:
            raise ValueError(f"unknown metric {value!r}; known: {', '.join(sorted(METRICS))}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CompetitionSpec:
        from pipelines.metrics import METRICS

        if self.source == "local" and not self.path:
            raise ValueError("source 'local' needs 'path' (a folder in Kaggle layout)")
        if self.source == "kaggle" and not self.kaggle:
            raise ValueError("source 'kaggle' needs 'kaggle' (the competition slug)")
        if self.modality == "image" and self.image is None:
            raise ValueError("modality 'image' needs 'image: {height, width, channels}'")
        if self.modality != "image" and self.image is not None:
            raise ValueError("'image' is only for modality 'image'")
        if self.id == self.target:
            raise ValueError(f"'id' and 'target' are the same column {self.id!r}")
        if self.group is not None and self.group in (self.id, self.target):
            raise ValueError(f"'group' {self.group!r} must be a feature column, not the id or target")
        if self.task not in METRICS[self.metric].tasks:
            raise ValueError(f"metric {self.metric!r} does not apply to task {self.task!r}")
        return self


MIN_TRIALS = 5  # tune.row_budget never cuts a study below this many trials
AUTO_FEW_FOLDS_ROWS = 200_000  # from this many training rows, n_splits "auto" means 3 folds (else 5)


class FoldParams(Strict):
    # k in k-fold, shared by every model; "auto": 5, or 3 from AUTO_FEW_FOLDS_ROWS training rows on
    n_splits: Annotated[int, Field(ge=2, le=50)] | Literal["auto"] = "auto"

    def resolve(self, n_rows: int) -> int:
        if self.n_splits != "auto":
            return self.n_splits
        return 3 if n_rows >= AUTO_FEW_FOLDS_ROWS else 5


class TuneParams(Strict):
    models: list[str] = ["lightgbm"]  # models with a search space to tune (others are skipped)
    n_trials: int = Field(default=20, ge=0)  # per model; 0 keeps the defaults
    # seconds per model, None for no limit; a time budget makes the trial count (and so the
    # result) depend on the machine's speed: reproducible runs keep it None
    timeout: float | None = Field(default=60.0, gt=0)
    storage: str | None = None  # any optuna RDB URL; None: SQLite file in the stage's out folder
    # trials run on a seeded subsample of at most this many training rows (folds kept), so
    # tuning costs about the same on large data; the best params then train on every row
    max_rows: int | None = Field(default=10_000, ge=100)
    # fewer trials on costly data: at most row_budget / (rows x classes) trials, never below
    # MIN_TRIALS (nor above n_trials); deterministic, unlike a timeout
    row_budget: int | None = Field(default=100_000, ge=1)

    def trials_for(self, n_rows: int, n_classes: int) -> int:
        if self.row_budget is None or self.n_trials == 0:
            return self.n_trials
        affordable = self.row_budget // max(1, n_rows * (n_classes if n_classes > 2 else 1))
        return min(self.n_trials, max(MIN_TRIALS, affordable))

    @field_validator("storage")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and "://" not in value:
            raise ValueError(f"{value!r} is not a database URL (e.g. sqlite:///study.db, postgresql://host/db)")
        return value


class TrainParams(Strict):
    # model names per modality; a competition's own `models:` takes precedence
    models: dict[str, list[str]] = {
        "tabular": ["lightgbm", "logreg", "svm", "mlp"],
        "image": ["cnn"],
    }
    # torch / LightGBM / OpenMP threads (2-core machine); part of the result: summation order
    # follows the thread count, so runs are byte-identical only for the same value
    threads: int = Field(default=2, ge=1)
    epochs: int = Field(default=30, ge=1)  # upper bound for torch models (early stopping ends sooner)
    # torch deterministic algorithms, no cuDNN autotuning (slower on GPU); with False, GPU
    # runs may differ in the last bits from one run to the next (tests/test_determinism.py)
    deterministic: bool = True
    # also fit each model on every training row and make its test predictions half that
    # refit's, half the fold models' mean (train and distill); auto: image models only (torch
    # nets train a fixed schedule, so a refit needs no validation rows; a fold model sees 4/5
    # of the rows). On four 1,000-digit splits it was neither better nor worse than the fold
    # models alone (README), within noise; true / false: every model / none
    refit: Literal["auto"] | bool = "auto"

    _modalities = field_validator("models")(classmethod(lambda cls, v: _modality_keys(v, "train.models")))

    # factory arguments per model, e.g. {cnn: {label_smoothing: 0.1}}: over the model's defaults
    # and over what `tune` found (tuning searches with them fixed); a student's apply in distill
    params: dict[str, dict[str, Any]] = {}

    def params_for(self, model: str) -> dict:
        return dict(self.params.get(model, {}))

    def refit_for(self, modality: str) -> bool:
        return modality == "image" if self.refit == "auto" else self.refit


class DistillParams(Strict):
    # per modality, a registered model that accepts soft targets
    student: dict[str, str] = {"tabular": "student_mlp", "image": "student_cnn"}
    temperature: float = Field(default=2.0, gt=0)
    alpha: float = Field(default=0.7, ge=0, le=1)  # weight of the soft (teacher) loss
    epochs: int = Field(default=40, ge=1)

    _modalities = field_validator("student")(classmethod(lambda cls, v: _modality_keys(v, "distill.student")))


class EnsembleParams(Strict):
    # simplest first: a later method is chosen only if it beats the earlier ones by more than
    # one standard error of its nested-OOF fold scores
    methods: list[Literal["hill_climb", "stacking", "mean"]] = ["mean", "stacking", "hill_climb"]
    iterations: int = Field(default=50, ge=1)  # hill-climbing steps (Caruana selection)


class Params(Strict):
    seed: int = 42
    competitions: dict[str, CompetitionSpec]
    folds: FoldParams = FoldParams()
    tune: TuneParams = TuneParams()
    train: TrainParams = TrainParams()
    distill: DistillParams = DistillParams()
    ensemble: EnsembleParams = EnsembleParams()

    def competition(self, name: str) -> CompetitionSpec:
        if name not in self.competitions:
            known = ", ".join(self.competitions) or "none"
            raise PipelineError(f"params.yaml: no competition {name!r} under 'competitions' (known: {known})")
        return self.competitions[name]

    def models_for(self, name: str) -> list[str]:
        """The competition's models: its own list, else `train.models` for its modality; a model
        that does not support the task is replaced by its counterpart (logreg <-> ridge) or
        dropped, with a log line, so one default list serves every task."""
        from pipelines.models.registry import get_entry, list_models

        spec = self.competition(name)
        known = set(list_models())
        chosen: list[str] = []
        for model in spec.models or self.train.models.get(spec.modality, []):
            use = model
            if model in known and spec.task not in get_entry(model).tasks:
                use = TASK_COUNTERPART.get(model)
                if use is None or spec.task not in get_entry(use).tasks:
                    log.info("%s: model %s does not support task %s; skipped", name, model, spec.task)
                    continue
                log.info("%s: model %s does not support task %s; %s instead", name, model, spec.task, use)
            if use not in chosen:
                chosen.append(use)
        return chosen


# the last `loc` part of an error inside `int | Literal["auto"]` and the like names the union
# member (e.g. "constrained-int", "literal['auto']"), not a key the user wrote
_UNION_MEMBER = re.compile(r"^(constrained-)?(int|float|str|bool|none)$|\[|^function-")


def _format_error(path: Path, err: ValidationError) -> str:
    errors = err.errors()
    first = errors[0]
    loc = list(first["loc"])
    group = [first]
    if loc and isinstance(loc[-1], str) and _UNION_MEMBER.search(loc[-1]):
        loc = loc[:-1]  # one error per union member: say what each would accept, together
        group = [e for e in errors if list(e["loc"][:-1]) == loc]
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "<root>"
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    else:
        msgs = [e["msg"].removeprefix("Value error, ") for e in group]
        msg = msgs[0] + "".join(f", or {m.removeprefix('Input should be ')}" for m in msgs[1:])
        if first["type"] != "value_error" and not isinstance(first.get("input"), (dict, list)):
            msg += f" (got {first.get('input')!r})"
    rest = len(errors) - len(group)
    more = f" (and {rest} more)" if rest else ""
    return f"{path}: {key}: {msg}{more}"


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load, except that a key given twice is an error (YAML silently keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (line {key_node.start_mark.line + 1})", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def parse_params(raw: dict, path: Path | str = "params.yaml") -> Params:
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise PipelineError(_format_error(Path(path), err)) from None


def load_params(path: Path | str = "params.yaml") -> Params:
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: params file not found")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except UnicodeDecodeError as err:
        raise PipelineError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except yaml.constructor.ConstructorError as err:
        raise PipelineError(f"{path}: {err.problem}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise PipelineError(f"{path}: not valid YAML ({what}{where})") from None
    if not isinstance(raw, dict):
        raise PipelineError(f"{path}: expected a mapping at the top level")
    return parse_params(raw, path)


def check_models(params: Params, path: Path | str = "params.yaml") -> None:
    """Every model name in the params is registered, of the right modality, and fits its task.

    Imports the model registry (and so torch): `__main__` calls it for the stages that train.
    """
    from pipelines.models.registry import get_entry, list_models, unknown_params

    known = set(list_models())

    def entry(key: str, name: str):
        if name not in known:
            raise PipelineError(f"{path}: {key}: unknown model {name!r}; registered: {', '.join(sorted(known))}")
        return get_entry(name)

    for modality, names in params.train.models.items():
        for i, name in enumerate(names):
            if entry(f"train.models.{modality}[{i}]", name).modality != modality:
                raise PipelineError(f"{path}: train.models.{modality}[{i}]: {name!r} is not a {modality} model")
    for i, name in enumerate(params.tune.models):
        entry(f"tune.models[{i}]", name)
    for name, arguments in params.train.params.items():
        entry(f"train.params.{name}", name)
        unknown, takes = unknown_params(name, arguments)
        if unknown:
            raise PipelineError(
                f"{path}: train.params.{name}.{unknown[0]}: {name!r} has no such argument; it takes {', '.join(takes)}"
            )
    for modality, name in params.distill.student.items():
        e = entry(f"distill.student.{modality}", name)
        if e.modality != modality or not e.accepts_soft_targets:
            raise PipelineError(
                f"{path}: distill.student.{modality}: {name!r} is not a {modality} model that learns from soft targets"
            )
    for comp, spec in params.competitions.items():
        key = f"competitions.{comp}.models" if spec.models is not None else f"train.models.{spec.modality}"
        for i, name in enumerate(spec.models or params.train.models.get(spec.modality, [])):
            e = entry(f"{key}[{i}]", name)
            if e.modality != spec.modality:
                raise PipelineError(
                    f"{path}: {key}[{i}]: {name!r} is a model for {e.modality} data; {comp!r} is {spec.modality}"
                )
        if not params.models_for(comp):  # models that do not fit the task are swapped or skipped
            raise PipelineError(f"{path}: {key}: no models to train for task {spec.task!r} of competition {comp!r}")
