"""Command `new`: add a competition entry to params.yaml, inferred from a folder in Kaggle layout.

    python -m pipelines new <folder|kaggle-slug> [--name N] [--id C] [--target C] [--task T]
        [--metric M] [--modality M] [--params params.yaml] [--force] [--yes]

From the folder's files it infers the id (the sample submission's first column that test.csv
shares), the target (the train.csv column that test.csv lacks), the task (from the target's
values), a default metric for that task and the modality (image files or pixel columns, free
text, else tabular); a flag wins over an inference. What it cannot infer it asks on a
terminal, and otherwise refuses in one `error:` line naming the flag to pass. A Kaggle slug
needs --id, --target, --task and --metric: its files are not here to look at.

params.yaml is commented by hand, so the entry is added to its `competitions:` block as text,
not by re-dumping the file; the new file is validated (`load_params`) and the entry checked
against the folder (`read_layout`, as `download` will) before it is written, atomically.
"""

from __future__ import annotations

import math
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from pipelines.core.config import SLUG, load_params
from pipelines.core.context import IMAGE, MODALITIES, TABULAR, TEXT, Task
from pipelines.core.errors import PipelineError
from pipelines.core.io import atomic_file, read_csv
from pipelines.core.metrics import METRICS
from pipelines.features.language import free_text
from pipelines.features.tabular import text_columns
from pipelines.sources import image_files as imgs
from pipelines.sources.layout import FILES, read_layout

TASKS = get_args(Task)
MAX_CLASSES = 50  # a whole-number target with more distinct values than this is a quantity: regression
SKEWED = 1.0  # a non-negative target skewed more than this is scored on the log scale (rmsle), as prices are
MAX_SIDE = 64  # image files are resized to at most this many pixels a side: CPU epochs stay short
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")  # Pillow modes read as one channel
PIXEL = re.compile(r"^pixel_?\d+$", re.IGNORECASE)  # Kaggle's pixel columns: pixel0, pixel1, ...
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")  # dvc.yaml's foreach puts the name in stage names and paths
HEAD = re.compile(r"^competitions:\s*(?P<empty>\{\s*\}|null|~)?\s*(?P<comment>#.*)?$")


def add_arguments(parser) -> None:
    parser.add_argument("source", help="a folder in Kaggle layout, or a Kaggle competition slug")
    parser.add_argument("--name", default=None, help="the entry's name (default: the folder's name or the slug)")
    parser.add_argument("--id", default=None, help="id column (default: inferred)")
    parser.add_argument("--target", default=None, help="target column in train.csv (default: inferred)")
    parser.add_argument("--task", choices=TASKS, default=None, help="default: inferred from the target")
    parser.add_argument("--metric", choices=sorted(METRICS), default=None, help="default: one per task")
    parser.add_argument("--modality", choices=MODALITIES, default=None, help="default: inferred from the files")
    parser.add_argument("--force", action="store_true", help="replace an entry of the same name")
    parser.add_argument("--yes", action="store_true", help="never ask: fail on what cannot be inferred")


@dataclass
class Draft:
    """The entry being built: the values, why each was chosen, and how to get what is missing."""

    args: object
    where: str  # what error lines name: the folder, or kaggle:<slug>
    interactive: bool
    values: dict = field(default_factory=dict)
    why: dict = field(default_factory=dict)

    def resolve(self, key: str, guess: tuple[object, str], choices=None) -> object:
        """The flag, else the inference, else the user's answer (or an error naming the flag)."""
        given = getattr(self.args, key)
        value, reason = (given, "given") if given is not None else guess
        if value is None:
            value, reason = ask(f"the {key}", f"--{key}", reason, choices, self.where, self.interactive), "answered"
        self.values[key], self.why[key] = value, reason
        return value


def ask(what: str, flag: str, why: str, choices, where: str, interactive: bool) -> str:
    """input() on a terminal; elsewhere nobody can answer, so the error says which flag to pass."""
    refusal = f"{where}: cannot infer {what} ({why}); pass {flag}"
    if not interactive:
        raise PipelineError(refusal)
    shown = f" [{' | '.join(choices)}]" if choices else ""
    while True:
        try:
            answer = input(f"{what} ({why}){shown}? ").strip()
        except EOFError:
            raise PipelineError(refusal) from None
        if answer and (not choices or answer in choices):
            return answer
        print(f"expected one of: {', '.join(choices)}" if choices else "expected a value", file=sys.stderr)


def infer_id(sample: pd.DataFrame, test: pd.DataFrame | None) -> tuple[str, str]:
    shared = [c for c in sample.columns if test is not None and c in test.columns]
    if shared:
        return shared[0], "the first column sample_submission.csv shares with test.csv"
    return sample.columns[0], "sample_submission.csv's first column"


def infer_target(train, test, sample, id_col: str) -> tuple[str | None, str]:
    predicted = [c for c in sample.columns if c != id_col]
    absent = [c for c in train.columns if c != id_col and (test is None or c not in test.columns)]
    both = [c for c in absent if c in predicted]
    if len(both) == 1:
        return both[0], "in train.csv and sample_submission.csv, not in test.csv"
    if len(absent) == 1:
        return absent[0], "the one train.csv column that test.csv lacks"
    in_train = [c for c in predicted if c in train.columns]
    if len(in_train) == 1:
        return in_train[0], "sample_submission.csv's prediction column"
    return None, f"train.csv columns not in test.csv: {', '.join(map(str, absent)) or 'none'}"


def infer_task(y: pd.Series, per_class: bool) -> tuple[str | None, str]:
    if per_class:
        return "multiclass", "sample_submission.csv has a column per class"
    y = y.dropna()
    n = y.nunique()
    if n < 2:
        return None, f"the target has {n} distinct value"
    if n == 2:
        return "binary", "2 classes"
    if pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y):
        values = y.to_numpy(np.float64)
        if (values != np.round(values)).any():
            return "regression", f"{n} distinct numbers, not all whole"
        if n > MAX_CLASSES:
            return "regression", f"{n} distinct whole numbers (over {MAX_CLASSES})"
    return "multiclass", f"{n} classes"


def looks_like_probabilities(values: pd.DataFrame) -> bool:
    """Kaggle's sample submissions carry a placeholder of the submitted kind: 0.5 for a
    probability, 0 or a class for a label."""
    numbers = values.apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    if np.isnan(numbers).any():
        return False
    return bool(((numbers >= 0) & (numbers <= 1)).all() and (numbers != np.round(numbers)).any())


def infer_metric(task: str, y: pd.Series, predictions: pd.DataFrame) -> tuple[str, str]:
    if task == "binary":
        if looks_like_probabilities(predictions):
            return "roc_auc", "sample_submission.csv holds probabilities"
        return "accuracy", "sample_submission.csv holds labels"
    if task == "multiclass":
        if predictions.shape[1] > 1:
            return "logloss", "a probability column per class"
        return "accuracy", "labels"
    values = pd.to_numeric(y, errors="coerce").dropna()
    if len(values) and values.min() >= 0 and values.skew() > SKEWED:
        return "rmsle", f"non-negative, skewed ({values.skew():.1f})"
    return "rmse", "the regression default"


def pixel_columns(features: list[str]) -> bool:
    return bool(features) and all(PIXEL.match(str(c)) for c in features)


def infer_modality(train: pd.DataFrame, id_col: str, target: str, image_file: Path | None) -> tuple[str, str]:
    if image_file is not None:
        return IMAGE, "a train/ folder of images"
    features = [c for c in train.columns if c not in (id_col, target)]
    if pixel_columns(features):
        return IMAGE, f"{len(features)} pixel columns"
    text, why = free_text(train, {id_col, target})  # language, not names: why, with its figures
    return (TEXT, why) if text else (TABULAR, f"no images; {why}")


def pixel_shape(n: int) -> tuple[dict | None, str]:
    for channels in (1, 3):
        side = math.isqrt(n // channels)
        if side * side * channels == n:
            return {"height": side, "width": side, "channels": channels}, f"{n} pixels: {side}x{side}x{channels}"
    return None, f"{n} pixel columns make no square image"


def file_shape(path: Path) -> tuple[dict, str]:
    """What image files are resized to: the first one's size, shrunk to MAX_SIDE a side."""
    try:
        with Image.open(path) as img:
            (width, height), mode = img.size, img.mode
    except imgs.UNREADABLE as err:
        raise PipelineError(f"{path}: unreadable image ({str(err).splitlines()[0] if str(err) else err!r})") from None
    scale = min(1.0, MAX_SIDE / max(width, height))
    shape = {"height": max(1, round(height * scale)), "width": max(1, round(width * scale))}
    shape["channels"] = 1 if mode in GREY_MODES else 3
    return shape, f"{path.name} is {width}x{height} {mode}" + (", shrunk" if scale < 1 else "")


def first_image(folder: Path) -> Path | None:
    """The first image file under `folder` (directly, or in a class folder)."""
    if not folder.is_dir():
        return None
    return next((p for p in sorted(folder.rglob("*")) if imgs.is_image(p)), None)


def read_tables(folder: Path, image_file: Path | None):
    """train, test and sample; with image files test.csv may be absent (None), and train.csv
    too (None: class folders)."""
    sample = read_csv(folder / "sample_submission.csv")
    if sample.shape[1] < 2:
        raise PipelineError(f"{folder / 'sample_submission.csv'}: needs an id and a prediction column")
    optional = image_file is not None  # read_csv says "file not found" for the others
    train, test = (read_csv(folder / f) if (folder / f).is_file() or not optional else None for f in FILES[:2])
    return train, test, sample


def from_folder(folder: Path, draft: Draft) -> None:
    image_file = first_image(folder / "train")
    train, test, sample = read_tables(folder, image_file)
    id_col = draft.resolve("id", infer_id(sample, test))
    if train is None:  # class folders: train/<class>/<image>, labelled by the folder's name
        target = draft.resolve("target", (sample.columns[-1], "sample_submission.csv's prediction column"))
        train = imgs.class_folders(folder / "train", id_col, target)
    else:
        target = draft.resolve("target", infer_target(train, test, sample, id_col))
    if target not in train:
        raise PipelineError(f"{folder / 'train.csv'}: no column {target!r} (--target); columns: "
                            f"{', '.join(map(str, train.columns[:8]))}")  # fmt: skip
    predictions = sample[[c for c in sample.columns if c != id_col]]
    per_class = predictions.shape[1] > 1 and target not in sample
    task = draft.resolve("task", infer_task(train[target], per_class), TASKS)
    metrics = [m for m, spec in METRICS.items() if task in spec.tasks]
    draft.resolve("metric", infer_metric(task, train[target], predictions), metrics)
    modality = draft.resolve("modality", infer_modality(train, id_col, target, image_file), MODALITIES)
    if modality == TEXT:  # read_layout leaves the text columns to clean: a flag is checked here
        text_columns(train, None, {id_col, target}, str(folder / "train.csv"))
    if modality == IMAGE:
        n_features = len([c for c in train.columns if c not in (id_col, target)])
        shape, why = file_shape(image_file) if image_file is not None else pixel_shape(n_features)
        if shape is None:
            raise PipelineError(f"{folder}: modality image, but no train/ folder of images and {why}; "
                                "add 'image: {height, width, channels}' by hand")  # fmt: skip
        draft.values["image"], draft.why["image"] = shape, why


def from_slug(slug: str, draft: Draft) -> None:
    """No network here: a slug's files cannot be read, so its spec comes from flags (or answers)."""
    missing = [f"--{key}" for key in ("id", "target", "task", "metric") if getattr(draft.args, key) is None]
    if missing and not draft.interactive:
        raise PipelineError(f"{draft.where}: no folder to infer from (the files are on Kaggle); "
                            f"pass {', '.join(missing)}")  # fmt: skip
    why = "no files to infer from"
    for key in ("id", "target"):
        draft.resolve(key, (None, why))
    task = draft.resolve("task", (None, why), TASKS)
    draft.resolve("metric", (None, why), [m for m, spec in METRICS.items() if task in spec.tasks])
    if draft.resolve("modality", (TABULAR, "the default"), MODALITIES) == IMAGE:
        raise PipelineError(f"{draft.where}: modality image needs the image size, which only the files tell; "
                            "download them and run `new` on the folder")  # fmt: skip


def flow(value) -> str:
    """One YAML value on one line, quoted where YAML would misread it ('yes', '1', 'a: b')."""
    return yaml.safe_dump([value], default_flow_style=True, sort_keys=False, width=math.inf).strip()[1:-1]


def entry_lines(name: str, values: dict, indent: int, note: str) -> list[str]:
    pad = " " * indent
    return [f"{pad}{flow(name)}:  # {note}\n", *(f"{pad * 2}{k}: {flow(v)}\n" for k, v in values.items())]


def indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def block_end(lines: list[str], head: int) -> int:
    """The index after the last indented line of the block that starts at `head`."""
    end = head + 1
    for i in range(head + 1, len(lines)):
        text = lines[i].strip()
        if text and not text.startswith("#") and indent_of(lines[i]) == 0:
            break  # the next top-level key
        if text and indent_of(lines[i]) > 0:
            end = i + 1
    return end


def entry_span(lines: list[str], head: int, end: int, name: str) -> tuple[int, int] | None:
    """Where the entry `name` is written under `competitions:`, as (first line, after its last)."""
    key = re.compile(rf"^(?P<pad> +)(['\"]?){re.escape(name)}\2\s*:")
    for i in range(head + 1, end):
        m = key.match(lines[i])
        if m:
            stop = i + 1
            for j in range(i + 1, end):
                if lines[j].strip() and indent_of(lines[j]) <= len(m["pad"]):
                    break
                if lines[j].strip():
                    stop = j + 1
            return i, stop
    return None


def with_entry(text: str, name: str, values: dict, note: str, path: Path) -> str:
    """`text` with the entry added at the end of `competitions:` (or in place of one of that name)."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    heads = [i for i, line in enumerate(lines) if HEAD.match(line.rstrip("\n"))]
    if not heads:
        if any(line.startswith("competitions:") for line in lines):
            raise PipelineError(f"{path}: 'competitions' is written inline; make it a block to add an entry")
        lines += [*(["\n"] if lines else []), "competitions:\n"]
        heads = [len(lines) - 1]
    head, m = heads[0], HEAD.match(lines[heads[0]].rstrip("\n"))
    if m["empty"]:  # `competitions: {}` becomes a block
        lines[head] = "competitions:" + (f"  {m['comment']}" if m["comment"] else "") + "\n"
    end = block_end(lines, head)
    entries = [line for line in lines[head + 1 : end] if line.strip() and not line.strip().startswith("#")]
    indent = indent_of(entries[0]) if entries else 2
    span = entry_span(lines, head, end, name)
    start, stop = span if span else (end, end)
    lines[start:stop] = entry_lines(name, values, indent, note)
    return "".join(lines)


def existing_names(path: Path) -> set[str]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (yaml.YAMLError, UnicodeDecodeError):
        load_params(path)  # raises, with the file's one-line error
        raise
    competitions = raw.get("competitions") if isinstance(raw, dict) else None
    return set(competitions) if isinstance(competitions, dict) else set()


def write_params(path: Path, text: str, name: str, folder: Path | None) -> None:
    """Validate the new text as a whole and against the folder's files, then replace `path`."""
    with tempfile.TemporaryDirectory() as tmp:
        draft = Path(tmp) / path.name
        draft.write_text(text, encoding="utf-8")
        try:
            spec = load_params(draft).competition(name)
        except PipelineError as err:  # name the user's file, not the temporary
            raise PipelineError(str(err).replace(str(draft), str(path))) from None
    if folder is not None:
        read_layout(folder, spec)
    with atomic_file(path) as fh:
        fh.write(text)


def default_name(source: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", Path(source).expanduser().resolve().name.lower()).strip("-")


def where_path(folder: Path, params: Path) -> str:
    """The folder as the entry names it: relative to params.yaml's folder (where dvc runs) when inside it."""
    folder, base = folder.expanduser().resolve(), params.expanduser().resolve().parent
    return str(folder.relative_to(base)) if folder.is_relative_to(base) else str(folder)


def choose_name(args, path: Path, interactive: bool) -> tuple[str, bool]:
    """The entry's name, and whether it replaces one (only with --force)."""
    name = args.name or default_name(args.source)
    if not NAME.match(name or ""):
        why = f"{name!r} is not a name (letters, digits, '-' and '_')" if name else "no name from the source"
        name = ask("the name", "--name", why, None, str(args.source), interactive and not args.name)
    replacing = name in existing_names(path)
    if replacing and not args.force:
        raise PipelineError(f"{path}: competition {name!r} already exists; pass --force to replace it, "
                            "or --name to choose another")  # fmt: skip
    return name, replacing


def main(args, params=None) -> None:
    """`params` is None: __main__ leaves params.yaml to `new`, which may create it."""
    path = Path(args.params)
    interactive = sys.stdin.isatty() and not args.yes
    folder = Path(args.source).expanduser()
    is_folder = folder.is_dir()
    if not is_folder and (folder.exists() or not SLUG.match(args.source)):
        raise PipelineError(f"{args.source}: not a folder in Kaggle layout, nor a Kaggle slug "
                            "(lowercase letters, digits and dashes)")  # fmt: skip
    name, replacing = choose_name(args, path, interactive)
    draft = Draft(args, str(folder) if is_folder else f"kaggle:{args.source}", interactive)
    if is_folder:
        draft.values.update(source="local", path=where_path(folder, path))
        from_folder(folder, draft)
    else:
        draft.values.update(source="kaggle", kaggle=args.source)
        from_slug(args.source, draft)
    inferred = [k for k, why in draft.why.items() if why not in ("given", "answered")]
    note = "added by `new`" + (f"; inferred: {', '.join(inferred)}" if inferred else "")
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    new_text = with_entry(text, name, draft.values, note, path)
    write_params(path, new_text, name, folder if is_folder else None)
    reasons = "".join(f"  {key}: {why}\n" for key, why in draft.why.items())
    print(f"{path}: {'replaced' if replacing else 'added'} {name}:\n{''.join(entry_lines(name, draft.values, 2, note))}"
          f"{reasons}next: dvc repro ensemble@{name}")  # fmt: skip
