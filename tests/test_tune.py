"""Stage `tune`: fixed model arguments from `train.params` hold in tuning (a study of their
own) and in training (over the tuned values)."""

from __future__ import annotations

import yaml

from pipelines.__main__ import main
from tests.bad_inputs import Workspace


def test_train_params_hold_in_tuning_and_training(tmp_path):
    ws = Workspace(tmp_path)
    ws.params.update(
        train={"models": {"tabular": ["logreg"]}, "params": {"logreg": {"C": 0.05}}},
        tune={"models": ["logreg"], "n_trials": 2},
    )
    ws.save_params()
    common = ["comp", "--params", str(ws.params_path)]
    clean, tune, out = tmp_path / "clean", tmp_path / "tune", tmp_path / "train"
    assert main(["clean", *common, "--raw", str(ws.raw), "--out", str(clean)]) == 0
    assert main(["tune", *common, "--clean", str(clean), "--out", str(tune)]) == 0
    import optuna

    storage = f"sqlite:///{tune / 'study.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    assert summary.study_name.count("-") == 3  # comp-logreg-<data>-<fixed arguments>: new arguments, new study
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).trials
    # every trial suggests its own C, and every one is overruled by the fixed C: one score
    assert len(trials) == 2 and len({t.params["C"] for t in trials}) == 2 and len({t.value for t in trials}) == 1
    argv = ["train", *common, "--clean", str(clean), "--tuned", str(tune), "--cache", str(tmp_path / "cache")]
    assert main([*argv, "--out", str(out)]) == 0
    # the fixed C wins over the tuned one
    assert yaml.safe_load((out / "logreg" / "scores.json").read_text())["params"] == {"C": 0.05}
