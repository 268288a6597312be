"""Folds trained side by side in one-thread worker processes (`cross_validate(workers=2)`)
give exactly the predictions of folds trained one after another on one thread, resume from
the fold cache, and are used only where they pay (torch image models on a CPU)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from pipelines.core.context import ModelContext
from pipelines.core.metrics import get_metric
from pipelines.models.registry import create_model
from pipelines.training.cv import CVOptions, FoldData, cross_validate
from pipelines.training.parallel import fold_workers

PARAMS = {"width": 4, "hidden": 8}


def _data():
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    X = rng.integers(0, 40, size=(60, 1, 12, 12), dtype=np.uint8)
    X[:, 0, 2:10, 2:10] += (60 * y).astype(np.uint8)[:, None, None]  # something to learn
    folds = np.arange(60) % 5
    ctx = ModelContext(
        task="multiclass", metric=get_metric("accuracy"), n_classes=3, epochs=2, threads=1, progress=False
    )
    return X, y, folds, ctx


def test_parallel_folds_match_sequential_ones_and_resume(tmp_path):
    X, y, folds, ctx = _data()
    plain = cross_validate("cnn", PARAMS, FoldData(X, y, X[:7], folds), ctx, CVOptions(cache_dir=tmp_path / "seq"))
    par = cross_validate(
        "cnn", PARAMS, FoldData(X, y, X[:7], folds), ctx, CVOptions(cache_dir=tmp_path / "par", workers=2)
    )
    np.testing.assert_array_equal(par.oof, plain.oof)
    np.testing.assert_array_equal(par.test, plain.test)
    np.testing.assert_array_equal(par.fold_train, plain.fold_train)
    assert par.fold_scores == plain.fold_scores
    # fold 4 of 5 trains in the parent on all threads; folds 0-3 came from the workers' files
    (cache,) = (tmp_path / "par").iterdir()
    assert sorted(p.name for p in cache.glob("fold*.npz")) == [f"fold{k}.npz" for k in range(5)]
    # an interrupted run lost fold 1: only it is trained again, to the same result
    (cache / "fold1.npz").unlink()
    before = {k: (cache / f"fold{k}.npz").stat().st_mtime_ns for k in (0, 2, 3, 4)}
    again = cross_validate(
        "cnn", PARAMS, FoldData(X, y, X[:7], folds), ctx, CVOptions(cache_dir=tmp_path / "par", workers=2)
    )
    np.testing.assert_array_equal(again.oof, plain.oof)
    assert {k: (cache / f"fold{k}.npz").stat().st_mtime_ns for k in (0, 2, 3, 4)} == before


def test_fold_workers_only_for_image_models_on_cpu():
    _, _, _, ctx = _data()
    two = replace(ctx, threads=2)
    assert fold_workers("cnn", two, 5) == 2
    assert fold_workers("student_cnn", replace(ctx, threads=4), 3) == 3
    assert fold_workers("cnn", ctx, 5) == 1  # one thread: nothing to split
    assert fold_workers("lightgbm", two, 5) == 1
    assert fold_workers("mlp", two, 5) == 1


def test_refit_on_every_row_halves_the_test_predictions(tmp_path):
    X, y, folds, ctx = _data()
    plain = cross_validate("cnn", PARAMS, FoldData(X, y, X[:7], folds), ctx, CVOptions(cache_dir=tmp_path / "plain"))
    seq = cross_validate(
        "cnn", PARAMS, FoldData(X, y, X[:7], folds), ctx, CVOptions(cache_dir=tmp_path / "seq", refit=True)
    )
    # the refit is a model of its own: seed + n_splits, every row, no validation rows
    full = create_model("cnn", replace(ctx, seed=ctx.seed + 5), **PARAMS).fit(X, y).predict_output(X[:7])
    np.testing.assert_allclose(seq.test, 0.5 * plain.test + 0.5 * full, rtol=0, atol=1e-12)
    assert not np.allclose(seq.test, plain.test)
    # OOF predictions (and so CV) stay the fold models' own
    np.testing.assert_array_equal(seq.oof, plain.oof)
    assert seq.refit and not plain.refit
    # 5 folds + refit on 2 workers: all six in the workers, the same predictions
    par = cross_validate(
        "cnn", PARAMS, FoldData(X, y, X[:7], folds), ctx, CVOptions(cache_dir=tmp_path / "par", workers=2, refit=True)
    )
    np.testing.assert_array_equal(par.test, seq.test)
    np.testing.assert_array_equal(par.oof, seq.oof)
    (cache,) = (tmp_path / "par").iterdir()
    assert (cache / "full.npz").exists() and (cache / "ckpt_full" / "final.pt").exists()
    # switching refit on after a plain run trains only the refit: the folds come from the cache
    (plain_cache,) = (tmp_path / "plain").iterdir()
    before = {p.name: p.stat().st_mtime_ns for p in plain_cache.glob("fold*.npz")}
    again = cross_validate(
        "cnn", PARAMS, FoldData(X, y, X[:7], folds), ctx, CVOptions(cache_dir=tmp_path / "plain", refit=True)
    )
    assert {p.name: p.stat().st_mtime_ns for p in plain_cache.glob("fold*.npz")} == before
    np.testing.assert_array_equal(again.test, seq.test)


def test_refits_are_seeds_each_weighing_as_much_as_the_folds_mean(tmp_path):
    X, y, folds, ctx = _data()
    one = cross_validate("cnn", PARAMS, FoldData(X, y, X[:7], folds), ctx, CVOptions(cache_dir=tmp_path, refit=1))
    three = cross_validate("cnn", PARAMS, FoldData(X, y, X[:7], folds), ctx, CVOptions(cache_dir=tmp_path, refit=3))
    assert three.refit == 3 and one.refit == 1
    np.testing.assert_array_equal(three.oof, one.oof)
    # refit r: seed + n_splits + r on every row; the first is the one-refit run's own
    seeds = [create_model("cnn", replace(ctx, seed=ctx.seed + 5 + r), **PARAMS).fit(X, y).predict_output(X[:7])
             for r in range(3)]  # fmt: skip
    folds_mean = 2 * one.test - seeds[0]  # one refit: half the folds' mean, half its own
    np.testing.assert_allclose(three.test, (folds_mean + sum(seeds)) / 4, rtol=0, atol=1e-12)
    assert not np.allclose(seeds[1], seeds[2])  # seeds that err apart
    (cache,) = tmp_path.iterdir()
    assert sorted(p.name for p in cache.glob("full*.npz")) == ["full.npz", "full1.npz", "full2.npz"]
    assert (cache / "ckpt_full2" / "final.pt").exists()


def test_refit_of_a_student_learns_the_fold_averaged_soft_targets(tmp_path):
    X, y, folds, ctx = _data()
    rng = np.random.default_rng(1)
    soft = rng.dirichlet(np.ones(3), size=(5, 60))  # per fold: (n_splits, n, classes)
    res = cross_validate("student_cnn", {}, FoldData(X, y, X[:7], folds), ctx, CVOptions(soft_targets=soft, refit=True))
    alone = cross_validate("student_cnn", {}, FoldData(X, y, X[:7], folds), ctx, CVOptions(soft_targets=soft))
    est = create_model("student_cnn", replace(ctx, seed=ctx.seed + 5))
    full = est.fit(X, y, soft_targets=soft.mean(axis=0)).predict_output(X[:7])
    np.testing.assert_allclose(res.test, 0.5 * alone.test + 0.5 * full, rtol=0, atol=1e-12)
