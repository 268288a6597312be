"""Embedded competitions: Kaggle layout, hidden answers kept apart, offline leaderboard."""

import pandas as pd
import pytest

from pipelines.core.config import parse_params
from pipelines.core.errors import PipelineError
from pipelines.sources import embedded
from pipelines.sources.embedded import score_offline
from tests.conftest import TITANIC


@pytest.mark.parametrize("slug", ["titanic", "house-prices", "digit-recognizer"])
def test_carve_is_kaggle_layout_and_seeded(slug):
    ds = embedded.get_embedded(slug)
    a, b = embedded.carve(slug), embedded.carve(slug)
    train, test, sample, answers = a["train.csv"], a["test.csv"], a["sample_submission.csv"], a["answers"]
    pd.testing.assert_frame_equal(train, b["train.csv"])
    assert ds.target in train and ds.target not in test
    assert len(train) + len(test) == len(ds.load())
    assert list(sample[ds.id]) == list(answers[ds.id])
    if ds.make_ids:
        assert ds.id not in test and list(sample[ds.id]) == list(range(1, len(test) + 1))
    else:
        assert set(test[ds.id]).isdisjoint(train[ds.id])
        assert list(test[ds.id]) == list(sample[ds.id])


def test_titanic_is_the_real_data_and_stratified():
    full = embedded.get_embedded("titanic").load()
    assert len(full) == 891 and full["Survived"].sum() == 342
    parts = embedded.carve("titanic")
    assert abs(parts["train.csv"]["Survived"].mean() - parts["answers"]["Survived"].mean()) < 0.02


def test_offline_leaderboard_scores_public_and_private():
    spec = parse_params({"competitions": {"titanic": TITANIC}}).competitions["titanic"]
    answers, public = embedded.hidden_answers("titanic")
    assert 0.4 < public.mean() < 0.6
    perfect = answers.copy()
    assert score_offline(perfect, "titanic", spec) == (1.0, 1.0)
    wrong = perfect.assign(Survived=1 - perfect["Survived"])
    assert score_offline(wrong, "titanic", spec) == (0.0, 0.0)
    with pytest.raises(PipelineError, match="hidden-test id"):
        score_offline(perfect.iloc[:-1], "titanic", spec)


def test_unknown_embedded():
    with pytest.raises(PipelineError, match="no embedded competition 'spaceship'"):
        embedded.get_embedded("spaceship")


def test_house_prices_with_kaggles_real_test_set():
    """`kaggle: house-prices-kaggle-test`: all labelled rows to train on, Kaggle's own test.csv
    to submit; no hidden answers, so the offline leaderboard says to upload instead."""
    parts = embedded.carve("house-prices-kaggle-test")
    train, test, sample = parts["train.csv"], parts["test.csv"], parts["sample_submission.csv"]
    assert len(train) == 1460 and len(test) == 1459 and "SalePrice" not in test
    assert list(sample.columns) == ["Id", "SalePrice"] and list(sample.Id) == list(test.Id) == list(range(1461, 2920))
    assert list(test.columns) == [c for c in train.columns if c != "SalePrice"]
    with pytest.raises(PipelineError, match="upload its submission.csv on Kaggle"):
        embedded.hidden_answers("house-prices-kaggle-test")
