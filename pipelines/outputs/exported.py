"""The reader of `export --student`'s folder: a self-contained student that predicts from raw
rows; and what every export shares (`Served`: the manifest's common fields; `ServedModel`:
rows -> frame -> outputs -> submission rows, the examples' check; the file checks). The
ensemble's folder is read by `outputs/served.py`, whose `load_export` reads either.

    model = ExportedModel.load("data/export/titanic")
    model.submission(model.predict(model.frame(rows)), ids)   # rows: test.csv's columns

The folder holds only JSON and an ONNX graph, never a pickle: loading runs no code from the
files. `model.json` (the manifest, checked field by field: an unknown key, a wrong type or a
file not listed is refused) names each other file with its SHA-256, which must match (a
changed or truncated file is refused: an integrity check, not a signature: whoever can write
the folder can rewrite the manifest too). `examples.json` holds a few of test.csv's rows and
the outputs the export gave them; loading predicts them again and refuses a model that now
answers differently. Tables: `preprocess.json` holds the clean-time feature recipe
(`features/tabular.py`) and the fitted preprocessor (`features/portable.py`); images: the
pixel scaling is inside the graph, which takes uint8 pixels as float (n, C, H, W).
Only numpy, pandas, scikit-learn, Pillow and onnxruntime are needed (no torch).
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from pathlib import Path
from types import SimpleNamespace
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from pipelines.core.errors import PipelineError
from pipelines.core.metrics import get_metric, target_transform
from pipelines.features.portable import Portable
from pipelines.features.tabular import apply_features, typed_inputs
from pipelines.outputs.submission import prediction_values

FORMAT = 1
MANIFEST, GRAPH, PREPROCESS, EXAMPLES = "model.json", "model.onnx", "preprocess.json", "examples.json"
EXAMPLE_TOL = 1e-5  # outputs of the examples may differ this much from the export's (float32 graph)
InputKind = Literal["integer", "number", "boolean", "string"]


class Served(BaseModel):
    """What every export's `model.json` says: what the model is, what it takes, how it answers."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    format: int
    name: str
    modality: Literal["tabular", "image", "text"]
    task: Literal["binary", "multiclass", "regression"]
    metric: str
    classes: list[int | float | str | bool]
    id: str
    submission_columns: list[str]
    inputs: dict[str, InputKind] = {}  # tables and texts: test.csv's columns (less the id) and their kinds
    pixel_columns: list[str] = []  # images given as pixel columns in test.csv
    image_shape: list[int] | None = None  # images: (C, H, W)
    files: dict[str, str]  # file name -> SHA-256 of its bytes


class Manifest(Served):
    """`model.json` of a student export (`export --student`): one ONNX graph."""

    modality: Literal["tabular", "image"]
    student: str
    student_cv: float | None
    model_inputs: list[int]  # the graph's input shape less the batch axis


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_json_file(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise PipelineError(f"{path}: unreadable ({err})") from None


def _lookups(recipe: dict) -> dict:
    """The recipe with its value maps as pandas Series: `Series.map` turns a dict into one on
    every call, which would cost each request more than the model does."""

    def convert(obj):
        if isinstance(obj, dict):
            values = list(obj.values())
            if values and all(v is None or isinstance(v, int | float) for v in values) and len(values) > 8:
                return pd.Series(obj, dtype=np.float64)
            return {k: convert(v) for k, v in obj.items()}
        return [convert(v) for v in obj] if isinstance(obj, list) else obj

    return convert(recipe)


class ServedModel(ABC):
    """What every loaded export does: `frame(rows)` -> `predict(frame)` -> `submission(outputs, ids)`,
    and re-check its stored examples. Subclasses: the student (`ExportedModel`, here) and the
    ensemble (`outputs/served.py`)."""

    def __init__(self, manifest: Served, recipe: dict | None):
        self.manifest = manifest
        self.metric = get_metric(manifest.metric)
        self.recipe = _lookups(recipe) if recipe else None
        self.value_columns = [c for c in manifest.submission_columns if c != manifest.id]

    @abstractmethod
    def describe(self) -> dict:
        """What `/health` says is served."""

    @abstractmethod
    def predict(self, frame) -> np.ndarray:
        """The model's outputs for a frame of raw rows (`frame(rows)`)."""

    def check_examples(self, examples: dict, where) -> None:
        """The stored example rows must still get the outputs the export gave them."""
        want = np.asarray(examples["outputs"], dtype=np.float64)
        try:
            got = self.predict(self.frame(examples["rows"]))
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise PipelineError(f"{where}: the model fails on its own examples ({type(err).__name__}: {err})") from None
        if got.shape != want.shape or not np.allclose(got, want, rtol=0, atol=EXAMPLE_TOL):
            raise PipelineError(f"{where}: the model no longer gives its examples' outputs (changed export?)")

    def frame(self, rows: list[dict]):
        """Rows (dicts of test.csv's columns, values as JSON gives them) as the model's input:
        a typed DataFrame for tables and texts, uint8 (n, C, H, W) pixels for images."""
        m = self.manifest
        if m.modality == "image":
            return pixel_array(rows, m.pixel_columns, m.image_shape)
        return typed_inputs(self.recipe, pd.DataFrame(rows, columns=list(m.inputs)))

    def submission(self, outputs: np.ndarray, ids) -> pd.DataFrame:
        """Rows in the submission's format: its columns, labels / probabilities / values."""
        m = self.manifest
        values = prediction_values(outputs, self.value_columns, m.classes, self.metric, m.task)
        values.insert(0, m.id, list(ids))
        return values[m.submission_columns]


def read_manifest(folder: Path, model: type[BaseModel], fmt: int):
    """`model.json` checked field by field (`model`), of format `fmt` (checked first: another
    format's fields would read as errors of their own)."""
    raw = read_json_file(folder / MANIFEST)
    found = raw.get("format") if isinstance(raw, dict) else None
    if isinstance(found, int) and found != fmt:
        raise PipelineError(f"{folder / MANIFEST}: format {found}, this version reads {fmt}: export it again")
    try:
        manifest = model.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        raise PipelineError(f"{folder / MANIFEST}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    return manifest


def check_files(folder: Path, manifest: Served, wanted: set[str]) -> None:
    """The manifest lists exactly the files `wanted`, each with the SHA-256 it has."""
    if set(manifest.files) != wanted:
        raise PipelineError(f"{folder / MANIFEST}: files {sorted(manifest.files)}, expected {sorted(wanted)}")
    for name, digest in manifest.files.items():
        if not (folder / name).is_file() or sha256(folder / name) != digest:
            raise PipelineError(f"{folder / name}: missing or changed since export (SHA-256 differs)")


class ExportedModel(ServedModel):
    """A loaded student export: one ONNX graph (and, for tables, the portable preprocessor)."""

    def __init__(self, manifest: Manifest, session, preprocess: dict | None):
        super().__init__(manifest, preprocess["features"] if preprocess else None)
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.portable = Portable(preprocess["preprocessor"]) if preprocess else None

    @classmethod
    def load(cls, folder: Path | str, threads: int = 1) -> ExportedModel:
        """Load and check an export folder; PipelineError names what is wrong with it."""
        folder = Path(folder)
        manifest = read_manifest(folder, Manifest, FORMAT)
        check_files(folder, manifest, {GRAPH, EXAMPLES} | ({PREPROCESS} if manifest.modality == "tabular" else set()))
        preprocess = read_json_file(folder / PREPROCESS) if manifest.modality == "tabular" else None
        try:
            model = cls(manifest, onnx_session(folder / GRAPH, threads), preprocess)
        except (KeyError, TypeError, ValueError) as err:
            raise PipelineError(f"{folder}: malformed export ({type(err).__name__}: {err})") from None
        model.check(read_json_file(folder / EXAMPLES), folder / EXAMPLES)
        return model

    def describe(self) -> dict:
        m = self.manifest
        return {"model": "student", "student": m.student, "student_cv": m.student_cv}

    def check(self, examples: dict, where) -> None:
        """The graph takes what the manifest says, and the stored examples get their outputs."""
        shape = self.session.get_inputs()[0].shape[1:]
        if list(shape) != self.manifest.model_inputs:
            raise PipelineError(f"{where}: the graph takes {shape}, the manifest says {self.manifest.model_inputs}")
        self.check_examples(examples, where)

    def inputs(self, frame) -> np.ndarray:
        """What the graph takes: preprocessed float32 features, or pixels as float32."""
        if self.manifest.modality == "image":
            return np.asarray(frame, dtype=np.float32)
        features, _ = apply_features(self.recipe, frame)
        return self.portable.transform(features)

    def predict(self, frame) -> np.ndarray:
        """The student's outputs in the target's own space (rmsle: expm1 of the graph's)."""
        out = self.session.run(None, {self.input_name: self.inputs(frame)})[0].astype(np.float64)
        return target_transform(self.metric, self.manifest.task)[1](out)


def json_rows(frame: pd.DataFrame) -> list[dict]:
    """Rows as a client's JSON carries them: plain numbers and strings, missing values as null."""
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return json.loads(json.dumps(records, default=lambda v: v.item()))  # numpy scalars -> Python


def onnx_session(path: Path, threads: int = 1):
    """An onnxruntime CPU session (the graph is data: ONNX runs no Python)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own types for a graph it cannot read
        raise PipelineError(f"{path}: not a readable ONNX graph ({str(err).splitlines()[0]})") from None


class BadRow(PipelineError):
    """A request row the model cannot take: which row, which field, and why."""

    def __init__(self, row: int, field: str, msg: str):
        super().__init__(f"rows[{row}].{field}: {msg}")
        self.row, self.field, self.msg = row, field, msg


def _pixels(values: list, n: int, row: int, field: str) -> np.ndarray:
    if len(values) != n:
        raise BadRow(row, field, f"{len(values)} pixel values, expected {n}")
    arr = np.asarray(values)
    if arr.dtype.kind not in "iu":
        bad = next((j for j, v in enumerate(values) if not isinstance(v, int) or isinstance(v, bool)), 0)
        raise BadRow(row, field, f"pixel {bad} is not an integer")
    if len(arr) and (arr.min() < 0 or arr.max() > 255):
        raise BadRow(row, field, f"pixel values must lie in 0..255, found {arr.min()}..{arr.max()}")
    return arr.astype(np.uint8)


def pixel_array(rows: list[dict], pixel_columns: list[str], shape) -> np.ndarray:
    """Image rows as uint8 (n, C, H, W): each row's `png` (a base64 image file, decoded and
    resized as clean does), its `pixels` (a flat list in test.csv's order: channel last per
    pixel) or its pixel columns. A row that holds none, or a bad one, raises `BadRow`."""
    from pipelines.sources.image_files import decode_bytes

    c, h, w = shape
    size = SimpleNamespace(channels=c, height=h, width=w)  # what `decode` reads of an image spec
    out = np.zeros((len(rows), c, h, w), dtype=np.uint8)
    for i, row in enumerate(rows):
        if row.get("png") is not None:
            try:
                out[i] = decode_bytes(row["png"], size, f"rows[{i}].png")
            except PipelineError as err:
                raise BadRow(i, "png", str(err).split(": ", 1)[-1]) from None
            continue
        if row.get("pixels") is not None:
            values, field = row["pixels"], "pixels"
        elif pixel_columns:
            missing = next((col for col in pixel_columns if row.get(col) is None), None)
            if missing is not None:
                raise BadRow(i, missing, "Field required (or give the image as `pixels` or `png`)")
            values, field = [row[col] for col in pixel_columns], pixel_columns[0]
        else:
            raise BadRow(i, "png", "Field required (a base64 image file, or `pixels`)")
        out[i] = _pixels(values, c * h * w, i, field).reshape(h, w, c).transpose(2, 0, 1)
    return out
