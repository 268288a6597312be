"""What every model and every training loop may need to know: the task, the metric, the
machine (threads, device) and the seed. `set_threads(n)` pins each thread pool we use."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from pipelines.core.metrics import Metric

Task = Literal["binary", "multiclass", "regression"]
Modality = Literal["tabular", "image", "text"]
TABULAR, IMAGE, TEXT = MODALITIES = get_args(Modality)
# knowledge distillation: the defaults of `distill.temperature` / `distill.alpha` and of the
# students' factories (one place, so the stage and a student built by hand agree)
KD_TEMPERATURE, KD_ALPHA = 2.0, 0.7
# the defaults of params.yaml's `seed`, `train.threads` and `train.epochs`, stated once for
# the config and for a context or a training loop built by hand
SEED, THREADS, EPOCHS = 42, 2, 30
# from this many training rows a table is large: `train.refit: auto` fits each model once more
# on every row (instead of a boosted model's final fit on its fold's rows), and the boosters
# take their sized settings (models/gbdt.py: FINAL_FIT_ROWS, LARGE_ROWS). One threshold, here.
LARGE_TABLE_ROWS = 20_000


@dataclass(frozen=True)
class ModelContext:
    """What every factory may need to know about the competition and the machine."""

    task: str
    metric: Metric
    n_classes: int = 1  # classes for classification, 1 for regression
    roles: dict[str, list[str]] = field(default_factory=dict)  # tables: numeric/categorical/key/text columns
    image_shape: tuple[int, int, int] | None = None  # (channels, height, width)
    seed: int = SEED
    threads: int = THREADS
    processes: int = 1  # torch processes of one fit (`train.nproc` under torchrun): part of the fold cache key
    epochs: int = EPOCHS  # upper bound for torch models
    checkpoint_dir: Path | None = None  # torch models save/resume here
    deterministic: bool = True
    progress: bool = True  # tqdm bars for long loops
    trial: object | None = None  # an optuna trial: torch models report per-epoch scores to it
    fit_seconds: float | None = (
        None  # the time budget's part for one fit: torch stops after the epoch that would overrun
    )


def set_threads(n: int) -> None:
    """Pin every thread pool we use to `n` threads (2-core machines oversubscribe easily)."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    threadpool_limits(n)
