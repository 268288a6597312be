"""The time budget (core/budget.py): each stage plans within its share, reports what it left
out, and a competition still ends in a valid submission."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.core.budget import FIRST_FIT_SHARE, SHARES, Deadline, OverBudget, process_start, stage_seconds
from pipelines.nn.data import TabularDataset
from pipelines.nn.heads import Head
from pipelines.nn.loop import train
from tests.conftest import TITANIC, run, tiny_params
from tests.test_torch_loop import CFG, blobs, make_ctx, small_net


def test_no_budget_never_limits():
    deadline = Deadline(stage_seconds(None, "train"))
    assert deadline.share(3) is None and not deadline.spent()
    deadline.fold_check("m", 5)(0, 0.0)  # no budget: never raises


def test_stage_shares_and_fold_projection():
    assert 0.8 <= sum(SHARES.values()) <= 0.9  # the rest: zoo, ensemble and DVC, which cannot plan
    deadline = Deadline(stage_seconds(10.0, "train"))
    assert deadline.seconds == pytest.approx(5.8) and deadline.share(2) == pytest.approx(2.9, abs=0.05)
    deadline.start -= 5.3  # 0.5 s left
    check = deadline.fold_check("slow model", total=5)
    time.sleep(0.3)  # fold 0 took at least 0.3 s: four more would take at least 1.2 s, past the 0.5 s left
    with pytest.raises(OverBudget, match=r"slow model: 1 of 5 folds took \d+s; the rest would take \d+s with 0s"):
        check(0, 0.5)
    check(4, 0.5)  # the last fold: nothing left to project
    cut = Deadline(10.0)
    cut.start -= 9.0  # 1 s left; two folds took 0.3 s, but the budget cut their training: only predicting
    cut.note_fit(0.6, cut=True)  # is fixed: 0.1 s a fold (the first fold's 0.6 s held one-off costs)
    check = cut.fold_check("kept model", total=5)
    check(0, 0.5)  # after the first fold: no projection
    cut.note_fit(0.1, cut=True)
    time.sleep(0.3)
    check(1, 0.5)  # three more at 0.1 s fit in the 0.7 s left


def test_a_torch_fit_stops_before_an_epoch_would_overrun():
    x, y = blobs()
    result = train(
        small_net(), Head("binary"), TabularDataset(x[:300], y[:300]), TabularDataset(x[300:]), y[300:],
        ctx=make_ctx(fit_seconds=1e-6), cfg=CFG,
    )  # fmt: skip
    assert result.epochs_run == 1 < CFG.epochs and result.best_score is not None


def test_a_stage_clock_starts_with_its_process_and_fits_pay_for_predicting():
    assert 0 <= time.monotonic() - process_start() <= 60  # this process's age, at most a minute
    deadline = Deadline(100.0)
    assert deadline.fit_seconds(4) == pytest.approx(FIRST_FIT_SHARE * 25, abs=0.1)  # nothing measured yet
    deadline.note_fit(5.0, cut=False)
    deadline.note_fit(3.0, cut=False)  # predicting costs 4 s a fit: each of the 4 fits trains for 25 - 4
    assert deadline.fit_seconds(4) == pytest.approx(21, abs=0.1)
    deadline.start -= 99.0
    assert deadline.fit_seconds(4) == 0.0 and Deadline(None).fit_seconds(4) is None


def test_a_torch_fit_stops_within_an_epoch_that_would_not_fit():
    """An epoch longer than the whole budget (large data): the fit stops between batches,
    validates what it has, and says what the budget cut."""
    x, y = blobs(n=3000)
    cfg = replace(CFG, batch_size=8)  # 300 batches an epoch
    result = train(
        small_net(), Head("binary"), TabularDataset(x[:2400], y[:2400]), TabularDataset(x[2400:]), y[2400:],
        ctx=make_ctx(fit_seconds=0.05), cfg=cfg,
    )  # fmt: skip
    share = result.history[-1]["rows_share"]
    assert result.epochs_run == 1 and 0 < share < 1 and result.best_score is not None
    assert result.budget_cut == f"1 of {cfg.epochs} epochs ({share:.0%} of its batches)"
    whole = train(small_net(), Head("binary"), TabularDataset(x[:300], y[:300]), ctx=make_ctx(), cfg=CFG)
    assert whole.budget_cut is None and "rows_share" not in whole.history[-1]  # no budget: nothing cut


@pytest.mark.parametrize("name", ["lightgbm", "xgboost", "catboost"])
def test_boosting_stops_when_its_time_is_spent(name):
    """With no time left, boosting keeps what it has, leaves out the final fit on all rows,
    says so, and still predicts."""
    from pipelines.core.context import ModelContext
    from pipelines.core.metrics import get_metric
    from pipelines.models.gbdt import EARLY_STOPPING_ROWS
    from pipelines.models.registry import create_model

    x, y = blobs(n=EARLY_STOPPING_ROWS + 500)
    X = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    roles = {"numeric": list(X.columns), "categorical": []}
    ctx = ModelContext(task="binary", metric=get_metric("roc_auc"), n_classes=2, roles=roles, fit_seconds=0.0)
    model = create_model(name, ctx).fit(X, y)
    assert model.best_rounds_ <= 2, model.best_rounds_  # stopped after its first round(s)
    assert model.budget_cut_ == f"boosting stopped at {model.best_rounds_} rounds; no final fit on all training rows"
    assert np.isfinite(model.predict_output(X.iloc[:5])).all()
    free = create_model(name, replace(ctx, fit_seconds=None)).fit(X, y)
    assert free.budget_cut_ is None and free.best_rounds_ > 2


def test_cross_validation_keeps_what_the_budget_cut_of_each_fit():
    from pipelines.core.context import ModelContext
    from pipelines.core.metrics import get_metric
    from pipelines.training.cv import CVOptions, FoldData, cross_validate

    x, y = blobs(n=3000)
    X = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    data = FoldData(X, y, X.iloc[:100], np.arange(len(y)) % 3)
    roles = {"numeric": list(X.columns), "categorical": []}
    ctx = ModelContext(task="binary", metric=get_metric("accuracy"), n_classes=2, roles=roles, progress=False,
                       fit_seconds=1.0)  # fmt: skip
    deadline = Deadline(0.3)
    opts = CVOptions(deadline=deadline, fits_after=2)
    result = cross_validate("mlp", {"batch_size": 8, "epochs": 50, "patience": 50}, data, ctx, opts)
    assert set(result.budget_cuts) == {"fold 0", "fold 1", "fold 2"} and len(deadline.overheads) == 3
    assert all("of 50 epochs" in note for note in result.budget_cuts.values())
    assert result.oof.shape == (len(y),) and np.isfinite(result.oof).all()


@pytest.mark.slow
def test_a_tiny_budget_leaves_models_out_and_still_submits(dvc_repo):
    params = tiny_params(titanic=TITANIC)
    params["budget"] = 0.5  # train's share, 0.33 s, is spent by the first model
    (dvc_repo / "params.yaml").write_text(yaml.safe_dump(params))
    out = run(["dvc", "repro"], dvc_repo)
    cv = json.loads((dvc_repo / "data/train/titanic/cv.json").read_text())
    assert list(cv["models"]) == ["lightgbm"] and set(cv["left_out"]) == {"logreg", "mlp"}
    assert "logreg left out: the train stage's share of the budget was spent" in out.stdout
    metrics = json.loads((dvc_repo / "submissions/titanic/metrics.json").read_text())
    details = json.loads((dvc_repo / "submissions/titanic/details.json").read_text())
    assert {"logreg", "mlp"} <= set(details["left_out"]) and "lightgbm" in metrics["models"]
    sub = pd.read_csv(dvc_repo / "submissions/titanic/submission.csv")
    sample = pd.read_csv(dvc_repo / "data/raw/titanic/sample_submission.csv")
    assert sub["PassengerId"].tolist() == sample["PassengerId"].tolist() and sub.notna().all().all()
