"""Every torch model in the registry: fit/predict on tiny data for each task, output shapes,
determinism, distillation, ONNX parity, weights loading, and that the small nets learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from pipelines.core.context import ModelContext
from pipelines.core.errors import PipelineError
from pipelines.core.metrics import get_metric
from pipelines.models.mlp import MLP
from pipelines.models.onnx_export import export_onnx, onnx_predict, quantize_onnx
from pipelines.models.registry import create_model, get_entry, list_models, unknown_params
from pipelines.nn.heads import Head, members_apart, n_outputs
from pipelines.nn.weights import load_weights

# every torch model (mlp.py, torch_zoo.py); the fine-tunes need weights: tests/test_finetune.py covers them
TORCH_MODELS = [m for m in list_models() if get_entry(m).export == "onnx" and not get_entry(m).pretrained]
# tiny variants (timm's habit): the tests check wiring, not accuracy
TINY = {
    "cnn": {"width": 4},
    "student_cnn": {"width": 4},
    "resnet": {"arch": "resnet10t", "timm_kwargs": {"channels": (8, 8, 8, 8), "stem_width": 8}},
    "vit": {"patch": 7, "dim": 16, "depth": 1, "heads": 2},
    "mlp": {"hidden": 16},
    "student_mlp": {"hidden": 8},
    "tabm": {"k": 4, "width": 16, "layers": 1},
    "text_bert": {"hidden": 16, "layers": 1, "heads": 2, "vocab_size": 60},
}
WORDS = ["awful", "poor", "fine", "good", "great"]
TASKS = {"binary": ("roc_auc", 2), "multiclass": ("logloss", 3), "regression": ("rmse", 1)}
N = 48


def make_ctx(task, checkpoint_dir=None, **kw):
    metric, k = TASKS[task]
    roles = {"numeric": ["a", "b", "c"], "categorical": ["color"], "text": ["review"]}
    return ModelContext(
        task=task,
        metric=get_metric(metric),
        n_classes=k,
        roles=roles,
        progress=False,
        epochs=2,
        checkpoint_dir=checkpoint_dir,
        **kw,
    )


def make_data(modality, task, n=N, seed=0):
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    if task == "regression":
        y = 50 + 10 * signal  # far from unit scale: the head must standardise
    else:
        k = TASKS[task][1]
        y = np.digitize(signal, np.quantile(signal, np.linspace(0, 1, k + 1)[1:-1]))
    if modality == "text":  # a word for the signal's level among filler words, beside the table
        level = np.digitize(signal, [-1, -0.3, 0.3, 1])
        review = [f"the food was {WORDS[v]} and the room {rng.choice(['big', 'small'])}" for v in level]
        X = make_data("tabular", task, n, seed)[0].assign(review=review)
    elif modality == "tabular":
        X = pd.DataFrame(
            {
                "a": signal + 0.1 * rng.normal(size=n),
                "b": rng.normal(size=n),
                "c": rng.normal(size=n),
                "color": rng.choice(["red", "green"], size=n),
            }
        )
        X.loc[::7, "b"] = np.nan  # the preprocessor imputes
    else:
        X = rng.integers(0, 60, size=(n, 1, 28, 28), dtype=np.uint8)
        X[:, 0, 8:20, 8:20] += (100 + 60 * np.clip(signal, -1.5, 1.5)).astype(np.uint8)[:, None, None]
    return X, y


def split(X, y, at):
    take = (lambda a, s: a.iloc[s]) if isinstance(X, pd.DataFrame) else (lambda a, s: a[s])
    return take(X, slice(None, at)), y[:at], take(X, slice(at, None)), y[at:]


def fitted(name, task, seed=42, checkpoint_dir=None, soft=False, **params):
    entry = get_entry(name)
    X, y = make_data(entry.modality, task)
    X_tr, y_tr, X_va, y_va = split(X, y, 36)
    model = create_model(
        name, make_ctx(task, checkpoint_dir, seed=seed), batch_size=12, **{**TINY.get(name, {}), **params}
    )
    soft_targets = None
    if soft:
        soft_targets = {
            "binary": np.full(len(y_tr), 0.7),
            "regression": y_tr + 1.0,
            "multiclass": np.full((len(y_tr), 3), 1 / 3),
        }[task]
    model.fit(X_tr, y_tr, eval_set=(X_va, y_va), soft_targets=soft_targets)
    return model, X_va


def test_the_registry_holds_the_torch_models():
    assert {"mlp", "student_mlp", "cnn", "resnet", "vit", "student_cnn"} <= set(TORCH_MODELS)
    assert get_entry("student_mlp").accepts_soft_targets and get_entry("student_cnn").accepts_soft_targets


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("name", TORCH_MODELS)
def test_fit_predict_shapes_per_task(name, task):
    model, X_va = fitted(name, task)
    out = model.predict_output(X_va)
    assert np.isfinite(out).all()
    if task == "multiclass":
        assert out.shape == (len(X_va), 3)
        np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-9)
    else:
        assert out.shape == (len(X_va),)
    if task == "binary":
        assert ((out >= 0) & (out <= 1)).all()
    if task == "regression":
        assert 20 < out.mean() < 80  # back on the target's scale, not the standardised one
    assert model.result_.epochs_run >= 1 and model.result_.best_score is not None


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_gradients_reach_every_parameter(name):
    entry = get_entry(name)
    model = create_model(name, make_ctx("multiclass"), **TINY.get(name, {}))
    X, y = make_data(entry.modality, "multiclass", n=8)
    x = torch.as_tensor(model._fit_inputs(X, y))
    x = x.float() / 255.0 if x.dim() == 4 else x  # pixels scaled; token ids stay ids
    model.input_shape_ = tuple(x.shape[1:])
    net = model._net(3)
    logits, target = members_apart(net(x), torch.as_tensor(y))  # TabM: (n, k, 3) logits
    torch.nn.functional.cross_entropy(logits, target).backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name,task", [("mlp", "binary"), ("cnn", "multiclass")])
def test_same_seed_same_predictions(name, task):
    a, X_va = fitted(name, task, seed=3)
    b, _ = fitted(name, task, seed=3)
    c, _ = fitted(name, task, seed=4)
    np.testing.assert_array_equal(a.predict_output(X_va), b.predict_output(X_va))
    assert not np.array_equal(a.predict_output(X_va), c.predict_output(X_va))


def test_a_model_resumes_from_its_finished_checkpoint(tmp_path):
    a, X_va = fitted("cnn", "binary", checkpoint_dir=tmp_path)
    b, _ = fitted("cnn", "binary", checkpoint_dir=tmp_path)
    assert b.result_.reloaded and not a.result_.reloaded
    np.testing.assert_array_equal(a.predict_output(X_va), b.predict_output(X_va))


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("name", [m for m in TORCH_MODELS if get_entry(m).accepts_soft_targets])
def test_students_train_on_soft_targets(name, task):
    model, X_va = fitted(name, task, soft=True, alpha=1.0, temperature=2.0)
    out = model.predict_output(X_va)
    assert np.isfinite(out).all() and len(out) == len(X_va)
    with pytest.raises(ValueError, match="soft targets"):
        X, y = make_data(get_entry(name).modality, task, n=12)
        create_model(name, make_ctx(task)).fit(X, y, soft_targets=np.zeros((12, 5)))


def test_distillation_pulls_the_student_to_the_teacher():
    # teacher says 0.9 everywhere, labels say otherwise: with alpha=1 the student follows the teacher
    X, y = make_data("tabular", "binary", n=96)
    model = create_model("student_mlp", make_ctx("binary"), alpha=1.0, temperature=1.0, epochs=30, patience=30, lr=1e-2)
    model.fit(X, y, soft_targets=np.full(len(y), 0.9))
    assert abs(model.predict_output(X).mean() - 0.9) < 0.05


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_onnx_export_matches_torch(name, tmp_path):
    task = "multiclass"
    model, X_va = fitted(name, task)
    path = export_onnx(model, tmp_path / f"{name}.onnx")
    np.testing.assert_allclose(onnx_predict(model, X_va, path), model.predict_output(X_va), atol=1e-4)


@pytest.mark.parametrize("name", ["cnn", "resnet"])
def test_onnx_export_of_test_time_views_matches_torch(name, tmp_path):
    """The exported graph averages the same views (cnn: one-pixel shifts; resnet: mirrorings)."""
    model, X_va = fitted(name, "multiclass", tta=True)
    path = export_onnx(model, tmp_path / "views.onnx")
    assert model._views() is not None and len(model.exportable().views) in (4, 5)
    np.testing.assert_allclose(onnx_predict(model, X_va, path), model.predict_output(X_va), atol=1e-4)
    model.tta = False
    assert not np.allclose(onnx_predict(model, X_va, path), model.predict_output(X_va), atol=1e-4)


def test_int8_onnx_stays_close(tmp_path):
    model, X_va = fitted("mlp", "binary", hidden=64)
    path = quantize_onnx(export_onnx(model, tmp_path / "mlp.onnx"))
    assert path.name == "mlp.int8.onnx" and path.stat().st_size < (tmp_path / "mlp.onnx").stat().st_size
    np.testing.assert_allclose(onnx_predict(model, X_va, path), model.predict_output(X_va), atol=0.05)


def test_tta_averages_shifted_views():
    model, X_va = fitted("cnn", "multiclass")
    plain = model.predict_output(X_va)
    model.tta = True
    tta = model.predict_output(X_va)
    np.testing.assert_allclose(tta.sum(axis=1), 1.0, atol=1e-9)
    assert not np.allclose(tta, plain)


def test_resnet_averages_the_four_mirrorings_it_trains_on():
    """resnet trains with flips by default; with `tta` it predicts their mean, so an image and
    its mirror images get one prediction."""
    model, X_va = fitted("resnet", "binary", epochs=1, tta=True)
    assert model.augment["flip"]
    tta = model.predict_output(X_va)
    model.tta = False
    views = [X_va, X_va[..., ::-1], X_va[..., ::-1, :], X_va[..., ::-1, ::-1]]
    np.testing.assert_allclose(
        tta, np.mean([model.predict_output(np.ascontiguousarray(v)) for v in views], 0), atol=1e-6
    )
    model.tta = True
    np.testing.assert_allclose(model.predict_output(np.ascontiguousarray(X_va[..., ::-1])), tta, atol=1e-6)


def test_weights_are_loaded_from_a_local_file(tmp_path):
    torch.manual_seed(0)
    src = MLP((5,), 3, hidden=8)
    torch.save({"state_dict": src.state_dict()}, tmp_path / "w.pt")
    dst = MLP((5,), 4, hidden=8)  # another class count: the classifier keeps its own init
    load_weights(dst, tmp_path / "w.pt")
    assert torch.equal(dst[0].weight, src[0].weight) and dst[-1].weight.shape == (4, 8)
    with pytest.raises(PipelineError, match="no tensor matches"):
        load_weights(MLP((7,), 4, hidden=9), tmp_path / "w.pt")
    with pytest.raises(PipelineError, match="not found"):
        load_weights(dst, tmp_path / "missing.pt")


def test_label_smoothing_is_checked_where_the_model_is_made():
    ctx = ModelContext(task="multiclass", metric=get_metric("accuracy"), n_classes=10, image_shape=(1, 28, 28))
    assert create_model("cnn", ctx, label_smoothing=0.1).label_smoothing == 0.1
    with pytest.raises(PipelineError, match=r"label_smoothing must be in \[0, 1\), got 1.5"):
        create_model("cnn", ctx, label_smoothing=1.5)
    reg = ModelContext(task="regression", metric=get_metric("rmse"), image_shape=(1, 28, 28))
    with pytest.raises(PipelineError, match="classification"):
        create_model("resnet", reg, label_smoothing=0.1)


def test_search_space_feeds_the_factory():
    optuna = pytest.importorskip("optuna")
    entry = get_entry("mlp")
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    params = entry.search_space(study.ask())
    assert set(params) == {"hidden", "layers", "dropout", "lr", "weight_decay"}
    create_model("mlp", make_ctx("binary"), **params)
    with pytest.raises(PipelineError, match="unknown parameter"):
        create_model("cnn", make_ctx("binary"), depth=3)


def test_entries_declare_every_argument_they_take():
    # the training arguments' defaults live in one Recipe; each entry's `defaults` still lists them all
    takes = unknown_params("student_cnn", {})[1]
    assert {"width", "lr", "epochs", "patience", "augment", "temperature", "alpha"} <= set(takes)
    assert "tta" not in takes and unknown_params("mlp", {"temperature": 1.0})[0] == ["temperature"]
    assert get_entry("student_cnn").defaults["width"] == 16 and get_entry("student_cnn").defaults["lr"] == 5e-3
    assert get_entry("cnn").export == "onnx" and not get_entry("cnn").final_fit
    with pytest.raises(PipelineError, match="bogus"):
        create_model("cnn", make_ctx("multiclass"), bogus=1)


def test_small_nets_learn():
    X, y = make_data("tabular", "binary", n=300)
    X_tr, y_tr, X_va, y_va = split(X, y, 220)
    mlp = create_model("mlp", make_ctx("binary"), hidden=32, epochs=15, batch_size=16).fit(
        X_tr, y_tr, eval_set=(X_va, y_va)
    )
    assert get_metric("roc_auc")(y_va, mlp.predict_output(X_va), "binary") > 0.9
    tabm = create_model("tabm", make_ctx("binary"), k=8, width=32, layers=2, epochs=15, batch_size=16).fit(
        X_tr, y_tr, eval_set=(X_va, y_va)
    )
    assert get_metric("roc_auc")(y_va, tabm.predict_output(X_va), "binary") > 0.9
    X, y = make_data("image", "multiclass", n=300)
    X_tr, y_tr, X_va, y_va = split(X, y, 220)
    cnn = create_model("cnn", make_ctx("multiclass"), width=8, epochs=6, batch_size=16).fit(
        X_tr, y_tr, eval_set=(X_va, y_va)
    )
    assert get_metric("accuracy")(y_va, cnn.predict_output(X_va), "multiclass") > 0.8


@pytest.mark.parametrize("task", list(TASKS))
def test_a_net_of_k_members_is_scored_by_their_mean_and_trains_each_member(task):
    """TabM's logits (n, k, outputs): outputs are the mean of the members' (probabilities,
    or values), and the loss is the mean of each member's loss on the whole batch."""
    head = Head(task, mean=5.0, std=2.0) if task == "regression" else Head(task)
    logits = torch.randn(6, 4, n_outputs(task, TASKS[task][1]))
    y = torch.arange(6) % TASKS[task][1] if task != "regression" else torch.randn(6)
    members = torch.stack([head(logits[:, j]) for j in range(4)])
    torch.testing.assert_close(head(logits), members.mean(dim=0))
    each = torch.stack([head.loss(logits[:, j], y) for j in range(4)])
    torch.testing.assert_close(head.loss(logits, y), each.mean())


def test_tabm_embeds_the_numbers_and_passes_the_one_hot_columns():
    """TabM's piecewise-linear embeddings take the numeric columns (bins from the training
    rows), not the one-hot ones, nor a number with fewer than 3 values."""
    from dataclasses import replace

    X, y = make_data("tabular", "binary", n=200)
    X = X.assign(flag=np.arange(200) % 2)
    ctx = replace(make_ctx("binary"), roles={"numeric": ["a", "b", "c", "flag"], "categorical": ["color"]})
    model = create_model("tabm", ctx, **TINY["tabm"])
    x = model._fit_inputs(X, y)
    assert x.shape[1] == 6 and model.numeric_ == (0, 1, 2)  # a, b, c; not flag, nor the 2 colours
    assert all(10 < len(edges) <= 49 for edges in model.bins_)  # at most 48 bins: quantiles of the training rows
    model.input_shape_ = x.shape[1:]
    net = model._net(2)
    assert net.numeric.tolist() == [0, 1, 2] and net.rest.tolist() == [3, 4, 5]
    assert net(torch.as_tensor(x[:5])).shape == (5, 4, 2)  # (rows, k members, outputs)


def test_factories_cap_their_epochs_at_a_budget():
    from dataclasses import replace

    ctx = make_ctx("multiclass")  # epochs=2: the global upper bound wins
    roomy = replace(ctx, epochs=30)
    assert create_model("cnn", ctx).cfg.epochs == 2
    assert create_model("cnn", roomy).cfg.epochs == 20
    assert create_model("resnet", roomy).cfg.epochs == 15
    assert create_model("student_cnn", roomy).cfg.epochs == 20
    assert create_model("cnn", roomy, epochs=25).cfg.epochs == 25  # an explicit value is taken as is
    assert create_model("mlp", roomy).cfg.epochs == 30  # no budget: params' train.epochs


def test_resnet_width_scales_its_stages():
    from pipelines.models.nets import timm_net

    assert timm_net((1, 28, 28), 10, width=0.5).num_features == 256
    assert timm_net((1, 28, 28), 10).num_features == 512
    assert timm_net((1, 28, 28), 10, width=0.5, timm_kwargs={"channels": (8, 8, 8, 16)}).num_features == 16


def test_resnet_stem_keeps_its_max_pool_from_32_pixels():
    """Under 32 px the max-pool goes (28x28 digits reach the last stage at 2x2, not 1x1);
    from 32 px it stays, as in timm (a quarter of the multiply-adds)."""
    from torch import nn

    from pipelines.models.nets import timm_net

    assert isinstance(timm_net((1, 28, 28), 2, width=0.25).maxpool, nn.Identity)
    assert isinstance(timm_net((1, 32, 40), 2, width=0.25).maxpool, nn.MaxPool2d)


def test_elastic_augmentation_moves_strokes_but_keeps_their_mass():
    from pipelines.nn.data import DigitAugment

    torch.manual_seed(0)
    x = torch.zeros(8, 1, 28, 28)
    x[:, :, 6:22, 12:16] = 1.0  # a thick vertical stroke: a "1"
    plain = DigitAugment(shift=0, degrees=0, scale=0)
    bent = DigitAugment(shift=0, degrees=0, scale=0, elastic=1.5)
    torch.testing.assert_close(plain(x), x)  # no randomness left without elastic: identity
    y = bent(x)
    assert (y - x).abs().sum() > 1.0  # moved
    assert abs(float(y.sum() - x.sum())) / float(x.sum()) < 0.15  # a bend, not an erasure
    assert "elastic=1.5" in repr(bent) and "elastic" not in repr(plain)  # checkpoints tell them apart


def test_flips_mirror_some_images_whole_and_only_when_asked():
    from pipelines.nn.data import DigitAugment

    torch.manual_seed(0)
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, 0, 0] = 1.0  # a mark in the top-left corner: where it lands says how the image turned
    y = DigitAugment(shift=0, degrees=0, scale=0, flip=True)(x)
    corners = {(int(r), int(c)) for r, c in (y[:, 0] == 1).nonzero()[:, 1:].tolist()}
    assert corners == {(0, 0), (0, 7), (7, 0), (7, 7)}  # each of the four turns, nothing in between
    torch.testing.assert_close(y.sum(dim=(1, 2, 3)), x.sum(dim=(1, 2, 3)))
    assert "flip" in repr(DigitAugment(flip=True)) and "flip" not in repr(DigitAugment())


def test_regression_outputs_stay_in_the_training_range_in_torch_and_onnx(tmp_path):
    model, X_va = fitted("mlp", "regression")
    X, y = make_data("tabular", "regression")
    assert model.y_range_ == (float(y[:36].min()), float(y[:36].max()))  # the training rows' targets
    raw = model.predict_output(X_va)
    low, high = np.quantile(raw, [0.25, 0.75])
    model.y_range_ = (float(low), float(high))  # a narrow range, so that clipping must bite at both ends
    out = model.predict_output(X_va)
    np.testing.assert_allclose(out, np.clip(raw, low, high))
    assert (out == low).sum() >= 2 and (out == high).sum() >= 2
    path = export_onnx(model, tmp_path / "mlp.onnx")  # the graph clips too: parity holds
    np.testing.assert_allclose(onnx_predict(model, X_va, path), out, atol=1e-4)
