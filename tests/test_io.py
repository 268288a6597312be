"""Safe reading (`core/io.py`): CSVs that pandas would read wrongly or not at all, archives
that would write outside their folder, arrays that would unpickle. Each bad file is refused
through the command line with one line naming it (see tests/bad_inputs.py)."""

from __future__ import annotations

import os
import random
import re
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.__main__ import main
from pipelines.core import io as core_io
from pipelines.core.errors import PipelineError
from pipelines.core.io import read_csv, safe_extract_zip
from tests.bad_inputs import (
    N_TRAIN,
    TEST,
    TRAIN,
    Case,
    Workspace,
    assert_refused,
    both,
    edit,
    error_line,
    good_members,
    ids,
    put,
    replace_row,
    spec,
    zipped,
)
from tests.conftest import ROOT, TITANIC, run
from tests.fake_kaggle import make_zip


def _corrupt_member(ws):
    archive = ws.zip()
    data = bytearray(archive.read_bytes())
    data[data.index(b"id,age,city,y") + 20] ^= 0x01  # a flipped bit inside train.csv (stored, not deflated)
    archive.write_bytes(bytes(data))


def _zip_as_csv(ws):
    data = ws.zip().read_bytes()
    ws.write("train.csv", data)
    ws.spec["path"] = str(ws.raw)


def _no_escape(ws):
    assert not (ws.root / "evil.csv").exists() and not (ws.root / "out" / "evil.csv").exists()


CSV = [
    Case("empty file", put("train.csv", ""), ("comp/train.csv", "file is empty")),
    Case("whitespace only", put("train.csv", "\n\n"), ("comp/train.csv", "no columns")),
    Case("header only", put("test.csv", "id,age,city\n"), ("comp/test.csv", "header only")),
    Case("truncated", edit("train.csv", lambda t: t[: t.rindex("\n", 0, -1) + 4]), ("comp/train.csv", "truncated")),
    Case("semicolons", edit("train.csv", lambda t: t.replace(",", ";")), ("comp/train.csv", "comma-separated")),
    Case(
        "latin-1 declared utf-8",
        both(put("train.csv", TRAIN.replace(",a,", ",caf\xe9,").encode("latin-1")), spec(encoding="utf-8")),
        ("comp/train.csv", "not utf-8 text", "byte 0xe9 at line"),
    ),
    Case(
        "utf-16 declared latin-1",
        both(put("test.csv", TEST.encode("utf-16")), spec(encoding="latin-1")),
        ("comp/test.csv", "UTF-16 text", "encoding is latin-1"),
    ),
    Case("binary", put("test.csv", b"id,age\n\x00\x01\x02\xff\n"), ("comp/test.csv", "binary data")),
    Case("zip posing as csv", _zip_as_csv, ("comp/train.csv", "zip archive")),
    Case("unclosed quote", edit("train.csv", lambda t: t + '25,"oops,a,1\n'), ("comp/train.csv", "malformed CSV")),
    Case("extra field", replace_row("train.csv", 3, "3,23,b,1,9"), ("comp/train.csv", "malformed CSV", "line 4")),
    Case(
        "duplicate column",
        edit("train.csv", lambda t: t.replace("id,age,city,y", "id,age,age,y", 1)),
        ("comp/train.csv", "duplicate column names ['age']"),
    ),
    Case(
        "nameless column",
        edit("train.csv", lambda t: t.replace("id,age,city,y", ",age,city,y", 1)),
        ("comp/train.csv", "without a name"),
    ),
]

ARCHIVES = [
    Case(
        "path escape",
        lambda ws: ws.zip([*good_members(ws), ("../evil.csv", b"x\n")]),
        ("comp.zip", "unsafe member '../evil.csv'"),
        extra=_no_escape,
    ),
    Case(
        "absolute member",
        lambda ws: ws.zip([*good_members(ws), ("/tmp/evil.csv", b"x\n")]),
        ("comp.zip", "unsafe member '/tmp/evil.csv'"),
    ),
    Case(
        "symlink member",
        lambda ws: ws.zip([*good_members(ws), ("link:train_link.csv", b"/etc/passwd")]),
        ("comp.zip", "unsafe member 'train_link.csv'"),
    ),
    Case("truncated zip", zipped(cut=0.6), ("comp.zip", "not a valid zip archive")),
    Case("corrupt member", _corrupt_member, ("comp.zip", "corrupt member", "'train.csv'")),
]

CASES = CSV + ARCHIVES


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_bad_input_is_one_clear_line(case: Case, tmp_path, capsys):
    assert_refused(case, tmp_path, capsys)


# Zip bombs, with the limits patched down (see `small_zip_limits`) so the archives stay tiny.
SMALL_LIMITS = {"MAX_ZIP_MEMBERS": 4, "MAX_ZIP_BYTES": 200_000, "MAX_ZIP_RATIO": 100, "RATIO_MIN_BYTES": 100_000}
NOISE = random.Random(0).randbytes(250_000)  # incompressible: large without a suspicious ratio


def _deflated(*extra: tuple[str, bytes]):
    """comp.zip with the good files plus `extra`, deflated (`Workspace.zip` stores members)."""

    def setup(ws):
        archive = ws.root / "comp.zip"
        archive.write_bytes(make_zip(dict([*good_members(ws), *extra])))
        ws.spec["path"] = str(archive)

    return setup


BOMBS = [
    Case(
        "too many members",
        lambda ws: ws.zip([*good_members(ws), ("a.txt", b"a"), ("b.txt", b"b")]),
        ("comp.zip", "5 members, over the limit of 4", "zip bomb?"),
    ),
    Case("too large", _deflated(("noise.bin", NOISE)), ("comp.zip", "uncompressed, over the limit of 200,000 bytes")),
    Case(
        "absurd ratio",
        _deflated(("zeros.bin", bytes(150_000))),
        ("comp.zip", "member 'zeros.bin' expands", "to 150,000 bytes, over the limit of 100:1"),
    ),
]


@pytest.fixture
def small_zip_limits(monkeypatch):
    for name, value in SMALL_LIMITS.items():
        monkeypatch.setattr(core_io, name, value)


@pytest.mark.parametrize("case", BOMBS, ids=ids(BOMBS))
def test_zip_bombs_are_one_clear_line(case: Case, tmp_path, capsys, small_zip_limits):
    assert_refused(case, tmp_path, capsys)


@pytest.mark.parametrize("case", BOMBS, ids=ids(BOMBS))
def test_zip_limits_are_checked_before_anything_is_written(case: Case, tmp_path, small_zip_limits):
    ws = Workspace(tmp_path)
    case.setup(ws)
    with pytest.raises(PipelineError):
        safe_extract_zip(ws.spec["path"], tmp_path / "dest")
    assert os.listdir(tmp_path / "dest") == []


def test_a_small_file_that_compresses_well_is_no_bomb(tmp_path, small_zip_limits):
    ws = Workspace(tmp_path)
    _deflated(("zeros.bin", bytes(90_000)))(ws)  # ratio far above 100:1, but under RATIO_MIN_BYTES
    files = safe_extract_zip(ws.spec["path"], tmp_path / "dest")
    assert sorted(f.name for f in files) == ["sample_submission.csv", "test.csv", "train.csv", "zeros.bin"]


def test_the_real_limits_are_generous_for_real_competitions():
    assert core_io.MAX_ZIP_BYTES >= 20 * 2**30 and core_io.MAX_ZIP_MEMBERS >= 100_000 and core_io.MAX_ZIP_RATIO >= 1000


def test_foreign_arrays_are_never_unpickled(tmp_path, capsys):
    ws = Workspace(tmp_path)
    ws.save_params()
    clean = ws.root / "clean"
    assert main(["clean", "comp", "--params", str(ws.params_path), "--raw", str(ws.raw), "--out", str(clean)]) == 0
    np.save(clean / "target.npy", np.array([{"a": 1}] * N_TRAIN, dtype=object), allow_pickle=True)
    (ws.root / "tune").mkdir()
    (ws.root / "tune" / "best_params.json").write_text("{}")
    ws.out.mkdir(parents=True)
    assert main(ws.argv("train")) == 2
    line = error_line(capsys.readouterr().err)
    assert "target.npy" in line and "not a plain numpy array" in line
    assert os.listdir(ws.out) == [] and sorted(os.listdir(ws.out.parent)) == ["comp"]


def test_no_code_path_unpickles_foreign_files():
    """pickle/joblib are never used (but by an unpickler restricted to numpy arrays, whose import
    line says so; a library's own model format is loaded on a line saying `# not pickle:`);
    torch.load always with weights_only=True; yaml never unsafe."""
    forbidden = [  # (pattern, unless the line also matches, what)
        (r"^\s*(import|from)\s+(pickle|cPickle|joblib|dill|cloudpickle)\b", r"# restricted:", "pickle-like module"),
        (r"allow_pickle\s*=\s*True", None, "allow_pickle=True"),
        (r"torch\.load\(", r"weights_only\s*=\s*True", "torch.load without weights_only=True"),
        (r"yaml\.(load|unsafe_load|full_load)\(", r"Loader=_UniqueKeyLoader\b", "unsafe yaml load"),
        (r"read_pickle|\.load_model\(", r"# not pickle:", "a loader that may unpickle"),
        (r"from_pretrained\(", r"use_safetensors=True", "from_pretrained that may read pickled weights"),
    ]
    hits = []
    for path in sorted((ROOT / "pipelines").rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for pattern, unless, what in forbidden:
                if re.search(pattern, line) and not (unless and re.search(unless, line)):
                    hits.append(f"{path.relative_to(ROOT)}:{n}: {what}")
    assert hits == []


def test_number_placeholders_become_missing_values(tmp_path, caplog):
    path = tmp_path / "train.csv"
    path.write_text("id,age,code,note\n1,22,A-1,-\n2,?,B,ok\n3, 7.5 ,-,?\n4,-,C,fine\n")
    with caplog.at_level("INFO"):
        df = read_csv(path)
    assert df["age"].dtype == np.float64 and df["age"].isna().tolist() == [False, True, False, True]
    assert df["age"].iloc[2] == 7.5
    assert df["code"].tolist() == ["A-1", "B", "-", "C"]  # text with a dash stays text
    assert df["note"].tolist() == ["-", "ok", "?", "fine"]  # placeholders among words stay text
    assert "column 'age': 2 ['-', '?'] read as missing numbers" in caplog.text


def test_a_titanic_with_question_marks_for_ages_cleans(tmp_path):
    """Tried as a new user would: missing ages written '?' used to end `clean` in a traceback."""
    frame = pd.read_csv(ROOT / "pipelines/resources/titanic_train.csv")
    frame["Age"] = frame["Age"].astype(object).where(frame["Age"].notna(), "?")
    comp = tmp_path / "comp"
    comp.mkdir()
    frame.iloc[:700].to_csv(comp / "train.csv", index=False)
    frame.iloc[700:].drop(columns="Survived").to_csv(comp / "test.csv", index=False)
    frame.iloc[700:][["PassengerId"]].assign(Survived=0).to_csv(comp / "sample_submission.csv", index=False)
    spec = {"source": "local", "path": str(comp), **{k: TITANIC[k] for k in ("id", "target", "task", "metric")}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"competitions": {"t": spec}}))
    for argv in (["download", "t", "--out", "raw"], ["clean", "t", "--raw", "raw", "--out", "clean"]):
        proc = run([sys.executable, "-m", "pipelines", *argv], tmp_path, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
    features = pd.read_parquet(tmp_path / "clean/train.parquet")
    assert features["Age"].dtype.kind == "f"  # a number again (missing ones filled by title, flagged)
    assert features["AgeMissing"].sum() == (frame["Age"].iloc[:700] == "?").sum() > 100


def test_a_file_that_is_not_utf8_is_read_by_its_likely_encoding_and_says_so(tmp_path, caplog):
    path = tmp_path / "tweets.csv"
    path.write_bytes("id,text\n1,caf\xe9 \u201cquoted\u201d\n2,na\xefve\n".encode("cp1252"))
    with caplog.at_level("WARNING"):
        frame = read_csv(path)
    assert frame["text"].tolist() == ["caf\xe9 \u201cquoted\u201d", "na\xefve"]
    assert "read as cp1252" in caplog.text and "byte 0xe9 at line 2" in caplog.text
    # a byte cp1252 leaves undefined (0x81) falls through to latin-1, which decodes every byte
    path.write_bytes(b"id,text\n1,caf\xe9\x81\n")
    assert read_csv(path)["text"].tolist() == ["caf\xe9\x81"]
    # the spec's encoding wins over detection, and nothing is logged
    path.write_bytes("id,text\n1,caf\xe9\n".encode("latin-1"))
    caplog.clear()
    assert read_csv(path, encoding="latin-1")["text"].tolist() == ["caf\xe9"] and "read as" not in caplog.text


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_column_name(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffid,text\n1,a\n".encode())
    assert list(read_csv(path).columns) == ["id", "text"]
