"""What makes a fit repeatable and resumable: seeds, RNG states and checkpoint files.

`train` (in `loop`) writes `last.pt` after every epoch (`snapshot`: weights, EMA, optimizer,
scheduler, scaler, `Progress`, RNG states) and `final.pt` when it is done; both carry the
fit's `make_fingerprint` and `load_checkpoint` returns only a checkpoint of this very fit.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pipelines.core.io import atomic_file

LAST, FINAL = "last.pt", "final.pt"


@dataclass
class Progress:
    """The loop's own state: what a checkpoint needs besides the torch objects."""

    epoch: int = -1  # last finished epoch
    best_score: float | None = None
    best_epoch: int = -1
    bad_epochs: int = 0  # epochs since the best one (early stopping counter)
    best_state: dict | None = None  # weights of the best epoch (EMA weights with EMA on)
    history: list[dict] = field(default_factory=list)

    def record_score(self, epoch: int, score: float, net: torch.nn.Module, metric) -> None:
        """Count a validation score: the best so far keeps a CPU copy of `net`'s weights."""
        # a tie goes to the later epoch: on a decaying learning rate its weights are the
        # more settled ones (accuracy on a few hundred rows ties often)
        if self.best_score is None or not metric.better(self.best_score, score):
            self.best_score, self.best_epoch, self.bad_epochs = score, epoch, 0
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}
        else:
            self.bad_epochs += 1

    def end_epoch(self, epoch: int, loss: float, score: float | None, lr: float, seconds: float, share=1.0) -> None:
        """Record a finished epoch; `share` < 1: the time budget stopped it after that share of its batches."""
        self.epoch = epoch
        record = {"epoch": epoch, "loss": loss, "score": score, "lr": lr, "seconds": seconds}
        self.history.append(record if share >= 1.0 else {**record, "rows_share": share})


def snapshot(fingerprint: str, parts, progress: Progress) -> dict:
    """Everything an epoch boundary needs to continue bit for bit (`parts`: the loop's `Parts`)."""
    return {
        "fingerprint": fingerprint,
        "net": parts.net.state_dict(),
        # the EMA's step count is the scheduler's; "module" is the format older checkpoints have too
        "ema": {"module": parts.ema.module.state_dict()} if parts.ema is not None else None,
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(),
        "scaler": parts.scaler.state_dict(),
        "progress": dict(vars(progress)),  # not asdict: it would deep-copy the best weights
        "rng": get_rng_state(),
    }


def restore(ckpt: dict, parts) -> Progress:
    parts.net.load_state_dict(ckpt["net"])
    if parts.ema is not None:
        parts.ema.module.load_state_dict(ckpt["ema"]["module"])
    parts.optimizer.load_state_dict(ckpt["optimizer"])
    parts.scheduler.load_state_dict(ckpt["scheduler"])
    parts.scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"])  # last: building the objects above must not shift the streams
    return Progress(**ckpt["progress"])


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


# --- RNG -------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds every CUDA device too


def seed_worker(worker_id: int) -> None:
    """DataLoader workers: derive numpy's and random's seeds from the worker's torch seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


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
