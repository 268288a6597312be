"""`export` and `serve`: the ensemble that made the submission, exported and served, answers
raw test.csv rows as `submission.csv` does; the student (`--student`) served by a real uvicorn
server on loopback answers with the pipeline's own predictions; limits and errors.

The ensemble (slow): tiny competitions run download -> clean -> train -> distill -> ensemble
-> export in this process, and FastAPI's TestClient posts every raw test row: Titanic (f1
labels, stacking of LightGBM, logistic regression, an SVM, an MLP and the student), 200 MNIST
digits (labels; a CNN's fold models and its refit) and 200 short messages (roc_auc
probabilities; TF-IDF, a tiny BERT in ONNX with its tokenizer, LightGBM, the TF-IDF student).
The student (slow): Titanic scored by roc_auc (probabilities, compared with distill's within
float tolerance), 200 MNIST digits (labels) and House Prices (rmsle: answers in dollars, in
process only); the server is `python -m pipelines serve` in a subprocess on a free port of
127.0.0.1, waited for at most 60 s and always stopped. A changed or unsafe export is refused
before anything is served. Without training: a body over the limit gets 413, a 422 names the
field and never echoes the input, and the docs load nothing from a CDN.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.__main__ import main
from pipelines.core.errors import PipelineError
from pipelines.core.io import load_array, read_csv
from pipelines.outputs.cleaned import CleanData
from pipelines.outputs.exported import ExportedModel, Served, ServedModel, json_rows
from pipelines.sources.embedded import carve
from tests.conftest import ROOT
from tests.test_distill import _params, _run_until_distill

slow = pytest.mark.slow  # each chain trains teachers and a student (~10-60 s)
TITANIC = {"source": "embedded", "kaggle": "titanic", "id": "PassengerId", "target": "Survived", "task": "binary",
           "metric": "roc_auc"}  # fmt: skip


def _export(tmp, name: str, spec: dict, models: list[str]) -> dict:
    params = _params(tmp, name, spec, models)
    d = _run_until_distill(tmp, name, params)
    d["export"], d["params"] = tmp / "export" / name, params
    argv = ["export", name, "--student", "--params", str(params), "--out", str(d["export"])]
    argv += [x for k in ("raw", "clean", "distill") for x in (f"--{k}", str(d[k]))]
    assert main(argv) == 0
    return d


@pytest.fixture(scope="module")
def titanic(tmp_path_factory):
    return _export(tmp_path_factory.mktemp("titanic"), "titanic", TITANIC, ["logreg"])


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("digits")
    return _export(tmp, "digits", digits_layout(tmp), ["cnn"])


def digits_layout(tmp) -> dict:
    """200 embedded digits as a `local` competition in `tmp/local` (160 train, 40 test); its spec."""
    rows = carve("digit-recognizer")["train.csv"].sample(200, random_state=0)
    raw = tmp / "local"
    raw.mkdir()
    rows.iloc[:160].to_csv(raw / "train.csv", index=False)
    rows.iloc[160:].drop(columns="label").to_csv(raw / "test.csv", index=False)
    pd.DataFrame({"ImageId": np.arange(1, 41), "Label": 0}).to_csv(raw / "sample_submission.csv", index=False)
    return {"source": "local", "path": str(raw), "id": "ImageId", "target": "label", "task": "multiclass",
            "metric": "accuracy", "modality": "image", "image": {"height": 28, "width": 28, "channels": 1}}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(name: str, folder, timeout: float = 60.0):
    """`python -m pipelines serve` on a free loopback port; yields an httpx client for it."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE"}
    cmd = [sys.executable, "-m", "pipelines", "serve", name, "--model", str(folder), "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert proc.poll() is None, f"serve exited {proc.returncode}:\n{proc.stdout.read()}"
            with contextlib.suppress(httpx.TransportError):
                if client.get("/health").status_code == 200:
                    break
            assert time.monotonic() < deadline, "serve did not answer /health in time"
            time.sleep(0.2)
        yield client
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()


def _errors(resp) -> list[tuple]:
    assert resp.status_code == 422, resp.text
    return [tuple(e["loc"]) for e in resp.json()["detail"]]


@slow
def test_served_titanic_gives_the_pipelines_predictions(titanic):
    raw_test = read_csv(titanic["raw"] / "test.csv")
    raw_train = read_csv(titanic["raw"] / "train.csv")
    data = CleanData(titanic["clean"])
    last = data.folds == data.folds.max()  # the rows the exported (last fold's) student never saw
    with served("titanic", titanic["export"]) as client:
        health = client.get("/health").json()
        assert health["student"] == "student_mlp" and health["submits"] == "probabilities"
        resp = client.post("/predict", json={"rows": json_rows(raw_test)})
        assert resp.status_code == 200, resp.text
        answer = resp.json()
        assert answer["columns"] == ["PassengerId", "Survived"]
        got = pd.DataFrame(answer["rows"])
        assert got["PassengerId"].tolist() == raw_test["PassengerId"].tolist()
        expected = load_array(titanic["distill"] / "student.onnx_test.npy")  # distill's, on clean's features
        np.testing.assert_allclose(got["Survived"].to_numpy(), expected, rtol=0, atol=1e-5)
        # the last fold's training rows, raw: the student's own out-of-fold predictions (torch)
        rows = json_rows(raw_train.drop(columns="Survived")[last])
        fold = pd.DataFrame(client.post("/predict", json={"rows": rows}).json()["rows"])
        oof = load_array(titanic["distill"] / "student" / "oof.npy")
        np.testing.assert_allclose(fold["Survived"].to_numpy(), oof[last], rtol=0, atol=1e-4)
        # ?format=csv: a submission.csv, valid against the sample once in the sample's order
        csv = client.post("/predict?format=csv", json={"rows": json_rows(raw_test)}).text
        sub = pd.read_csv(io.StringIO(csv))
        sample = read_csv(titanic["raw"] / "sample_submission.csv")
        assert list(sub.columns) == list(sample.columns) and sub.notna().all().all()
        assert sorted(sub["PassengerId"]) == sorted(sample["PassengerId"])

        row = json_rows(raw_test.iloc[:2])
        del row[1]["Age"]
        row[0]["Pclass"] = "first"
        locs = _errors(client.post("/predict", json={"rows": row}))
        assert ("body", "rows", 1, "Age") in locs and any(loc[:4] == ("body", "rows", 0, "Pclass") for loc in locs)
        assert _errors(client.post("/predict", json={"rows": []})) == [("body", "rows")]
        huge = {**json_rows(raw_test.iloc[:1])[0], "SibSp": 10**30}  # beyond what a CSV's integers hold
        assert _errors(client.post("/predict", json={"rows": [huge]})) == [("body", "rows", 0, "SibSp")]
        assert (
            client.post("/predict", content=b"not json", headers={"content-type": "application/json"}).status_code
            == 422
        )
        schema = client.get("/openapi.json").json()
        assert "/predict" in schema["paths"] and "Age" in json.dumps(schema["components"])


def _png(pixels: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels.reshape(28, 28).astype(np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


@slow
def test_served_digits_take_pixel_rows_and_png(digits):
    raw_test = read_csv(digits["raw"] / "test.csv")
    expected = load_array(digits["distill"] / "student.onnx_test.npy")  # (40, 10) probabilities
    model = ExportedModel.load(digits["export"])
    np.testing.assert_allclose(model.predict(model.frame(json_rows(raw_test))), expected, rtol=0, atol=1e-5)
    pixels = raw_test.to_numpy()
    with served("digits", digits["export"]) as client:
        rows = [{"ImageId": i + 1, **r} for i, r in enumerate(json_rows(raw_test))]
        got = pd.DataFrame(client.post("/predict", json={"rows": rows}).json()["rows"])
        assert got.columns.tolist() == ["ImageId", "Label"] and got["ImageId"].tolist() == list(range(1, 41))
        assert got["Label"].tolist() == expected.argmax(1).tolist()  # classes are the digits 0..9
        alt = [{"pixels": pixels[0].tolist()}, {"png": _png(pixels[1])}]
        answer = client.post("/predict", json={"rows": alt}).json()["rows"]
        assert [r["Label"] for r in answer] == expected[:2].argmax(1).tolist()

        assert _errors(client.post("/predict", json={"rows": [{"pixels": [0] * 783}]})) == [
            ("body", "rows", 0, "pixels")
        ]
        bad = client.post("/predict", json={"rows": [alt[0], {"png": base64.b64encode(b"no image").decode()}]})
        assert _errors(bad) == [("body", "rows", 1, "png")] and "unreadable image" in bad.text
        assert _errors(client.post("/predict", json={"rows": [{"png": "%%%"}]})) == [("body", "rows", 0, "png")]
        partial = dict(rows[0])
        del partial["pixel5"]
        assert _errors(client.post("/predict", json={"rows": [partial]})) == [("body", "rows", 0, "pixel5")]
        assert _errors(client.post("/predict", json={"rows": [{"pixels": [300] * 784}]})) == [
            ("body", "rows", 0, "pixels")
        ]


def _copy(titanic, tmp_path):
    folder = tmp_path / "export"
    shutil.copytree(titanic["export"], folder)
    return folder


def _rewrite(path, change) -> None:
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


def _resign(folder) -> None:
    """What a tamperer who also rewrites the manifest would do: fresh SHA-256s."""
    from pipelines.outputs.exported import sha256

    _rewrite(folder / "model.json", lambda m: m["files"].update({f: sha256(folder / f) for f in m["files"]}))


@slow
def test_a_changed_or_unsafe_export_is_refused(titanic, tmp_path):
    folder = _copy(titanic, tmp_path)
    ExportedModel.load(folder)  # the copy as exported loads
    _rewrite(folder / "preprocess.json", lambda p: p["preprocessor"]["parts"][0]["mean"].__setitem__(0, 99.0))
    with pytest.raises(PipelineError, match="preprocess.json: missing or changed since export"):
        ExportedModel.load(folder)
    _resign(folder)  # the checksums match again: the examples still catch the change
    with pytest.raises(PipelineError, match="no longer gives its examples' outputs"):
        ExportedModel.load(folder)

    folder = _copy(titanic, tmp_path / "b")
    (folder / "model.pkl").write_bytes(b"cos\nsystem\n(S'echo hi'\ntR.")  # a pickle is never listed, never read
    _rewrite(folder / "model.json", lambda m: m["files"].update({"model.pkl": "0" * 64}))
    with pytest.raises(PipelineError, match="files .*model.pkl"):
        ExportedModel.load(folder)
    folder = _copy(titanic, tmp_path / "c")
    _rewrite(folder / "model.json", lambda m: m.update(loader="pickle"))
    with pytest.raises(PipelineError, match="model.json: loader: Extra inputs are not permitted"):
        ExportedModel.load(folder)
    _rewrite(folder / "model.json", lambda m: (m.pop("loader"), m.update(classes="0,1")))
    with pytest.raises(PipelineError, match="model.json: classes"):
        ExportedModel.load(folder)
    _rewrite(folder / "model.json", lambda m: m.update(format=m["format"] + 1))  # another format: said first
    with pytest.raises(PipelineError, match=r"model.json: format \d+, this version reads \d+: export it again"):
        ExportedModel.load(folder)
    folder = _copy(titanic, tmp_path / "d")
    (folder / "model.onnx").write_bytes(b"\x08\x07garbage")
    _resign(folder)
    with pytest.raises(PipelineError, match="not a readable ONNX graph"):
        ExportedModel.load(folder)


@slow
def test_export_refuses_what_it_cannot_reproduce(titanic, tmp_path, capsys):
    argv = ["export", "titanic", "--student", "--params", str(titanic["params"]), "--raw", str(titanic["raw"]),
            "--clean", str(titanic["clean"]), "--out", str(tmp_path / "out")]  # fmt: skip
    distill = tmp_path / "distill"
    shutil.copytree(titanic["distill"], distill)
    outputs = distill / "student.onnx_test.npy"
    np.save(outputs, load_array(outputs) + 1e-3)  # distill said otherwise: the path is not reproduced
    assert main([*argv, "--distill", str(distill)]) == 2
    assert "not reproduced; not exported" in capsys.readouterr().err
    (distill / "student.onnx").unlink()
    assert main([*argv, "--distill", str(distill)]) == 2
    assert "student.onnx: not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines", "serve", "titanic", "--model", str(tmp_path / "nothing")],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "model.json: unreadable" in proc.stderr


@slow
def test_serving_imports_no_training_library(titanic):
    """The Dockerfile installs no torch, DVC or boosting library: serving must not need them."""
    code = (  # loading predicts the stored examples: the whole serving path runs
        "import sys, uvicorn; from pipelines.__main__ import build_parser; build_parser(['serve']);"
        "from pipelines.outputs.exported import ExportedModel; from pipelines.commands.serve import create_app;"
        f"create_app(ExportedModel.load({str(titanic['export'])!r}));"
        "print(' '.join(sorted({n.split('.')[0] for n in sys.modules})))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded = set(proc.stdout.split())
    heavy = {
        "torch",
        "dvc",
        "lightgbm",
        "xgboost",
        "catboost",
        "optuna",
        "timm",
        "transformers",
        "matplotlib",
        "kaggle",
    }
    assert {"onnxruntime", "fastapi", "sklearn"} <= loaded and not loaded & heavy, sorted(loaded & heavy)
    dockerfile = (ROOT / "Dockerfile").read_text()
    for dist in ("onnxruntime", "scikit-learn", "pandas", "fastapi", "uvicorn", "pillow", "pydantic", "pyyaml"):
        assert f'"{dist}' in dockerfile, dist


@slow
def test_exported_regression_answers_in_the_targets_own_units(tmp_path):
    # rmsle: the student learns log1p(SalePrice); its answers are prices again (expm1)
    spec = {"source": "embedded", "kaggle": "house-prices-advanced-regression-techniques", "id": "Id",
            "target": "SalePrice", "task": "regression", "metric": "rmsle"}  # fmt: skip
    d = _export(tmp_path, "prices", spec, ["ridge"])
    model = ExportedModel.load(d["export"])
    test = read_csv(d["raw"] / "test.csv")
    pred = model.predict(model.frame(json_rows(test[list(model.manifest.inputs)])))
    np.testing.assert_allclose(pred, np.expm1(load_array(d["distill"] / "student.onnx_test.npy")), rtol=1e-6)
    sub = model.submission(pred, test["Id"])
    assert list(sub.columns) == ["Id", "SalePrice"] and sub["SalePrice"].between(1e4, 1e6).all()


# ---------------------------------------------------------------- serving limits (no training)


class _Stub(ServedModel):
    """A served model of two columns that answers 0.25 for every row: what the limits see."""

    def __init__(self):
        inputs = {"Age": "integer", "Name": "string"}
        manifest = Served(format=1, name="stub", modality="tabular", task="binary", metric="roc_auc", classes=[0, 1],
                          id="Id", submission_columns=["Id", "Target"], inputs=inputs, files={})  # fmt: skip
        super().__init__(manifest, {"inputs": inputs})

    def describe(self) -> dict:
        return {"model": "stub"}

    def predict(self, frame) -> np.ndarray:
        return np.full(len(frame), 0.25)


def _client(**kw):
    from fastapi.testclient import TestClient

    from pipelines.commands.serve import create_app

    return TestClient(create_app(_Stub(), **kw))


def test_a_body_over_the_limit_is_refused_with_413_before_it_is_read():
    client = _client(max_body=10_000)
    ok = client.post("/predict", json={"rows": [{"Id": 1, "Age": 30, "Name": "Ann"}]})
    assert ok.status_code == 200 and ok.json()["rows"] == [{"Id": 1, "Target": 0.25}]
    big = {"rows": [{"Id": i, "Age": 30, "Name": "x" * 100} for i in range(200)]}  # ~25 kB
    resp = client.post("/predict", json=big)
    assert resp.status_code == 413 and resp.json() == {"detail": "request body over 10000 bytes"}
    assert "\n" not in resp.text and len(resp.content) < 100

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"rows": ['
        for i in range(200):
            yield b'{"Id": %d, "Age": 30, "Name": "%s"},' % (i, b"x" * 100)
        yield b'{"Id": 0, "Age": 1, "Name": "y"}]}'

    streamed = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413 and streamed.json() == {"detail": "request body over 10000 bytes"}
    ten_mb = _client().post("/predict", content=b"x" * 10_000_000, headers={"content-type": "application/json"})
    assert ten_mb.status_code == 413 and len(ten_mb.content) < 100  # the default: 1 MiB


def test_a_422_names_the_field_and_echoes_no_input():
    client = _client(max_body=10_000_000)
    secret = "s3cr3t-" * 50_000  # 350 kB in an integer field
    resp = client.post("/predict", json={"rows": [{"Id": 1, "Age": secret, "Name": "Ann"}, {"Id": 2, "Name": "Bo"}]})
    assert resp.status_code == 422 and "s3cr3t" not in resp.text and len(resp.content) < 1000
    detail = resp.json()["detail"]
    assert [tuple(e["loc"]) for e in detail] == [("body", "rows", 0, "Age"), ("body", "rows", 1, "Age")]
    assert {tuple(e) for e in detail} == {("loc", "msg", "type")}
    rows = [{"Id": i, "Age": "bad", "Name": "n"} for i in range(100)]
    many = client.post("/predict", json={"rows": rows}).json()
    assert len(many["detail"]) == 20 and many["more_errors"] == 80
    broken = client.post("/predict", content=b'{"rows": [s3cr3t', headers={"content-type": "application/json"})
    assert broken.status_code == 422 and "s3cr3t" not in broken.text


def test_the_docs_load_nothing_from_a_cdn():
    import re

    client = _client()
    for page in ("/docs", "/redoc"):
        html = client.get(page)
        assert html.status_code == 200
        urls = re.findall(r"""(?:src|href|spec-url)=["']([^"']+)""", html.text)
        urls += re.findall(r"""url: ?['"]([^'"]+)""", html.text)
        assert urls and not [u for u in urls if "//" in u], urls  # every asset from this server
        for url in urls:
            assert client.get(url).status_code == 200, url
    assert "/predict" in client.get("/openapi.json").json()["paths"]


# ---------------------------------------------------------------- the ensemble that scored


def _ensemble_export(tmp, name: str, spec: dict, models: list[str], student: bool = True, **changes) -> dict:
    """download, clean, train, distill, ensemble, then `export` (the ensemble, the default) and,
    with `student`, `export --student` beside it; `changes`: params sections updated."""
    params = _params(tmp, name, spec, models)
    doc = yaml.safe_load(params.read_text())
    for section, values in changes.items():
        doc[section].update(values)
    params.write_text(yaml.safe_dump(doc, sort_keys=False))
    d = _run_until_distill(tmp, name, params)
    d["submissions"], d["export"], d["student"] = tmp / "submissions" / name, tmp / "export" / name, tmp / "student"
    common = ["--params", str(params)]
    common += [x for k in ("raw", "clean", "train", "distill") for x in (f"--{k}", str(d[k]))]
    assert main(["ensemble", name, *common, "--out", str(d["submissions"])]) == 0
    more = ["--ensemble", str(d["submissions"]), "--out", str(d["export"])]
    more += ["--train-cache", str(d["cache"] / "train"), "--distill-cache", str(d["cache"] / "distill")]
    assert main(["export", name, *common, *more]) == 0
    if student:
        assert main(["export", name, "--student", *common, "--out", str(d["student"])]) == 0
    return d


def _served_equals_submission(d: dict, rows: list[dict], labels: bool) -> None:
    """Every test row, raw, through the served ensemble (FastAPI's TestClient): the answers are
    submission.csv's, row for row (labels exactly; probabilities and values within 1e-5)."""
    from fastapi.testclient import TestClient

    from pipelines.commands.serve import create_app
    from pipelines.outputs.served import load_export

    model = load_export(d["export"])
    client = TestClient(create_app(model, max_body=50_000_000))
    health = client.get("/health").json()
    assert health["model"] == "ensemble" and health["members"], health
    resp = client.post("/predict", json={"rows": rows})
    assert resp.status_code == 200, resp.text[:500]
    got = pd.DataFrame(resp.json()["rows"])
    want = read_csv(d["submissions"] / "submission.csv")
    id_col = want.columns[0]
    assert list(got.columns) == list(want.columns) and len(got) == len(want)
    got = got.set_index(got[id_col].astype(str)).loc[want[id_col].astype(str)]
    for col in want.columns[1:]:
        if labels:
            assert got[col].astype(str).tolist() == want[col].astype(str).tolist(), col
        else:
            np.testing.assert_allclose(got[col].to_numpy(float), want[col].to_numpy(float), rtol=1e-5, atol=1e-5)
    if d["student"].exists():  # --student: today's behaviour, the distilled student alone
        student = load_export(d["student"])
        assert student.describe()["model"] == "student" and isinstance(student, ExportedModel)
    return health


@slow
def test_the_served_ensemble_answers_as_submission_csv_tabular(tmp_path, capsys):
    """Titanic scored by f1 (labels) and blended by stacking (with thresholds, where they win):
    LightGBM, logistic regression, an SVM, an MLP and the distilled student."""
    spec = {**TITANIC, "metric": "f1"}
    models = ["lightgbm", "logreg", "svm", "mlp"]
    d = _ensemble_export(tmp_path, "titanic", spec, models, ensemble={"methods": ["stacking"]})
    d["params"] = tmp_path / "params.yaml"
    health = _served_equals_submission(d, json_rows(read_csv(d["raw"] / "test.csv")), labels=True)
    assert health["method"].startswith("stacking") and set(models) <= set(health["members"])
    code = (  # loading predicts the stored examples: every member runs
        "import sys; from pipelines.outputs.served import load_export; from pipelines.commands.serve import create_app;"
        f"create_app(load_export({str(d['export'])!r}));"
        "print(' '.join(sorted({n.split('.')[0] for n in sys.modules})))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded = set(proc.stdout.split())  # LightGBM's member needs lightgbm (requirements.txt pins it)
    assert "lightgbm" in loaded and not loaded & {"torch", "dvc", "optuna", "timm", "transformers", "matplotlib"}
    assert "lightgbm==" in (d["export"] / "requirements.txt").read_text()

    def flip_first_label(folder):  # a submission the models did not make
        sub = pd.read_csv(folder / "submission.csv")
        sub.loc[0, "Survived"] = 1 - sub.loc[0, "Survived"]
        sub.to_csv(folder / "submission.csv", index=False)

    err = _refused(d, tmp_path, flip_first_label, capsys)
    assert "1 served label(s) differ from submission.csv's; not exported" in err
    touch = lambda folder: _rewrite(folder / "details.json", lambda x: x["ensemble"].update(coef=[0.0]))
    assert "blend fitted again differs from details.json's" in _refused(d, tmp_path, touch, capsys)


def _refused(d: dict, tmp, change, capsys) -> str:
    """`export` once `change` has altered a copy of the ensemble's folder: exit 2, the error
    line, and the published export left as it was."""
    subs = tmp / "changed"
    shutil.copytree(d["submissions"], subs)
    change(subs)
    before = (d["export"] / "model.json").read_bytes()
    argv = ["export", "titanic", "--params", str(d["params"]), "--ensemble", str(subs), "--out", str(d["export"])]
    argv += [x for k in ("raw", "clean", "train", "distill") for x in (f"--{k}", str(d[k]))]
    argv += ["--train-cache", str(d["cache"] / "train"), "--distill-cache", str(d["cache"] / "distill")]
    capsys.readouterr()
    assert main(argv) == 2 and (d["export"] / "model.json").read_bytes() == before
    shutil.rmtree(subs)
    return capsys.readouterr().err


@slow
def test_the_served_ensemble_answers_as_submission_csv_image(tmp_path):
    """200 digits (labels): a CNN's two fold models and its refit on every row, and the student."""
    d = _ensemble_export(tmp_path, "digits", digits_layout(tmp_path), ["cnn"])
    test = [{"ImageId": i + 1, **r} for i, r in enumerate(json_rows(read_csv(d["raw"] / "test.csv")))]
    _served_equals_submission(d, test, labels=True)
    manifest = json.loads((d["export"] / "model.json").read_text())
    cnn = next(m for m in manifest["members"] if m["name"] == "cnn")
    assert len(cnn["folds"]) == 2 and len(cnn["refits"]) == 1 and cnn["refit_weight"] == 0.5  # refit: images


@slow
def test_the_served_ensemble_answers_as_submission_csv_text(tmp_path):
    """Short messages scored by roc_auc (probabilities), the mean of TF-IDF with a linear model,
    a tiny BERT from scratch (ONNX and its tokenizer), LightGBM and the TF-IDF student (whose
    `--student` export does not exist: it is not a torch model)."""
    from tests.test_text import messages

    data = messages(200, seed=1).rename(columns={"label": "spam"})
    raw = tmp_path / "local"
    raw.mkdir()
    data.iloc[:160].to_csv(raw / "train.csv", index=False)
    data.iloc[160:].drop(columns="spam").to_csv(raw / "test.csv", index=False)
    data.iloc[160:][["id"]].assign(spam=0.5).to_csv(raw / "sample_submission.csv", index=False)
    spec = {"source": "local", "path": str(raw), "id": "id", "target": "spam", "task": "binary", "metric": "roc_auc",
            "modality": "text"}  # fmt: skip
    bert = {"hidden": 32, "layers": 1, "heads": 2, "vocab_size": 300, "max_len": 32}
    models = ["tfidf_linear", "text_bert", "lightgbm"]
    changes = {"ensemble": {"methods": ["mean"]}, "train": {"params": {"text_bert": bert}}}
    d = _ensemble_export(tmp_path, "sms", spec, models, student=False, **changes)
    health = _served_equals_submission(d, json_rows(read_csv(d["raw"] / "test.csv")), labels=False)
    assert health["method"] == "mean" and health["members"] == [*models, "distill:student"]
    files = sorted(p.name for p in (d["export"] / "members").rglob("*"))
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".joblib"))]


@slow
def test_the_served_ensemble_answers_as_submission_csv_regression(tmp_path):
    """House Prices scored by rmsle: values in dollars (each member's outputs expm1'd, as train
    averaged them), the mean of ridge, LightGBM and the student."""
    spec = {"source": "embedded", "kaggle": "house-prices-advanced-regression-techniques", "id": "Id",
            "target": "SalePrice", "task": "regression", "metric": "rmsle"}  # fmt: skip
    d = _ensemble_export(tmp_path, "prices", spec, ["ridge", "lightgbm"], student=False, ensemble={"methods": ["mean"]})
    test = read_csv(d["raw"] / "test.csv")
    _served_equals_submission(d, json_rows(test), labels=False)
