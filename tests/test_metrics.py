"""Every registered metric against scikit-learn or a hand-computed value."""

import numpy as np
import pytest
from sklearn import metrics as skm

from pipelines.metrics import METRICS, get_metric
from pipelines.errors import PipelineError

rng = np.random.default_rng(0)
yb = rng.integers(0, 2, 200)
pb = np.clip(yb * 0.6 + rng.random(200) * 0.5, 0, 1)
ym = rng.integers(0, 4, 200)
pm = rng.dirichlet(np.ones(4), 200)
pm[np.arange(200), ym] += 0.5
pm /= pm.sum(1, keepdims=True)
yr = rng.random(200) * 100
pr = yr + rng.normal(0, 5, 200)

CASES = {
    "accuracy": [("binary", yb, pb, skm.accuracy_score(yb, pb >= 0.5)), ("multiclass", ym, pm, skm.accuracy_score(ym, pm.argmax(1)))],
    "f1": [("binary", yb, pb, skm.f1_score(yb, pb >= 0.5))],
    "f1_macro": [("multiclass", ym, pm, skm.f1_score(ym, pm.argmax(1), average="macro"))],
    "roc_auc": [("binary", yb, pb, skm.roc_auc_score(yb, pb)), ("multiclass", ym, pm, skm.roc_auc_score(ym, pm, multi_class="ovr"))],
    "logloss": [("binary", yb, pb, skm.log_loss(yb, np.clip(pb, 1e-15, 1 - 1e-15))), ("multiclass", ym, pm, skm.log_loss(ym, pm))],
    "rmse": [("regression", yr, pr, np.sqrt(np.mean((yr - pr) ** 2)))],
    "rmsle": [("regression", yr, pr, np.sqrt(np.mean((np.log1p(yr) - np.log1p(np.clip(pr, 0, None))) ** 2)))],
    "mae": [("regression", yr, pr, np.mean(np.abs(yr - pr)))],
    "qwk": [("multiclass", ym, pm, skm.cohen_kappa_score(ym, pm.argmax(1), weights="quadratic"))],
}


def test_every_metric_has_cases():
    assert set(CASES) == set(METRICS)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_metric_matches_reference(name):
    for task, y, p, expected in CASES[name]:
        assert get_metric(name)(y, p, task) == pytest.approx(expected, rel=1e-9)


def test_qwk_by_hand():
    # 3 classes, one off-by-one error and one off-by-two error
    y, p = np.array([0, 1, 2, 2]), np.array([0, 2, 0, 2])
    observed = np.zeros((3, 3))
    for a, b in zip(y, p):
        observed[a, b] += 1
    w = np.array([[(i - j) ** 2 / 4 for j in range(3)] for i in range(3)])
    expected = np.outer(observed.sum(1), observed.sum(0)) / observed.sum()
    kappa = 1 - (w * observed).sum() / (w * expected).sum()
    assert get_metric("qwk")(y, np.eye(3)[p], "multiclass") == pytest.approx(kappa)


def test_direction_and_unknown():
    assert get_metric("accuracy").better(0.9, 0.8) and get_metric("rmse").better(0.8, 0.9)
    with pytest.raises(PipelineError, match="unknown metric 'auc'"):
        get_metric("auc")
