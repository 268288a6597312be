"""Stage `download`: the competition's raw files in Kaggle layout.

    python -m pipelines download <name> --out data/raw/<name>

`embedded` carves the shipped data (hidden answers stay out of the folder), `local` copies
a folder in Kaggle layout (or extracts a zip of one, as Kaggle's "Download All" gives it),
`kaggle` downloads through the official client. An image competition's `train/` and `test/`
folders of image files come along with the CSVs (archives extracted safely: no member may
land outside the folder). Whatever the source, the result is checked
(`layout.read_layout`) in a temporary folder before it replaces the old one, so a bad or
interrupted download never touches the previous output.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pipelines.core.context import IMAGE
from pipelines.core.errors import PipelineError
from pipelines.core.io import atomic_dir, safe_extract_zip
from pipelines.sources import embedded
from pipelines.sources.layout import FILES, copy_folder, copy_layout, read_layout


def add_arguments(parser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="folder to write train/test/sample_submission to")


def fetch_local(path: Path, dest: Path, images: bool = False) -> None:
    """Copy a folder in Kaggle layout (or extract a zip of one); with `images`, its train/ and
    test/ folders of image files too."""
    if path.is_file() and path.suffix.lower() == ".zip":
        with tempfile.TemporaryDirectory(dir=dest) as tmp:  # inside the atomic folder: no litter
            copy_layout(safe_extract_zip(path, tmp), str(path), dest, images)
    elif path.is_file():
        raise PipelineError(f"{path}: expected a folder in Kaggle layout or a .zip of one")
    else:
        copy_folder(path, dest, images)


def fetch(spec, name: str, dest: Path) -> None:
    """Write the three Kaggle files of competition `name` into the empty folder `dest`."""
    if spec.source == "embedded":
        slug = embedded.dataset_of(spec, name)
        tables = embedded.carve(slug)
        for file in FILES:
            tables[file].to_csv(dest / file, index=False, encoding=embedded.get_embedded(slug).encoding)
        embedded.write_files(slug, tables, dest)
    elif spec.source == "local":
        fetch_local(Path(spec.path).expanduser(), dest, spec.modality == IMAGE)
    else:
        from pipelines.sources.kaggle_api import download_competition

        download_competition(spec.kaggle, dest, spec.modality == IMAGE)


def origin(spec, name: str) -> str:
    """Where the files came from, as error messages should name them."""
    if spec.source == "local":
        return str(Path(spec.path).expanduser())
    return f"{spec.source}:{embedded.dataset_of(spec, name) if spec.source == 'embedded' else spec.kaggle}"


def main(args, params) -> None:
    spec = params.competition(args.name)
    with atomic_dir(args.out) as tmp:
        fetch(spec, args.name, tmp)
        layout = read_layout(tmp, spec, origin=origin(spec, args.name))
    print(f"{args.name}: {len(layout.train)} train rows, {len(layout.test)} test rows -> {args.out}")
