"""Bad input at the edges: the harness shared by the modules' tables of refused inputs.

Each test module (test_config, test_selection, test_io, test_layout, test_download,
test_clean) holds a table of `Case`s for its own module: broken params, specs, CSVs, sample
submissions, archives and image rows. `assert_refused` builds a small competition in
`tmp_path` (a `source: local` folder or zip and a params file), runs the command line in
process (`pipelines.__main__.main`), and checks: exit status 2, exactly one `error:` line
on stderr that names the file, column or key, no traceback, and an output folder exactly as
it was before (its sentinel file intact, no temporaries left beside it). test_cli runs a
few of the cases as a real `python -m pipelines` subprocess.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipelines.__main__ import main

N_TRAIN, N_TEST = 24, 10
TRAIN = "id,age,city,y\n" + "".join(f"{i},{20 + i % 7},{'ab'[i % 2]},{i % 2}\n" for i in range(1, N_TRAIN + 1))
TEST = "id,age,city\n" + "".join(f"{i},{30 + i % 5},{'ab'[i % 2]}\n" for i in range(101, 101 + N_TEST))
SAMPLE = "id,y\n" + "".join(f"{i},0\n" for i in range(101, 101 + N_TEST))
SPEC = {"source": "local", "id": "id", "target": "y", "task": "binary", "metric": "accuracy"}

PIXELS = [f"p{i}" for i in range(16)]  # a 4x4 grey image per row


def image_csv(ids, labels=None, n_pixels=16) -> str:
    head = ["id", *PIXELS[:n_pixels]] + (["label"] if labels is not None else [])
    rows = []
    for k, i in enumerate(ids):
        row = [str(i), *(str((i * 37 + j * 11) % 256) for j in range(n_pixels))]
        rows.append(",".join(row + ([str(labels[k])] if labels is not None else [])))
    return ",".join(head) + "\n" + "\n".join(rows) + "\n"


IMAGE_FILES = {
    "train.csv": image_csv(range(1, 19), [i % 3 for i in range(18)]),
    "test.csv": image_csv(range(101, 107)),
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


def zipped(members=None, cut=None):
    return lambda ws: ws.zip(members, cut)


def good_members(ws) -> list[tuple[str, bytes]]:
    return [(f, (ws.raw / f).read_bytes()) for f in ("train.csv", "test.csv", "sample_submission.csv")]


@dataclass
class Case:
    id: str
    setup: Callable
    expect: tuple[str, ...]  # every one must appear in the error line
    stage: str = "download"
    image: bool = False
    extra: Callable | None = field(default=None)  # more checks on the workspace afterwards


def ids(cases: list[Case]) -> list[str]:
    return [c.id for c in cases]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def prepare(tmp_path: Path, case: Case) -> Workspace:
    ws = Workspace(tmp_path, image=case.image)
    case.setup(ws)
    ws.save_params()
    ws.out.mkdir(parents=True)
    (ws.out / "previous.txt").write_text("the last good output\n")
    return ws


def error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def output_untouched(ws: Workspace) -> None:
    assert sorted(os.listdir(ws.out.parent)) == ["comp"], "temporaries left beside the output"
    assert snapshot(ws.out) == {"previous.txt": b"the last good output\n"}


def assert_refused(case: Case, tmp_path: Path, capsys) -> None:
    """Run `case` through the command line: one clear error line, exit 2, nothing touched."""
    ws = prepare(tmp_path, case)
    before = snapshot(ws.raw)
    rc = main(ws.argv(case.stage))
    out, err = capsys.readouterr()
    line = error_line(err)
    assert rc == 2, err
    for needle in case.expect:
        assert needle in line, f"{needle!r} not in {line!r}"
    assert "Traceback" not in out
    output_untouched(ws)
    assert snapshot(ws.raw) == before, "the input folder was changed"
    if case.extra:
        case.extra(ws)
