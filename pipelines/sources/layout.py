"""The Kaggle layout: train.csv, test.csv, sample_submission.csv, read and checked.

`read_layout(folder, spec)` returns the three tables after checking what every later stage
relies on: the id and target columns exist, test.csv has train's feature columns (with
compatible types, and no target), the sample submission lists exactly test's ids and has
the prediction columns the metric asks for, no id repeats or is missing, the target fits
the task, and for image competitions every row holds C*H*W integer pixels in 0..255
(`check_pixels`). Each failure is one `PipelineError` naming the file and column. Rows of
train.csv without a target are dropped with a warning that counts them.

An image competition whose folder has a `train/` folder (or no train.csv) is read as image
files instead (`image_files` says which): train.csv's id column names each file of `train/`,
or `train/<class>/` folders give the labels; test ids (test.csv's, else the sample
submission's) name the files of `test/`. Every id must name one file; `Layout.train_files` /
`test_files` list them in row order for `clean` to decode.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.core.config import CompetitionSpec
from pipelines.core.context import IMAGE
from pipelines.core.errors import PipelineError
from pipelines.core.io import read_csv
from pipelines.sources import image_files as imgs

FILES = ("train.csv", "test.csv", "sample_submission.csv")
IMAGE_DIRS = ("train", "test")  # image files beside the CSVs
log = logging.getLogger(__name__)


@dataclass
class Layout:
    train: pd.DataFrame
    test: pd.DataFrame
    sample: pd.DataFrame
    test_ids: pd.Series  # id per test row, in test.csv order
    train_files: list[Path] | None = None  # image files: one per train row, in row order
    test_files: list[Path] | None = None  # image files: one per test id, in test_ids order


def image_files(folder: Path, spec: CompetitionSpec) -> bool:
    """Whether an image competition comes as files (a train/ folder, or no train.csv: class
    folders) rather than as pixel columns in train.csv."""
    return spec.modality == IMAGE and ((folder / "train").is_dir() or not (folder / "train.csv").is_file())


def user_folder(spec: CompetitionSpec, raw: Path | str) -> Path:
    """Where messages should say a competition's files are: for `source: local` the user's
    own folder (or zip) that `download` copied into `raw`, else `raw` itself (the download)."""
    return Path(spec.path).expanduser() if spec.source == "local" and spec.path else Path(raw)


def check_files(folder: Path, needed: tuple[str, ...] = FILES, shown: Path | None = None) -> None:
    shown = shown or folder
    if not folder.is_dir():
        raise PipelineError(f"{shown}: folder not found (expected {', '.join(needed)})")
    missing = [f for f in needed if not (folder / f).is_file()]
    if missing:
        raise PipelineError(f"{shown}: missing {', '.join(missing)} (Kaggle layout needs {', '.join(needed)})")


def copy_folder(path: Path, dest: Path, images: bool) -> None:
    """Copy a competition folder: the Kaggle files, and for `images` its train/ and test/ folders."""
    check_files(path, ("sample_submission.csv",) if images else FILES)
    for file in FILES:
        if (path / file).is_file():
            shutil.copyfile(path / file, dest / file)
    for part in IMAGE_DIRS if images else ():
        if (path / part).is_dir():
            _copy_tree(path / part, dest / part)


def _copy_tree(src: Path, dest: Path) -> None:
    """Copy a folder of images; links are copied as the files they point to (none dangling)."""
    try:
        shutil.copytree(src, dest, ignore_dangling_symlinks=True)
    except shutil.Error as err:  # one (source, destination, why) per file that failed
        source, _, why = err.args[0][0]
        raise PipelineError(f"{source}: could not copy ({why})") from None


def copy_layout(files: list[Path], where: str, dest: Path, images: bool = False) -> None:
    """Copy the Kaggle files found among `files` (e.g. an extracted archive) into `dest`, and
    for `images` the train/ and test/ folders of image files among them."""
    found: dict[str, list[Path]] = {}
    for path in files:
        found.setdefault(Path(path).name, []).append(Path(path))
    missing = [f for f in (("sample_submission.csv",) if images else FILES) if f not in found]
    if missing:
        names = sorted({Path(p).name for p in files})
        raise PipelineError(f"{where}: lacks {', '.join(missing)} (found {', '.join(names[:8]) or 'nothing'})")
    twice = [f for f in FILES if len(found.get(f, ())) > 1]
    if twice:
        _twice(where, twice[0], found[twice[0]])
    for file in FILES:
        if file in found:
            shutil.copyfile(found[file][0], dest / file)
    for part in IMAGE_DIRS if images else ():
        folders = _image_folders(files, part)
        if len(folders) > 1:
            _twice(where, f"{part}/", folders)
        if folders:
            _copy_tree(folders[0], dest / part)


def _twice(where: str, what: str, paths: list[Path]) -> None:
    root = os.path.commonpath([str(p.parent) for p in paths])
    shown = ", ".join(os.path.relpath(p, root) for p in paths)
    raise PipelineError(f"{where}: holds {what} more than once ({shown}); keep one")


def _image_folders(files: list[Path], part: str) -> list[Path]:
    """The innermost folders named `part` (or `part.files`: a `part.zip` unpacked) that hold
    image files, below the folder common to all `files`."""
    root = Path(os.path.commonpath([str(Path(p).parent) for p in files]))
    found = {
        folder
        for path in map(Path, files)
        if path.suffix.lower() in imgs.EXTENSIONS
        for folder in path.parents
        if root in folder.parents and folder.name in (part, f"{part}.files")
    }
    return sorted(f for f in found if not any(f in other.parents for other in found))


def _check_unique(frame: pd.DataFrame, col: str, path: Path) -> None:
    missing = int(frame[col].isna().sum())
    if missing:
        raise PipelineError(f"{path}: column {col!r} has {missing} missing id(s)")
    dup = frame[col][frame[col].duplicated()]
    if len(dup):
        raise PipelineError(f"{path}: column {col!r} has {len(dup)} duplicate id(s), e.g. {_plain(dup.iloc[0])!r}")


def check_pixels(frame: pd.DataFrame, shape, path: Path | str) -> None:
    """Pixel columns of an image competition: C*H*W of them, integers in 0..255, none missing."""
    c, h, w = shape.channels, shape.height, shape.width
    if frame.shape[1] != c * h * w:
        raise PipelineError(
            f"{path}: rows hold {frame.shape[1]} pixel columns, expected channels x height x width = "
            f"{c}x{h}x{w} = {c * h * w}"
        )
    text = [col for col in frame.columns if not pd.api.types.is_numeric_dtype(frame[col])]
    if text:
        bad = frame[text[0]][pd.to_numeric(frame[text[0]], errors="coerce").isna()]
        raise PipelineError(f"{path}: pixel column {text[0]!r} holds non-numbers, e.g. {bad.iloc[0]!r}")
    values = frame.to_numpy(np.float64)
    holes = np.isnan(values)
    if holes.any():
        row, col = np.argwhere(holes)[0]
        raise PipelineError(f"{path}: pixel column {frame.columns[col]!r} is empty in row {row + 1} (short row?)")
    outside = (values < 0) | (values > 255) | (values != np.round(values))
    if outside.any():
        row, col = np.argwhere(outside)[0]
        raise PipelineError(
            f"{path}: pixel column {frame.columns[col]!r} has {values[row, col]:g} in row {row + 1}; "
            "expected integers in 0..255"
        )


def _check_target(train: pd.DataFrame, spec: CompetitionSpec, path: Path) -> pd.DataFrame:
    y = train[spec.target]
    missing = y.isna()
    if missing.all():
        raise PipelineError(f"{path}: target column {spec.target!r} is empty")
    if missing.any():
        log.warning("%s: dropped %d row(s) whose target %r is missing", path, int(missing.sum()), spec.target)
        train = train.loc[~missing].reset_index(drop=True)
        y = train[spec.target]
    if spec.task == "regression":
        values = pd.to_numeric(y, errors="coerce")
        if values.isna().any():
            bad = y[values.isna()].iloc[0]
            raise PipelineError(f"{path}: target {spec.target!r} must be numeric for regression, found {bad!r}")
        if not np.isfinite(values.to_numpy(np.float64)).all():
            raise PipelineError(f"{path}: target {spec.target!r} has inf values")
        if spec.metric == "rmsle" and (values < 0).any():
            raise PipelineError(f"{path}: target {spec.target!r} has negative values; metric rmsle needs >= 0")
        return train
    if pd.api.types.is_float_dtype(y):
        values = y.to_numpy(np.float64)
        if not np.isfinite(values).all():
            raise PipelineError(f"{path}: target {spec.target!r} has inf values")
        if (values != np.round(values)).any():
            bad = values[values != np.round(values)][0]
            raise PipelineError(
                f"{path}: target {spec.target!r} has the value {bad:g}; task {spec.task} needs class labels"
            )
    n = y.nunique()
    if spec.task == "binary" and n != 2:
        raise PipelineError(f"{path}: task binary needs 2 classes in {spec.target!r}, found {n}")
    if spec.task == "multiclass" and n < 2:
        raise PipelineError(f"{path}: target {spec.target!r} has a single class; nothing to learn")
    return train


def read_layout(folder: Path | str, spec: CompetitionSpec, origin: Path | str | None = None) -> Layout:
    """The checked tables of `folder`; messages name files as `origin/<file>` when given
    (where a temporary copy came from: the user's folder or archive, `kaggle:<slug>`)."""
    folder = Path(folder)
    if image_files(folder, spec):
        return _read_image_files(folder, spec, Path(origin or folder))
    check_files(folder)
    tr_path, te_path, ss_path = (Path(origin or folder) / f for f in FILES)
    train, test, sample = (
        read_csv(folder / f, where=shown, encoding=spec.encoding)
        for f, shown in zip(FILES, (tr_path, te_path, ss_path), strict=True)
    )

    _check_columns(train, sample, spec, tr_path, ss_path)
    train = _check_target(train, spec, tr_path)

    if spec.target in test:
        raise PipelineError(f"{te_path}: has the target column {spec.target!r}; test rows must not carry answers")
    features = [c for c in train.columns if c not in (spec.target, spec.id)]
    test_features = [c for c in test.columns if c != spec.id]
    missing = [c for c in features if c not in test.columns]
    extra = [c for c in test_features if c not in train.columns]
    if missing or extra:
        detail = "; ".join(filter(None, [missing and f"missing {_few(missing)}", extra and f"extra {_few(extra)}"]))
        raise PipelineError(f"{te_path}: columns differ from train.csv's ({detail})")
    if spec.modality == IMAGE and not features:
        raise PipelineError(f"{tr_path}: no pixel columns, and no train/ folder of image files beside it")
    if spec.modality == IMAGE:
        check_pixels(train[features], spec.image, tr_path)
        check_pixels(test[features], spec.image, te_path)
    else:
        _check_types(train, test, features, te_path)
    if spec.id in train:
        _check_unique(train, spec.id, tr_path)
    test_ids = _test_ids(test, sample, spec, train[spec.target].nunique(), (te_path, ss_path))
    return Layout(train, test, sample, test_ids)


def _check_columns(train: pd.DataFrame, sample: pd.DataFrame, spec: CompetitionSpec, tr_path, ss_path) -> None:
    if spec.target not in train:
        raise PipelineError(f"{tr_path}: target column {spec.target!r} not found (columns: {_few(train.columns)})")
    if spec.id not in sample or len(sample.columns) < 2:
        raise PipelineError(
            f"{ss_path}: needs the id column {spec.id!r} and a prediction column (columns: {_few(sample.columns)})"
        )


def _test_ids(test: pd.DataFrame, sample: pd.DataFrame, spec: CompetitionSpec, n_classes: int, paths) -> pd.Series:
    """The id of each test row, after checking the sample submission against test.csv."""
    te_path, ss_path = paths
    id_col = spec.id
    _check_sample_columns(sample, spec, n_classes, ss_path)
    _check_unique(sample, id_col, ss_path)
    if len(sample) != len(test):
        raise PipelineError(f"{ss_path}: {len(sample)} rows but test.csv has {len(test)}")
    if spec.id not in test:  # Kaggle's digit-recognizer: test rows are numbered by the sample submission
        return sample[id_col].reset_index(drop=True)
    _check_unique(test, spec.id, te_path)
    test_ids = test[spec.id]
    extra, absent = set(sample[id_col]) - set(test_ids), set(test_ids) - set(sample[id_col])
    if extra or absent:
        detail = "; ".join(
            f"{len(ids)} {what}, e.g. {_plain(sorted(ids, key=str)[0])!r}"
            for ids, what in ((extra, "not in test.csv"), (absent, "of test.csv's missing"))
            if ids
        )
        raise PipelineError(f"{ss_path}: ids differ from test.csv's ({detail})")
    return test_ids.reset_index(drop=True)


def _read_image_files(folder: Path, spec: CompetitionSpec, root: Path) -> Layout:
    """Image files: train.csv naming the files of train/ (or class folders), test ids from
    test.csv (else the sample submission) naming the files of test/."""
    check_files(folder, ("sample_submission.csv",), root)
    ss_path, te_path = root / "sample_submission.csv", root / "test.csv"
    listed = (folder / "train.csv").is_file()
    tr_path = root / ("train.csv" if listed else "train")
    if listed:  # ids as written ('007' stays '007'): they are file names
        train = read_csv(folder / "train.csv", where=tr_path, encoding=spec.encoding, dtype={spec.id: str})
        if spec.id not in train:
            raise PipelineError(f"{tr_path}: id column {spec.id!r} (naming each image file) not found "
                                f"(columns: {_few(train.columns)})")  # fmt: skip
    else:
        train = imgs.class_folders(folder / "train", spec.id, spec.target, tr_path)
    sample = read_csv(folder / "sample_submission.csv", where=ss_path, encoding=spec.encoding)
    _check_columns(train, sample, spec, tr_path, ss_path)
    train = _check_target(train, spec, tr_path)
    _check_unique(train, spec.id, tr_path)
    test_path = te_path if (folder / "test.csv").is_file() else ss_path
    test = read_csv(folder / "test.csv", where=te_path, encoding=spec.encoding) if test_path == te_path else sample
    if spec.target in test and test_path == te_path:
        raise PipelineError(f"{te_path}: has the target column {spec.target!r}; test rows must not carry answers")
    if spec.id not in test:
        raise PipelineError(f"{te_path}: id column {spec.id!r} (naming each image file) not found")
    test_ids = _test_ids(test[[spec.id]], sample, spec, train[spec.target].nunique(), (te_path, ss_path))
    names = read_csv(folder / test_path.name, where=test_path, encoding=spec.encoding, dtype={spec.id: str})[spec.id]
    names = pd.Series(names.to_numpy(), index=test[spec.id].to_numpy())[test_ids.to_numpy()]
    train_files = (
        imgs.resolve(train[spec.id], folder / "train", f"{tr_path}: column {spec.id!r}", root / "train")
        if listed
        else [folder / "train" / name for name in train[spec.id]]
    )
    test_files = imgs.resolve(names, folder / "test", f"{test_path}: column {spec.id!r}", root / "test")
    return Layout(train, test[[spec.id]], sample, test_ids, train_files, test_files)


def _check_types(train: pd.DataFrame, test: pd.DataFrame, features: list[str], path: Path) -> None:
    """A column that is numeric in train.csv must be numeric (or empty) in test.csv."""
    for col in features:
        if train[col].isna().all():
            continue  # empty in train: nothing is learnt from it (and a text spec says so)
        if pd.api.types.is_numeric_dtype(train[col]) and not pd.api.types.is_numeric_dtype(test[col]):
            values = test[col].dropna()
            bad = values[pd.to_numeric(values, errors="coerce").isna()]
            if len(bad):
                raise PipelineError(f"{path}: column {col!r} is numeric in train.csv but holds {bad.iloc[0]!r}")


def _check_sample_columns(sample: pd.DataFrame, spec: CompetitionSpec, n_classes: int, path: Path) -> None:
    """What the metric submits decides the prediction columns: one, or one per class."""
    from pipelines.core.metrics import get_metric

    value_cols = [c for c in sample.columns if c != spec.id]
    per_class = spec.task == "multiclass" and get_metric(spec.metric).submits == "probabilities"
    expected = n_classes if per_class else 1
    if len(value_cols) != expected:
        what = f"one probability column per class ({n_classes})" if per_class else "one prediction column"
        raise PipelineError(f"{path}: {len(value_cols)} prediction columns {_few(value_cols)}; expected {what}")


def _plain(value):
    """numpy scalars print as np.int64(3); users wrote 3."""
    return value.item() if isinstance(value, np.generic) else value


def _few(cols, n: int = 6) -> str:
    cols = list(cols)
    return ", ".join(map(str, cols[:n])) + (f", ... ({len(cols)} in all)" if len(cols) > n else "")
