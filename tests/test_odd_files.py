"""Odd but valid files that Kaggle users meet: CSVs in UTF-16 (with or without a byte-order
mark), UTF-8 with a mark, latin-1; a class rarer than the folds; column names holding JSON's
special characters, brackets and non-ASCII letters (through `clean`, its drift check, and
every model of each modality's default zoo). And what cannot be played is refused in one
line naming the user's own file: a class of one row, a text column empty in every test row."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from pipelines.__main__ import main
from pipelines.core.config import TrainParams
from pipelines.core.context import ModelContext
from pipelines.core.metrics import get_metric
from pipelines.core.tables import safe_names
from pipelines.features.tabular import build_features
from pipelines.training.cv import FoldData, cross_validate
from tests.bad_inputs import SAMPLE, TEST, TRAIN, Case, Workspace, assert_refused, error_line, ids

CAFE = "caf\xe9"  # a non-ASCII value: "café"


def _encoded(ws: Workspace, encoding: str, given: str | None) -> None:
    """Every CSV of `ws` in `encoding` (city "a" spelled café), the spec's encoding `given`."""
    for file, text in (("train.csv", TRAIN), ("test.csv", TEST), ("sample_submission.csv", SAMPLE)):
        ws.write(file, text.replace(",a,", f",{CAFE},").replace(",a\n", f",{CAFE}\n").encode(encoding))
    if given:
        ws.spec["encoding"] = given


ENCODINGS = [  # (how the files are written, the spec's encoding or None: detected)
    ("utf-16", "utf-16"),  # with a byte-order mark, declared
    ("utf-16", None),  # with a byte-order mark, detected
    ("utf-16-le", "utf-16"),  # without one, declared
    ("utf-16-le", None),  # without one, detected
    ("utf-16-be", None),
    ("utf-8-sig", None),
    ("utf-8-sig", "utf-8"),  # declared utf-8: the mark still stays out of the first name
    ("latin-1", None),
    ("latin-1", "latin-1"),
]


@pytest.mark.parametrize(("encoding", "given"), ENCODINGS, ids=[f"{e}-{g or 'detected'}" for e, g in ENCODINGS])
def test_csvs_in_other_encodings_are_read(tmp_path, encoding, given):
    ws = Workspace(tmp_path)
    _encoded(ws, encoding, given)
    ws.save_params()
    assert main(ws.argv("clean")) == 0
    train = pd.read_parquet(ws.out / "train.parquet")
    assert set(train["city"].astype(str)) == {CAFE, "b"}
    meta = json.loads((ws.out / "meta.json").read_text())
    assert meta["submission_columns"] == ["id", "y"] and meta["n_test"] == 10


def _rare_class(ws: Workspace) -> None:
    """Class 1 of 'y' in two rows only (folds.n_splits is 3)."""
    rows = TRAIN.splitlines()
    rows[1:] = [line[:-1] + ("1" if k < 2 else "0") for k, line in enumerate(rows[1:])]
    ws.write("train.csv", "\n".join(rows) + "\n")


def test_a_class_rarer_than_the_folds_plays_fewer_folds_and_says_so(tmp_path, caplog):
    ws = Workspace(tmp_path)
    _rare_class(ws)
    ws.save_params()
    with caplog.at_level(logging.WARNING):
        assert main(ws.argv("clean")) == 0
    meta = json.loads((ws.out / "meta.json").read_text())
    assert meta["folds"]["n_splits"] == 2 and meta["folds"]["asked"] == 3
    assert "class 1 of column 'y' has 2 rows" in meta["folds"]["why"]
    assert "playing 2 folds" in caplog.text and "class 1 of column 'y'" in caplog.text
    folds, y = np.load(ws.out / "folds.npy"), np.load(ws.out / "target.npy")
    assert sorted(set(folds)) == [0, 1] and sorted(folds[y == 1]) == [0, 1]  # each fold validates class 1
    caplog.clear()
    ws.write("train.csv", TRAIN)  # every class has the rows: the folds asked for, and nothing said
    assert main(ws.argv("clean")) == 0
    assert json.loads((ws.out / "meta.json").read_text())["folds"] == {"n_splits": 3, "asked": 3}
    assert "playing" not in caplog.text


TEXT_TRAIN = "id,review,y\n" + "".join(
    f"{i},{'a fine day out' if i % 2 else 'a dull wet day'} number {i},{i % 2}\n" for i in range(1, 25)
)
TEXT_TEST = "id,review\n" + "".join(f"{i},\n" for i in range(101, 111))


def _text_files(test: str):
    def setup(ws: Workspace) -> None:
        ws.write("train.csv", TEXT_TRAIN)
        ws.write("test.csv", test)
        ws.spec.update(modality="text", text=["review"])

    return setup


REFUSED = [
    Case(
        "a text column empty in every test row",
        _text_files(TEXT_TEST),
        ("comp/test.csv", "text column 'review' is empty in every row"),
        stage="clean",
    ),
    Case(
        "a text column (found by content) empty in every test row",
        lambda ws: (_text_files(TEXT_TEST)(ws), ws.spec.pop("text")),
        ("comp/test.csv", "text column 'review' is empty in every row"),
        stage="clean",
    ),
]


@pytest.mark.parametrize("case", REFUSED, ids=ids(REFUSED))
def test_what_cannot_be_played_is_one_clear_line(case, tmp_path, capsys):
    assert_refused(case, tmp_path, capsys)


@pytest.mark.parametrize(
    ("setup", "expect"),
    [
        (lambda ws: ws.spec.update(group="team"), "group column 'team' not found"),
        (lambda ws: ws.write("train.csv", TRAIN.replace(",1\n", ",0\n").replace("1,21,b,0", "1,21,b,1")), "class 1"),
        (_text_files(TEXT_TEST), "text column 'review' is empty"),
    ],
    ids=["group", "single-row class", "empty test text"],
)
def test_errors_in_clean_name_the_users_own_file(tmp_path, capsys, setup, expect):
    """`source: local`: clean reads download's copy, but its errors name the user's file."""
    ws = Workspace(tmp_path)
    setup(ws)
    ws.save_params()
    copy = tmp_path / "data" / "raw" / "comp"
    assert main(["download", "comp", "--params", str(ws.params_path), "--out", str(copy)]) == 0
    capsys.readouterr()
    argv = ["clean", "comp", "--params", str(ws.params_path), "--raw", str(copy), "--out", str(ws.out)]
    assert main(argv) == 2
    line = error_line(capsys.readouterr().err)
    assert expect in line and str(ws.raw) in line and str(copy) not in line, line


ODD = ['sib,sp:"x"', "a[0]", "Größe", "b{1}<2>", "it's", "a b"]  # JSON's specials, brackets, non-ASCII


def test_safe_names_are_ascii_unique_and_stable():
    names = [*ODD, "a_b", "a_0_", ""]
    safe = safe_names(names)
    assert len(set(safe)) == len(names) and safe == safe_names(names)
    assert all(s and s.isascii() and all(ch.isalnum() or ch == "_" for ch in s) for s in safe)
    assert safe_names(["plain", "x_1"]) == ["plain", "x_1"]  # names already safe stay as they are


def _odd_frames(text: bool):
    rng = np.random.default_rng(0)
    n = 60
    frame = pd.DataFrame(
        {
            "id": np.arange(n),
            ODD[0]: rng.integers(0, 5, n),
            ODD[1]: rng.normal(size=n),
            ODD[2]: rng.choice(["x", "y", "z"], n),
            ODD[3]: rng.normal(size=n),
            ODD[4]: rng.choice(list("abcdefghijklmnopqrstuvwxyz"), n),  # a key: target-encoded
        }
    )
    if text:
        words = np.array(["good", "bad", "fine", "great", "poor", "nice", "awful"])
        frame['tëxt:"a",[b]'] = [" ".join(rng.choice(words, 6)) for _ in range(n)]
    y = (frame[ODD[1]] > 0).astype(int).to_numpy()
    return frame.iloc[:40].assign(y=y[:40]), frame.iloc[40:], y[:40]


@pytest.mark.parametrize("modality", ["tabular", "text"])
def test_every_default_model_trains_on_odd_column_names(modality, tmp_path):
    from pipelines.models.registry import get_entry
    from tests.test_text import _checkpoint

    train, test, y = _odd_frames(text=modality == "text")
    X, X_test, roles = build_features(train, test, "id", "y", ['tëxt:"a",[b]'] if modality == "text" else [])
    assert ODD[1] in roles["numeric"] and ODD[2] in roles["categorical"]  # the user's names, kept
    ctx = ModelContext(task="binary", metric=get_metric("accuracy"), n_classes=2, roles=roles, epochs=1, progress=False)
    folds = np.arange(len(y)) % 2
    for model in TrainParams().models[modality]:
        # a pretrained member (text_embed) starts from a tiny local checkpoint of the same texts
        texts = train[roles["text"][0]].astype(str).tolist() if roles.get("text") else []
        args = {"weights": str(_checkpoint(tmp_path / model, texts))} if get_entry(model).pretrained else {}
        result = cross_validate(model, args, FoldData(X, y, X_test, folds), ctx)
        assert np.isfinite(result.oof).all() and result.test.shape == (len(X_test),), model


def test_clean_and_its_drift_check_take_odd_column_names(tmp_path):
    ws = Workspace(tmp_path)
    ws.write("train.csv", TRAIN.replace("id,age,city,y", 'id,"sib,sp:""x""",Größe[1],y'))
    ws.write("test.csv", TEST.replace("id,age,city", 'id,"sib,sp:""x""",Größe[1]'))
    ws.save_params()
    assert main(ws.argv("clean")) == 0
    drift = json.loads((ws.out / "drift.json").read_text())
    assert drift["auc"] is not None and {f["name"] for f in drift["features"]} <= {'sib,sp:"x"', "Größe[1]"}
    roles = json.loads((ws.out / "meta.json").read_text())["roles"]
    assert roles["numeric"] == ['sib,sp:"x"'] and roles["categorical"] == ["Größe[1]"]


def test_an_unreadable_image_is_named_in_the_users_folder(tmp_path, capsys):
    from tests.test_image_files import listed_layout

    folder = tmp_path / "comp"
    listed_layout(folder)
    (folder / "train" / "img5.png").write_bytes(b"not a png")
    spec = {"source": "local", "path": str(folder), "id": "id", "target": "label", "task": "binary",
            "metric": "accuracy", "modality": "image", "image": {"height": 8, "width": 8, "channels": 1}}  # fmt: skip
    (tmp_path / "params.yaml").write_text(json.dumps({"folds": {"n_splits": 2}, "competitions": {"comp": spec}}))
    common = ["comp", "--params", str(tmp_path / "params.yaml")]
    copy, out = tmp_path / "data" / "raw" / "comp", tmp_path / "clean"
    assert main(["download", *common, "--out", str(copy)]) == 0
    assert main(["clean", *common, "--raw", str(copy), "--out", str(out)]) == 2
    line = error_line(capsys.readouterr().err)
    assert f"{folder / 'train' / 'img5.png'}: unreadable image" in line and str(copy) not in line, line
