"""Solar-cell defects (elpv), an image-file competition for offline play, from the PyPI wheel
`elpv-dataset==1.0.0.post1` (`wheels.ELPV`, 90 MB: fetched once with pip at `download` into
the user's cache and checked against its sha256; never shipped, never installed).

The wheel holds 2,624 grayscale 300x300 PNG images of solar cells cut from
electroluminescence images of 44 modules, and `labels.csv` (whitespace-separated: image path,
defect probability 0 / 1/3 / 2/3 / 1 as judged by experts, cell type mono / poly). Played as
a binary task: `defective` is 1 when the probability is at least 0.5 (821 of 2,624 cells).
The cell type is left out of train.csv: the image models read the pixels only, and a column
nobody reads would only suggest otherwise.

Licence: the images and labels are CC BY-NC-SA 4.0 (attribution, non-commercial use only,
share-alike; the wheel's code is Apache-2.0). Cite Buerhop-Lutz et al., "A Benchmark for
Visual Identification of Defective Solar Cells in Electroluminescence Imagery", EU PVSEC 2018,
and Deitsch et al., "Automatic classification of defective photovoltaic module cells in
electroluminescence images", Solar Energy 185 (2019).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from pipelines.core.errors import PipelineError
from pipelines.sources.wheels import ELPV

DATA = "elpv_dataset/data/"  # labels.csv names its images relative to this folder
ID = r"images/(cell\d{4})\.png"  # a path labels.csv may name: nothing else is read from the wheel
DEFECTIVE = 0.5  # a cell is defective from this defect probability up


def read_labels(wheel: Path) -> pd.DataFrame:
    """`id` (the image's name without .png) and `defective` (0/1) per cell, in the wheel's order."""
    with zipfile.ZipFile(wheel) as zf, zf.open(DATA + "labels.csv") as fh:
        frame = pd.read_csv(fh, sep=r"\s+", header=None, names=["path", "probability", "type"])
    ids = frame["path"].str.fullmatch(ID) & frame["probability"].between(0, 1)
    if not ids.all():
        raise PipelineError(f"{wheel.name}: {DATA}labels.csv: unexpected row {frame[~ids].iloc[0].tolist()}")
    return pd.DataFrame(
        {
            "id": frame["path"].str.extract(ID, expand=False),
            "defective": (frame["probability"] >= DEFECTIVE).astype("int64"),
        }
    )


def load(folder: Path | None = None) -> pd.DataFrame:
    """Every labelled cell (the competition's train.csv before carving), from the cached wheel."""
    return read_labels(ELPV.fetch(folder))


def write_images(parts: Mapping[str, Iterable[str]], dest: Path, folder: Path | None = None) -> None:
    """Copy each listed cell's PNG from the wheel into `dest/<part>/<id>.png` (e.g. train, test),
    byte for byte: resizing is `clean`'s job, as for any image-file competition."""
    with zipfile.ZipFile(ELPV.fetch(folder)) as zf:
        for part, ids in parts.items():
            (dest / part).mkdir(parents=True, exist_ok=True)
            for cell in ids:
                if not re.fullmatch(ID, f"images/{cell}.png"):
                    raise PipelineError(f"{ELPV.filename}: no image for id {cell!r}")
                (dest / part / f"{cell}.png").write_bytes(zf.read(f"{DATA}images/{cell}.png"))
