"""The one torch training loop every torch model uses (nanoGPT style: read it top to bottom).

    result = train(net, head, train_set, val_set, y_val, ctx=ctx, cfg=TrainConfig(...))
    outputs = predict(net, head, test_set)

`train` fits `net` in place and leaves in it the weights that scored best on the validation
rows with the competition's metric (`ctx.metric`; a tie goes to the later epoch); with EMA on,
those are EMA weights.
What it does, in order: AdamW (no decay on biases and norms), linear warmup then cosine
decay per step, gradient clipping, EMA of the weights, early stopping, mixed precision where
it pays (CUDA only: bf16 autocast on CPU was 8x slower here), channels_last for images,
optional Optuna pruning (`ctx.trial`), and torch DDP when launched by `torchrun`.

Checkpoints (when `ctx.checkpoint_dir` is set): after every epoch `last.pt` is replaced
atomically with everything needed to continue bit for bit (weights, EMA, optimizer,
scheduler, progress, RNG states); a later call with the same net, data and config resumes
from it. A finished fit writes `final.pt` (best weights and the result) and drops
`last.pt`, so a re-run only reloads. Both carry a fingerprint of net, data and config, and
are ignored (overwritten) when it does not match.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, SequentialSampler
from tqdm.auto import tqdm

from pipelines.io import atomic_file

LAST, FINAL = "last.pt", "final.pt"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30  # upper bound; early stopping usually ends sooner
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


@dataclass
class FitResult:
    best_score: float | None  # None without validation rows
    best_epoch: int
    epochs_run: int
    history: list[dict] = field(default_factory=list)  # per epoch: loss, score, lr, seconds
    resumed_epoch: int | None = None  # the epoch a checkpoint let us start after
    reloaded: bool = False  # True when a finished fit was only reloaded


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
    images = train_set[[0]][0].dim() == 4
    seed_everything(ctx.seed)
    loss_fn = loss_fn or head.loss
    net.to(device)
    head.to(device)
    if images:
        net.to(memory_format=torch.channels_last)  # 1.4x faster for a CNN on this CPU

    ckpt_dir = Path(ctx.checkpoint_dir) if ctx.checkpoint_dir is not None else None
    fingerprint = make_fingerprint(net, head, loss_fn, train_set, val_set, cfg, ctx.seed, world)
    final = load_checkpoint(ckpt_dir, FINAL, fingerprint)
    if final is not None:
        net.load_state_dict(final["state"])
        return FitResult(**final["result"], reloaded=True)

    loader = make_loader(train_set, cfg, ctx.seed, world, rank)
    total_steps = cfg.epochs * len(loader)
    model = (
        DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None) if world > 1 else net
    )
    # average over at most about an epoch: with few steps per epoch (small tables) a fixed
    # 0.999 would still remember the random init when early stopping ends the fit
    ema = EMA(net, min(cfg.ema_decay, 1 - 1 / len(loader))) if cfg.ema_decay > 0 else None
    optimizer = make_optimizer(net, cfg)
    warmup = max(1, int(cfg.warmup * total_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(lr_factor, warmup=warmup, total=total_steps, min_lr=cfg.min_lr)
    )
    amp_dtype = autocast_dtype(device, cfg.amp)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)  # bf16 needs no scaling
    progress = Progress()

    ckpt = load_checkpoint(ckpt_dir, LAST, fingerprint)
    if ckpt is not None:
        progress = restore(ckpt, net, ema, optimizer, scheduler, scaler)
    resumed_epoch = progress.epoch if ckpt is not None else None

    with tqdm(
        total=total_steps,
        initial=(progress.epoch + 1) * len(loader),
        desc=f"{type(net).__name__} ({device.type})",
        disable=not ctx.progress or rank != 0,
        leave=False,
        dynamic_ncols=True,
    ) as bar:
        for epoch in range(progress.epoch + 1, cfg.epochs):
            # early stopping; checked first because a resumed fit may have run out of patience
            if progress.bad_epochs >= cfg.patience:
                break
            t0 = time.perf_counter()
            loader.sampler.sampler.set_epoch(epoch)  # a fresh, seeded shuffle per epoch (and per rank)
            loader.generator.manual_seed(ctx.seed + epoch)  # worker seeds, when there are workers
            loss = train_epoch(model, loader, loss_fn, optimizer, scheduler, scaler, ema, cfg, amp_dtype, device, bar)
            eval_net = ema.module if ema is not None else net
            score = None
            if val_set is not None:
                score = broadcast(evaluate(eval_net, head, val_set, y_val, ctx.metric, ctx.task, cfg), world)
                # a tie goes to the later epoch: on a decaying learning rate its weights are the
                # more settled ones (accuracy on a few hundred rows ties often)
                if progress.best_score is None or not ctx.metric.better(progress.best_score, score):
                    progress.best_score, progress.best_epoch, progress.bad_epochs = score, epoch, 0
                    progress.best_state = {k: v.detach().to("cpu", copy=True) for k, v in eval_net.state_dict().items()}
                else:
                    progress.bad_epochs += 1
            progress.epoch = epoch
            lr = scheduler.get_last_lr()[0]
            seconds = time.perf_counter() - t0
            progress.history.append({"epoch": epoch, "loss": loss, "score": score, "lr": lr, "seconds": seconds})
            bar.set_postfix(epoch=epoch, loss=f"{loss:.4f}", score=score, best=progress.best_score)
            if rank == 0 and ckpt_dir is not None:
                save_checkpoint(
                    ckpt_dir / LAST, snapshot(fingerprint, net, ema, optimizer, scheduler, scaler, progress)
                )
            if ctx.trial is not None and score is not None:
                report_to_trial(ctx.trial, score, epoch)

    best = progress.best_state or (ema.module if ema is not None else net).state_dict()
    net.load_state_dict(best)
    result = FitResult(progress.best_score, progress.best_epoch, progress.epoch + 1, progress.history, resumed_epoch)
    if rank == 0 and ckpt_dir is not None:
        record = asdict(result)
        del record["reloaded"]
        save_checkpoint(ckpt_dir / FINAL, {"fingerprint": fingerprint, "state": net.state_dict(), "result": record})
        (ckpt_dir / LAST).unlink(missing_ok=True)  # the finished marker makes it redundant (and it is big)
    return result


@dataclass
class Progress:
    """The loop's own state: what a checkpoint needs besides the torch objects."""

    epoch: int = -1  # last finished epoch
    best_score: float | None = None
    best_epoch: int = -1
    bad_epochs: int = 0  # epochs since the best one (early stopping counter)
    best_state: dict | None = None  # weights of the best epoch (EMA weights with EMA on)
    history: list[dict] = field(default_factory=list)


def snapshot(fingerprint, net, ema, optimizer, scheduler, scaler, progress) -> dict:
    """Everything an epoch boundary needs to continue bit for bit."""
    return {
        "fingerprint": fingerprint,
        "net": net.state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "progress": dict(vars(progress)),  # not asdict: it would deep-copy the best weights
        "rng": get_rng_state(),
    }


def restore(ckpt, net, ema, optimizer, scheduler, scaler) -> Progress:
    net.load_state_dict(ckpt["net"])
    if ema is not None:
        ema.load_state_dict(ckpt["ema"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"])  # last: building the objects above must not shift the streams
    return Progress(**ckpt["progress"])


def train_epoch(model, loader, loss_fn, optimizer, scheduler, scaler, ema, cfg, amp_dtype, device, bar) -> float:
    """One pass over the training batches; returns the mean training loss."""
    model.train()
    total, count = torch.zeros((), device=device), 0
    for batch in loader:
        x, *targets = (t.to(device, non_blocking=True) for t in batch)
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp_dtype):
            logits = model(x)
        loss = loss_fn(logits.float(), *targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.grad_clip > 0:
            scaler.unscale_(optimizer)  # clip the true gradients, not the fp16-scaled ones
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        if ema is not None:
            ema.update(unwrap(model))
        total += loss.detach() * len(x)
        count += len(x)
        bar.update()
    return float(total) / max(count, 1)


@torch.inference_mode()
def predict(
    net: nn.Module, head: nn.Module, dataset: Dataset, *, batch_size: int = 1024, amp: str = "auto"
) -> np.ndarray:
    """Contract outputs of `net` for every row of `dataset`, in order (float64)."""
    device = next(net.parameters()).device
    head.to(device)
    amp_dtype = autocast_dtype(device, amp)
    was_training = net.training
    net.eval()
    loader = DataLoader(dataset, sampler=BatchSampler(SequentialSampler(dataset), batch_size, False), batch_size=None)
    out = []
    for batch in loader:
        x = batch[0].to(device, non_blocking=True)
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp_dtype):
            logits = net(x)
        out.append(head(logits.double()).cpu())  # float64 so probabilities sum to 1 for log loss
    net.train(was_training)
    return torch.cat(out).numpy()


def evaluate(net, head, dataset, y, metric, task, cfg) -> float:
    """The competition metric on the validation rows; a diverged net scores worst, not an error."""
    outputs = predict(net, head, dataset, batch_size=cfg.eval_batch_size, amp=cfg.amp)
    if not np.isfinite(outputs).all():
        return -math.inf if metric.greater_is_better else math.inf
    return metric(y, outputs, task)


class EMA:
    """Exponential moving average of a net's weights and buffers, evaluated instead of them.

    The decay warms up as (1 + n) / (10 + n) so that short fits are not dominated by the
    random initial weights (timm's ModelEmaV3 does the same).
    """

    def __init__(self, net: nn.Module, decay: float):
        self.module = copy.deepcopy(net).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for e, p in zip(self.module.state_dict().values(), net.state_dict().values(), strict=True):
            if e.is_floating_point():
                e.lerp_(p, 1 - d)
            else:
                e.copy_(p)  # integer buffers (BatchNorm's batch counter) are copied, not averaged

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = state["updates"]


# --- small helpers ---------------------------------------------------------------------


def lr_factor(step: int, *, warmup: int, total: int, min_lr: float) -> float:
    """Multiplier of the peak lr at `step`: linear warmup, then cosine down to `min_lr`."""
    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_lr + (1 - min_lr) * 0.5 * (1 + math.cos(math.pi * t))


def make_optimizer(net: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; biases and norm weights (1-D) are not decayed, as in nanoGPT and timm."""
    params = [p for p in net.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr)


def make_loader(dataset: Dataset, cfg: TrainConfig, seed: int, world: int, rank: int) -> DataLoader:
    """Shuffled batches of indices (this rank's share); the dataset gathers each batch at once.

    A DistributedSampler also serves one process (world 1): one code path, and its shuffle is
    a pure function of (seed, epoch), so a resumed epoch sees the same batches.
    """
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
    # a last batch of 1 row breaks BatchNorm and is noise anyway; the reshuffle covers it
    drop_last = len(sampler) > cfg.batch_size
    return DataLoader(
        dataset,
        sampler=BatchSampler(sampler, cfg.batch_size, drop_last),
        batch_size=None,
        num_workers=cfg.num_workers,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
    )


def seed_worker(worker_id: int) -> None:
    """DataLoader workers: derive numpy's and random's seeds from the worker's torch seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds every CUDA device too


def get_rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    np_state = np.random.get_state()
    state["numpy"] = (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:])
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_to_tuples(state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_tuples(x):
    # random.setstate insists on tuples; a checkpoint round trip may hand back lists
    return tuple(_to_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


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


def configure_torch(threads: int, deterministic: bool, world: int = 1) -> None:
    # processes of one machine share its cores: oversubscribing threads is the main slowdown
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    torch.set_num_threads(max(1, threads // max(1, local)))
    if torch.cuda.is_available():
        # only CUDA kernels (atomics, cuDNN autotuning) are nondeterministic for our nets; the
        # CPU ones already repeat bit for bit, and the switch costs a 3 s import of inductor
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
        torch.backends.cudnn.benchmark = not deterministic


def setup_distributed() -> tuple[int, int, torch.device]:
    """(world size, rank, device); joins the process group when started by `torchrun`."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if cuda else torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if cuda else "gloo")
    return world, (dist.get_rank() if world > 1 else 0), device


def broadcast(value: float, world: int) -> float:
    """Rank 0's score for every rank, so all of them stop (and report) at the same epoch."""
    if world == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def report_to_trial(trial, score: float, epoch: int) -> None:
    """Optuna pruning: report the epoch's score; stop this trial if the pruner says so."""
    import optuna

    trial.report(score, epoch)
    if trial.should_prune():
        raise optuna.TrialPruned(f"pruned at epoch {epoch} (score {score:.5g})")


def make_fingerprint(net, head, loss_fn, train_set, val_set, cfg, seed, world) -> str:
    """What a checkpoint must match to be resumed: net (and its initial weights), data, config."""
    h = hashlib.blake2b(digest_size=16)
    for part in (repr(net), repr(head), repr(loss_fn), repr(cfg), seed, world):
        h.update(str(part).encode())
    for t in net.state_dict().values():  # the initial weights, e.g. loaded from a file
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    for ds in (train_set, val_set):
        h.update((ds.fingerprint() if ds is not None and hasattr(ds, "fingerprint") else repr(ds and len(ds))).encode())
    return h.hexdigest()


def save_checkpoint(path: Path, obj: dict) -> None:
    """Write to a temporary sibling, then rename: a crash never leaves a torn checkpoint.

    `atomic_file` also sweeps the temporaries of a writer that was killed mid-save."""
    with atomic_file(path, "wb") as fh:
        torch.save(obj, fh)


def load_checkpoint(ckpt_dir: Path | None, name: str, fingerprint: str) -> dict | None:
    """The checkpoint if it exists and belongs to this very fit, else None.

    Loaded to the CPU: `load_state_dict` copies onto the net's device, and RNG states must
    be CPU tensors anyway."""
    if ckpt_dir is None or not (ckpt_dir / name).is_file():
        return None
    ckpt = torch.load(ckpt_dir / name, map_location="cpu", weights_only=True)  # never unpickles code
    return ckpt if ckpt.get("fingerprint") == fingerprint else None
