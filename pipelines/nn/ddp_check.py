"""Smoke check of the training loop under torch DDP: train a tiny net on synthetic data.

    torchrun --standalone --nproc_per_node=2 -m pipelines.nn.ddp_check [--checkpoint-dir DIR]

Every rank trains its share of the batches (gloo on CPU, nccl on CUDA); rank 0 prints one
line `ddp_check world=<n> score=<accuracy> params_equal=<bool>` and the exit status is 0 when
the ranks end with identical weights and the score beats chance clearly.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from pipelines.core.context import ModelContext
from pipelines.core.metrics import get_metric
from pipelines.nn.checkpoint import seed_everything
from pipelines.nn.data import TabularDataset
from pipelines.nn.heads import Head
from pipelines.nn.loop import TrainConfig, predict, train


def synthetic(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two classes split by a random hyperplane, with 5% label noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x @ rng.normal(size=d) > 0).astype(np.int64)
    flip = rng.random(n) < 0.05
    return x, np.where(flip, 1 - y, y)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint-dir", default=None)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args(argv)

    x, y = synthetic(1200, 8, seed=0)
    ctx = ModelContext(
        task="binary",
        metric=get_metric("accuracy"),
        n_classes=2,
        threads=1,
        progress=False,
        checkpoint_dir=args.checkpoint_dir,
    )
    seed_everything(ctx.seed)
    net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
    head = Head("binary")
    cfg = TrainConfig(epochs=args.epochs, batch_size=64, lr=1e-2, patience=100)
    result = train(net, head, TabularDataset(x[:1000], y[:1000]), TabularDataset(x[1000:]), y[1000:], ctx=ctx, cfg=cfg)
    score = ctx.metric(y[1000:], predict(net, head, TabularDataset(x[1000:])), "binary")

    world = dist.get_world_size() if dist.is_initialized() else 1
    flat = torch.cat([p.detach().flatten() for p in net.parameters()])
    equal = True
    if world > 1:
        gathered = [torch.empty_like(flat) for _ in range(world)]
        dist.all_gather(gathered, flat)
        equal = all(torch.equal(g, gathered[0]) for g in gathered)
        dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(
            f"ddp_check world={world} score={score:.4f} best={result.best_score:.4f} params_equal={equal}", flush=True
        )
    return 0 if equal and score > 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())
