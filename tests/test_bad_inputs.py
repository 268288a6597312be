"""Bad input at the edges: each case is refused with exit status 2 and one line naming the culprit.

A table of broken params, specs, CSVs, sample submissions, archives and image rows. Each
case builds a small competition in `tmp_path` (a `source: local` folder or zip and a
params file), runs the command line in process (`pipelines.__main__.main`; a few cases run
`python -m pipelines` as a real subprocess), and checks: exit status 2, exactly one
`error:` line on stderr that names the file, column or key, no traceback, and an output
folder exactly as it was before (its sentinel file intact, no temporaries left beside it).
"""

from __future__ import annotations

import io
import os
import re
import stat
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipelines.__main__ import Stopped, main
from tests.conftest import ROOT

N_TRAIN, N_TEST = 24, 10
TRAIN = "id,age,city,y\n" + "".join(f"{i},{20 + i % 7},{'ab'[i % 2]},{i % 2}\n" for i in range(1, N_TRAIN + 1))
TEST = "id,age,city\n" + "".join(f"{i},{30 + i % 5},{'ab'[i % 2]}\n" for i in range(101, 101 + N_TEST))
SAMPLE = "id,y\n" + "".join(f"{i},0\n" for i in range(101, 101 + N_TEST))
SPEC = {"source": "local", "id": "id", "target": "y", "task": "binary", "metric": "accuracy"}

PIXELS = [f"p{i}" for i in range(16)]  # a 4x4 grey image per row


def _image_csv(ids, labels=None, n_pixels=16) -> str:
    head = ["id", *PIXELS[:n_pixels]] + (["label"] if labels is not None else [])
    rows = []
    for k, i in enumerate(ids):
        row = [str(i), *(str((i * 37 + j * 11) % 256) for j in range(n_pixels))]
        rows.append(",".join(row + ([str(labels[k])] if labels is not None else [])))
    return ",".join(head) + "\n" + "\n".join(rows) + "\n"


IMAGE_FILES = {
    "train.csv": _image_csv(range(1, 19), [i % 3 for i in range(18)]),
    "test.csv": _image_csv(range(101, 107)),
    "sample_submission.csv": "id,label\n" + "".join(f"{i},0\n" for i in range(101, 107)),
}
IMAGE_SPEC = {
    **SPEC,
    "target": "label",
    "task": "multiclass",
    "modality": "image",
    "image": {"height": 4, "width": 4, "channels": 1},
}


class Workspace:
    """A competition `comp` in Kaggle layout under `root/comp`, its params, and an output folder."""

    def __init__(self, root: Path, image: bool = False):
        self.root = root
        self.raw = root / "comp"
        self.raw.mkdir()
        for name, text in (
            IMAGE_FILES if image else {"train.csv": TRAIN, "test.csv": TEST, "sample_submission.csv": SAMPLE}
        ).items():
            (self.raw / name).write_text(text)
        self.spec = {**(IMAGE_SPEC if image else SPEC), "path": str(self.raw)}
        self.params = {"seed": 1, "folds": {"n_splits": 3}}
        self.params_text: str | bytes | None = None
        self.params_path: Path | None = root / "params.yaml"
        self.out = root / "out" / "comp"
        self.name = "comp"

    def text(self, file: str) -> str:
        return (self.raw / file).read_text()

    def write(self, file: str, data: str | bytes) -> None:
        path = self.raw / file
        path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data)

    def zip(self, members: list[tuple[str, bytes]] | None = None, cut: float | None = None) -> Path:
        """Pack the competition into comp.zip (or `members`), optionally cut short, and point the spec at it."""
        if members is None:
            members = [(f, (self.raw / f).read_bytes()) for f in ("train.csv", "test.csv", "sample_submission.csv")]
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
            for name, data in members:
                info = zipfile.ZipInfo(name)
                if name.startswith("link:"):  # a symbolic link member
                    info = zipfile.ZipInfo(name[5:])
                    info.external_attr = 0o120777 << 16
                zf.writestr(info, data)
        data = buf.getvalue()
        archive = self.root / "comp.zip"
        archive.write_bytes(data[: int(len(data) * cut)] if cut else data)
        self.spec["path"] = str(archive)
        return archive

    def save_params(self) -> None:
        if self.params_path is None:  # the case is a missing params file
            self.params_path = self.root / "nope.yaml"
        elif isinstance(self.params_text, bytes):
            self.params_path.write_bytes(self.params_text)
        elif self.params_text is not None:
            self.params_path.write_text(self.params_text)
        else:
            self.params_path.write_text(yaml.safe_dump({**self.params, "competitions": {"comp": self.spec}}))

    def argv(self, stage: str) -> list[str]:
        common = [self.name, "--params", str(self.params_path)]
        folders = {
            "download": ["--out", str(self.out)],
            "clean": ["--raw", str(self.raw), "--out", str(self.out)],
            "tune": ["--clean", str(self.root / "clean"), "--out", str(self.out)],
            "train": [
                "--clean",
                str(self.root / "clean"),
                "--tuned",
                str(self.root / "tune"),
                "--cache",
                str(self.root / "cache"),
                "--out",
                str(self.out),
            ],  # fmt: skip
            "distill": [
                "--clean",
                str(self.root / "clean"),
                "--train",
                str(self.root / "train"),
                "--cache",
                str(self.root / "cache"),
                "--out",
                str(self.out),
            ],  # fmt: skip
        }
        return [stage, *common, *folders[stage]]


def edit(file: str, change: Callable[[str], str]):
    return lambda ws: ws.write(file, change(ws.text(file)))


def put(file: str, data: str | bytes):
    return lambda ws: ws.write(file, data)


def spec(**changes):
    def apply(ws):
        for key, value in changes.items():
            if value is None:
                ws.spec.pop(key, None)
            else:
                ws.spec[key] = value

    return apply


def param(**changes):
    return lambda ws: ws.params.update(changes)


def params_text(text: str | bytes):
    return lambda ws: setattr(ws, "params_text", text)


def replace_row(file: str, row: int, new: str):
    """Replace data row `row` (1-based, after the header) of `file`."""

    def change(text: str) -> str:
        lines = text.splitlines()
        lines[row] = new
        return "\n".join(lines) + "\n"

    return edit(file, change)


def both(*setups):
    def apply(ws):
        for setup in setups:
            setup(ws)

    return apply


@dataclass
class Case:
    id: str
    setup: Callable
    expect: tuple[str, ...]  # every one must appear in the error line
    stage: str = "download"
    image: bool = False
    extra: Callable | None = field(default=None)  # more checks on the workspace afterwards


def zipped(members=None, cut=None):
    return lambda ws: ws.zip(members, cut)


def _good_members(ws) -> list[tuple[str, bytes]]:
    return [(f, (ws.raw / f).read_bytes()) for f in ("train.csv", "test.csv", "sample_submission.csv")]


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


PARAMS = [
    Case("unknown top-level key", param(sed=3), ("params.yaml", "sed: unknown key")),
    Case("unknown spec key", spec(colour="red"), ("competitions.comp.colour: unknown key",)),
    Case("unknown metric", spec(metric="acc"), ("competitions.comp.metric", "unknown metric 'acc'")),
    Case("unknown task", spec(task="ranking"), ("competitions.comp.task", "'ranking'")),
    Case("unknown modality", spec(modality="audio"), ("competitions.comp.modality", "'audio'")),
    Case("metric not for task", spec(metric="rmse"), ("competitions.comp", "'rmse' does not apply to task 'binary'")),
    Case("number as text", param(folds={"n_splits": "5"}), ("folds.n_splits", "valid integer", "'5'")),
    Case("out of range", param(folds={"n_splits": 1}), ("folds.n_splits", "greater than or equal to 2")),
    Case("bool as seed", param(seed=True), ("seed:", "valid integer", "True")),
    Case("fraction above 1", param(distill={"alpha": 1.5}), ("distill.alpha", "less than or equal to 1")),
    Case("unknown ensemble method", param(ensemble={"methods": ["blend"]}), ("ensemble.methods[0]", "'blend'")),
    Case("storage not a URL", param(tune={"storage": "study.db"}), ("tune.storage", "not a database URL")),
    Case("unknown modality key", param(train={"models": {"tabluar": ["logreg"]}}), ("train.models", "'tabluar'")),
    Case("local without path", spec(path=None), ("competitions.comp", "needs 'path'")),
    Case("bad kaggle slug", spec(source="kaggle", kaggle="Titanic Comp"), ("competitions.comp.kaggle", "slug")),
    Case("id is target", spec(id="y"), ("competitions.comp", "same column 'y'")),
    Case("image shape on tabular", spec(image={"height": 4, "width": 4}), ("competitions.comp", "only for modality")),
    Case("duplicate yaml key", params_text("seed: 1\nseed: 2\ncompetitions: {}\n"), ("duplicate key 'seed'", "line 2")),
    Case("not yaml", params_text("competitions: [\n"), ("params.yaml", "not valid YAML")),
    Case("yaml not a mapping", params_text("- a\n- b\n"), ("params.yaml", "mapping at the top level")),
    Case("params not utf-8", params_text(b"seed: 1 # caf\xe9\ncompetitions: {}\n"), ("params.yaml", "not UTF-8")),
    Case("no such competition", lambda ws: setattr(ws, "name", "other"), ("no competition 'other'", "comp")),
    Case(
        "unknown model",
        param(train={"models": {"tabular": ["lgbm"]}}),
        ("train.models.tabular[0]", "unknown model 'lgbm'"),
        stage="train",
    ),
    Case(
        "model of other modality",
        spec(models=["logreg", "cnn"]),
        ("competitions.comp.models[1]", "'cnn' is a model for image data"),
        stage="train",
    ),
    Case(
        "no models at all",
        param(train={"models": {"tabular": []}}),
        ("train.models.tabular", "no models to train for task 'binary'"),
        stage="train",
    ),
    Case(
        "arguments for an unknown model",
        param(train={"params": {"lgbm": {"n_estimators": 10}}}),
        ("train.params.lgbm", "unknown model 'lgbm'"),
        stage="train",
    ),
    Case(
        "unknown model argument",
        param(train={"params": {"logreg": {"c": 1.0}}}),
        ("train.params.logreg.c", "no such argument", "it takes C"),
        stage="tune",
    ),
    Case(
        "unknown tuned model",
        param(tune={"models": ["xgboost"]}),
        ("tune.models[0]", "unknown model 'xgboost'"),
        stage="tune",
    ),
    Case(
        "student without soft targets",
        param(distill={"student": {"tabular": "lightgbm"}}),
        ("distill.student.tabular", "soft targets"),
        stage="distill",
    ),
    Case("missing params file", lambda ws: setattr(ws, "params_path", None), ("nope.yaml", "params file not found")),
]

FILES = [
    Case("folder missing", spec(path="/nonexistent/comp"), ("/nonexistent/comp", "folder not found")),
    Case("file missing", lambda ws: (ws.raw / "test.csv").unlink(), ("missing test.csv",)),
    Case("empty file", put("train.csv", ""), ("comp/train.csv", "file is empty")),
    Case("whitespace only", put("train.csv", "\n\n"), ("comp/train.csv", "no columns")),
    Case("header only", put("test.csv", "id,age,city\n"), ("comp/test.csv", "header only")),
    Case("truncated", edit("train.csv", lambda t: t[: t.rindex("\n", 0, -1) + 4]), ("comp/train.csv", "truncated")),
    Case("semicolons", edit("train.csv", lambda t: t.replace(",", ";")), ("comp/train.csv", "comma-separated")),
    Case(
        "latin-1",
        put("train.csv", TRAIN.replace(",a,", ",caf\xe9,").encode("latin-1")),
        ("comp/train.csv", "not UTF-8"),
    ),
    Case("utf-16", put("test.csv", TEST.encode("utf-16")), ("comp/test.csv", "UTF-16")),
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
    Case(
        "not a folder or zip",
        lambda ws: ws.spec.update(path=str(ws.raw / "train.csv")),
        ("comp/train.csv", "folder in Kaggle layout or a .zip"),
    ),
]

ARCHIVES = [
    Case(
        "path escape",
        lambda ws: ws.zip([*_good_members(ws), ("../evil.csv", b"x\n")]),
        ("comp.zip", "unsafe member '../evil.csv'"),
        extra=_no_escape,
    ),
    Case(
        "absolute member",
        lambda ws: ws.zip([*_good_members(ws), ("/tmp/evil.csv", b"x\n")]),
        ("comp.zip", "unsafe member '/tmp/evil.csv'"),
    ),
    Case(
        "symlink member",
        lambda ws: ws.zip([*_good_members(ws), ("link:train_link.csv", b"/etc/passwd")]),
        ("comp.zip", "unsafe member 'train_link.csv'"),
    ),
    Case("truncated zip", zipped(cut=0.6), ("comp.zip", "not a valid zip archive")),
    Case("corrupt member", _corrupt_member, ("comp.zip", "corrupt member", "'train.csv'")),
    Case("zip lacks a file", lambda ws: ws.zip(_good_members(ws)[:2]), ("comp.zip", "lacks sample_submission.csv")),
    Case(
        "zip holds a file twice",
        lambda ws: ws.zip([*_good_members(ws), ("extra/train.csv", TRAIN.encode())]),
        ("comp.zip", "train.csv more than once"),
    ),
    Case("bad csv inside zip", both(put("test.csv", "id,age,city\n"), zipped()), ("comp.zip/test.csv", "header only")),
]

IMAGES = [
    Case(
        "row length",
        lambda ws: [
            ws.write("train.csv", _image_csv(range(1, 19), [i % 3 for i in range(18)], 15)),
            ws.write("test.csv", _image_csv(range(101, 107), None, 15)),
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
    Case("no image shape", spec(image=None), ("competitions.comp", "needs 'image"), image=True),
    Case(
        "zero height",
        spec(image={"height": 0, "width": 4}),
        ("competitions.comp.image.height", "greater than 0"),
        image=True,
    ),
]

CLEAN = [
    Case(
        "clean: duplicate id",
        replace_row("train.csv", 2, "1,21,b,0"),
        ("comp/train.csv", "duplicate id"),
        stage="clean",
    ),
    Case(
        "clean: class rarer than folds",
        edit("train.csv", lambda t: re.sub(r",1\n", ",0\n", t).replace("1,21,b,0", "1,21,b,1", 1)),
        ("folds.n_splits=3", "rarest class"),
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

CASES = PARAMS + FILES + ARCHIVES + IMAGES + CLEAN


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _prepare(tmp_path: Path, case: Case) -> Workspace:
    ws = Workspace(tmp_path, image=case.image)
    case.setup(ws)
    ws.save_params()
    ws.out.mkdir(parents=True)
    (ws.out / "previous.txt").write_text("the last good output\n")
    return ws


def _error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def _output_untouched(ws: Workspace) -> None:
    assert sorted(os.listdir(ws.out.parent)) == ["comp"], "temporaries left beside the output"
    assert _snapshot(ws.out) == {"previous.txt": b"the last good output\n"}


def test_corpus_is_large_and_covers_every_edge():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)
    assert {c.stage for c in CASES} >= {"download", "clean", "train", "tune", "distill"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_line(case: Case, tmp_path, capsys):
    ws = _prepare(tmp_path, case)
    before = _snapshot(ws.raw)
    rc = main(ws.argv(case.stage))
    out, err = capsys.readouterr()
    line = _error_line(err)
    assert rc == 2, err
    for needle in case.expect:
        assert needle in line, f"{needle!r} not in {line!r}"
    assert "Traceback" not in out
    _output_untouched(ws)
    assert _snapshot(ws.raw) == before, "the input folder was changed"
    if case.extra:
        case.extra(ws)


SUBPROCESS = ["unknown spec key", "truncated", "path escape"]


@pytest.mark.parametrize("case", [c for c in CASES if c.id in SUBPROCESS], ids=SUBPROCESS)
def test_exit_status_end_to_end(case: Case, tmp_path):
    ws = _prepare(tmp_path, case)
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines", *ws.argv(case.stage)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2, proc.stderr
    line = _error_line(proc.stderr)
    assert all(needle in line for needle in case.expect), line
    _output_untouched(ws)


def test_debug_flag_shows_the_traceback(tmp_path):
    from pipelines.errors import PipelineError

    ws = _prepare(tmp_path, FILES[2])
    with pytest.raises(PipelineError, match="file is empty"):
        main([*ws.argv("download"), "--debug"])
    _output_untouched(ws)


def test_rows_without_target_are_dropped_with_a_count(tmp_path, capsys, caplog):
    ws = Workspace(tmp_path)
    ws.write("train.csv", TRAIN.replace("3,23,b,1\n", "3,23,b,\n").replace("6,26,a,0\n", "6,26,a,\n"))
    ws.save_params()
    assert main(ws.argv("download")) == 0
    assert "dropped 2 row(s) whose target 'y' is missing" in caplog.text
    assert f"{N_TRAIN - 2} train rows" in capsys.readouterr().out
    assert main(ws.argv("clean")) == 0  # clean applies the same rule
    assert len(np.load(ws.out / "target.npy")) == N_TRAIN - 2


def test_a_good_zip_is_extracted_and_a_dead_writers_temporaries_are_swept(tmp_path):
    ws = Workspace(tmp_path)
    ws.zip([(f"comp/{f}", data) for f, data in _good_members(ws)])  # files in a subfolder, as Kaggle zips may hold
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


def test_a_failed_clean_keeps_the_previous_output(tmp_path, capsys):
    ws = Workspace(tmp_path)
    ws.save_params()
    assert main(ws.argv("clean")) == 0
    good = _snapshot(ws.out)
    ws.write("train.csv", TRAIN.replace("3,23,b,1", "3,23,b,7"))
    assert main(ws.argv("clean")) == 2
    assert "found 3" in _error_line(capsys.readouterr().err)
    assert _snapshot(ws.out) == good and sorted(os.listdir(ws.out.parent)) == ["comp"]


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
    line = _error_line(capsys.readouterr().err)
    assert "target.npy" in line and "not a plain numpy array" in line
    assert os.listdir(ws.out) == [] and sorted(os.listdir(ws.out.parent)) == ["comp"]


def test_no_code_path_unpickles_foreign_files():
    """pickle/joblib are never used; torch.load always with weights_only=True; yaml never unsafe."""
    forbidden = [  # (pattern, unless the line also matches, what)
        (r"^\s*(import|from)\s+(pickle|cPickle|joblib|dill|cloudpickle)\b", None, "pickle-like module"),
        (r"allow_pickle\s*=\s*True", None, "allow_pickle=True"),
        (r"torch\.load\(", r"weights_only\s*=\s*True", "torch.load without weights_only=True"),
        (r"yaml\.(load|unsafe_load|full_load)\(", r"Loader=_UniqueKeyLoader\b", "unsafe yaml load"),
        (r"read_pickle|\.load_model\(|from_pretrained\(", None, "a loader that may unpickle"),
    ]
    hits = []
    for path in sorted((ROOT / "pipelines").rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for pattern, unless, what in forbidden:
                if re.search(pattern, line) and not (unless and re.search(unless, line)):
                    hits.append(f"{path.relative_to(ROOT)}:{n}: {what}")
    assert hits == []


def test_interrupt_exit_status(monkeypatch, tmp_path, capsys):
    """Ctrl-C exits 130, SIGTERM 143, each with one line saying the work is kept."""
    import pipelines.stages.download as download

    ws = Workspace(tmp_path)
    ws.save_params()
    for exc, status, how in ((KeyboardInterrupt(), 130, "Ctrl-C"), (Stopped("signal 15"), 143, "SIGTERM")):

        def stop(args, params, exc=exc):
            raise exc

        monkeypatch.setattr(download, "main", stop)
        assert main(ws.argv("download")) == status
        assert f"interrupted ({how})" in capsys.readouterr().err


def test_unwritable_output_is_one_line(tmp_path, capsys):
    ws = Workspace(tmp_path)
    ws.save_params()
    blocker = tmp_path / "out"
    blocker.write_text("a file where a folder should be")
    assert main(ws.argv("download")) == 2
    line = _error_line(capsys.readouterr().err)
    assert str(blocker) in line and blocker.read_text() == "a file where a folder should be"


def test_train_params_hold_in_tuning_and_training(tmp_path):
    ws = Workspace(tmp_path)
    ws.params.update(
        train={"models": {"tabular": ["logreg"]}, "params": {"logreg": {"C": 0.05}}},
        tune={"models": ["logreg"], "n_trials": 2},
    )
    ws.save_params()
    common = ["comp", "--params", str(ws.params_path)]
    clean, tune, out = tmp_path / "clean", tmp_path / "tune", tmp_path / "train"
    assert main(["clean", *common, "--raw", str(ws.raw), "--out", str(clean)]) == 0
    assert main(["tune", *common, "--clean", str(clean), "--out", str(tune)]) == 0
    import optuna

    storage = f"sqlite:///{tune / 'study.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    assert summary.study_name.count("-") == 3  # comp-logreg-<data>-<fixed arguments>: new arguments, new study
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).trials
    # every trial suggests its own C, and every one is overruled by the fixed C: one score
    assert len(trials) == 2 and len({t.params["C"] for t in trials}) == 2 and len({t.value for t in trials}) == 1
    argv = ["train", *common, "--clean", str(clean), "--tuned", str(tune), "--cache", str(tmp_path / "cache")]
    assert main([*argv, "--out", str(out)]) == 0
    # the fixed C wins over the tuned one
    assert yaml.safe_load((out / "logreg" / "scores.json").read_text())["params"] == {"C": 0.05}
