"""The shared torch loop: schedule, heads and KD loss, early stopping, checkpoints and
resume (bit-identical after a crash), pruning, augmentation, and DDP on 2 CPU processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pipelines.core.context import ModelContext
from pipelines.core.metrics import get_metric
from pipelines.nn.checkpoint import FINAL, LAST, seed_everything
from pipelines.nn.data import DigitAugment, ImageDataset, TabularDataset, shift
from pipelines.nn.ema import EMA
from pipelines.nn.heads import Distill, Head
from pipelines.nn.loop import TrainConfig, lr_factor, predict, train

ROOT = Path(__file__).resolve().parents[1]


def blobs(n=400, d=6, seed=0):
    """Binary labels from a random hyperplane: easy, but not trivially so after noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x @ rng.normal(size=d) + 0.3 * rng.normal(size=n) > 0).astype(np.int64)
    return x, y


def make_ctx(tmp_path=None, **kw):
    kw.setdefault("task", "binary")
    kw.setdefault("metric", get_metric("accuracy"))
    return ModelContext(n_classes=2, progress=False, checkpoint_dir=tmp_path, **kw)


def small_net(d=6, k=2):
    seed_everything(42)
    # dropout and BatchNorm on purpose: resume must restore RNG streams and buffers too
    return nn.Sequential(nn.Linear(d, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, k))


CFG = TrainConfig(epochs=6, batch_size=32, lr=1e-2, patience=100, ema_decay=0.9)


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    f = [lr_factor(s, warmup=10, total=100, min_lr=0.01) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[9:], f[10:], strict=False))  # cosine never goes back up
    assert lr_factor(100, warmup=10, total=100, min_lr=0.01) == pytest.approx(0.01)


def test_head_outputs_follow_the_contract():
    logits = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    p = Head("binary")(logits)
    assert p.shape == (2,) and torch.allclose(p, logits.softmax(1)[:, 1])
    assert torch.allclose(Head("multiclass")(logits).sum(1), torch.ones(2))
    head = Head.fit("regression", np.array([10.0, 20.0, 30.0]))
    assert torch.allclose(head(torch.tensor([[0.0], [1.0]])), torch.tensor([20.0, 20.0 + float(np.std([10, 20, 30]))]))
    # the regression loss works on the standardised scale: a perfect prediction costs 0
    assert head.loss(torch.tensor([[-1.224745], [0.0]]), torch.tensor([10.0, 20.0])).item() < 1e-10


def test_label_smoothing_mixes_a_uniform_target_into_the_loss():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    y = torch.tensor([0, 2])
    logp = logits.log_softmax(1)
    eps = 0.3
    target = torch.full((2, 3), eps / 3) + (1 - eps) * torch.nn.functional.one_hot(y, 3)
    want = -(target * logp).sum(1).mean()
    assert Head("multiclass", label_smoothing=eps).loss(logits, y).item() == pytest.approx(want.item(), rel=1e-6)
    assert Head("multiclass").loss(logits, y).item() == pytest.approx(-logp[[0, 1], y].mean().item(), rel=1e-6)
    # a smoothed head is another fit: it must not reuse a plain fit's checkpoint
    assert repr(Head("multiclass", label_smoothing=eps)) != repr(Head("multiclass"))
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="label_smoothing"):
            Head("multiclass", label_smoothing=bad)
    with pytest.raises(ValueError, match="regression"):
        Head("regression", label_smoothing=0.1)


def test_distillation_loss_mixes_teacher_and_labels():
    head = Head("multiclass")
    logits = torch.randn(8, 3)
    y = torch.randint(0, 3, (8,))
    teacher = torch.softmax(torch.randn(8, 3), 1)
    assert torch.allclose(Distill(head, 2.0, alpha=0.0)(logits, y, teacher), head.loss(logits, y))
    # a student that already matches the teacher has nothing left to learn from it
    own = torch.softmax(logits, 1)
    assert Distill(head, 3.0, alpha=1.0)(logits, y, own).item() == pytest.approx(0.0, abs=1e-5)
    assert Distill(head, 3.0, alpha=1.0)(logits, y, teacher).item() > 0.0
    # binary soft targets are P(class 1), as the registry contract stores them
    b = Distill(Head("binary"), 1.0, alpha=1.0)(logits[:, :2], y.clamp(max=1), own[:, 1] / own[:, :2].sum(1))
    assert b.item() == pytest.approx(0.0, abs=1e-5)
    reg = Head.fit("regression", np.array([0.0, 2.0]))
    out = torch.tensor([[1.0], [-1.0]])  # standardised: exactly the values 2 and 0
    assert Distill(reg, alpha=1.0)(out, torch.zeros(2), torch.tensor([2.0, 0.0])).item() == pytest.approx(0.0)


def test_ema_follows_the_weights_with_a_lag():
    net = nn.Linear(2, 1)
    ema = EMA(net, decay=0.5)
    with torch.no_grad():
        net.weight.add_(1.0)
    before = ema.module.weight.clone()
    ema.update(net, step=1)
    assert torch.all(ema.module.weight > before) and torch.all(ema.module.weight < net.weight)


def test_train_learns_and_keeps_the_best_epoch():
    x, y = blobs()
    net, head = small_net(), Head("binary")
    result = train(
        net, head, TabularDataset(x[:300], y[:300]), TabularDataset(x[300:]), y[300:], ctx=make_ctx(), cfg=CFG
    )
    assert result.best_score > 0.85 and result.epochs_run == CFG.epochs
    scores = [h["score"] for h in result.history]
    assert result.best_score == max(scores) and scores[result.best_epoch] == result.best_score
    # the net holds the best epoch's weights: its predictions score exactly that
    assert get_metric("accuracy")(y[300:], predict(net, head, TabularDataset(x[300:])), "binary") == result.best_score


def test_max_images_caps_the_epochs_of_a_large_set_only():
    cfg = replace(CFG, epochs=20, max_images=400_000)
    assert cfg.for_rows(3_200).epochs == 20 and cfg.for_rows(28_000).epochs == 14 and cfg.for_rows(10**7).epochs == 1
    assert replace(CFG, epochs=20).for_rows(10**7).epochs == 20  # no cap without max_images
    x, y = blobs()
    result = train(small_net(), Head("binary"), TabularDataset(x, y), ctx=make_ctx(), cfg=replace(CFG, max_images=800))
    assert result.epochs_run == 2  # 800 images of 400 rows


def test_early_stopping_ends_the_fit_after_patience_bad_epochs():
    x, y = blobs()
    # validation labels inverted: the better the fit, the worse the score
    cfg = replace(CFG, epochs=20, patience=2)
    result = train(
        small_net(),
        Head("binary"),
        TabularDataset(x[:300], y[:300]),
        TabularDataset(x[300:]),
        1 - y[300:],
        ctx=make_ctx(),
        cfg=cfg,
    )
    assert result.epochs_run == result.best_epoch + 1 + cfg.patience < cfg.epochs


class Crashing(TabularDataset):
    """Raises after `after` batches: a crash in the middle of an epoch."""

    def __init__(self, x, y, after):
        super().__init__(x, y)
        self.after, self.calls = after, 0

    def __getitem__(self, idx):
        self.calls += 1
        if self.calls > self.after:
            raise KeyboardInterrupt("simulated crash")
        return super().__getitem__(idx)

    def fingerprint(self):  # the same data as the plain dataset, so the checkpoint applies
        return TabularDataset(self.x, *self.targets).fingerprint()


def fit_blobs(ckpt_dir, train_set):
    """The fit every resume test repeats: blobs, small net, CFG; returns (result, val outputs)."""
    x, y = blobs()
    val = TabularDataset(x[300:])
    net = small_net()
    result = train(net, Head("binary"), train_set, val, y[300:], ctx=make_ctx(ckpt_dir), cfg=CFG)
    return result, predict(net, Head("binary"), val)


@pytest.fixture(scope="module")
def reference():
    x, y = blobs()
    return fit_blobs(None, TabularDataset(x[:300], y[:300]))


def test_resume_after_a_crash_gives_the_uninterrupted_result(tmp_path, reference):
    x, y = blobs()
    ref, ref_pred = reference
    # 9 batches per epoch (+1 probe of the first row): crash in the middle of epoch 3
    with pytest.raises(KeyboardInterrupt):
        fit_blobs(tmp_path, Crashing(x[:300], y[:300], after=1 + 9 * 3 + 4))
    assert (tmp_path / LAST).is_file() and not (tmp_path / FINAL).exists()
    resumed, pred = fit_blobs(tmp_path, TabularDataset(x[:300], y[:300]))
    assert resumed.resumed_epoch == 2
    np.testing.assert_array_equal(pred, ref_pred)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in ref.history]
    # finished: the big epoch checkpoint is gone and a re-run only reloads the best weights
    assert not (tmp_path / LAST).exists() and (tmp_path / FINAL).is_file()
    again, pred_again = fit_blobs(tmp_path, TabularDataset(x[:300], y[:300]))
    assert again.reloaded and again.best_score == ref.best_score
    np.testing.assert_array_equal(pred_again, ref_pred)


KILLED_FIT = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from test_torch_loop import blobs, fit_blobs
from pipelines.nn.data import TabularDataset

class Stalling(TabularDataset):  # says when it is in the middle of epoch 1, then waits for the kill
    calls = 0

    def __getitem__(self, idx):
        self.calls += 1
        if self.calls == 1 + 9 + 4:  # the first-row probe, epoch 0's 9 batches, 4 of epoch 1's
            Path(sys.argv[3]).touch()
            time.sleep(120)
        return super().__getitem__(idx)

x, y = blobs()
fit_blobs(sys.argv[1], Stalling(x[:300], y[:300]))
"""


def test_resume_after_sigkill_in_another_process(tmp_path, reference):
    x, y = blobs()
    ckpt, mid_epoch = tmp_path / "ckpt", tmp_path / "mid_epoch"
    cmd = [sys.executable, "-c", KILLED_FIT, str(ckpt), str(Path(__file__).parent), str(mid_epoch)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not mid_epoch.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.kill()
    stderr = proc.communicate()[1]
    assert mid_epoch.exists() and proc.returncode == -signal.SIGKILL, stderr[-3000:]
    assert (ckpt / LAST).is_file() and not (ckpt / FINAL).exists()
    resumed, pred = fit_blobs(ckpt, TabularDataset(x[:300], y[:300]))
    assert resumed.resumed_epoch == 0  # epoch 0's checkpoint; epoch 1 was cut short
    np.testing.assert_array_equal(pred, reference[1])


def test_a_checkpoint_of_another_config_or_data_is_not_resumed(tmp_path):
    x, y = blobs()
    train(
        small_net(),
        Head("binary"),
        TabularDataset(x[:300], y[:300]),
        ctx=make_ctx(tmp_path),
        cfg=replace(CFG, epochs=2),
    )
    other_cfg = train(
        small_net(),
        Head("binary"),
        TabularDataset(x[:300], y[:300]),
        ctx=make_ctx(tmp_path),
        cfg=replace(CFG, epochs=2, lr=5e-3),
    )
    assert not other_cfg.reloaded and other_cfg.resumed_epoch is None
    other_data = train(
        small_net(),
        Head("binary"),
        TabularDataset(x[:300], 1 - y[:300]),
        ctx=make_ctx(tmp_path),
        cfg=replace(CFG, epochs=2, lr=5e-3),
    )
    assert not other_data.reloaded


class FakeTrial:
    def __init__(self, prune_at):
        self.prune_at, self.reported = prune_at, []

    def report(self, value, step):
        self.reported.append((step, value))

    def should_prune(self):
        return len(self.reported) > self.prune_at


def test_optuna_pruning_stops_a_bad_trial():
    optuna = pytest.importorskip("optuna")
    x, y = blobs()
    trial = FakeTrial(prune_at=2)
    with pytest.raises(optuna.TrialPruned):
        train(
            small_net(),
            Head("binary"),
            TabularDataset(x[:300], y[:300]),
            TabularDataset(x[300:]),
            y[300:],
            ctx=make_ctx(trial=trial),
            cfg=CFG,
        )
    assert [step for step, _ in trial.reported] == [0, 1, 2]


def test_digit_augment_moves_pixels_but_keeps_range_and_is_seeded():
    x = torch.zeros(16, 1, 28, 28)
    x[:, :, 10:18, 12:16] = 1.0
    torch.manual_seed(0)
    a = DigitAugment()(x)
    torch.manual_seed(0)
    b = DigitAugment()(x)
    assert torch.equal(a, b) and a.shape == x.shape
    assert a.min() >= 0 and a.max() <= 1 and not torch.equal(a, x)
    ones = torch.ones(4, 1, 28, 28)
    holes = DigitAugment(shift=0, degrees=0, scale=0, cutout=4, p_cutout=1.0)(ones)
    assert ((holes - ones).abs() < 1e-6).sum() >= 4 * (28 * 28 - 25) and holes.min() == 0  # 5x5 holes
    s = shift(x, 2, -1)
    assert torch.equal(s[:, :, 12:20, 11:15], x[:, :, 10:18, 12:16]) and s.sum() == x.sum()


def test_image_dataset_standardises_and_gathers_batches():
    imgs = np.random.default_rng(0).integers(0, 256, size=(10, 2, 4, 4), dtype=np.uint8)
    ds = ImageDataset(imgs, np.arange(10), mean=[0.5, 0.2], std=[0.25, 0.1])
    x, y = ds[[3, 1]]
    assert x.shape == (2, 2, 4, 4) and y.tolist() == [3, 1]
    np.testing.assert_allclose(x[0, 1].numpy(), (imgs[3, 1] / 255 - 0.2) / 0.1, rtol=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset(imgs.astype(np.float32), mean=[0], std=[1])


def test_ddp_on_two_cpu_processes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "pipelines.nn.ddp_check",
        "--checkpoint-dir",
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "ddp_check world=2" in proc.stdout and "params_equal=True" in proc.stdout
    assert (tmp_path / FINAL).is_file()  # rank 0 wrote the finished checkpoint


def test_a_killed_writers_temporary_checkpoint_is_swept(tmp_path):
    from pipelines.nn.checkpoint import save_checkpoint

    stale = tmp_path / f".{LAST}.999999999.abc.tmp"  # left by a SIGKILLed run (no such pid)
    stale.write_bytes(b"torn")
    save_checkpoint(tmp_path / LAST, {"x": torch.zeros(2)})
    assert sorted(p.name for p in tmp_path.iterdir()) == [LAST]
    assert torch.load(tmp_path / LAST, weights_only=True)["x"].shape == (2,)


def test_a_tied_validation_score_keeps_the_later_epoch():
    from pipelines.core.metrics import Metric

    flat = Metric("flat", lambda y, p, task: 0.5, True, ("binary",), "labels")  # every epoch ties
    x, y = blobs(200)
    ctx = make_ctx(metric=flat)
    res = train(small_net(), Head("binary"), TabularDataset(x[:150], y[:150]), TabularDataset(x[150:]), y[150:],
                ctx=ctx, cfg=CFG)  # fmt: skip
    assert res.best_epoch == CFG.epochs - 1 and res.best_score == 0.5
