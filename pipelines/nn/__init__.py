"""Torch building blocks shared by every torch model: the training loop, datasets, heads.

`loop.train` fits a net (AdamW, warmup + cosine, EMA, early stopping, checkpoints and
resume, DDP under torchrun); `loop.predict` returns the registry contract's outputs;
`checkpoint` holds seeds, RNG states and checkpoint files, `distributed` the DDP helpers,
`ema` the weight average; `data` the datasets and digit augmentation; `heads` the task heads
and the distillation loss. Models themselves live in `pipelines.models` (`torch_zoo`, `mlp`).
"""
