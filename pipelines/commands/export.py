"""Command `export`: the distilled student as a self-contained model folder that `serve` runs.

    python -m pipelines export <name> [--raw data/raw/<name>] [--clean data/clean/<name>] \
        [--distill data/distill/<name>] [--out data/export/<name>]

Not a DVC stage (a deployment artefact, made on demand from distill's output). Writes
`--out` (default `data/export/<name>/`) atomically, JSON and ONNX only (no pickle):
- `model.onnx`: the student's graph (images: pixel scaling inside; tables: it takes the
  preprocessed features);
- `preprocess.json` (tables): the clean-time feature recipe (`features/tabular.py`: levels,
  scales, value shares, hook state) and the student's fitted preprocessor
  (`features/portable.py`), so raw rows with test.csv's columns go in;
- `examples.json`: three of test.csv's rows and their outputs, re-checked at every load;
- `model.json`: the manifest (`outputs/exported.py`): task, metric (what it submits),
  classes, id and submission columns, the inputs and their kinds, each file's SHA-256.

Before anything is written, the whole path (test.csv's raw rows, as JSON would carry them,
through features, preprocessor and graph) must give distill's own outputs for the test rows
(`student.onnx_test.npy`) within 1e-5, or the command fails and leaves no folder.
Only a student with an ONNX graph exports (the torch students: `student_mlp`, `student_cnn`).
"""

from __future__ import annotations

import base64
import io
import shutil
from pathlib import Path

import numpy as np

from pipelines.core.errors import PipelineError
from pipelines.core.io import atomic_dir, load_array, read_json, write_json
from pipelines.core.paths import Paths
from pipelines.features.tabular import fit_features
from pipelines.outputs.cleaned import CleanData
from pipelines.outputs.exported import (
    EXAMPLES,
    FORMAT,
    GRAPH,
    MANIFEST,
    PREPROCESS,
    ExportedModel,
    Manifest,
    json_rows,
    onnx_session,
    sha256,
)
from pipelines.sources.layout import read_layout

PARITY_TOL = 1e-5  # served outputs vs distill's, on every test row (float32 graph, same inputs)
N_EXAMPLES = 3


def add_arguments(parser) -> None:
    for flag, where in _defaults("<name>").items():
        parser.add_argument(f"--{flag}", type=Path, default=None, help=f"default: {where}")


def _png(pixels: np.ndarray) -> str:
    from PIL import Image

    c = pixels.shape[0]
    img = Image.fromarray(pixels[0] if c == 1 else pixels.transpose(1, 2, 0))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def raw_rows(layout, data: CleanData, spec) -> tuple[list[dict], dict, list[str]]:
    """test.csv's rows as a client posts them, the feature recipe (tables) and pixel columns (images)."""
    if data.meta["modality"] == "image":
        if layout.test_files is not None:  # image files: a client sends each one as base64
            return [{"png": _png(x)} for x in data.X_test], {}, []
        pixels = [c for c in layout.test.columns if c != spec.id]
        return json_rows(layout.test[pixels]), {}, pixels
    recipe = fit_features(layout.train, layout.test, spec.id, spec.target)
    return json_rows(layout.test[list(recipe["inputs"])]), recipe, []


def manifest_for(name: str, data: CleanData, scores: dict, recipe: dict, pixels, graph_inputs) -> dict:
    meta = data.meta
    return {
        "format": FORMAT, "name": name, "student": scores.get("model", "student"), "student_cv": scores.get("cv"),
        "modality": meta["modality"], "task": meta["task"], "metric": meta["metric"], "classes": meta["classes"],
        "id": meta["id"], "submission_columns": meta["submission_columns"], "inputs": recipe.get("inputs", {}),
        "pixel_columns": pixels, "image_shape": meta.get("image_shape"), "model_inputs": graph_inputs, "files": {},
    }  # fmt: skip


def _defaults(name: str) -> dict[str, Path]:
    paths = Paths(name)
    return {"raw": paths.raw, "clean": paths.clean, "distill": paths.distill, "out": paths.export}


def _paths(args) -> dict[str, Path]:
    return {flag: getattr(args, flag) or default for flag, default in _defaults(args.name).items()}


def _student(distill: Path) -> tuple[Path, dict]:
    graph = distill / "student.onnx"
    if not graph.is_file():
        speed = distill / "speed.json"
        why = read_json(speed).get("onnx_note") if speed.is_file() else None
        raise PipelineError(f"{graph}: not found ({why or 'run distill first'}); only an ONNX student exports")
    return graph, read_json(distill / "student" / "scores.json")


def main(args, params) -> None:
    spec = params.competition(args.name)
    paths = _paths(args)
    graph, scores = _student(paths["distill"])
    data = CleanData(paths["clean"])
    if data.meta["modality"] not in ("tabular", "image"):
        raise PipelineError(f"{args.name}: modality {data.meta['modality']!r} does not export (tables and images do)")
    preprocess = None
    if data.meta["modality"] == "tabular":
        state = paths["distill"] / "student.preprocess.json"
        if not state.is_file():
            raise PipelineError(f"{state}: not found (written by distill since export exists: re-run distill)")
        preprocess = {"preprocessor": read_json(state)}
    rows, recipe, pixels = raw_rows(read_layout(paths["raw"], spec), data, spec)
    if preprocess is not None:
        preprocess["features"] = recipe
    session = onnx_session(graph)
    shape = [int(d) for d in session.get_inputs()[0].shape[1:]]
    manifest = manifest_for(args.name, data, scores, recipe, pixels, shape)
    model = ExportedModel(Manifest.model_validate(manifest), session, preprocess)
    check_parity(model, rows, load_array(paths["distill"] / "student.onnx_test.npy"))
    examples = {"rows": rows[:N_EXAMPLES], "outputs": model.predict(model.frame(rows[:N_EXAMPLES])).tolist()}
    with atomic_dir(paths["out"]) as tmp:
        shutil.copyfile(graph, tmp / GRAPH)
        write_json(tmp / EXAMPLES, examples)
        if preprocess is not None:
            write_json(tmp / PREPROCESS, preprocess)
        files = [GRAPH, EXAMPLES, *([PREPROCESS] if preprocess is not None else [])]
        write_json(tmp / MANIFEST, {**manifest, "files": {f: sha256(tmp / f) for f in files}})
        ExportedModel.load(tmp)  # what serve will do: a folder that does not load is never published
    print(f"{args.name}: exported {manifest['student']} ({len(rows)} test rows reproduced) -> {paths['out']}")


def check_parity(model: ExportedModel, rows: list[dict], expected: np.ndarray) -> None:
    """The graph's outputs from raw rows must be distill's outputs for the same test rows."""
    got = model.session.run(None, {model.input_name: model.inputs(model.frame(rows))})[0].astype(np.float64)
    if got.shape != expected.shape:
        raise PipelineError(f"export: outputs of shape {got.shape} for the test rows, distill's {expected.shape}")
    worst = float(np.max(np.abs(got - expected))) if got.size else 0.0
    if not worst <= PARITY_TOL:
        raise PipelineError(
            f"export: raw test.csv rows give outputs {worst:.3g} away from distill's (tolerance {PARITY_TOL:g}): "
            "the features or preprocessing are not reproduced; not exported"
        )
