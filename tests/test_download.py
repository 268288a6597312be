"""Stage `download` with `source: local`: a folder in Kaggle layout or a zip of one, checked
and written atomically; anything else is refused with one line (see tests/bad_inputs.py)."""

from __future__ import annotations

import os
import stat

import pytest

from pipelines.__main__ import main
from tests.bad_inputs import TRAIN, Case, Workspace, assert_refused, good_members, ids

CASES = [
    Case(
        "not a folder or zip",
        lambda ws: ws.spec.update(path=str(ws.raw / "train.csv")),
        ("comp/train.csv", "folder in Kaggle layout or a .zip"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_bad_input_is_one_clear_line(case: Case, tmp_path, capsys):
    assert_refused(case, tmp_path, capsys)


def test_a_good_zip_is_extracted_and_a_dead_writers_temporaries_are_swept(tmp_path):
    ws = Workspace(tmp_path)
    ws.zip([(f"comp/{f}", data) for f, data in good_members(ws)])  # files in a subfolder, as Kaggle zips may hold
    ws.save_params()
    stale = ws.out.parent / ".comp.999999999.abc.tmp"  # left by a SIGKILLed writer (no such pid)
    stale.mkdir(parents=True)
    (stale / "train.csv").write_text("half")
    assert main(ws.argv("download")) == 0
    assert sorted(os.listdir(ws.out.parent)) == ["comp"]
    assert (ws.out / "train.csv").read_text() == TRAIN
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE((ws.out / "train.csv").stat().st_mode) == 0o666 & ~umask  # not mkstemp's private 0600
    assert stat.S_IMODE(ws.out.stat().st_mode) == 0o777 & ~umask
