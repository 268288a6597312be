"""Stage `download`: the competition's raw files in Kaggle layout.

    python -m pipelines download <name> --out data/raw/<name>

`embedded` carves the shipped data (hidden answers stay out of the folder), `local` copies
a folder in Kaggle layout, `kaggle` downloads through the official client. Whatever the
source, the result is checked (`layout.read_layout`) before it replaces the old folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipelines import embedded
from pipelines.io import atomic_dir
from pipelines.layout import FILES, check_files, read_layout


def add_arguments(parser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="folder to write train/test/sample_submission to")


def fetch(spec, name: str, dest: Path) -> None:
    """Write the three Kaggle files of competition `name` into the empty folder `dest`."""
    if spec.source == "embedded":
        tables = embedded.carve(spec.kaggle or name)
        for file in FILES:
            tables[file].to_csv(dest / file, index=False)
    elif spec.source == "local":
        src = Path(spec.path).expanduser()
        check_files(src)
        for file in FILES:
            shutil.copyfile(src / file, dest / file)
    else:
        from pipelines.kaggle_source import download_competition

        download_competition(spec.kaggle, dest)


def main(args, params) -> None:
    spec = params.competition(args.name)
    with atomic_dir(args.out) as tmp:
        fetch(spec, args.name, tmp)
        layout = read_layout(tmp, spec)
    print(f"{args.name}: {len(layout.train)} train rows, {len(layout.test)} test rows -> {args.out}")
