"""Image-file competitions (`sources/image_files.py`, the image-file branch of `layout.py`,
`sources/elpv.py`): Kaggle's two layouts read from a spec alone, decoded and resized once by
`clean`, bad files refused in one line naming the file or id (tests/bad_inputs.py), the
solar-cell loader on a tiny fake wheel, and both layouts through a real `dvc repro`."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image, ImageDraw

from pipelines.__main__ import main
from pipelines.core.config import ImageShape
from pipelines.core.errors import PipelineError
from pipelines.sources import elpv, embedded, image_files
from pipelines.sources.layout import copy_layout
from tests.bad_inputs import Case, assert_refused, ids, spec
from tests.conftest import run, tiny_params

GREY, RGB = ImageShape(height=16, width=16, channels=1), ImageShape(height=16, width=16, channels=3)


def shape_image(k: int, kind: int, size=(24, 24), mode: str = "L") -> Image.Image:
    """A bright disc (kind 0) or square (kind 1) of varying place and size on a noisy background."""
    rng = np.random.default_rng(k)
    img = Image.fromarray((rng.random(size[::-1]) * 60).astype(np.uint8)).convert(mode)
    w, h = size
    r = int(min(w, h) * rng.uniform(0.2, 0.3))
    cx, cy = int(w * rng.uniform(0.35, 0.65)), int(h * rng.uniform(0.35, 0.65))
    draw = ImageDraw.Draw(img)
    box = (cx - r, cy - r, cx + r, cy + r)
    fill = 230 if mode == "L" else (230, 200, 90)
    draw.ellipse(box, fill=fill) if kind == 0 else draw.rectangle(box, fill=fill)
    return img


def listed_layout(folder: Path, n_train: int = 30, n_test: int = 10, test_csv: bool = True) -> None:
    """train.csv naming train/<id>.png (ids without extension), test images in test/; sizes and
    colour modes mixed (the spec's size and channels decide)."""
    for part in ("train", "test"):
        (folder / part).mkdir(parents=True)
    labels = [k % 2 for k in range(n_train)]
    for k, kind in enumerate(labels):
        size, mode = ((24, 24), "L") if k % 3 else ((30, 20), "RGB")
        shape_image(k, kind, size, mode).save(folder / "train" / f"img{k}.png")
    for k in range(n_test):
        shape_image(100 + k, k % 2, (20, 20), "L").save(folder / "test" / f"t{k}.png")
    pd.DataFrame({"id": [f"img{k}" for k in range(n_train)], "label": labels}).to_csv(folder / "train.csv", index=False)
    test_ids = [f"t{k}.png" for k in range(n_test)]  # with the extension: both forms name a file
    if test_csv:
        pd.DataFrame({"id": test_ids}).to_csv(folder / "test.csv", index=False)
    pd.DataFrame({"id": test_ids, "label": 0}).to_csv(folder / "sample_submission.csv", index=False)


def class_layout(folder: Path, n_train: int = 30, n_test: int = 10) -> None:
    """train/<class>/*.png (classes 'disc' and 'square'), test/*.jpg listed by the sample only."""
    for k in range(n_train):
        cls = ("disc", "square")[k % 2]
        (folder / "train" / cls).mkdir(parents=True, exist_ok=True)
        shape_image(k, k % 2).save(folder / "train" / cls / f"{k}.png")
    (folder / "test").mkdir()
    for k in range(n_test):
        shape_image(100 + k, k % 2, mode="RGB").save(folder / "test" / f"{k:03d}.jpg", quality=95)
    pd.DataFrame({"id": [f"{k:03d}" for k in range(n_test)], "label": "disc"}).to_csv(
        folder / "sample_submission.csv", index=False
    )


IMAGE_SPEC = {
    "source": "local",
    "id": "id",
    "target": "label",
    "task": "binary",
    "metric": "roc_auc",
    "modality": "image",
    "image": {"height": 16, "width": 16, "channels": 1},
}


def image_files_setup(layout=listed_layout, change=None):
    """A `bad_inputs` setup: the workspace's folder becomes an image-file competition."""

    def setup(ws):
        for name in ("train.csv", "test.csv", "sample_submission.csv"):
            (ws.raw / name).unlink()
        layout(ws.raw)
        ws.spec = {**IMAGE_SPEC, "path": str(ws.raw)}
        if change:
            change(ws)

    return setup


def run_stage(tmp_path: Path, folder: Path, stage: str, **changes) -> Path:
    params = {"seed": 1, "folds": {"n_splits": 3}, "competitions": {"comp": {**IMAGE_SPEC, "path": str(folder)}}}
    params["competitions"]["comp"].update(changes)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / stage
    where = ["--out", str(out)] if stage == "download" else ["--raw", str(tmp_path / "download"), "--out", str(out)]
    assert main([stage, "comp", "--params", str(tmp_path / "params.yaml"), *where]) == 0
    return out


@pytest.mark.parametrize("layout", [listed_layout, class_layout, lambda f: listed_layout(f, test_csv=False)])
def test_download_and_clean_turn_image_files_into_arrays(layout, tmp_path):
    layout(tmp_path / "comp")
    raw = run_stage(tmp_path, tmp_path / "comp", "download")
    assert {"sample_submission.csv", "test", "train"} <= {p.name for p in raw.iterdir()}
    clean = run_stage(tmp_path, tmp_path / "comp", "clean")
    train_x, test_x = np.load(clean / "train_x.npy"), np.load(clean / "test_x.npy")
    assert train_x.shape == (30, 1, 16, 16) and test_x.shape == (10, 1, 16, 16) and train_x.dtype == np.uint8
    y = np.load(clean / "target.npy")
    # the shape's centre is bright in every image, the corners are background: decoding kept the picture
    assert (train_x[:, 0, 6:10, 6:10].mean() > 150) and (train_x[:, 0, :2, :2].mean() < 80)
    assert sorted(np.bincount(y)) == [15, 15]
    meta = json.loads((clean / "meta.json").read_text())
    assert meta["image_shape"] == [1, 16, 16] and meta["n_test"] == 10
    test_ids = pd.read_csv(clean / "test_ids.csv")["id"].astype(str).tolist()
    assert test_ids == pd.read_csv(tmp_path / "comp/sample_submission.csv")["id"].astype(str).tolist()


def test_channels_and_sizes_are_converted_as_documented(tmp_path):
    rgb = Image.new("RGB", (40, 10), (255, 0, 0))
    rgb.save(tmp_path / "red.png")
    grey = image_files.decode(tmp_path / "red.png", GREY)
    assert grey.shape == (1, 16, 16) and (grey == 76).all()  # ITU-R 601-2 luma of pure red
    Image.new("L", (8, 8), 200).save(tmp_path / "grey.png")
    assert (image_files.decode(tmp_path / "grey.png", RGB) == 200).all()  # grey repeated in 3 channels
    Image.fromarray(np.full((5, 5), 65535, dtype=np.uint16)).save(tmp_path / "wide.png")
    assert (image_files.decode(tmp_path / "wide.png", GREY) == 255).all()  # 16 bits scaled to 8
    Image.new("RGBA", (8, 8), (10, 20, 30, 0)).save(tmp_path / "alpha.png")
    assert image_files.decode(tmp_path / "alpha.png", RGB)[:, 0, 0].tolist() == [10, 20, 30]  # alpha dropped


def test_load_images_keeps_the_order(tmp_path):
    paths = []
    for k in range(12):
        Image.new("L", (10 + k, 9), 10 * k).save(tmp_path / f"{k}.png")
        paths.append(tmp_path / f"{k}.png")
    out = image_files.load_images(paths[::-1], GREY, progress=False)
    assert out[:, 0, 0, 0].tolist() == [10 * k for k in range(12)][::-1]


def test_resolve_names_ids_with_or_without_extension(tmp_path):
    for name in ("a.png", "b.jpg", "c.png", "c.jpg"):
        Image.new("L", (4, 4)).save(tmp_path / name)
    found = image_files.resolve(["a", "b.jpg", "images/a.png"], tmp_path, "x")
    assert found == [tmp_path / "a.png", tmp_path / "b.jpg", tmp_path / "a.png"]
    with pytest.raises(PipelineError, match=r"id 'c' names 2 files \(c.jpg, c.png\)"):
        image_files.resolve(["c"], tmp_path, "x")


def _corrupt(name: str, data: bytes):
    return lambda ws: (ws.raw / "train" / name).write_bytes(data)


def _truncated(ws):
    path = ws.raw / "train" / "img4.png"
    path.write_bytes(path.read_bytes()[:60])


def _rewrite(file: str, change):
    return lambda ws: (ws.raw / file).write_text(change((ws.raw / file).read_text()))


CASES = [
    Case(
        "image file missing",
        image_files_setup(change=lambda ws: (ws.raw / "train" / "img7.png").unlink()),
        ("comp/train.csv", "column 'id'", "missing image file for id 'img7'", "comp/train/img7.png"),
    ),
    Case(
        "test image missing",
        image_files_setup(change=lambda ws: (ws.raw / "test" / "t3.png").unlink()),
        ("comp/test.csv", "missing image file for id 't3.png'", "comp/test/t3.png"),
    ),
    Case(
        "id column names nothing",
        image_files_setup(change=_rewrite("train.csv", lambda t: t.replace("img", "photo"))),
        ("comp/train.csv", "column 'id'", "names no file in", "'photo0'"),
    ),
    Case(
        "id column absent",
        image_files_setup(change=spec(id="file")),
        ("comp/train.csv", "id column 'file'", "not found"),
    ),
    Case(
        "corrupt image",
        image_files_setup(change=_corrupt("img3.png", b"\x89PNG\r\n\x1a\nnot really")),
        ("train/img3.png", "unreadable image"),
        stage="clean",
    ),
    Case("truncated image", image_files_setup(change=_truncated), ("train/img4.png", "unreadable image"), "clean"),
    Case(
        "empty image file",
        image_files_setup(change=_corrupt("img5.png", b"")),
        ("train/img5.png", "unreadable"),
        "clean",
    ),
    Case(
        "image outside class folders",
        image_files_setup(class_layout, lambda ws: shape_image(0, 0).save(ws.raw / "train" / "stray.png")),
        ("comp/train", "'stray.png' outside a class folder"),
    ),
    Case(
        "one class folder",
        image_files_setup(
            class_layout,
            lambda ws: [p.rename(ws.raw / "train/disc" / f"s{p.name}") for p in (ws.raw / "train/square").iterdir()],
        ),  # fmt: skip
        ("comp/train", "2 classes", "found 1"),
    ),
    Case(
        "pixels expected, no train folder",
        image_files_setup(change=lambda ws: __import__("shutil").rmtree(ws.raw / "train")),
        ("comp/train.csv", "no pixel columns", "no train/ folder"),
    ),
    Case(
        "test folder missing",
        image_files_setup(change=lambda ws: __import__("shutil").rmtree(ws.raw / "test")),
        ("comp/test", "folder not found"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_bad_image_files_are_one_clear_line(case: Case, tmp_path, capsys):
    assert_refused(case, tmp_path, capsys)


def test_a_zip_carries_its_image_folders_and_kaggle_inner_zips(tmp_path):
    listed_layout(tmp_path / "comp")
    archive = tmp_path / "comp.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((tmp_path / "comp").rglob("*")):
            if path.is_file():
                zf.write(path, "bundle/" + path.relative_to(tmp_path / "comp").as_posix())
    clean = run_stage(tmp_path, tmp_path / "comp", "download", path=str(archive))
    assert len(list((clean / "train").iterdir())) == 30 and len(list((clean / "test").iterdir())) == 10
    # Kaggle's client unpacks train.zip into train.files/ (here holding train/ itself)
    files = tmp_path / "kaggle"
    for name in ("train.csv", "test.csv", "sample_submission.csv"):
        (files / name).parent.mkdir(parents=True, exist_ok=True)
        (files / name).write_bytes((tmp_path / "comp" / name).read_bytes())
    for part, inner in (("train", "train.files/train"), ("test", "test.files")):
        (files / inner).mkdir(parents=True)
        for p in (tmp_path / "comp" / part).iterdir():
            (files / inner / p.name).write_bytes(p.read_bytes())
    dest = tmp_path / "dest"
    dest.mkdir()
    copy_layout(sorted(p for p in files.rglob("*") if p.is_file()), "kaggle: comp", dest, images=True)
    assert len(list((dest / "train").iterdir())) == 30 and len(list((dest / "test").iterdir())) == 10


def test_an_escaping_image_member_is_refused(tmp_path, capsys):
    listed_layout(tmp_path / "comp")
    archive = tmp_path / "comp.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((tmp_path / "comp").rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(tmp_path / "comp").as_posix())
        zf.writestr("train/../../evil.png", b"x")
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump({"competitions": {"comp": {**IMAGE_SPEC, "path": str(archive)}}})
    )
    assert main(["download", "comp", "--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "out")]) == 2
    assert "unsafe member 'train/../../evil.png'" in capsys.readouterr().err
    assert not (tmp_path / "evil.png").exists() and not (tmp_path / "out").exists()


def fake_elpv_wheel(path: Path, n: int = 40, label_rows: list[str] | None = None) -> str:
    """A wheel shaped like elpv-dataset's: labels.csv (path, probability, type) and PNGs."""
    probs = [0.0, 1.0, 0.3333333333333333, 0.6666666666666666]
    rows = label_rows or [f"images/cell{k:04d}.png  {probs[k % 4]}  {'mono' if k % 3 else 'poly'}" for k in range(n)]
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(elpv.DATA + "labels.csv", "\n".join(rows) + "\n")
        for k in range(n):
            buf = io.BytesIO()
            shape_image(k, int(probs[k % 4] >= 0.5), (30, 30)).save(buf, "PNG")
            zf.writestr(f"{elpv.DATA}images/cell{k:04d}.png", buf.getvalue())
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def fake_elpv(tmp_path, monkeypatch):
    """The solar-cell wheel replaced by a 40-cell fake in a temporary cache (no pip)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    wheels = tmp_path / "xdg" / "kaggle-pipelines" / "wheels"
    wheels.mkdir(parents=True)
    digest = fake_elpv_wheel(wheels / elpv.ELPV.filename)
    monkeypatch.setattr(elpv, "ELPV", replace(elpv.ELPV, sha256=digest))
    return wheels / elpv.ELPV.filename


def test_solar_cells_download_writes_the_kaggle_image_layout(fake_elpv, tmp_path):
    labels = elpv.load()
    assert labels.columns.tolist() == ["id", "defective"] and labels["defective"].tolist()[:4] == [0, 1, 0, 1]
    params = {"folds": {"n_splits": 3}, "competitions": {"solar-cells": {
        "source": "embedded", "kaggle": "solar-cells", "id": "id", "target": "defective", "task": "binary",
        "metric": "roc_auc", "modality": "image", "image": {"height": 16, "width": 16, "channels": 1}}}}  # fmt: skip
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    common = ["solar-cells", "--params", str(tmp_path / "params.yaml")]
    raw, clean = tmp_path / "raw", tmp_path / "clean"
    assert main(["download", *common, "--out", str(raw)]) == 0
    train, test = pd.read_csv(raw / "train.csv"), pd.read_csv(raw / "test.csv")
    assert (len(train), len(test)) == (30, 10) and test.columns.tolist() == ["id"]
    assert sorted(p.stem for p in (raw / "test").iterdir()) == sorted(test["id"])
    assert (raw / "train" / f"{train['id'][0]}.png").read_bytes().startswith(b"\x89PNG")
    assert main(["clean", *common, "--raw", str(raw), "--out", str(clean)]) == 0
    assert np.load(clean / "train_x.npy").shape == (30, 1, 16, 16)
    answers, _ = embedded.hidden_answers("solar-cells")  # the offline leaderboard's labels: the carved-out cells
    assert sorted(answers["id"]) == sorted(test["id"]) and set(answers["defective"]) == {0, 1}


def test_a_labels_file_naming_another_path_is_refused(tmp_path):
    wheel = tmp_path / "elpv.whl"
    fake_elpv_wheel(wheel, 2, ["images/cell0000.png 1.0 mono", "../../etc/passwd 0.0 mono"])
    with pytest.raises(PipelineError, match=r"labels.csv: unexpected row \['../../etc/passwd'"):
        elpv.read_labels(wheel)


@pytest.mark.slow
def test_both_image_layouts_through_dvc_repro(dvc_repo, tmp_path):
    listed_layout(tmp_path / "listed", n_train=36, n_test=12)
    class_layout(tmp_path / "classes", n_train=36, n_test=12)
    classes = {**IMAGE_SPEC, "path": str(tmp_path / "classes"), "image": {"height": 16, "width": 16, "channels": 3}}
    params = tiny_params(listed={**IMAGE_SPEC, "path": str(tmp_path / "listed")}, classes=classes)
    params["train"]["params"] = {"cnn": {"width": 8, "hidden": 32}}
    params["distill"]["epochs"] = 2
    (dvc_repo / "params.yaml").write_text(yaml.safe_dump(params))
    run(["dvc", "repro"], dvc_repo, timeout=600)
    for name in ("listed", "classes"):
        sub = pd.read_csv(dvc_repo / f"submissions/{name}/submission.csv")
        sample = pd.read_csv(tmp_path / name / "sample_submission.csv")
        assert sub["id"].astype(str).tolist() == sample["id"].astype(str).tolist() and sub["label"].between(0, 1).all()
        metrics = json.loads((dvc_repo / f"submissions/{name}/metrics.json").read_text())
        assert metrics["metric"] == "roc_auc" and "cnn" in metrics["models"]
    assert np.load(dvc_repo / "data/clean/classes/train_x.npy").shape == (36, 3, 16, 16)
    meta = json.loads((dvc_repo / "data/clean/classes/meta.json").read_text())
    assert meta["classes"] == ["disc", "square"]

    # editing the image nets changes the code an image competition runs: its zoo digest
    # changes, and its training stages are out of date (a tabular one's are not: test_pipeline)
    with (dvc_repo / "pipelines/models/nets.py").open("a") as fh:
        fh.write("\n# an edit\n")
    run(["dvc", "repro", "zoo@listed"], dvc_repo)
    changed = run(["dvc", "status", "tune@listed", "train@listed", "distill@listed"], dvc_repo).stdout
    assert all(f"{stage}@listed" in changed for stage in ("tune", "train", "distill")), changed
    assert "data/zoo/listed" in changed
