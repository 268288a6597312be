"""Pretrained backbones fine-tuned end to end: what Kaggle's text and image competitions are won with.

- `text_finetune`: a Hugging Face encoder (sentence-transformers' all-MiniLM-L6-v2 by default)
  through its own tokenizer, at a max length from the training texts' token lengths (their
  99th percentile, at most `max_len`), pooled as the checkpoint was trained (its
  `1_Pooling/config.json`), then a new linear head.
- `image_finetune`: a timm backbone (EfficientNet-Lite0 on ImageNet weights by default) with a
  new classifier; images standardised with the statistics the backbone was trained with (its
  `pretrained_cfg`), grey ones repeated over the three channels, resized to `size` inside the
  net (so the exported graph takes the competition's own images), flipped in training and
  averaged over the four mirrorings at test time.

Both train the new head at `lr` and the pretrained body at `body_lr` times that (the body
only needs nudging), with a linear warmup over the first tenth of the steps and a cosine
decay; a few epochs at most (`epoch_cap`), on the GPU in mixed precision. `weights` is a
source (`nn.pretrained.resolve`), filled by the plan from the competition's `weights:` or
`train.weights`. A fine-tune costs many times a linear model, so each plays fewer folds
(`train.max_folds`: folds merged into that many fits, out-of-fold predictions for every row).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn

from pipelines.core.errors import PipelineError
from pipelines.features.tokens import Tokens
from pipelines.models.nets import TextEncoder
from pipelines.models.torch_adapter import ImageTorchModel, TextNet, TextTorchModel
from pipelines.models.torch_recipe import torch_model
from pipelines.models.torch_zoo import FLIPS
from pipelines.nn.pretrained import fit_state, load_state, resolve

# a text_finetune fit without `epochs` sees about this many texts: 3 epochs of SMS spam's
# 1,700-message fits (CV 0.9624 against 0.9555 for 2), 2 of the airline tweets' 5,100 (~7 min)
FINETUNE_TEXTS = 10_000
DEFAULT_SIZE = 64  # image_finetune's least side: what 2 CPU cores afford (EfficientNet-Lite0: ~300 images/s)


def need(weights: str | None, model: str) -> str:
    if not weights:
        raise PipelineError(
            f"model {model!r} needs pretrained weights: set the competition's `weights:` or train.weights"
        )
    return weights


def finetune_space(lr: tuple, body_lr: tuple, epochs: tuple):
    """Optuna's space of a fine-tune: the head's rate, the body's share of it, the epochs."""

    def space(trial) -> dict:
        return {
            "lr": trial.suggest_float("lr", *lr, log=True),
            "body_lr": trial.suggest_float("body_lr", *body_lr, log=True),
            "epochs": trial.suggest_int("epochs", *epochs),
        }

    return space


text_space = finetune_space(lr=(3e-4, 3e-3), body_lr=(0.02, 0.3), epochs=(1, 4))
image_space = finetune_space(lr=(5e-4, 5e-3), body_lr=(0.05, 1.0), epochs=(3, 12))


@torch_model(
    "text_finetune", TextTorchModel, net=dict(weights=None, dropout=0.1, max_len=128),
    takes=("body_lr", "label_smoothing"), pretrained=True, search_space=text_space, epoch_cap=3, lr=1e-3,
    body_lr=0.08, batch_size=32, patience=1, weight_decay=1e-2, warmup=0.1, ema_decay=0.0, buckets=True,
    max_images=FINETUNE_TEXTS,
)  # fmt: skip
def text_finetune(*, weights, dropout, max_len):
    """A pretrained text encoder + a linear head, fine-tuned; without `epochs`, at most 3, and
    no more than show it about `FINETUNE_TEXTS` texts (the schedule spans whatever runs). The
    weights are fetched at the first fit."""
    need(weights, "text_finetune")
    return TextNet(tokens=partial(_tokens, weights, max_len), net=partial(_encoder, weights, dropout))


def _folder(weights: str) -> Path:
    folder = resolve(weights)
    if not folder.is_dir():
        raise PipelineError(f"weights {weights!r}: text_finetune needs a Hugging Face folder (config, tokenizer)")
    return folder


def _tokens(weights: str, max_len: int) -> Tokens:
    return Tokens(max_len=max_len, pretrained=str(_folder(weights)))


def _encoder(weights: str, dropout: float, input_shape, n_out: int, **vocab) -> TextEncoder:
    from pipelines.models.embeddings import pooling_of

    folder = _folder(weights)
    pooling, _ = pooling_of(folder)
    return TextEncoder(input_shape, n_out, pretrained=str(folder), dropout=dropout, pooling=pooling, **vocab)


class BackboneNet(nn.Module):
    """A timm backbone with a new classifier, over the competition's own images: channels made
    three (grey repeated, alpha dropped) and resized to `size` first."""

    def __init__(self, net: nn.Module, channels: int, size: int):
        super().__init__()
        if channels not in (1, 3, 4):
            raise PipelineError(f"image_finetune: images of {channels} channels (it takes 1, 3 or 4)")
        self.net, self.channels, self.size = net, channels, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.expand(-1, 3, -1, -1) if self.channels == 1 else x[:, :3]
        if tuple(x.shape[-2:]) != (self.size, self.size):
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.net(x)

    def body_parameters(self) -> list[nn.Parameter]:
        head = {id(p) for p in self.net.get_classifier().parameters()}
        return [p for p in self.net.parameters() if id(p) not in head]


@dataclass(frozen=True)
class Backbone:
    """image_finetune's builder: `(input_shape, n_out)` -> a `BackboneNet` holding the weights,
    and `stats(channels)`: the mean and std the backbone's inputs were standardised with."""

    arch: str
    weights: str
    size: int | None
    drop_rate: float

    def __call__(self, input_shape, n_out: int) -> BackboneNet:
        import timm

        try:
            net = timm.create_model(self.arch, pretrained=False, num_classes=n_out, drop_rate=self.drop_rate)
        except RuntimeError as err:  # timm's message for an unknown name
            raise PipelineError(f"image_finetune: {err}") from None
        fit_state(net, load_state(resolve(self.weights)), repr(self.weights))
        size = self.size or max(DEFAULT_SIZE, min(input_shape[1:]))
        return BackboneNet(net, input_shape[0], size)

    def stats(self, channels: int):
        import numpy as np
        import timm

        cfg = timm.get_pretrained_cfg(self.arch)
        mean = np.asarray(getattr(cfg, "mean", None) or (0.485, 0.456, 0.406), dtype=np.float32)
        std = np.asarray(getattr(cfg, "std", None) or (0.229, 0.224, 0.225), dtype=np.float32)
        if channels == 1:  # grey is repeated over the three channels: their mean statistics
            return mean.mean(keepdims=True), std.mean(keepdims=True)
        return np.resize(mean, channels), np.resize(std, channels)


@torch_model(
    "image_finetune", ImageTorchModel, net=dict(weights=None, arch="tf_efficientnet_lite0", size=None, drop_rate=0.2),
    takes=("body_lr", "augment", "tta", "label_smoothing"), pretrained=True, search_space=image_space,
    epoch_cap=10, lr=2e-3, body_lr=0.25, batch_size=64, patience=3, weight_decay=1e-2, warmup=0.1,
    augment=FLIPS, tta=True,
)  # fmt: skip
def image_finetune(*, weights, arch, size, drop_rate):
    """A pretrained timm backbone (`arch` matching the weights) + a new classifier, fine-tuned
    at `size` px (None: the images' shorter side, at least 64); without `epochs`, at most 10."""
    return Backbone(arch, need(weights, "image_finetune"), size, drop_rate)
