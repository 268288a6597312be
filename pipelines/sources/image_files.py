"""Image files in Kaggle's layouts: found, checked, and decoded once into uint8 arrays.

Two layouts (`layout.read_layout` tells them apart): `train.csv` whose id column names each
file of `train/` (with or without its extension) and test ids naming files of `test/`; or
one folder per class, `train/<class>/*`, with the test ids in `sample_submission.csv`.
`resolve` maps ids to files, `class_folders` lists a class-folder tree, and `load_images`
decodes and resizes every file into the (n, C, H, W) uint8 array that pixel-CSV image
competitions give, so every image model reads both alike. It runs in `clean`, once per
change of the raw files.

Resizing stretches each image to the spec's height x width (mixed sizes are fine; nothing
is cropped away) with Pillow's antialiased bilinear filter; channels 1 converts to grayscale
(Pillow's ITU-R 601-2 luma) and 3 to RGB (grayscale repeated, alpha dropped); 16-bit images
are scaled to 8 bits; EXIF orientation is applied as a viewer would.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from pipelines.core.errors import PipelineError
from pipelines.core.progress import bar

# what Pillow can open, by file extension (.png, .jpg, .jpeg, .bmp, .tif, .webp, ...)
EXTENSIONS = frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)
MODES = {1: "L", 3: "RGB"}
WIDE = ("I", "I;16", "I;16B", "I;16L", "F")  # 16-bit (or float) grey: scaled to 0..255
UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)  # what Pillow raises on a bad file


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in EXTENSIONS and not path.name.startswith(".")


def _index(folder: Path) -> tuple[dict[str, Path], dict[str, list[Path]]]:
    """The image files directly in `folder`, by file name and by name without extension."""
    files = sorted(p for p in folder.iterdir() if is_image(p)) if folder.is_dir() else []
    stems: dict[str, list[Path]] = {}
    for path in files:
        stems.setdefault(path.stem, []).append(path)
    return {p.name: p for p in files}, stems


def _expected(folder: Path, name: str, names: dict[str, Path], shown: Path) -> str:
    """Where the file of id `name` was looked for, as a user would write it."""
    if Path(name).suffix.lower() in EXTENSIONS:
        return str(shown / name)
    common = Counter(p.suffix for p in names.values()).most_common(1)
    return str(shown / (name + (common[0][0] if common else ".*")))


def resolve(ids: Iterable, folder: Path, where: str, shown: Path | None = None) -> list[Path]:
    """The file each id names in `folder` (`where`: the CSV and column, for messages; `shown`:
    the folder as messages name it). An id names `<id>` or `<id>.<any image extension>`; one
    written as a path (`images/<id>.png`) names the file by its last part."""
    shown = shown or folder
    if not folder.is_dir():
        raise PipelineError(f"{shown}: folder not found (the image files that {where} names)")
    names, stems = _index(folder)
    if not names:
        raise PipelineError(f"{shown}: no image files ({', '.join(sorted(EXTENSIONS)[:6])}, ...) in the folder")
    found, missing = [], []
    for value in ids:
        name = str(value)
        name = name if name in names or name in stems else Path(name).name  # 'images/a.png' names a.png
        hits = [names[name]] if name in names else stems.get(name, [])
        if len(hits) > 1:
            raise PipelineError(f"{where}: id {name!r} names {len(hits)} files ({', '.join(p.name for p in hits)})")
        found.append(hits[0] if hits else None)
        if not hits:
            missing.append(name)
    if missing and len(missing) == len(found):
        example = next(iter(names))
        raise PipelineError(f"{where}: names no file in {shown} (e.g. {missing[0]!r}; the folder holds {example!r})")
    if missing:
        raise PipelineError(
            f"{where}: missing image file for id {missing[0]!r}: expected {_expected(folder, missing[0], names, shown)}"
            + (f" ({len(missing)} ids without a file)" if len(missing) > 1 else "")
        )
    return found


def class_folders(folder: Path, id_col: str, target: str, shown: Path | None = None) -> pd.DataFrame:
    """One row per image of `folder/<class>/`: its path below `folder` (the id) and its class
    (numbers when every class folder is named by one, so classes sort as numbers)."""
    shown = shown or folder
    if not folder.is_dir():
        raise PipelineError(f"{shown}: folder not found (no train.csv: expected one folder per class in it)")
    loose = [p.name for p in folder.iterdir() if is_image(p)]
    if loose:
        raise PipelineError(f"{shown}: image {loose[0]!r} outside a class folder, and no train.csv gives its label")
    rows = [
        (f"{cls.name}/{p.name}", cls.name)
        for cls in sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
        for p in sorted(cls.iterdir())
        if is_image(p)
    ]
    if not rows:
        raise PipelineError(f"{shown}: no class folders holding images (expected {shown}/<class>/<image>)")
    frame = pd.DataFrame(rows, columns=[id_col, target])
    numbers = pd.to_numeric(frame[target], errors="coerce")
    if numbers.notna().all() and (numbers == numbers.round()).all():
        frame[target] = numbers.astype(np.int64)
    return frame


def decode(path, shape, shown: str | None = None) -> np.ndarray:
    """One image file (a path or an open binary file) as uint8 (C, H, W) at the spec's size
    and channels; `shown` names it in errors (default: the path)."""
    size = (shape.width, shape.height)
    try:
        with Image.open(path) as img:
            img.draft(MODES[shape.channels], size)  # JPEG: decode at a reduced scale when that suffices
            img = ImageOps.exif_transpose(img)
            if img.mode in WIDE:
                wide = np.asarray(img, dtype=np.float64)
                img = Image.fromarray(np.clip(wide / 257 if wide.max() > 255 else wide, 0, 255).astype(np.uint8))
            img = img.convert(MODES[shape.channels]).resize(size, Image.Resampling.BILINEAR)
    except UNREADABLE as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if not isinstance(path, str | Path):  # an open file: Pillow's message shows its repr
            reason = reason.replace(repr(path), "the data").replace(str(path), "the data")
        elif shown is not None:  # Pillow names the copy it read; the user knows their own file
            reason = reason.replace(str(path), str(shown))
        raise PipelineError(f"{shown or path}: unreadable image ({reason})") from None
    pixels = np.asarray(img, dtype=np.uint8)
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def decode_bytes(data: str, shape, shown: str) -> np.ndarray:
    """A base64-encoded image file (what `serve` takes) as `decode` gives it."""
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise PipelineError(f"{shown}: not valid base64") from None
    return decode(io.BytesIO(raw), shape, shown)


def load_images(
    paths: list[Path], shape, *, desc: str = "images", progress: bool | None = None, names: list | None = None
) -> np.ndarray:
    """Every file decoded and resized, in order: (n, C, H, W) uint8; `names`, when given, name
    the files in errors (the user's files a copy came from). Pillow releases the GIL
    while it decodes and resizes, so one thread per core shares the work without the cost of
    processes; the result does not depend on the thread count."""
    out = np.empty((len(paths), shape.channels, shape.height, shape.width), dtype=np.uint8)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    pool = ThreadPoolExecutor(min(cores, 8))
    try:
        decoded = pool.map(decode, paths, [shape] * len(paths), names or [None] * len(paths))
        for k, pixels in enumerate(bar(decoded, total=len(paths), desc=desc, unit="img", show=progress)):
            out[k] = pixels
    finally:  # a bad file ends the work at once: files not started yet are not decoded
        pool.shutdown(cancel_futures=True)
    return out
