"""Command `export`: the model that made the submission (or its distilled student) as a
self-contained folder that `serve` runs.

    python -m pipelines export <name> [--student] [--raw data/raw/<name>] [--clean data/clean/<name>] \
        [--train data/train/<name>] [--distill data/distill/<name>] [--ensemble submissions/<name>] \
        [--train-cache data/cache/<name>/train] [--distill-cache data/cache/<name>/distill] [--out data/export/<name>]

Not a DVC stage (a deployment artefact, made on demand). Writes `--out` (default
`data/export/<name>/`) atomically, JSON and ONNX only (no pickle).

By default, the ensemble `submission.csv` came from (`outputs/served.py` describes the folder):
the method and members of `details.json`, its blend fitted again on the members' OOF
predictions exactly as the `ensemble` stage fitted it (and checked against the weights,
coefficients and thresholds details.json recorded), and every fitted model of each member
with weight (a stacker uses them all): all its fold models, and the refits on every row where
train made one, since a member's test predictions are their mean (`training/cv.py`). They are
fitted again from the fold cache (`--train-cache`, `--distill-cache`: torch models reload
their final checkpoints, the others refit, deterministic for a fixed seed) and each must
predict the test rows as the cache kept them. Formats: torch models ONNX (with the portable
state of their preprocessor or tokenizer), the others their fitted adapter as safe JSON
(`core/safe_state.py`: scikit-learn's fitted attributes, LightGBM's model text, XGBoost's
JSON, CatBoost's model), not ONNX: a float32 tree ensemble can take the other branch where a
feature lies within float32 rounding of a threshold, which would change a label. Before
anything is published, test.csv's raw rows (as JSON carries them) go through the folder's
ensemble: each member must give its test predictions (within 1e-4 of their scale: the graphs
are float32) and the answers must be `submission.csv`'s, labels exactly, probabilities and
values within 1e-5 of their scale, or the command fails and leaves no folder.

`--student`: distill's student alone (the fast option; tables and images): `model.onnx` (its
graph), `preprocess.json` (tables: the feature recipe and the student's portable preprocessor),
`examples.json` and `model.json` (format 1), checked within 1e-5 against distill's own outputs
for the test rows (`student.onnx_test.npy`).
"""

from __future__ import annotations

import base64
import io
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from pipelines.core.context import set_threads
from pipelines.core.errors import PipelineError
from pipelines.core.io import atomic_dir, load_array, read_csv, read_json, write_json
from pipelines.core.metrics import get_metric
from pipelines.core.paths import Paths
from pipelines.features.tabular import fit_features, text_columns
from pipelines.outputs.cleaned import CleanData
from pipelines.outputs.ensemble_export import MemberFit, check_members, check_submission, export_member
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
from pipelines.outputs.served import (
    BLEND,
    ENSEMBLE_FORMAT,
    FEATURES,
    REQUIREMENTS,
    EnsembleManifest,
    ExportedEnsemble,
)
from pipelines.sources.layout import read_layout
from pipelines.stages.common import load_predictions, model_context, teacher_targets, trained
from pipelines.training.cv import CVOptions
from pipelines.training.ensembling import candidate_fitters, clearly_worse

PARITY_TOL = 1e-5  # served outputs vs distill's, on every test row (float32 graph, same inputs)
N_EXAMPLES = 3


def add_arguments(parser) -> None:
    parser.add_argument("--student", action="store_true", help="export distill's student alone, not the ensemble")
    for flag, where in _defaults("<name>").items():
        parser.add_argument(f"--{flag.replace('_', '-')}", type=Path, default=None, help=f"default: {where}")


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
    text = []
    if data.meta["modality"] == "text":  # as clean found them
        text = text_columns(layout.train, spec.text, (spec.id, spec.target), "train.csv")
    recipe = fit_features(layout.train, layout.test, spec.id, spec.target, text)
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
    p = Paths(name)
    return {"raw": p.raw, "clean": p.clean, "train": p.train, "distill": p.distill, "ensemble": p.submissions,
            "train_cache": p.train_cache, "distill_cache": p.distill_cache, "out": p.export}  # fmt: skip


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
    if not args.student:
        return export_ensemble(args, params, _paths(args))
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


# ---------------------------------------------------------------- the ensemble


def candidates(paths: dict, data: CleanData) -> dict[str, dict]:
    """The ensemble stage's candidates, in its order: train's models, then distill's student."""
    preds = load_predictions(paths["train"], trained(paths["train"])[0])
    if (paths["distill"] / "student").is_dir():
        preds.update({f"distill:{k}": v for k, v in load_predictions(paths["distill"], ["student"]).items()})
    return preds


def refit_blend(params, data: CleanData, preds: dict, details: dict):
    """The blend the ensemble stage chose, fitted again on all OOF rows; it must be the one
    details.json recorded (method, members, rounded weights or coefficients, thresholds)."""
    metric, ens, names = get_metric(data.meta["metric"]), params.ensemble, list(preds)
    chosen = details["ensemble"]
    if chosen["members"] != names:
        raise PipelineError(f"export: details.json blends {chosen['members']}, the outputs hold {names}: re-run it")
    weak = clearly_worse({n: p["scores"] for n, p in preds.items()}, metric)
    mean_of = [i for i, n in enumerate(names) if n not in weak]
    fits = candidate_fitters(ens.methods, metric, data.task, ens.iterations, params.seed, mean_of)
    if chosen["method"] not in fits:
        raise PipelineError(f"export: details.json's method {chosen['method']!r} is not in ensemble.methods")
    blend = fits[chosen["method"]]([preds[n]["oof"] for n in names], data.y)
    recorded = {k: chosen[k] for k in ("weights", "coef", "thresholds") if k in chosen}
    if "weights" in recorded:
        recorded["weights"] = [recorded["weights"][n] for n in names]
    if blend.detail() != recorded:
        raise PipelineError("export: the blend fitted again differs from details.json's: re-run ensemble")
    return blend


def member_fit(name: str, preds: dict, data: CleanData, params, paths: dict) -> MemberFit:
    """How member `name` was cross-validated (train's models; the student: distill's, with its
    teachers' soft targets), to fit its models again."""
    scores = preds[name]["scores"]
    if not name.startswith("distill:"):
        ctx = replace(model_context(data, params), processes=scores.get("processes", 1))
        opts = CVOptions(cache_dir=paths["train_cache"], refit=scores["refit"], max_folds=scores.get("fold_fits"))
        return MemberFit(name, name, scores["params"], ctx, opts, data)
    ctx = model_context(data, params, epochs=params.distill.epochs)
    teachers = load_predictions(paths["train"], trained(paths["train"])[0])
    _, _, soft = teacher_targets(teachers, data.y, ctx.metric, ctx.task, params.ensemble.iterations)
    opts = CVOptions(soft_targets=soft, cache_dir=paths["distill_cache"], refit=scores["refit"])
    return MemberFit(name, scores["model"], scores["params"], ctx, opts, data)


def _fold_entries(members: list[dict]) -> list[dict]:
    return [e for m in members for e in [*m["folds"], *m["refits"]]]


def requirements(members: list[dict]) -> str:
    """Pins of the libraries the members' states were written with, for `pip install -r` (the
    Dockerfile installs them beside the serving libraries)."""
    from importlib.metadata import packages_distributions

    dists = packages_distributions()
    libraries = {k: v for f in _fold_entries(members) for k, v in f.get("libraries", {}).items()}
    return "".join(f"{dists.get(m, [m])[0]}=={v}\n" for m, v in sorted(libraries.items()))


def ensemble_manifest(name: str, data: CleanData, details: dict, members: list[dict], recipe: dict, pixels) -> dict:
    meta, chosen = data.meta, details["ensemble"]
    integer = (
        data.task == "regression"
        and get_metric(meta["metric"]).submits == "labels"
        and bool(np.all(np.mod(data.y, 1) == 0))
    )
    libraries = {k: v for f in _fold_entries(members) for k, v in f.get("libraries", {}).items()}
    return {
        "format": ENSEMBLE_FORMAT, "kind": "ensemble", "name": name, "modality": meta["modality"],
        "task": meta["task"], "metric": meta["metric"], "classes": meta["classes"], "id": meta["id"],
        "submission_columns": meta["submission_columns"], "inputs": recipe.get("inputs", {}), "pixel_columns": pixels,
        "image_shape": meta.get("image_shape"), "method": chosen["method"], "cv": chosen["cv"], "members": members,
        "libraries": libraries, "integer_values": integer, "files": {},
    }  # fmt: skip


def export_ensemble(args, params, paths: dict) -> None:
    spec = params.competition(args.name)
    set_threads(params.train.threads)  # the threads train ran with: the same fits again
    data = CleanData(paths["clean"])
    details = read_json(paths["ensemble"] / "details.json")
    preds = candidates(paths, data)
    blend = refit_blend(params, data, preds, details)
    used = blend.used()
    rows, recipe, pixels = raw_rows(read_layout(paths["raw"], spec), data, spec)
    with atomic_dir(paths["out"]) as tmp:
        members = []
        for i in used:
            name = list(preds)[i]
            print(f"{args.name}: exporting {name}", flush=True)
            members.append(export_member(member_fit(name, preds, data, params, paths), tmp))
        write_json(tmp / BLEND, blend.only(used).state())
        (tmp / REQUIREMENTS).write_text(requirements(members), encoding="utf-8")
        if recipe:
            write_json(tmp / FEATURES, recipe)
        manifest = ensemble_manifest(args.name, data, details, members, recipe, pixels)
        files = [BLEND, REQUIREMENTS, *([FEATURES] if recipe else [])]
        files += [f for e in _fold_entries(members) for f in (e.get("graph"), e.get("state")) if f]
        manifest["files"] = {f: sha256(tmp / f) for f in files}
        model = ExportedEnsemble.build(tmp, EnsembleManifest.model_validate(manifest), params.train.threads)
        check_ensemble(model, rows, data, preds, paths["ensemble"] / "submission.csv")
        examples = {"rows": rows[:N_EXAMPLES], "outputs": model.predict(model.frame(rows[:N_EXAMPLES])).tolist()}
        write_json(tmp / EXAMPLES, examples)
        write_json(tmp / MANIFEST, {**manifest, "files": {**manifest["files"], EXAMPLES: sha256(tmp / EXAMPLES)}})
        ExportedEnsemble.load(tmp)  # what serve will do: a folder that does not load is never published
    print(f"{args.name}: exported the ensemble ({blend.method} of {', '.join(m['name'] for m in members)}; "
          f"{len(rows)} test rows give submission.csv) -> {paths['out']}")  # fmt: skip


def check_ensemble(model, rows: list[dict], data: CleanData, preds: dict, submission: Path) -> None:
    """test.csv's raw rows through the folder's ensemble: its members give their test
    predictions, and its answers are submission.csv's (`outputs/ensemble_export.py`)."""
    frame = model.frame(rows)
    outputs = model.member_outputs(frame)
    names = [m.spec.name for m in model.members]
    check_members(outputs, names, {n: preds[n]["test"] for n in names})
    served = model.submission(model.blend.apply(outputs), data.test_ids.to_numpy())
    check_submission(served, read_csv(submission), data.meta["id"], model.metric.submits == "labels")
