"""Ensembling over prediction arrays (`training/ensembling.py`), on synthetic members whose
right answer is known: a perfect model, pure noise, two models with independent errors."""

import numpy as np
import pytest

from pipelines.core.metrics import get_metric
from pipelines.training.ensembling import (
    RULE,
    Blend,
    Stacker,
    blend,
    candidate_fitters,
    candidate_methods,
    choose_method,
    clearly_worse,
    fit_apply_of,
    fitters,
    hill_climb,
    method_choice,
    methods,
    nested_oof,
    score_error,
    with_thresholds,
)

RMSE, RMSLE, ACCURACY, LOGLOSS = (get_metric(m) for m in ("rmse", "rmsle", "accuracy", "logloss"))
N, K = 1200, 5


def regression(seed: int = 0):
    """Target, a perfect member, two members with independent errors of equal size, and noise."""
    rng = np.random.default_rng(seed)
    y = rng.normal(10, 3, N)
    return y, {
        "perfect": y.copy(),
        "a": y + rng.normal(0, 1, N),
        "b": y + rng.normal(0, 1, N),
        "noise": rng.normal(10, 3, N),
    }


def binary(seed: int = 0):
    """Labels, an informative probability (logit = 2 * signal), and a probability of pure noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, N)
    logit = 2.0 * (2 * y - 1) + rng.normal(0, 1.5, N)
    return y, {"good": 1 / (1 + np.exp(-logit)), "noise": rng.random(N)}


def folds_of(n: int, k: int = K) -> np.ndarray:
    return np.random.default_rng(42).permutation(np.arange(n) % k)


# ---------------------------------------------------------------- blend


@pytest.mark.parametrize("metric, task", [(RMSE, "regression"), (RMSLE, "regression"), (ACCURACY, "binary")])
def test_blend_of_identical_predictions_is_those_predictions(metric, task):
    p = np.random.default_rng(0).random(50) + (5 if task == "regression" else 0)
    np.testing.assert_allclose(blend([p, p, p], np.array([0.2, 0.5, 0.3]), metric, task), p, rtol=1e-12)


def test_blend_weights_are_normalised_and_a_single_weight_picks_its_model():
    y, m = regression()
    np.testing.assert_allclose(blend([m["a"], m["b"]], np.array([3.0, 3.0]), RMSE, "regression"), (m["a"] + m["b"]) / 2)
    np.testing.assert_array_equal(blend([m["a"], m["b"]], np.array([0.0, 1.0]), RMSE, "regression"), m["b"])


def test_rmsle_blends_in_log_space():
    a, b = np.array([1.0, 10.0, 100.0]), np.array([9.0, 1000.0, 100.0])
    got = blend([a, b], np.array([1.0, 1.0]), RMSLE, "regression")
    np.testing.assert_allclose(got, np.expm1((np.log1p(a) + np.log1p(b)) / 2))
    assert got[1] < (a[1] + b[1]) / 2 / 2  # far below the arithmetic mean, 505


def test_blend_of_class_probabilities_stays_a_distribution():
    rng = np.random.default_rng(0)
    members = [rng.dirichlet(np.ones(3), 40) for _ in range(3)]
    out = blend(members, np.array([0.5, 0.25, 0.25]), LOGLOSS, "multiclass")
    assert out.shape == (40, 3)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    np.testing.assert_allclose(out, 0.5 * members[0] + 0.25 * members[1] + 0.25 * members[2])


# ---------------------------------------------------------------- hill climbing


def test_hill_climb_puts_all_weight_on_a_perfect_model():
    y, m = regression()
    w = hill_climb([m["noise"], m["a"], m["perfect"], m["b"]], y, RMSE, "regression", iterations=20)
    np.testing.assert_array_equal(w, [0.0, 0.0, 1.0, 0.0])


def test_hill_climb_follows_the_metrics_direction():
    y, m = binary()
    perfect = np.where(y == 1, 0.9, 0.1)
    assert hill_climb([m["noise"], m["good"], perfect], y, ACCURACY, "binary").tolist() == [0.0, 0.0, 1.0]
    assert hill_climb([m["noise"], perfect, m["good"]], y, LOGLOSS, "binary").tolist() == [0.0, 1.0, 0.0]


def test_hill_climb_shares_weight_between_independent_errors_and_ignores_noise():
    y, m = regression()
    preds = [m["noise"], m["a"], m["b"]]
    w = hill_climb(preds, y, RMSE, "regression", iterations=30)
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()
    assert w[0] == 0.0 and w[1] == pytest.approx(0.5) and w[2] == pytest.approx(0.5)
    blended = RMSE(y, blend(preds, w, RMSE, "regression"), "regression")
    assert blended < 0.8 * min(RMSE(y, m["a"], "regression"), RMSE(y, m["b"], "regression"))  # 1/sqrt(2)


def test_hill_climb_with_one_iteration_is_the_best_single_model():
    y, m = regression()
    w = hill_climb([m["a"], m["noise"], m["b"]], y, RMSE, "regression", iterations=1)
    best = int(np.argmin([RMSE(y, p, "regression") for p in (m["a"], m["noise"], m["b"])]))
    assert w.tolist() == [float(i == best) for i in range(3)]


# ---------------------------------------------------------------- stacking


def test_stacking_learns_to_trust_the_good_member_over_noise():
    y, m = binary()
    train, held = np.arange(N) < N // 2, np.arange(N) >= N // 2
    preds = [m["noise"], m["good"]]
    st = Stacker(LOGLOSS, "binary").fit([p[train] for p in preds], y[train])
    assert st.model_.coef_.shape == (1, 2) and abs(st.model_.coef_[0, 0]) < 0.2 * st.model_.coef_[0, 1]
    out = st.predict([p[held] for p in preds])
    assert out.shape == (held.sum(),) and ((out > 0) & (out < 1)).all()
    stacked = LOGLOSS(y[held], out, "binary")
    assert stacked < LOGLOSS(y[held], m["noise"][held], "binary") - 0.3
    assert stacked <= LOGLOSS(y[held], m["good"][held], "binary") + 0.01


def test_stacking_rescales_a_timid_regression_member():
    """A member predicting half the deviation from the mean: ridge recovers the scale."""
    y, _ = regression()
    timid = 10 + 0.5 * (y - 10)
    noise = np.random.default_rng(5).normal(10, 3, N)
    st = Stacker(RMSE, "regression")
    assert st.fit([timid, noise], y) is st and hasattr(st, "model_")
    assert RMSE(y, st.predict([timid, noise]), "regression") < 0.05 < RMSE(y, timid, "regression")


def test_stacking_for_rmsle_predicts_in_the_targets_space():
    rng = np.random.default_rng(0)
    y = np.exp(rng.normal(11, 0.5, N))
    member = y * np.exp(rng.normal(0, 0.05, N))
    out = Stacker(RMSLE, "regression").fit([member], y).predict([member])
    assert (out > 0).all() and RMSLE(y, out, "regression") < 0.06
    assert np.median(out / y) == pytest.approx(1.0, abs=0.02)  # not log values


def test_stacking_multiclass_gives_probabilities():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    good = np.eye(3)[y] * 0.6 + rng.dirichlet(np.ones(3), 600) * 0.4
    noise = rng.dirichlet(np.ones(3), 600)
    out = Stacker(LOGLOSS, "multiclass").fit([good, noise], y).predict([good, noise])
    assert out.shape == (600, 3)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    assert ACCURACY(y, out, "multiclass") > 0.95


def test_stacker_init_only_stores_arguments():
    st = Stacker(RMSE, "regression", seed=3)
    assert vars(st) == {"metric": RMSE, "task": "regression", "seed": 3}


# ---------------------------------------------------------------- nested OOF


def test_nested_oof_never_uses_a_rows_own_fold():
    """A method that memorises its training rows answers each row from the other folds only."""
    ids = np.arange(300, dtype=np.float64)
    folds = folds_of(300)
    y = np.random.default_rng(0).random(300)
    seen = []

    def memorise(train, y_train, apply):
        seen.append((set(train[0].astype(int)), set(apply[0].astype(int))))
        lookup = dict(zip(train[0].astype(int), y_train, strict=True))
        return np.array([lookup.get(int(i), -1.0) for i in apply[0]])

    out = nested_oof(memorise, [ids], y, folds)
    assert (out == -1.0).all(), "a row's own target reached its prediction"
    assert len(seen) == K
    for k, (train_rows, apply_rows) in enumerate(seen):
        assert apply_rows == set(np.flatnonzero(folds == k)) and train_rows == set(np.flatnonzero(folds != k))


def test_nested_oof_puts_each_fold_back_in_place():
    ids = np.arange(100, dtype=np.float64)
    folds = folds_of(100)
    out = nested_oof(lambda tr, y, ap: ap[0] * 2 + folds[ap[0].astype(int)], [ids], ids, folds)
    np.testing.assert_array_equal(out, ids * 2 + folds)
    proba = np.random.default_rng(0).dirichlet(np.ones(3), 100)
    np.testing.assert_array_equal(nested_oof(lambda tr, y, ap: ap[0], [proba], ids, folds), proba)


# ---------------------------------------------------------------- methods, thresholds, choice


def test_candidate_methods_order_and_thresholds():
    names = ["mean", "hill_climb", "stacking"]
    assert list(candidate_methods(names, ACCURACY, "binary", 10, 0)) == names
    assert list(candidate_methods(["mean"], get_metric("f1"), "multiclass", 10, 0)) == ["mean"]
    assert list(candidate_methods(["mean", "stacking"], get_metric("f1"), "binary", 10, 0)) == [
        "mean+thresholds",
        "stacking+thresholds",
        "mean",
        "stacking",
    ]
    assert set(methods(RMSE, "regression", 10, 0)) == {"hill_climb", "stacking", "mean"}


def test_mean_of_averages_only_the_members_named():
    y, m = binary()
    preds = [m["good"], m["noise"]]
    blended, detail = methods(ACCURACY, "binary", 10, 0, mean_of=[0])["mean"](preds, y, preds)
    np.testing.assert_allclose(blended, m["good"])
    assert detail["weights"] == [1.0, 0.0]


def test_each_method_returns_predictions_and_what_it_chose():
    y, m = regression()
    preds = [m["noise"], m["perfect"]]
    found = {name: fit_apply(preds, y, preds) for name, fit_apply in methods(RMSE, "regression", 10, 0).items()}
    assert found["hill_climb"][1] == {"weights": [0.0, 1.0]}
    np.testing.assert_allclose(found["hill_climb"][0], y)
    assert found["mean"][1] == {"weights": [0.5, 0.5]}
    assert RMSE(y, found["stacking"][0], "regression") < 0.05 and len(found["stacking"][1]["coef"]) == 2


def test_score_error_is_the_squared_error_of_the_decision_score():
    err = score_error("multiclass")
    assert not err.greater_is_better
    assert err(np.array([0, 2]), np.eye(3)[[0, 2]], "multiclass") == 0.0
    assert err(np.array([0, 2]), np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]), "multiclass") == 1.0


def test_thresholds_rescue_f1_for_rare_positives_and_are_fitted_on_training_rows_only():
    rng = np.random.default_rng(2)
    y = (rng.random(2000) < 0.1).astype(int)
    members = [np.clip(0.05 + 0.3 * y + rng.normal(0, 0.1, 2000), 0, 1) for _ in range(2)]  # rarely above 0.5
    f1 = get_metric("f1")
    cands = candidate_methods(["mean"], f1, "binary", 10, 0)
    folds = folds_of(2000)
    cut = nested_oof(lambda tr, yy, ap: cands["mean+thresholds"](tr, yy, ap)[0], members, y, folds)
    plain = nested_oof(lambda tr, yy, ap: cands["mean"](tr, yy, ap)[0], members, y, folds)
    assert set(np.unique(cut)) <= {0.0, 1.0}
    assert f1(y, cut, "binary") > f1(y, plain, "binary") + 0.3
    # the cut depends on the training rows alone: other rows to apply it to, the same cut
    train = [p[:1000] for p in members]
    a = cands["mean+thresholds"](train, y[:1000], [p[1000:1500] for p in members])[1]["thresholds"]
    b = cands["mean+thresholds"](train, y[:1000], [p[1500:] for p in members])[1]["thresholds"]
    assert a == b and len(a) == 1 and a[0] < 0.5


def test_with_thresholds_gives_one_hot_labels_for_multiclass():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    member = np.eye(4)[np.clip(y + rng.integers(-1, 2, 400), 0, 3)] * 0.7 + 0.075
    fit_apply = fit_apply_of(
        with_thresholds(
            fitters(score_error("multiclass"), "multiclass", 10, 0)["mean"], get_metric("qwk"), "multiclass"
        )
    )
    out, detail = fit_apply([member], y, [member[:50]])
    assert out.shape == (50, 4) and set(np.unique(out)) == {0.0, 1.0} and (out.sum(axis=1) == 1).all()
    assert len(detail["thresholds"]) == 3 and detail["weights"] == [1.0]


def test_ensemble_thresholds_for_a_rating_scored_as_regression():
    """A regression target scored by qwk: blends are cut into the target's own levels, with
    cuts fitted on the training folds only (nested), and beat plain rounding."""
    rng = np.random.default_rng(0)
    y = rng.integers(1, 6, 1500).astype(float)
    shrunk = [3 + 0.5 * (y - 3) + rng.normal(0, 0.4, len(y)) for _ in range(2)]  # two models, both timid
    folds = np.arange(len(y)) % 5
    qwk = get_metric("qwk")
    candidates = candidate_methods(["mean"], qwk, "regression", 10, 0)
    assert set(candidates) == {"mean", "mean+thresholds"}
    plain = nested_oof(lambda tr, yy, ap: candidates["mean"](tr, yy, ap)[0], shrunk, y, folds)
    cut = nested_oof(lambda tr, yy, ap: candidates["mean+thresholds"](tr, yy, ap)[0], shrunk, y, folds)
    assert set(np.unique(cut)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert qwk(y, cut, "regression") > qwk(y, plain, "regression") + 0.02


def test_choose_method_prefers_the_simplest_within_one_standard_error():
    rng = np.random.default_rng(0)
    y = rng.normal(0, 1, 1000)
    folds = folds_of(1000)
    base = rng.normal(0, 1, 1000)
    # better by noise: ahead on three folds, behind on two
    close = {"mean": y + base, "hill_climb": y + np.where(folds % 2 == 0, 0.99, 1.01) * base}
    assert RMSE(y, close["hill_climb"], "regression") < RMSE(y, close["mean"], "regression")
    assert choose_method(close, y, folds, RMSE, "regression") == "mean"
    far = {"mean": y + base, "hill_climb": y + 0.3 * base}
    assert choose_method(far, y, folds, RMSE, "regression") == "hill_climb"
    reversed_order = {"hill_climb": close["hill_climb"], "mean": close["mean"]}
    assert choose_method(reversed_order, y, folds, RMSE, "regression") == "hill_climb"  # first listed wins a tie


def test_a_method_better_on_every_fold_wins_however_much_the_folds_differ():
    """Folds of very different difficulty make the best method's fold scores spread widely; a
    method ahead on every fold by a steady margin is still clearly better, which the SE of the
    per-fold differences sees and the SE of the scores alone does not."""
    rng = np.random.default_rng(0)
    folds = folds_of(1000)
    y, base = rng.normal(0, 1, 1000), rng.normal(0, 1, 1000) * (0.5 + folds)  # fold k: error sd 0.5 + k
    nested = {"mean": y + base, "hill_climb": y + 0.97 * base}
    per_fold = [RMSE(y[folds == k], nested["mean"][folds == k], "regression") for k in range(K)]
    gap = RMSE(y, nested["mean"], "regression") - RMSE(y, nested["hill_climb"], "regression")
    assert 0 < gap < np.std(per_fold, ddof=1) / np.sqrt(K)  # within 1 SE of the scores
    assert method_choice(nested, y, folds, RMSE, "regression", paired=False)[0] == "mean"
    method, why = method_choice(nested, y, folds, RMSE, "regression", paired=True)
    assert method == "hill_climb" and why.endswith("; mean trails it by more")
    # a difference that changes sign from fold to fold is noise under either SE
    flip = {"mean": y + base, "hill_climb": y + np.where(folds % 2 == 0, 0.95, 1.05) * base}
    assert RMSE(y, flip["hill_climb"], "regression") < RMSE(y, flip["mean"], "regression")
    assert method_choice(flip, y, folds, RMSE, "regression", paired=True)[0] == "mean"


def test_the_choice_says_the_rule_and_the_scores_it_compared():
    """What the report and details.json say: not "the best score" when a simpler method won."""
    rng = np.random.default_rng(0)
    y, folds, base = rng.normal(0, 1, 1000), folds_of(1000), rng.normal(0, 1, 1000)
    close = {"mean": y + base, "hill_climb": y + np.where(folds % 2 == 0, 0.99, 1.01) * base}
    method, why = method_choice(close, y, folds, RMSE, "regression")
    assert method == "mean" and why.startswith(f"mean: {RULE}; hill_climb's nested cv (")
    assert "within 1 SE" in why
    far = {"mean": y + base, "stacking": y + 0.9 * base, "hill_climb": y + 0.3 * base}
    method, why = method_choice(far, y, folds, RMSE, "regression")
    assert method == "hill_climb" and why.endswith("; mean, stacking trail it by more")
    assert "a later method must beat it by more than 1 SE" in RULE


def test_choose_method_follows_the_metrics_direction():
    y, m = binary()
    folds = folds_of(N)
    nested = {"mean": m["noise"], "stacking": m["good"]}
    assert choose_method(nested, y, folds, ACCURACY, "binary") == "stacking"
    assert choose_method(nested, y, folds, LOGLOSS, "binary") == "stacking"


def test_clearly_worse_leaves_out_only_members_beaten_on_every_fold_beyond_noise():
    auc = get_metric("roc_auc")
    strong = {"cv": 0.85, "folds": [0.84, 0.86, 0.85, 0.83, 0.87]}
    weak = {"cv": 0.80, "folds": [0.79, 0.81, 0.80, 0.78, 0.82]}  # below on every fold, 0.05 > 2 SE (0.0141)
    near = {"cv": 0.845, "folds": [0.835, 0.855, 0.845, 0.825, 0.865]}  # below on every fold, within noise
    mixed = {"cv": 0.80, "folds": [0.85, 0.70, 0.80, 0.80, 0.85]}  # far below overall, not on every fold
    out = clearly_worse({"strong": strong, "weak": weak, "near": near, "mixed": mixed}, auc)
    assert list(out) == ["weak"] and out["weak"].startswith("below strong on every fold, by 0.0500")
    loss = get_metric("logloss")  # lower is better: the same numbers read the other way
    assert list(clearly_worse({"strong": strong, "weak": weak}, loss)) == ["strong"]
    two_folds = {"a": {"cv": 0.9, "folds": [0.9, 0.9]}, "b": {"cv": 0.5, "folds": [0.5, 0.5]}}
    assert clearly_worse(two_folds, auc) == {}  # too few folds to tell
    assert clearly_worse({"only": strong}, auc) == {}


def test_the_ensemble_stage_leaves_a_clearly_worse_member_out_of_the_mean(tmp_path):
    """A member of coin flips beside two real models: listed with its CV, not averaged in."""
    import json
    import shutil

    from pipelines.__main__ import main
    from pipelines.outputs.cleaned import CleanData
    from tests.conftest import play_stages, titanic_folder

    raw = tmp_path / "raw"
    spec = {**titanic_folder(raw), "metric": "roc_auc"}
    params = {"competitions": {"t": spec}, "folds": {"n_splits": 4}, "tune": {"n_trials": 0},
              "train": {"models": {"tabular": ["logreg", "lightgbm"]}}}  # fmt: skip
    d = play_stages(tmp_path, "t", params, raw)
    data, auc = CleanData(d["clean"]), get_metric("roc_auc")
    rng = np.random.default_rng(0)
    coin = d["train"] / "coin"
    shutil.copytree(d["train"] / "logreg", coin)
    oof = rng.random(len(data.y))
    np.save(coin / "oof.npy", oof)
    np.save(coin / "test.npy", rng.random(len(data.test_ids)))
    folds = [auc(data.y[data.folds == k], oof[data.folds == k], "binary") for k in range(4)]
    (coin / "scores.json").write_text(json.dumps({"cv": auc(data.y, oof, "binary"), "folds": folds}))
    cv = json.loads((d["train"] / "cv.json").read_text())
    cv["models"]["coin"] = {"cv": auc(data.y, oof, "binary")}
    (d["train"] / "cv.json").write_text(json.dumps(cv))
    out = tmp_path / "again"
    args = ["--raw", str(raw), "--clean", str(d["clean"]), "--train", str(d["train"]),
            "--distill", str(tmp_path / "no-student"), "--out", str(out)]  # fmt: skip
    assert main(["ensemble", "t", "--params", str(tmp_path / "params.yaml"), *args]) == 0
    ens = json.loads((out / "details.json").read_text())["ensemble"]
    assert ens["members"] == ["logreg", "lightgbm", "coin"] and ens["not_in_mean"]["coin"].startswith("below ")
    if ens["method"] == "mean":
        assert ens["weights"] == {"logreg": 0.5, "lightgbm": 0.5, "coin": 0.0}
    assert set(json.loads((out / "metrics.json").read_text())["models"]) == {"logreg", "lightgbm", "coin"}


@pytest.mark.parametrize(
    "metric, task", [("accuracy", "binary"), ("f1", "binary"), ("logloss", "multiclass"), ("qwk", "multiclass"),
                     ("rmsle", "regression"), ("qwk", "regression")],
)  # fmt: skip
def test_a_fitted_blend_as_json_blends_the_same(metric, task):
    """What `export` ships: every candidate method's fitted blend, written as JSON and read back,
    gives the numbers the ensemble stage gave; a blend of its weighted members alone too."""
    import json

    rng = np.random.default_rng(1)
    m, n = get_metric(metric), 300
    if task == "regression":
        y = rng.integers(1, 6, n).astype(float)
        members = [np.clip(y + rng.normal(0, s, n), 0.5, None) for s in (0.5, 0.8, 3.0)]
    else:
        k = 2 if task == "binary" else 4
        y = rng.integers(0, k, n)
        noisy = [np.clip(np.eye(k)[y] * 0.6 + rng.uniform(0, s, (n, k)), 1e-3, None) for s in (0.5, 0.9, 3.0)]
        members = [p / p.sum(axis=1, keepdims=True) for p in noisy]
        members = [p[:, 1] for p in members] if task == "binary" else members
    for name, fit in candidate_fitters(["mean", "stacking", "hill_climb"], m, task, 10, 0).items():
        fitted = fit(members, y)
        want, detail = fit_apply_of(fit)(members, y, members)
        assert isinstance(fitted, Blend) and fitted.method == name and fitted.detail() == detail
        back = Blend.from_state(json.loads(json.dumps(fitted.state())), m, task)
        np.testing.assert_array_equal(back.apply(members), want)
        used = back.used()
        np.testing.assert_array_equal(back.only(used).apply([members[i] for i in used]), want)
