"""The distill stage exports its student to ONNX and checks it against torch.

Two tiny competitions run download -> clean -> train -> distill in this process (no DVC):
200 MNIST digits (2 folds, a 2-epoch `cnn` teacher, a `student_cnn`) and Titanic (a
logistic-regression teacher, a `student_mlp`). The ONNX graph is then run here with
onnxruntime and compared with the student's own out-of-fold predictions on the last fold
(the rows of the model that was exported); a second run with a sabotaged ONNX runtime
must fail loudly and leave the previous output in place.
"""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import yaml

from pipelines.__main__ import main
from pipelines.core.io import load_array
from pipelines.outputs.cleaned import CleanData
from pipelines.sources.embedded import carve
from tests.conftest import ROOT


def _params(tmp_path, name: str, spec: dict, models: list[str]):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["competitions"] = {name: {**spec, "models": models}}
    params["folds"] = {"n_splits": 2}
    params["train"]["epochs"] = 2
    params["distill"]["epochs"] = 2
    params["ensemble"]["iterations"] = 5
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def _run_until_distill(tmp_path, name: str, params) -> dict:
    """download, clean, train (no tuning: empty best params), distill; returns the folders."""
    d = {k: tmp_path / k / name for k in ("raw", "clean", "tune", "train", "cache", "distill", "logs")}
    d["tune"].mkdir(parents=True)
    (d["tune"] / "best_params.json").write_text("{}")
    common = ["--params", str(params)]
    steps = [
        ["download", name, "--out", str(d["raw"])],
        ["clean", name, "--raw", str(d["raw"]), "--out", str(d["clean"])],
        [
            "train",
            name,
            "--clean",
            str(d["clean"]),
            "--tuned",
            str(d["tune"]),
            "--cache",
            str(d["cache"] / "train"),
            "--out",
            str(d["train"]),
            "--logs",
            str(d["logs"]),
        ],  # fmt: skip
    ]
    for argv in steps:
        assert main([*argv, *common]) == 0, argv
    d["distill_argv"] = [
        "distill", name, "--clean", str(d["clean"]), "--train", str(d["train"]), "--cache", str(d["cache"] / "distill"),
        "--out", str(d["distill"]), "--logs", str(d["logs"]), *common,
    ]  # fmt: skip
    assert main(d["distill_argv"]) == 0
    return d


def _check_speed(speed: dict, logs) -> None:
    """speed.json holds results only; the rows/s (the machine's) are in the log's distill.json."""
    assert speed["onnx"] == "student.onnx"
    assert 0 <= speed["onnx_parity_max_abs_diff"] <= 1e-4
    assert not [k for k in speed if k.endswith(("rows_per_s", "speedup"))]
    rates = json.loads((logs / "distill.json").read_text())
    assert rates["onnx_rows_per_s"] > 0 and rates["teacher_rows_per_s"] > 0 and rates["torch_rows_per_s"] > 0
    assert rates["onnx_speedup"] == pytest.approx(rates["onnx_rows_per_s"] / rates["teacher_rows_per_s"], rel=0.02)
    # the teachers' rate is the submission's: each blended teacher's fold models and refits all run
    timings = json.loads((logs / "train.json").read_text())["models"]
    used = [n for n, w in speed["teacher_weights"].items() if w > 0]
    assert all(timings[n]["fits"] >= 2 for n in used)
    want = 1 / sum(timings[n]["fits"] / timings[n]["rows_per_s"] for n in used)
    assert rates["teacher_rows_per_s"] == pytest.approx(want, rel=0.01)
    assert {"student_cv", "teacher_cv", "onnx_fold_score", "int8_fold_score"} <= set(speed)
    # int8 is kept exactly when it scores within 0.001 of the fp32 graph on the fold's rows
    assert speed["int8_kept"] == (abs(speed["int8_fold_score"] - speed["onnx_fold_score"]) <= 0.001 + 1e-12)


def test_image_student_is_exported_to_onnx_with_parity(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    frames = carve("digit-recognizer")
    rows = frames["train.csv"].sample(200, random_state=0)  # the file is sorted by label
    train, test = rows.iloc[:160], rows.iloc[160:]
    raw = tmp_path / "local"
    raw.mkdir()
    train.to_csv(raw / "train.csv", index=False)
    test.drop(columns="label").to_csv(raw / "test.csv", index=False)
    ids = np.arange(1, len(test) + 1)
    test.drop(columns="label").assign(ImageId=ids)[["ImageId"]].assign(Label=0).to_csv(
        raw / "sample_submission.csv", index=False
    )
    spec = {
        "source": "local", "path": str(raw), "id": "ImageId", "target": "label", "task": "multiclass",
        "metric": "accuracy", "modality": "image", "image": {"height": 28, "width": 28, "channels": 1},
    }  # fmt: skip
    d = _run_until_distill(tmp_path, "digits", _params(tmp_path, "digits", spec, ["cnn"]))

    speed = json.loads((d["distill"] / "speed.json").read_text())
    _check_speed(speed, d["logs"])
    # the exported graph, run here on raw pixels, reproduces the last fold's OOF predictions
    data = CleanData(d["clean"])
    last = data.folds == data.folds.max()
    session = ort.InferenceSession(str(d["distill"] / "student.onnx"), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {"input": data.X[last].astype(np.float32)})[0]
    oof = load_array(d["distill"] / "student" / "oof.npy")
    assert onnx_out.shape == (last.sum(), 10)
    np.testing.assert_allclose(onnx_out, oof[last], atol=1e-4)
    assert speed["onnx_fold_score"] == pytest.approx(float((oof[last].argmax(1) == data.y[last]).mean()))

    # a runtime that disagrees with torch fails the stage (cached folds: the last model is
    # reloaded from its checkpoint), and the previous output stays as it was
    import pipelines.models.onnx_export as tm

    real = tm.onnx_predict
    monkeypatch.setattr(tm, "onnx_predict", lambda model, X, path, **kw: real(model, X, path, **kw) + 1e-3)
    before = (d["distill"] / "student.onnx").read_bytes()
    capsys.readouterr()
    assert main(d["distill_argv"]) == 2
    assert "ONNX student differs from torch" in capsys.readouterr().err
    assert (d["distill"] / "student.onnx").read_bytes() == before


def test_tabular_student_is_exported_to_onnx(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    spec = {"source": "embedded", "kaggle": "titanic", "id": "PassengerId", "target": "Survived", "task": "binary",
            "metric": "accuracy"}  # fmt: skip
    d = _run_until_distill(tmp_path, "titanic", _params(tmp_path, "titanic", spec, ["logreg"]))
    speed = json.loads((d["distill"] / "speed.json").read_text())
    _check_speed(speed, d["logs"])
    session = ort.InferenceSession(str(d["distill"] / "student.onnx"), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    out = session.run(None, {"input": np.zeros((3, inp.shape[1]), dtype=np.float32)})[0]
    assert out.shape == (3,) and np.all((out >= 0) & (out <= 1))  # binary: P(class 1) per row
    assert speed["onnx_output_transform"] is None


def test_cross_validate_keeps_the_last_fold_model(tmp_path):
    from pipelines.core.context import ModelContext
    from pipelines.core.metrics import get_metric
    from pipelines.training.cv import CVOptions, FoldData, cross_validate

    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(40, 1, 8, 8), dtype=np.uint8)
    y, folds = np.arange(40) % 2, (np.arange(40) // 2) % 2
    ctx = ModelContext(task="binary", metric=get_metric("accuracy"), n_classes=2, epochs=1, progress=False)
    plain = cross_validate("cnn", {"width": 4}, FoldData(X, y, X[:5], folds), ctx)
    assert plain.last_model is None
    last = folds == 1
    for _ in range(2):  # the second time every fold comes from the cache: the model is reloaded
        res = cross_validate(
            "cnn", {"width": 4}, FoldData(X, y, X[:5], folds), ctx, CVOptions(cache_dir=tmp_path, keep_last_model=True)
        )
        np.testing.assert_array_equal(res.oof, plain.oof)
        np.testing.assert_allclose(res.last_model.predict_output(X[last]), res.oof[last], atol=1e-12)
    assert res.last_model.result_.reloaded


def test_a_student_of_large_values_passes_parity_relative_to_their_scale(tmp_path, monkeypatch):
    """rmse on raw prices (~1e5): float32 rounding is ~1e-3 in absolute terms, 1e-8 relative."""
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    spec = {"source": "embedded", "kaggle": "house-prices", "id": "Id", "target": "SalePrice", "task": "regression",
            "metric": "rmse"}  # fmt: skip
    d = _run_until_distill(tmp_path, "hp", _params(tmp_path, "hp", spec, ["ridge"]))
    speed = json.loads((d["distill"] / "speed.json").read_text())
    assert speed["onnx"] == "student.onnx" and speed["onnx_output_transform"] is None
    assert 0 <= speed["onnx_parity_max_abs_diff"] <= 1e-4 * 800_000  # within 1e-4 of the largest price
