"""Typed, strict view of `params.yaml`.

`load_params(path)` validates the whole file with pydantic and returns `Params`; unknown
keys, wrong types and out-of-range values raise `PipelineError` naming the key. Defaults
live here, next to their declaration; `params.yaml` only needs what differs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipelines.errors import PipelineError

Task = Literal["binary", "multiclass", "regression"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
        if self.task not in METRICS[self.metric].tasks:
            raise ValueError(f"metric {self.metric!r} does not apply to task {self.task!r}")
        return self


class FoldParams(Strict):
    n_splits: int = Field(default=5, ge=2, le=50)  # k in k-fold; shared by every model


class TuneParams(Strict):
    models: list[str] = ["lightgbm"]  # models with a search space to tune (others are skipped)
    n_trials: int = Field(default=20, ge=0)  # per model; 0 keeps the defaults
    timeout: float | None = Field(default=60.0, gt=0)  # seconds per model, None for no limit
    storage: str | None = None  # any optuna RDB URL; None: SQLite file in the stage's out folder


class TrainParams(Strict):
    # model names per modality; a competition's own `models:` takes precedence
    models: dict[str, list[str]] = {
        "tabular": ["lightgbm", "logreg", "hgb", "mlp"],
        "image": ["cnn", "resnet", "vit"],
    }
    threads: int = Field(default=2, ge=1)  # torch / LightGBM / OpenMP threads (2-core machine)
    epochs: int = Field(default=30, ge=1)  # upper bound for torch models (early stopping ends sooner)
    deterministic: bool = True  # torch deterministic algorithms (slower on GPU)


class DistillParams(Strict):
    # per modality, a registered model that accepts soft targets
    student: dict[str, str] = {"tabular": "student_mlp", "image": "student_cnn"}
    temperature: float = Field(default=2.0, gt=0)
    alpha: float = Field(default=0.7, ge=0, le=1)  # weight of the soft (teacher) loss
    epochs: int = Field(default=40, ge=1)


class EnsembleParams(Strict):
    methods: list[Literal["hill_climb", "stacking", "mean"]] = ["hill_climb", "stacking", "mean"]
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
        spec = self.competition(name)
        return list(spec.models or self.train.models.get(spec.modality, []))


def _format_error(path: Path, err: ValidationError) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "<root>"
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{path}: {key}: {msg}{more}"


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
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise PipelineError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise PipelineError(f"{path}: expected a mapping at the top level")
    return parse_params(raw, path)
