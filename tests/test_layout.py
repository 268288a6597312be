"""The Kaggle layout (`sources/layout.py`): the three files exist, their ids, target, columns
and pixels fit the spec, and the sample submission matches test.csv. Each broken layout is
refused through the command line with one line naming the file and column (see
tests/bad_inputs.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from pipelines.__main__ import main
from tests.bad_inputs import (
    N_TEST,
    N_TRAIN,
    TEST,
    TRAIN,
    Case,
    Workspace,
    assert_refused,
    both,
    edit,
    good_members,
    ids,
    image_csv,
    put,
    replace_row,
    spec,
    zipped,
)

FILES = [
    Case("folder missing", spec(path="/nonexistent/comp"), ("/nonexistent/comp", "folder not found")),
    Case("file missing", lambda ws: (ws.raw / "test.csv").unlink(), ("missing test.csv",)),
    Case("no target column", spec(target="Survived"), ("comp/train.csv", "target column 'Survived' not found")),
    Case(
        "all targets missing",
        edit("train.csv", lambda t: re.sub(r",[01]\n", ",\n", t)),
        ("comp/train.csv", "target column 'y' is empty"),
    ),
    Case(
        "no id in sample",
        edit("sample_submission.csv", lambda t: t.replace("id,y", "Id,y", 1)),
        ("comp/sample_submission.csv", "id column 'id'"),
    ),
    Case(
        "duplicate train id",
        replace_row("train.csv", 2, "1,21,b,0"),
        ("comp/train.csv", "column 'id'", "1 duplicate id"),
    ),
    Case("duplicate test id", replace_row("test.csv", 2, "101,31,b"), ("comp/test.csv", "column 'id'", "duplicate id")),
    Case(
        "missing sample id",
        replace_row("sample_submission.csv", 2, ",0"),
        ("comp/sample_submission.csv", "1 missing id"),
    ),
    Case(
        "inf target",
        both(spec(task="regression", metric="rmse"), replace_row("train.csv", 4, "4,24,a,inf")),
        ("comp/train.csv", "target 'y'", "inf"),
    ),
    Case(
        "text target for regression",
        both(spec(task="regression", metric="rmse"), replace_row("train.csv", 4, "4,24,a,high")),
        ("comp/train.csv", "must be numeric", "'high'"),
    ),
    Case(
        "negative target for rmsle",
        both(spec(task="regression", metric="rmsle"), replace_row("train.csv", 4, "4,24,a,-1")),
        ("comp/train.csv", "negative", "rmsle"),
    ),
    Case(
        "three classes for binary",
        replace_row("train.csv", 4, "4,24,a,2"),
        ("comp/train.csv", "task binary needs 2 classes in 'y', found 3"),
    ),
    Case(
        "fraction as a class",
        both(spec(task="multiclass"), replace_row("train.csv", 4, "4,24,a,0.5")),
        ("comp/train.csv", "value 0.5", "class labels"),
    ),
    Case(
        "single class",
        both(spec(task="multiclass"), edit("train.csv", lambda t: re.sub(r",1\n", ",0\n", t))),
        ("comp/train.csv", "single class"),
    ),
    Case(
        "test lacks a column",
        put("test.csv", re.sub(r",[ab]\n", "\n", TEST).replace(",city", "")),
        ("comp/test.csv", "differ from train.csv", "missing city"),
    ),
    Case(
        "test has the target",
        edit("test.csv", lambda t: t.replace("\n", ",0\n").replace("city,0", "city,y")),
        ("comp/test.csv", "target column 'y'"),
    ),
    Case(
        "text in a numeric column", replace_row("test.csv", 3, "103,abc,b"), ("comp/test.csv", "column 'age'", "'abc'")
    ),
    Case(
        "sample shorter than test",
        edit("sample_submission.csv", lambda t: t.rsplit("\n", 2)[0] + "\n"),
        ("comp/sample_submission.csv", f"{N_TEST - 1} rows", f"test.csv has {N_TEST}"),
    ),
    Case(
        "sample ids differ",
        replace_row("sample_submission.csv", 1, "999,0"),
        ("comp/sample_submission.csv", "ids differ from test.csv", "999"),
    ),
    Case(
        "sample has two columns",
        edit("sample_submission.csv", lambda t: t.replace("\n", ",0\n").replace("id,y,0", "id,y,z")),
        ("comp/sample_submission.csv", "2 prediction columns", "expected one"),
    ),
]

ARCHIVES = [
    Case("zip lacks a file", lambda ws: ws.zip(good_members(ws)[:2]), ("comp.zip", "lacks sample_submission.csv")),
    Case(
        "zip holds a file twice",
        lambda ws: ws.zip([*good_members(ws), ("extra/train.csv", TRAIN.encode())]),
        ("comp.zip", "train.csv more than once"),
    ),
    Case("bad csv inside zip", both(put("test.csv", "id,age,city\n"), zipped()), ("comp.zip/test.csv", "header only")),
]

IMAGES = [
    Case(
        "row length",
        lambda ws: [
            ws.write("train.csv", image_csv(range(1, 19), [i % 3 for i in range(18)], 15)),
            ws.write("test.csv", image_csv(range(101, 107), None, 15)),
        ],
        ("comp/train.csv", "15 pixel columns", "1x4x4 = 16"),
        image=True,
    ),
    Case(
        "pixel above 255",
        replace_row("train.csv", 2, "2," + ",".join(["300"] + ["0"] * 15) + ",1"),
        ("comp/train.csv", "'p0'", "300", "row 2", "0..255"),
        image=True,
    ),
    Case(
        "negative pixel",
        replace_row("test.csv", 3, "103," + ",".join(["0"] * 15 + ["-1"])),
        ("comp/test.csv", "'p15'", "-1", "0..255"),
        image=True,
    ),
    Case(
        "fractional pixel",
        replace_row("test.csv", 1, "101," + ",".join(["0.5"] * 16)),
        ("comp/test.csv", "0.5", "integers"),
        image=True,
    ),
    Case(
        "text pixel",
        replace_row("train.csv", 5, "5," + ",".join(["x"] * 16) + ",2"),
        ("comp/train.csv", "pixel column 'p0'", "non-numbers", "'x'"),
        image=True,
    ),
    Case(
        "missing pixel",
        replace_row("train.csv", 3, "3,7,," + ",".join(["7"] * 14) + ",0"),
        ("comp/train.csv", "'p1' is empty in row 3"),
        image=True,
    ),
]

CASES = FILES + ARCHIVES + IMAGES


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_bad_input_is_one_clear_line(case: Case, tmp_path, capsys):
    assert_refused(case, tmp_path, capsys)


def test_rows_without_target_are_dropped_with_a_count(tmp_path, capsys, caplog):
    ws = Workspace(tmp_path)
    ws.write("train.csv", TRAIN.replace("3,23,b,1\n", "3,23,b,\n").replace("6,26,a,0\n", "6,26,a,\n"))
    ws.save_params()
    assert main(ws.argv("download")) == 0
    assert "dropped 2 row(s) whose target 'y' is missing" in caplog.text
    assert f"{N_TRAIN - 2} train rows" in capsys.readouterr().out
    assert main(ws.argv("clean")) == 0  # clean applies the same rule
    assert len(np.load(ws.out / "target.npy")) == N_TRAIN - 2
