"""The time budget (core/budget.py): each stage plans within its share, reports what it left
out, and a competition still ends in a valid submission."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest
import yaml

from pipelines.core.budget import SHARES, Deadline, OverBudget, stage_seconds
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
    assert sum(SHARES.values()) == pytest.approx(1.0)
    deadline = Deadline(stage_seconds(10.0, "train"))
    assert deadline.seconds == pytest.approx(6.5) and deadline.share(2) == pytest.approx(3.25, abs=0.05)
    deadline.start -= 6.0  # 0.5 s left
    check = deadline.fold_check("slow model", total=5)
    time.sleep(0.3)  # fold 0 took at least 0.3 s: four more would take at least 1.2 s, past the 0.5 s left
    with pytest.raises(OverBudget, match=r"slow model: 1 of 5 folds took \d+s; the rest would take \d+s with 0s"):
        check(0, 0.5)
    check(4, 0.5)  # the last fold: nothing left to project


def test_a_torch_fit_stops_before_an_epoch_would_overrun():
    x, y = blobs()
    result = train(
        small_net(), Head("binary"), TabularDataset(x[:300], y[:300]), TabularDataset(x[300:]), y[300:],
        ctx=make_ctx(fit_seconds=1e-6), cfg=CFG,
    )  # fmt: skip
    assert result.epochs_run == 1 < CFG.epochs and result.best_score is not None


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
