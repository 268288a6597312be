"""Stage `clean`: folds that fit the data, group columns that exist, pixels in range; a
refused or failed clean leaves the previous output as it was (see tests/bad_inputs.py)."""

from __future__ import annotations

import os
import re

import pytest

from pipelines.__main__ import main
from tests.bad_inputs import TRAIN, Case, Workspace, assert_refused, edit, error_line, ids, replace_row, snapshot, spec

CASES = [
    Case(
        "clean: duplicate id",
        replace_row("train.csv", 2, "1,21,b,0"),
        ("comp/train.csv", "duplicate id"),
        stage="clean",
    ),
    Case(
        "clean: a class of one row",
        edit("train.csv", lambda t: re.sub(r",1\n", ",0\n", t).replace("1,21,b,0", "1,21,b,1", 1)),
        ("comp/train.csv", "class 1 of column 'y' has a single row"),
        stage="clean",
    ),
    Case(
        "clean: group column missing", spec(group="team"), ("train.csv", "group column 'team' not found"), stage="clean"
    ),
    Case(
        "clean: pixel out of range",
        replace_row("train.csv", 2, "2," + ",".join(["256"] * 16) + ",1"),
        ("comp/train.csv", "256"),
        stage="clean",
        image=True,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_bad_input_is_one_clear_line(case: Case, tmp_path, capsys):
    assert_refused(case, tmp_path, capsys)


def test_a_failed_clean_keeps_the_previous_output(tmp_path, capsys):
    ws = Workspace(tmp_path)
    ws.save_params()
    assert main(ws.argv("clean")) == 0
    good = snapshot(ws.out)
    ws.write("train.csv", TRAIN.replace("3,23,b,1", "3,23,b,7"))
    assert main(ws.argv("clean")) == 2
    assert "found 3" in error_line(capsys.readouterr().err)
    assert snapshot(ws.out) == good and sorted(os.listdir(ws.out.parent)) == ["comp"]
