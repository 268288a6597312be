"""The reader of `export`'s ensemble folder: the models the submission came from, blended as
the `ensemble` stage blended them, from raw rows.

    model = load_export("data/export/titanic")   # the ensemble or the student, as the folder holds
    model.submission(model.predict(model.frame(rows)), ids)

The ensemble folder (`model.json` format 3, `kind: ensemble`), JSON and ONNX only:
- `model.json`: what every export says (`exported.Served`), the blend's method and nested CV,
  its members (each with its fold models and, where train refitted on every row, those
  refits and their share), the library versions the states need, every other file's SHA-256;
- `features.json` (tables, texts): the clean-time feature recipe (`features/tabular.py`);
- `blend.json`: the fitted blend (`training/ensembling.Blend.state`): exact weights, or the
  stacker's coefficients, and thresholds;
- `members/<model>/fold<k>.{onnx,json}`, `full.*` (`full<r>.*`): each fitted model (`models/saved.py`);
- `examples.json`: three of test.csv's rows and their outputs, re-checked at every load;
- `requirements.txt`: pins of the libraries the states need (the Dockerfile installs them).

A member's output is what `train` (or `distill`) predicted for the test rows: the mean of its
fold models' outputs (in the target's own units), with refits the mean of their outputs
`refit_weight` of it and the folds' mean the rest. Loading rebuilds only what
`core/safe_state.py` trusts, refuses other library versions than the export's, and runs no
torch.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from pipelines.core.errors import PipelineError
from pipelines.core.metrics import get_metric, target_transform
from pipelines.core.safe_state import check_versions, decode
from pipelines.features.tabular import apply_features
from pipelines.outputs.exported import (
    EXAMPLES,
    MANIFEST,
    ExportedModel,
    Served,
    ServedModel,
    check_files,
    onnx_session,
    read_json_file,
    read_manifest,
)
from pipelines.outputs.submission import prediction_values
from pipelines.training.ensembling import Blend

ENSEMBLE_FORMAT = 3  # 3: a member's `refits` (a list; 2 had one `refit`)
FEATURES, BLEND, REQUIREMENTS = "features.json", "blend.json", "requirements.txt"


class FoldSpec(BaseModel):
    """One fitted model's files (`models/saved.py`), paths relative to the export folder."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    kind: Literal["onnx", "state"]
    graph: str | None = None
    state: str | None = None
    inputs: Literal["table", "tokens", "pixels"] | None = None
    libraries: dict[str, str] = {}


class MemberSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    name: str  # as details.json names it (the student: distill:student)
    model: str  # its registry name
    folds: list[FoldSpec]
    refits: list[FoldSpec] = []
    refit_weight: float = 0.0


class EnsembleManifest(Served):
    """`model.json` of an ensemble export."""

    kind: Literal["ensemble"]
    method: str
    cv: float | None
    members: list[MemberSpec]
    libraries: dict[str, str]  # library -> the version its states were written with
    integer_values: bool = False  # a regression target of integers scored on labels (qwk): rounded


def _files(spec: FoldSpec) -> list[str]:
    return [f for f in (spec.graph, spec.state) if f is not None]


class FoldModel:
    """One fitted model: `output(X)` is its `predict_output` on the features (or pixels)."""

    def __init__(self, spec: FoldSpec, folder: Path, threads: int):
        self.spec, self.session, self.model = spec, None, None
        state = read_json_file(folder / spec.state) if spec.state is not None else {}
        if spec.kind == "state":
            self.model = decode(state)
            return
        self.session = onnx_session(folder / spec.graph, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.prep = decode(state["preprocessor"]) if spec.inputs == "table" else None
        self.tokens = decode(state["tokens"]) if spec.inputs == "tokens" else None
        self.columns = state.get("columns")

    def output(self, X) -> np.ndarray:
        if self.model is not None:
            return np.asarray(self.model.predict_output(X), dtype=np.float64)
        if self.spec.inputs == "table":
            x = np.asarray(self.prep.transform(X), dtype=np.float32)
        elif self.spec.inputs == "tokens":
            x = self.tokens.encode(X[self.columns]).astype(np.int64)
        else:
            x = np.asarray(X, dtype=np.float32)
        return self.session.run(None, {self.input_name: x})[0].astype(np.float64)


class Member:
    """One member of the blend: its fold models (and refit) combined as cross-validation did."""

    def __init__(self, spec: MemberSpec, folder: Path, threads: int, inverse):
        self.spec, self.inverse = spec, inverse
        self.folds = [FoldModel(f, folder, threads) for f in spec.folds]
        self.refits = [FoldModel(f, folder, threads) for f in spec.refits]

    def output(self, X) -> np.ndarray:
        out = self._mean(self.folds, X)
        if not self.refits:
            return out
        w = self.spec.refit_weight
        return (1 - w) * out + w * self._mean(self.refits, X)

    def _mean(self, fits: list[FoldModel], X) -> np.ndarray:
        total = 0.0
        for fit in fits:
            total = total + self.inverse(fit.output(X))
        return total / len(fits)


class ExportedEnsemble(ServedModel):
    """A loaded ensemble export (see the module doc)."""

    def __init__(self, manifest: EnsembleManifest, recipe: dict | None, members: list[Member], blend: Blend):
        super().__init__(manifest, recipe)
        self.members, self.blend = members, blend

    @classmethod
    def load(cls, folder: Path | str, threads: int = 1) -> ExportedEnsemble:
        """Load and check an ensemble export folder; PipelineError names what is wrong with it."""
        folder = Path(folder)
        m = read_manifest(folder, EnsembleManifest, ENSEMBLE_FORMAT)
        specs = [f for member in m.members for f in [*member.folds, *member.refits]]
        wanted = {EXAMPLES, BLEND, REQUIREMENTS, *(f for s in specs for f in _files(s))}
        check_files(folder, m, wanted | (set() if m.modality == "image" else {FEATURES}))
        check_versions(m.libraries, folder / MANIFEST)
        model = cls.build(folder, m, threads)
        model.check_examples(read_json_file(folder / EXAMPLES), folder / EXAMPLES)
        return model

    @classmethod
    def build(cls, folder: Path, m: EnsembleManifest, threads: int = 1) -> ExportedEnsemble:
        """The ensemble of the folder's files, as the manifest `m` names them (unchecked)."""
        metric = get_metric(m.metric)
        _, inverse = target_transform(metric, m.task)
        try:
            members = [Member(spec, folder, threads, inverse) for spec in m.members]
            blend = Blend.from_state(read_json_file(folder / BLEND), metric, m.task)
            recipe = None if m.modality == "image" else read_json_file(folder / FEATURES)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise PipelineError(f"{folder}: malformed export ({type(err).__name__}: {err})") from None
        return cls(m, recipe, members, blend)

    def describe(self) -> dict:
        m = self.manifest
        return {"model": "ensemble", "method": m.method, "cv": m.cv, "members": [s.name for s in m.members]}

    def features(self, frame):
        """The clean-time features of typed rows (images: the pixels as they are)."""
        return frame if self.manifest.modality == "image" else apply_features(self.recipe, frame)[0]

    def member_outputs(self, frame) -> list[np.ndarray]:
        X = self.features(frame)
        return [member.output(X) for member in self.members]

    def predict(self, frame) -> np.ndarray:
        """The ensemble's outputs, as the `ensemble` stage's for the test rows."""
        return self.blend.apply(self.member_outputs(frame))

    def submission(self, outputs: np.ndarray, ids) -> pd.DataFrame:
        """As the `ensemble` stage writes it: a regression target scored on labels (qwk) has its
        values from thresholds already (and integer ratings stay integers)."""
        m = self.manifest
        metric = replace(self.metric, submits="values") if m.task == "regression" else self.metric
        values = prediction_values(outputs, self.value_columns, m.classes, metric, m.task)
        if m.integer_values:
            values = values.round().astype(np.int64)
        values.insert(0, m.id, list(ids))
        return values[m.submission_columns]


def load_export(folder: Path | str, threads: int = 1) -> ServedModel:
    """Whatever `export` wrote into `folder`: the ensemble (default) or the student (`--student`)."""
    folder = Path(folder)
    if read_json_file(folder / MANIFEST).get("kind") == "ensemble":
        return ExportedEnsemble.load(folder, threads)
    return ExportedModel.load(folder, threads)
