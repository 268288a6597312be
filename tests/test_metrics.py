"""Every registered metric against scikit-learn or a hand-computed value."""

import numpy as np
import pytest
from sklearn import metrics as skm

from pipelines.core.errors import PipelineError
from pipelines.core.metrics import (
    METRICS,
    apply_thresholds,
    as_outputs,
    decision_score,
    fit_thresholds,
    get_metric,
    quadratic_kappa,
)

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
    "accuracy": [
        ("binary", yb, pb, skm.accuracy_score(yb, pb >= 0.5)),
        ("multiclass", ym, pm, skm.accuracy_score(ym, pm.argmax(1))),
    ],
    "balanced_accuracy": [
        ("binary", yb, pb, skm.balanced_accuracy_score(yb, pb >= 0.5)),
        ("multiclass", ym, pm, skm.balanced_accuracy_score(ym, pm.argmax(1))),
    ],
    "mcc": [
        ("binary", yb, pb, skm.matthews_corrcoef(yb, pb >= 0.5)),
        ("multiclass", ym, pm, skm.matthews_corrcoef(ym, pm.argmax(1))),
    ],
    "r2": [("regression", yr, pr, 1 - np.sum((yr - pr) ** 2) / np.sum((yr - yr.mean()) ** 2))],
    "f1": [("binary", yb, pb, skm.f1_score(yb, pb >= 0.5))],
    "f1_macro": [("multiclass", ym, pm, skm.f1_score(ym, pm.argmax(1), average="macro"))],
    "roc_auc": [
        ("binary", yb, pb, skm.roc_auc_score(yb, pb)),
        ("multiclass", ym, pm, skm.roc_auc_score(ym, pm, multi_class="ovr")),
    ],
    "logloss": [
        ("binary", yb, pb, skm.log_loss(yb, np.clip(pb, 1e-15, 1 - 1e-15))),
        ("multiclass", ym, pm, skm.log_loss(ym, pm)),
    ],
    "rmse": [("regression", yr, pr, np.sqrt(np.mean((yr - pr) ** 2)))],
    "rmsle": [("regression", yr, pr, np.sqrt(np.mean((np.log1p(yr) - np.log1p(np.clip(pr, 0, None))) ** 2)))],
    "mae": [("regression", yr, pr, np.mean(np.abs(yr - pr)))],
    "qwk": [
        ("multiclass", ym, pm, skm.cohen_kappa_score(ym, pm.argmax(1), weights="quadratic")),
        ("regression", ym, ym + rng.normal(0, 0.7, 200), None),  # filled in below: rounded values
    ],
}

_task, _y, _p, _ = CASES["qwk"][1]
CASES["qwk"][1] = (_task, _y, _p, skm.cohen_kappa_score(_y, np.rint(_p).astype(int), weights="quadratic"))


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
    for a, b in zip(y, p, strict=True):
        observed[a, b] += 1
    w = np.array([[(i - j) ** 2 / 4 for j in range(3)] for i in range(3)])
    expected = np.outer(observed.sum(1), observed.sum(0)) / observed.sum()
    kappa = 1 - (w * observed).sum() / (w * expected).sum()
    assert get_metric("qwk")(y, np.eye(3)[p], "multiclass") == pytest.approx(kappa)


def test_direction_and_unknown():
    assert get_metric("accuracy").better(0.9, 0.8) and get_metric("rmse").better(0.8, 0.9)
    with pytest.raises(PipelineError, match="unknown metric 'auc'"):
        get_metric("auc")


def test_fast_quadratic_kappa_matches_sklearn():
    for seed in range(5):
        r = np.random.default_rng(seed)
        y, labels = r.integers(0, 6, 300), r.integers(0, 6, 300)
        labels[:150] = y[:150]
        assert quadratic_kappa(y, labels) == pytest.approx(skm.cohen_kappa_score(y, labels, weights="quadratic"))


def test_thresholds_apply_and_decision_scores():
    assert list(apply_thresholds(np.array([0.2, 0.5, 1.49, 1.5, 9.0]), np.array([0.5, 1.5]), np.arange(3))) == [
        0,
        1,
        1,
        2,
        2,
    ]
    assert decision_score(np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]), "multiclass").tolist() == [0.5, 2.0]
    assert as_outputs(np.array([2, 0]), "multiclass", 3).tolist() == [[0, 0, 1], [1, 0, 0]]


def test_qwk_thresholds_fitted_on_oof_beat_rounding():
    """Scores biased towards the middle (as blended expected classes are): fitted cuts undo it."""
    r = np.random.default_rng(1)
    y = r.integers(0, 5, 2000)
    score = 2 + 0.6 * (y - 2) + r.normal(0, 0.35, 2000)  # shrunk towards the mean class
    qwk = get_metric("qwk")
    rounded = quadratic_kappa(y, np.clip(np.rint(score), 0, 4).astype(int))
    cuts = fit_thresholds(y[:1000], score[:1000], np.arange(5), qwk, "multiclass")
    assert np.all(np.diff(cuts) > 0) and len(cuts) == 4
    held_out = quadratic_kappa(y[1000:], apply_thresholds(score[1000:], cuts, np.arange(5)))
    assert held_out > rounded + 0.02
    # best_score: the better of argmax and the fitted cuts
    proba = np.eye(5)[np.clip(np.rint(score), 0, 4).astype(int)] * 0.5 + 0.1
    assert qwk.best_score(y, proba, "multiclass") >= qwk(y, proba, "multiclass")


def test_f1_threshold_for_rare_positives():
    r = np.random.default_rng(2)
    y = (r.random(3000) < 0.1).astype(int)
    p = np.clip(0.05 + 0.3 * y + r.normal(0, 0.1, 3000), 0, 1)  # positives rarely reach 0.5
    f1 = get_metric("f1")
    assert f1.best_score(y, p, "binary") > f1(y, p, "binary") + 0.3
    assert get_metric("accuracy").best_score(y, p, "binary") == get_metric("accuracy")(y, p, "binary")  # no thresholds
