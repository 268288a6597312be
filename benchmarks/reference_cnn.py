"""The issue's yardstick for Digit Recognizer: one well-made small CNN, coded on its own.

    python benchmarks/reference_cnn.py [--split-seed N] [--seeds 0,1] [--epochs 25]

Two conv blocks (two 3x3 convs with BatchNorm and ReLU each, max-pooling, dropout), a dense
head, shift / rotate / scale augmentation, AdamW with a one-cycle schedule, batch 64, one
thread, channels_last: trained on all 4,000 training digits and scored on the 1,000 hidden
ones. It deliberately shares no code with `pipelines/`, so it checks the pipeline rather
than repeating it. Seeds train two at a time (one thread each); each takes about 4.5 minutes
here. `benchmarks/digits.py --reference K` prints K of them beside the pipeline's models.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _net():
    from torch import nn

    def block(cin: int, cout: int) -> list:
        return [
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout(0.25),
        ]

    return nn.Sequential(
        *block(1, 32),
        *block(32, 64),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 256),
        nn.BatchNorm1d(256),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(256, 10),
    )


def _augment(x, generator):
    """Random rotation (+-10 degrees), scale (+-10%) and shift (+-2 px) of a batch."""
    import torch
    import torch.nn.functional as F

    n = len(x)
    u = torch.rand(n, 4, generator=generator) * 2 - 1
    angle, scale = u[:, 0] * math.radians(10), 1 + u[:, 1] * 0.1
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    shift = u[:, 2:] * 2 / 14  # 2 px of 28 in affine_grid's [-1, 1] units
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    return F.grid_sample(x, F.affine_grid(theta, list(x.shape), align_corners=False), align_corners=False)


def reference_probs(
    train_pixels: np.ndarray, labels: np.ndarray, test_pixels: np.ndarray, seed: int, epochs: int = 25
) -> tuple[np.ndarray, float]:
    """Class probabilities of the test digits from one reference CNN, and its training seconds.
    Pixels are uint8 rows of 784 (Kaggle's layout)."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.tensor(np.asarray(train_pixels, dtype=np.float32).reshape(-1, 1, 28, 28) / 255.0)
    y = torch.tensor(np.asarray(labels, dtype=np.int64))
    net = _net().to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-2)
    batch = 64
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * math.ceil(len(x) / batch))
    start = time.perf_counter()
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch):
            idx = order[i : i + batch]
            xb = _augment(x[idx], gen).contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(net(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    seconds = time.perf_counter() - start
    net.eval()
    xt = torch.tensor(np.asarray(test_pixels, dtype=np.float32).reshape(-1, 1, 28, 28) / 255.0)
    with torch.inference_mode():
        probs = torch.softmax(net(xt.contiguous(memory_format=torch.channels_last)), 1).numpy()
    return probs, seconds


def run_seeds(train, test, seeds: list[int], epochs: int = 25) -> list[tuple[np.ndarray, float]]:
    """`reference_probs` for each seed on Kaggle-layout frames (train.csv with `label`,
    test.csv), two at a time in spawned one-thread processes."""
    pixels, labels = train.drop(columns=["label"]).to_numpy(np.uint8), train["label"].to_numpy()
    jobs = [(pixels, labels, test.to_numpy(np.uint8), s, epochs) for s in seeds]
    with multiprocessing.get_context("spawn").Pool(min(2, len(seeds))) as pool:
        return pool.starmap(reference_probs, jobs)


def main() -> None:
    from benchmarks.common import digit_frames, table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split-seed", type=int, default=None, help="re-carve the 5,000 digits with this seed")
    ap.add_argument("--seeds", default="0,1", help="comma-separated training seeds")
    ap.add_argument("--epochs", type=int, default=25)
    args = ap.parse_args()
    train, test, truth = digit_frames(args.split_seed)
    seeds = [int(s) for s in args.seeds.split(",")]
    results = run_seeds(train, test, seeds, args.epochs)
    rows = [
        {"seed": s, "hidden test": float((p.argmax(1) == truth).mean()), "train s": round(sec)}
        for s, (p, sec) in zip(seeds, results, strict=True)
    ]
    mean = np.mean([p for p, _ in results], axis=0)
    rows.append({"seed": "mean of seeds", "hidden test": float((mean.argmax(1) == truth).mean()), "train s": "-"})
    print(table(rows))


if __name__ == "__main__":
    main()
