"""Fine-tuned pretrained backbones (`models/finetune.py`) and what they need of the loop and of
cross-validation: a body trained at its own rate, batches of like length, predictions put back
in order, folds merged into fewer fits, ONNX export of the fine-tuned nets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipelines.core.context import ModelContext
from pipelines.core.errors import PipelineError
from pipelines.core.metrics import get_metric
from pipelines.models.registry import create_model, get_entry
from pipelines.nn.data import LengthBuckets, TokenDataset
from pipelines.nn.loop import TrainConfig, make_loader, make_optimizer
from tests.test_text import _checkpoint, context, frames


def test_length_buckets_cover_every_row_once_and_batch_like_lengths():
    lengths = np.random.default_rng(0).integers(1, 100, size=1000)
    ids = np.zeros((1000, 100), dtype=np.int32)
    for i, n in enumerate(lengths):
        ids[i, :n] = 7
    data = TokenDataset(ids, pad_id=0)
    assert np.array_equal(data.lengths, lengths)
    loader = make_loader(data, TrainConfig(batch_size=10, buckets=True), seed=3, world=1, rank=0)
    assert isinstance(loader.sampler, LengthBuckets)
    loader.sampler.sampler.set_epoch(0)
    first = list(loader.sampler)
    assert sorted(i for b in first for i in b) == list(range(1000))  # 1000 = 100 full batches
    spread = np.mean([np.ptp(lengths[b]) for b in first])
    assert spread < 10, spread  # random batches of 10 span about 80 tokens
    assert first == list(loader.sampler)  # the same seed and epoch: the same batches
    loader.sampler.sampler.set_epoch(1)
    assert first != list(loader.sampler)
    plain = make_loader(data, TrainConfig(batch_size=10), seed=3, world=1, rank=0)
    assert not isinstance(plain.sampler, LengthBuckets)


def test_a_pretrained_body_trains_at_its_share_of_the_rate():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.head = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)

        def body_parameters(self):
            return list(self.body.parameters())

    net = Net()
    groups = make_optimizer(net, TrainConfig(lr=1e-3, body_lr=0.1)).param_groups
    rates = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert rates[id(net.head.weight)] == pytest.approx(1e-3) and rates[id(net.body.weight)] == pytest.approx(1e-4)
    assert rates[id(net.body.bias)] == pytest.approx(1e-4) and len(rates) == 4
    plain = make_optimizer(torch.nn.Linear(4, 2), TrainConfig(lr=1e-3, body_lr=0.1)).param_groups
    assert [g["lr"] for g in plain] == [1e-3, 1e-3]  # no body: one rate, as before


def test_text_finetune_learns_predicts_in_order_and_exports(tmp_path):
    from pipelines.models.onnx_export import export_onnx, onnx_predict

    X, y, X_test, y_test, roles = frames()
    torch.manual_seed(0)  # the tiny checkpoint's random weights: the same whichever tests ran before
    folder = _checkpoint(tmp_path / "tiny-bert", X["message"].tolist())
    model = create_model("text_finetune", context(roles), weights=str(folder), epochs=3, lr=3e-3, batch_size=8)
    p = model.fit(X, y, eval_set=(X_test, y_test)).predict_output(X_test)
    assert p.shape == (len(X_test),) and model.cfg.buckets and model.cfg.body_lr == 0.08
    one_by_one = np.concatenate([model.predict_output(X_test.iloc[[i]]) for i in range(len(X_test))])
    np.testing.assert_allclose(p, one_by_one, atol=1e-5)  # shortest first, then put back in order
    assert ((p > 0.5) == y_test).mean() > 0.7
    path = export_onnx(model, tmp_path / "text.onnx")
    np.testing.assert_allclose(onnx_predict(model, X_test, path), p, atol=1e-4)
    assert get_entry("text_finetune").pretrained and get_entry("text_finetune").search_space is not None
    with pytest.raises(PipelineError, match="needs pretrained weights"):
        create_model("text_finetune", context(roles))


def _timm_weights(tmp_path, arch: str):
    import timm
    from safetensors.torch import save_file

    path = tmp_path / f"{arch}.safetensors"
    save_file(timm.create_model(arch, num_classes=1000).state_dict(), path)
    return path


def _images(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 120, size=(n, 1, 24, 24), dtype=np.uint8)
    y = rng.integers(0, 2, size=n)
    X[y == 1, :, 8:16, 8:16] = 250  # a bright square: the class
    return X, y


def test_image_finetune_loads_the_backbone_resizes_and_exports(tmp_path):
    from pipelines.models.onnx_export import export_onnx, onnx_predict

    weights = _timm_weights(tmp_path, "resnet10t")
    ctx = ModelContext(task="binary", metric=get_metric("roc_auc"), n_classes=2, image_shape=(1, 24, 24))
    X, y = _images(96)
    model = create_model("image_finetune", ctx, weights=str(weights), arch="resnet10t", size=32, epochs=4)
    p = model.fit(X[:64], y[:64], eval_set=(X[64:], y[64:])).predict_output(X[64:])
    net = model.net_
    assert p.shape == (32,) and net.size == 32 and np.all((p >= 0) & (p <= 1))
    assert np.allclose(model.mean_, [np.mean((0.485, 0.456, 0.406))])  # the backbone's statistics, not the data's
    head = {id(q) for q in net.net.get_classifier().parameters()}
    assert head and not head & {id(q) for q in net.body_parameters()}
    path = export_onnx(model, tmp_path / "image.onnx")
    np.testing.assert_allclose(onnx_predict(model, X[64:], path), p, atol=1e-4)
    assert get_entry("image_finetune").defaults["tta"] is True


def test_image_finetune_starts_from_the_weights(tmp_path):
    """The body holds the checkpoint's tensors (the classifier is new); a checkpoint of another
    architecture fails in one line."""
    from safetensors.torch import load_file

    weights = _timm_weights(tmp_path, "resnet10t")
    ctx = ModelContext(task="multiclass", metric=get_metric("accuracy"), n_classes=3, image_shape=(3, 32, 32))
    net = create_model("image_finetune", ctx, weights=str(weights), arch="resnet10t").build((3, 32, 32), 3)
    state = load_file(weights)
    assert torch.equal(net.net.state_dict()["conv1.0.weight"], state["conv1.0.weight"]) and net.size == 64
    assert net.net.get_classifier().out_features == 3
    with pytest.raises(PipelineError, match=r"do not fit .*missing"):
        create_model("image_finetune", ctx, weights=str(weights), arch="resnet18").build((3, 32, 32), 3)


def test_merged_folds_predict_every_row_out_of_fold(tmp_path):
    from pipelines.training.cv import CVOptions, FoldData, cross_validate, fitted_models

    X, y, X_test, _, roles = frames()
    folds = np.arange(len(y)) % 5
    ctx = context(roles)
    data = FoldData(X, y, X_test, folds)
    full = cross_validate("tfidf_linear", {}, data, ctx, CVOptions())
    two = cross_validate("tfidf_linear", {}, data, ctx, CVOptions(max_folds=2, cache_dir=tmp_path))
    assert two.fold_fits == 2 and full.fold_fits == 5
    assert len(two.fold_scores) == 5 and two.fold_train.shape == full.fold_train.shape
    for k in range(5):  # fold k's teacher is the fit that held fold k out: its outputs there are the OOF
        np.testing.assert_allclose(two.fold_train[k][folds == k], two.oof[folds == k])
    assert not np.allclose(two.oof, full.oof)
    assert sorted(p.name for p in next(tmp_path.iterdir()).glob("fold*.npz")) == ["fold0.npz", "fold1.npz"]
    refitted = list(fitted_models("tfidf_linear", {}, data, ctx, CVOptions(max_folds=2, cache_dir=tmp_path)))
    assert [k for k, _, _ in refitted] == [0, 1]  # export fits the merged folds again, as train did
    for _, est, cached in refitted:
        np.testing.assert_allclose(est.predict_output(X_test), cached)
    with pytest.raises(ValueError, match="at least 2"):
        cross_validate("tfidf_linear", {}, data, ctx, CVOptions(max_folds=1))
