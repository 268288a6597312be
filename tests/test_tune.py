"""Stage `tune`: fixed model arguments from `train.params` hold in tuning (a study of their
own) and in training (over the tuned values)."""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd
import pytest
import yaml
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from pipelines.__main__ import main
from tests.bad_inputs import Workspace
from tests.conftest import TITANIC, run, tiny_params, titanic_folder


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


def test_params_tuned_on_a_subsample_must_beat_the_defaults_on_every_row(tmp_path, capsys):
    """best_params.json says how many rows the study saw; train cross-validates params tuned
    on fewer rows than it has against the defaults, keeps the better and says so."""
    spec = {**titanic_folder(tmp_path / "raw", n_train=300), "metric": "logloss"}
    params = {"seed": 1, "folds": {"n_splits": 3}, "competitions": {"t": spec}}
    params |= {
        "train": {"models": {"tabular": ["logreg"]}},
        "tune": {"models": ["logreg"], "n_trials": 2, "max_rows": 100},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    common = ["t", "--params", str(tmp_path / "params.yaml")]
    clean, tune = tmp_path / "clean", tmp_path / "tune"
    assert main(["clean", *common, "--raw", str(tmp_path / "raw"), "--out", str(clean)]) == 0
    assert main(["tune", *common, "--clean", str(clean), "--out", str(tune)]) == 0
    best = json.loads((tune / "best_params.json").read_text())["logreg"]
    assert best["rows"] == 100
    bad = {"logreg": {**best, "params": {"C": 1e-6}}}  # as a study on a few rows might pick: next to no model
    (tune / "best_params.json").write_text(json.dumps(bad))

    def train(out):
        argv = ["train", *common, "--clean", str(clean), "--tuned", str(tune), "--cache", str(tmp_path / "cache")]
        assert main([*argv, "--out", str(out)]) == 0
        return json.loads((out / "cv.json").read_text()), json.loads((out / "logreg" / "scores.json").read_text())

    cv, scores = train(tmp_path / "train")
    assert (
        "the defaults were kept" in cv["tuning_rejected"]["logreg"] and "defaults were kept" in capsys.readouterr().out
    )
    assert not scores["tuned"] and scores["params"] == {} and scores["cv"] < 0.6  # logloss: the defaults' CV
    bad["logreg"]["rows"] = 300  # tuned on every row: taken as it is
    (tune / "best_params.json").write_text(json.dumps(bad))
    cv, scores = train(tmp_path / "train-all-rows")
    assert "tuning_rejected" not in cv and scores["tuned"] and scores["params"] == {"C": 1e-6} and scores["cv"] > 0.65


class Tuning:
    """`comp` cleaned once in tmp_path; `tune(...)` runs the stage with these `tune` params."""

    def __init__(self, tmp_path, models=("logreg",)):
        self.ws = Workspace(tmp_path)
        self.models = list(models)
        self.clean, self.out = tmp_path / "clean", tmp_path / "tune"
        self.save({})
        assert main(["clean", *self.common, "--raw", str(self.ws.raw), "--out", str(self.clean)]) == 0

    def save(self, tune: dict) -> None:
        self.ws.params.update(
            train={"models": {"tabular": self.models}, "threads": 2}, tune={"models": self.models, **tune}
        )
        self.ws.save_params()
        self.common = ["comp", "--params", str(self.ws.params_path)]
        self.storage = tune.get("storage")

    def tune(self, *flags, **tune) -> int:
        self.save(tune)
        return main(["tune", *self.common, "--clean", str(self.clean), "--out", str(self.out), *flags])

    def studies(self) -> dict[str, list]:
        import optuna

        if self.storage == "journal":
            storage = optuna.storages.JournalStorage(JournalFileBackend(str(self.out / "study.journal")))
        else:
            storage = f"sqlite:///{self.out / 'study.db'}"
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        return {n: optuna.load_study(study_name=n, storage=storage).trials for n in names}


def test_two_workers_on_a_journal_study(tmp_path):
    t = Tuning(tmp_path)
    assert t.tune(storage="journal", workers=2, n_trials=6) == 0
    (trials,) = t.studies().values()
    done = [x for x in trials if x.state == TrialState.COMPLETE]
    assert len(done) == 6 and len({x.number for x in trials}) == len(trials)
    assert json.loads((t.out / "best_params.json").read_text())["logreg"]["trials"] == 6
    # both study files exist (dvc.yaml declares them); the unused SQLite one is empty
    assert (t.out / "study.db").stat().st_size == 0 and (t.out / "study.journal").stat().st_size > 0
    for plot in ("history.csv", "importances.csv", "slices/logreg-C.csv"):
        assert len(pd.read_csv(t.out / plot)) > 0, plot


def test_join_adds_trials_and_the_stage_writes_the_results(tmp_path):
    t = Tuning(tmp_path)
    assert t.tune("--join", n_trials=3) == 0  # a worker joining before the stage runs
    assert not (t.out / "best_params.json").exists()  # a joining worker writes no results
    (trials,) = t.studies().values()
    assert [x.state for x in trials] == [TrialState.COMPLETE] * 3
    assert t.tune(n_trials=3) == 0  # the budget is done: the stage only writes the results
    (again,) = t.studies().values()
    assert len(again) == 3 and json.loads((t.out / "best_params.json").read_text())["logreg"]["trials"] == 3


def test_pruner_choice(tmp_path):
    t = Tuning(tmp_path, models=("lightgbm",))
    assert t.tune(pruner="none", n_trials=8) == 0
    (unpruned,) = t.studies().values()
    assert all(x.state == TrialState.COMPLETE for x in unpruned) and len(unpruned) == 8
    (t.out / "study.db").unlink()
    assert t.tune(pruner="successive_halving", n_trials=8) == 0
    (pruned,) = t.studies().values()
    states = Counter(x.state for x in pruned)
    assert states[TrialState.PRUNED] >= 1 and states[TrialState.PRUNED] + states[TrialState.COMPLETE] == 8
    # pruned trials stopped after a fold: they reported fewer steps (folds) than complete ones
    assert all(len(x.intermediate_values) < 3 for x in pruned if x.state == TrialState.PRUNED)


def test_new_study_starts_from_the_previous_best(tmp_path):
    import optuna

    t = Tuning(tmp_path)
    t.out.mkdir()
    # an earlier study of logreg on comp (before the data changed) whose best C is 5.5
    storage = f"sqlite:///{t.out / 'study.db'}"
    earlier = optuna.create_study(study_name="comp-logreg-earlier", storage=storage, direction="maximize")
    C = optuna.distributions.FloatDistribution(1e-3, 10.0, log=True)
    for c, value in ((0.01, 0.5), (5.5, 0.9)):
        earlier.add_trial(optuna.trial.create_trial(params={"C": c}, distributions={"C": C}, value=value))
    assert t.tune(n_trials=3) == 0
    (new,) = [trials for name, trials in t.studies().items() if name != "comp-logreg-earlier"]
    assert [x.params["C"] for x in new[:2]] == [5.5, 0.3] and len(new) == 3  # the previous best, the defaults, TPE
    before = set(t.studies())
    assert t.tune(n_trials=2, warm_start=False, max_rows=5000) == 0  # another study, started cold
    (cold,) = [trials for name, trials in t.studies().items() if name not in before]
    assert cold[0].params["C"] == 0.3


def test_workers_beyond_the_threads_are_refused(tmp_path, capsys):
    t = Tuning(tmp_path)
    assert t.tune(workers=3, n_trials=2) == 2
    assert "tune.workers" in capsys.readouterr().err


@pytest.mark.slow
def test_dvc_repro_tune_with_workers_and_study_plots(dvc_repo):
    """`dvc repro tune@titanic` with two workers on a JournalStorage: every declared out exists
    (the unused SQLite file too), the study plots are drawn by `dvc plots show`, a second repro
    runs nothing, and a budget of 0 trials (empty plots) still satisfies DVC."""
    params = tiny_params(titanic=TITANIC)
    params["tune"].update(n_trials=4, workers=2, storage="journal")
    (dvc_repo / "params.yaml").write_text(yaml.safe_dump(params))
    repro = ["dvc", "repro", "tune@titanic"]
    run(repro, dvc_repo)
    out = dvc_repo / "data/tune/titanic"
    assert json.loads((out / "best_params.json").read_text())["lightgbm"]["trials"] == 4
    assert (out / "study.db").stat().st_size == 0 and (out / "study.journal").stat().st_size > 0
    shown = json.loads(run(["dvc", "plots", "show", "--json"], dvc_repo).stdout)
    assert not [e for e in shown.get("errors", []) if "data/tune" in e["name"]]  # (later stages' plots: not yet)
    for plot in ("history.csv", "importances.csv", "slices/lightgbm-learning_rate.csv"):
        (drawn,) = shown["data"][f"data/tune/titanic/{plot}"]
        assert drawn["type"] == "vega" and len(drawn["content"]["data"]["values"]) >= 4, plot
    assert "Running stage" not in run(repro, dvc_repo).stdout
    params["tune"]["n_trials"] = 0
    (dvc_repo / "params.yaml").write_text(yaml.safe_dump(params))
    run(repro, dvc_repo)
    assert json.loads((out / "best_params.json").read_text()) == {} and not list((out / "slices").iterdir())
