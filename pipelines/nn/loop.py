"""The one torch training loop every torch model uses (nanoGPT style: read it top to bottom).

    result = train(net, head, train_set, val_set, y_val, ctx=ctx, cfg=TrainConfig(...))
    outputs = predict(net, head, test_set)

`train` fits `net` in place and leaves in it the weights that scored best on the validation
rows with the competition's metric (`ctx.metric`; a tie goes to the later epoch); with EMA on,
those are EMA weights.
What it does, in order: AdamW (no decay on biases and norms), linear warmup then cosine
decay per step, gradient clipping, EMA of the weights (`ema`), early stopping, mixed
precision where it pays (CUDA only: bf16 autocast on CPU was 8x slower here), channels_last
for images, optional Optuna pruning (`ctx.trial`), and torch DDP when launched by `torchrun`
(`distributed`).

Checkpoints (when `ctx.checkpoint_dir` is set; `checkpoint`): after every epoch `last.pt` is
replaced atomically with everything needed to continue bit for bit (weights, EMA, optimizer,
scheduler, progress, RNG states); a later call with the same net, data and config resumes
from it. A finished fit writes `final.pt` (best weights and the result) and drops
`last.pt`, so a re-run only reloads. Both carry a fingerprint of net, data and config, and
are ignored (overwritten) when it does not match.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, SequentialSampler
from tqdm.auto import tqdm

from pipelines.core.budget import FitClock
from pipelines.core.context import EPOCHS
from pipelines.core.progress import bar as tqdm_bar
from pipelines.nn.checkpoint import (
    FINAL,
    LAST,
    Progress,
    load_checkpoint,
    make_fingerprint,
    restore,
    save_checkpoint,
    seed_everything,
    seed_worker,
    snapshot,
)
from pipelines.nn.data import LengthBuckets
from pipelines.nn.distributed import broadcast, configure_torch, mean_over_ranks, setup_distributed, unwrap, wrap

if TYPE_CHECKING:
    from pipelines.nn.ema import EMA


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = EPOCHS  # upper bound; early stopping usually ends sooner
    batch_size: int = 128
    lr: float = 1e-3  # peak learning rate, reached at the end of warmup
    weight_decay: float = 1e-4  # AdamW's decoupled decay, matrices and kernels only
    warmup: float = 0.05  # fraction of all steps spent warming up linearly
    min_lr: float = 0.01  # cosine decays to lr * min_lr
    grad_clip: float = 1.0  # max global gradient norm; 0 disables
    patience: int = 5  # epochs without a better validation score before stopping
    ema_decay: float = 0.999  # capped at 1 - 1/steps per epoch; 0 disables EMA (raw weights evaluated)
    amp: str = "auto"  # auto (bf16/fp16 on CUDA, none on CPU) | bf16 | fp16 | off
    eval_batch_size: int = 1024
    num_workers: int = 0  # DataLoader workers; 0 was fastest here (batches are one gather)
    max_images: int | None = None  # caps epochs at what shows the net about this many training rows
    body_lr: float = 1.0  # a pretrained body's learning rate as a share of `lr` (the net's `body_parameters()`)
    buckets: bool = False  # texts: batches of like length from pools of 50 batches ("smart batching")

    def for_rows(self, n_rows: int) -> TrainConfig:
        """This config for `n_rows` training rows: with `max_images`, at most
        round(max_images / n_rows) epochs (at least one), so a large set costs no more than
        that many images per fit; a small one keeps `epochs`."""
        if self.max_images is None:
            return self
        return replace(self, epochs=min(self.epochs, max(1, round(self.max_images / max(1, n_rows)))))


@dataclass
class FitResult:
    best_score: float | None  # None without validation rows
    best_epoch: int
    epochs_run: int
    history: list[dict] = field(default_factory=list)  # per epoch: loss, score, lr, seconds
    resumed_epoch: int | None = None  # the epoch a checkpoint let us start after
    reloaded: bool = False  # True when a finished fit was only reloaded
    budget_cut: str | None = None  # what the time budget cut short (`FitClock.note`), None when it did not


def train(
    net: nn.Module,
    head: nn.Module,
    train_set: Dataset,
    val_set: Dataset | None = None,
    y_val: np.ndarray | None = None,
    *,
    ctx,
    cfg: TrainConfig,
    loss_fn=None,
) -> FitResult:
    """Fit `net` on `train_set` (batches: input, targets...) with early stopping on `val_set`."""
    world, rank, device = setup_distributed()
    configure_torch(ctx.threads, ctx.deterministic, world)
    cfg = cfg.for_rows(len(train_set))
    images = train_set[[0]][0].dim() == 4
    seed_everything(ctx.seed)
    loss_fn = loss_fn or head.loss
    net.to(device, memory_format=torch.channels_last if images else torch.preserve_format)  # 1.4x faster CNN here
    head.to(device)

    ckpt_dir = Path(ctx.checkpoint_dir) if ctx.checkpoint_dir is not None else None
    fingerprint = make_fingerprint(net, head, loss_fn, train_set, val_set, cfg, ctx.seed, world)
    final = load_checkpoint(ckpt_dir, FINAL, fingerprint)
    if final is not None:
        net.load_state_dict(final["state"])
        return FitResult(**final["result"], reloaded=True)

    parts = make_parts(net, train_set, cfg, ctx.seed, world, rank, device)
    ckpt = load_checkpoint(ckpt_dir, LAST, fingerprint)
    progress = restore(ckpt, parts) if ckpt is not None else Progress()
    resumed_epoch = progress.epoch if ckpt is not None else None
    writer_dir = ckpt_dir if rank == 0 else None  # rank 0 writes the checkpoints

    clock = FitClock(ctx.fit_seconds, progress.history, world)
    with progress_bar(parts, progress, cfg, show=ctx.progress and rank == 0) as bar:
        for epoch in range(progress.epoch + 1, cfg.epochs):
            # early stopping (or the budget); checked first because a resumed fit may have run out of patience.
            # Rank 0 decides: epoch times (the budget) differ between ranks, the collectives must not
            if broadcast(clock.stops(progress.history, progress.bad_epochs >= cfg.patience), world):
                break
            t0 = time.perf_counter()
            parts.loader.sampler.sampler.set_epoch(epoch)  # a fresh, seeded shuffle per epoch (and per rank)
            parts.loader.generator.manual_seed(ctx.seed + epoch)  # worker seeds, when there are workers
            loss, share = train_epoch(parts, loss_fn, cfg, bar, world, clock.stop_at)
            score = None
            if val_set is not None:
                score = broadcast(evaluate(parts.eval_net, head, val_set, y_val, ctx.metric, ctx.task, cfg), world)
                progress.record_score(epoch, score, parts.eval_net, ctx.metric)
            progress.end_epoch(epoch, loss, score, parts.scheduler.get_last_lr()[0], time.perf_counter() - t0, share)
            bar.set_postfix(epoch=epoch, loss=f"{loss:.4f}", score=score, best=progress.best_score)
            if writer_dir is not None:
                save_checkpoint(writer_dir / LAST, snapshot(fingerprint, parts, progress))
            if ctx.trial is not None and score is not None:
                report_to_trial(ctx.trial, score, epoch)
            if clock.within_epoch(share):
                break
    return finish(
        net, parts, progress, resumed_epoch, fingerprint, writer_dir, clock.note(progress.history, cfg.epochs)
    )


@dataclass
class Parts:
    """The torch objects of one fit: what an epoch steps and a checkpoint saves."""

    net: nn.Module
    model: nn.Module  # what the batches go through: `net`, or its DDP wrapper under torchrun
    loader: DataLoader
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    ema: EMA | None
    amp_dtype: torch.dtype | None
    device: torch.device

    @property
    def eval_net(self) -> nn.Module:
        """The weights that are validated and kept: the EMA's when there is one."""
        return self.ema.module if self.ema is not None else self.net


def make_parts(net: nn.Module, train_set: Dataset, cfg: TrainConfig, seed: int, world: int, rank: int, device) -> Parts:
    loader = make_loader(train_set, cfg, seed, world, rank)
    total_steps = cfg.epochs * len(loader)
    model = wrap(net, world, device)
    ema = None
    if cfg.ema_decay > 0:
        from pipelines.nn.ema import EMA  # imported here: timm takes seconds to import

        # average over at most about an epoch: with few steps per epoch (small tables) a fixed
        # 0.999 would still remember the random init when early stopping ends the fit
        ema = EMA(net, decay=min(cfg.ema_decay, 1 - 1 / len(loader)))
    optimizer = make_optimizer(net, cfg)
    warmup = max(1, int(cfg.warmup * total_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(lr_factor, warmup=warmup, total=total_steps, min_lr=cfg.min_lr)
    )
    amp_dtype = autocast_dtype(device, cfg.amp)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)  # bf16 needs no scaling
    return Parts(net, model, loader, optimizer, scheduler, scaler, ema, amp_dtype, device)


def progress_bar(parts: Parts, progress: Progress, cfg: TrainConfig, *, show: bool) -> tqdm:
    steps = len(parts.loader)
    return tqdm_bar(
        total=cfg.epochs * steps,
        initial=(progress.epoch + 1) * steps,
        desc=f"{type(parts.net).__name__} ({parts.device.type})",
        show=show,
    )


def finish(
    net, parts: Parts, progress: Progress, resumed_epoch, fingerprint: str, ckpt_dir: Path | None, budget_cut=None
) -> FitResult:
    """Leave the best weights in `net`; with `ckpt_dir`, write `final.pt` there and drop `last.pt`."""
    net.load_state_dict(progress.best_state or parts.eval_net.state_dict())
    result = FitResult(
        progress.best_score,
        progress.best_epoch,
        progress.epoch + 1,
        progress.history,
        resumed_epoch,
        budget_cut=budget_cut,
    )
    if ckpt_dir is not None:
        record = asdict(result)
        del record["reloaded"]
        save_checkpoint(ckpt_dir / FINAL, {"fingerprint": fingerprint, "state": net.state_dict(), "result": record})
        (ckpt_dir / LAST).unlink(missing_ok=True)  # the finished marker makes it redundant (and it is big)
    return result


def train_epoch(
    parts: Parts, loss_fn, cfg: TrainConfig, bar, world: int = 1, stop_at: float | None = None
) -> tuple[float, float]:
    """One pass over the training batches (with `stop_at`, a `time.monotonic()` past which it
    stops after the batch at hand); returns the mean training loss (over every rank's rows)
    and the share of the epoch's batches it stepped."""
    model, optimizer, scaler, device = parts.model, parts.optimizer, parts.scaler, parts.device
    model.train()
    total, count, steps = torch.zeros((), device=device), 0, 0
    for batch in parts.loader:
        if stop_at is not None and count and time.monotonic() > stop_at:
            break
        x, *targets = (t.to(device, non_blocking=True) for t in batch)
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, parts.amp_dtype):
            logits = model(x)
        loss = loss_fn(logits.float(), *targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.grad_clip > 0:
            scaler.unscale_(optimizer)  # clip the true gradients, not the fp16-scaled ones
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        parts.scheduler.step()
        if parts.ema is not None:
            parts.ema.update(unwrap(model), step=parts.scheduler.last_epoch)  # the scheduler counts the steps
        total += loss.detach() * len(x)
        count += len(x)
        steps += 1
        bar.update()
    return mean_over_ranks(total, count, world), steps / max(1, len(parts.loader))


@torch.inference_mode()
def predict(
    net: nn.Module, head: nn.Module, dataset: Dataset, *, batch_size: int = 1024, amp: str = "auto"
) -> np.ndarray:
    """Contract outputs of `net` for every row of `dataset`, in order (float64). A dataset with
    `lengths` (bucketed texts) is run shortest first, so each batch pads little, and put back."""
    device = next(net.parameters()).device
    head.to(device)
    amp_dtype = autocast_dtype(device, amp)
    was_training = net.training
    net.eval()
    lengths = getattr(dataset, "lengths", None)
    order = SequentialSampler(dataset) if lengths is None else np.argsort(lengths, kind="stable").tolist()
    loader = DataLoader(dataset, sampler=BatchSampler(order, batch_size, False), batch_size=None)
    out = []
    for batch in loader:
        x = batch[0].to(device, non_blocking=True)
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp_dtype):
            logits = net(x)
        out.append(head(logits.double()).cpu())  # float64 so probabilities sum to 1 for log loss
    net.train(was_training)
    outputs = torch.cat(out).numpy()
    if lengths is not None:
        outputs[np.asarray(order)] = outputs.copy()
    return outputs


def evaluate(net, head, dataset, y, metric, task, cfg) -> float:
    """The competition metric on the validation rows; a diverged net scores worst, not an error."""
    outputs = predict(net, head, dataset, batch_size=cfg.eval_batch_size, amp=cfg.amp)
    if not np.isfinite(outputs).all():
        return -math.inf if metric.greater_is_better else math.inf
    return metric(y, outputs, task)


# --- small helpers ---------------------------------------------------------------------


def lr_factor(step: int, *, warmup: int, total: int, min_lr: float) -> float:
    """Multiplier of the peak lr at `step`: linear warmup, then cosine down to `min_lr`."""
    # not transformers' get_cosine_with_min_lr_schedule_with_warmup: its warmup starts at lr 0, ours at lr / warmup
    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_lr + (1 - min_lr) * 0.5 * (1 + math.cos(math.pi * t))


def make_optimizer(net: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; biases and norm weights (1-D) are not decayed, as in nanoGPT and timm. A net
    with a pretrained body (`body_parameters()`) trains it at `cfg.body_lr` times the head's
    rate: fine-tuning moves the body a little and the new head a lot."""
    params = [p for p in net.parameters() if p.requires_grad]
    body = {id(p) for p in net.body_parameters()} if hasattr(net, "body_parameters") else set()
    groups = []
    for part, scale in ((lambda p: id(p) not in body, 1.0), (lambda p: id(p) in body, cfg.body_lr)):
        mine = [p for p in params if part(p)]
        groups += [
            {"params": [p for p in mine if p.dim() >= 2], "weight_decay": cfg.weight_decay, "lr": cfg.lr * scale},
            {"params": [p for p in mine if p.dim() < 2], "weight_decay": 0.0, "lr": cfg.lr * scale},
        ]
    return torch.optim.AdamW([g for g in groups if g["params"]] if body else groups[:2], lr=cfg.lr)


def make_loader(dataset: Dataset, cfg: TrainConfig, seed: int, world: int, rank: int) -> DataLoader:
    """Shuffled batches of indices (this rank's share); the dataset gathers each batch at once.

    A DistributedSampler also serves one process (world 1): one code path, and its shuffle is
    a pure function of (seed, epoch), so a resumed epoch sees the same batches. Its
    permutation does not depend on `world` and rank r takes every world-th row of it, so with
    `batch_size / world` rows per rank step i sees exactly the rows of a single process's
    batch i, split between the ranks: DDP's mean of their gradients is that batch's gradient
    (up to rounding; BatchNorm statistics and dropout masks are each rank's own).
    """
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
    batch = max(1, cfg.batch_size // world)
    # a last batch of 1 row breaks BatchNorm and is noise anyway; the reshuffle covers it
    drop_last = len(sampler) > batch
    lengths = getattr(dataset, "lengths", None)
    if cfg.buckets and lengths is not None and world == 1:
        batches = LengthBuckets(sampler, batch, drop_last, lengths)
    else:
        batches = BatchSampler(sampler, batch, drop_last)
    return DataLoader(
        dataset,
        sampler=batches,
        batch_size=None,
        num_workers=cfg.num_workers,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
    )


def autocast_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    """Mixed precision only where it pays: CUDA. On this CPU bf16 autocast was 8x slower."""
    if amp not in ("auto", "bf16", "fp16", "off"):
        raise ValueError(f"amp must be auto, bf16, fp16 or off, got {amp!r}")
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def report_to_trial(trial, score: float, epoch: int) -> None:
    """Optuna pruning: report the epoch's score; stop this trial if the pruner says so."""
    import optuna

    trial.report(score, epoch)
    if trial.should_prune():
        raise optuna.TrialPruned(f"pruned at epoch {epoch} (score {score:.5g})")
