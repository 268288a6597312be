"""Torch models behind the registry's contract: a net, its task head and the shared loop.

`TorchModel.fit(X, y, eval_set=..., soft_targets=...)` builds the net (seeded), optionally
loads weights, and trains it with `pipelines.nn.loop.train` (with the distillation loss when
soft targets are given); `predict_output` returns the contract's outputs. Subclasses say
what the inputs are: `TabularTorchModel` (a pandas frame through `make_preprocessor`) and
`ImageTorchModel` (uint8 arrays (n, C, H, W), standardised per channel, augmented, TTA).
`exportable()` is the net with its head (and pixel scaling) as one module, for ONNX.
The registered factories that make them are in `torch_zoo`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pipelines.core.context import IMAGE, TABULAR, TEXT, ModelContext
from pipelines.core.errors import PipelineError
from pipelines.nn.checkpoint import seed_everything
from pipelines.nn.data import (
    FLIP_VIEWS,
    TTA_VIEWS,
    DigitAugment,
    ImageDataset,
    TabularDataset,
    TokenDataset,
    TokenMask,
    channel_stats,
)
from pipelines.nn.heads import Distill, Head, n_outputs
from pipelines.nn.loop import FitResult, TrainConfig, predict, train
from pipelines.nn.weights import load_weights


class TorchModel:
    """fit / predict_output around a torch net, its task head and the shared loop.

    Subclasses say how inputs become arrays (`_fit_inputs`, `_inputs`) and datasets
    (`_dataset`); `build(input_shape, n_outputs)` makes the net. The keyword arguments have
    their defaults in one place, `torch_recipe.Recipe`.
    """

    modality: str  # the registry's: what `X` is

    def __init__(
        self,
        ctx: ModelContext,
        cfg: TrainConfig,
        build,
        *,
        temperature: float,
        alpha: float,
        weights: str | None,
        label_smoothing: float,
    ):
        try:  # the head's own checks, made where the model is made rather than in a fold worker
            Head(ctx.task, label_smoothing=label_smoothing)
        except ValueError as err:
            raise PipelineError(str(err)) from None
        self.ctx = ctx
        self.label_smoothing = label_smoothing
        self.cfg = cfg
        self.build = build
        self.temperature = temperature
        self.alpha = alpha
        self.weights = weights

    def fit(self, X, y, eval_set=None, soft_targets=None) -> TorchModel:
        y = np.asarray(y)
        x = self._fit_inputs(X, y)
        if len(y) != len(x):
            raise ValueError(f"X has {len(x)} rows, y {len(y)}")
        if soft_targets is not None:
            soft_targets = self._check_soft(np.asarray(soft_targets, dtype=np.float32), len(y))
        self.head_ = Head.fit(self.ctx.task, y, self.label_smoothing)
        if self.ctx.task == "regression":  # outputs stay within the training targets, as sklearn models' do
            self.y_range_ = (float(np.min(y)), float(np.max(y)))
        self.input_shape_ = tuple(x.shape[1:])
        seed_everything(self.ctx.seed)  # the initial weights are part of what a seed fixes
        self.net_ = self._net(n_outputs(self.ctx.task, self.ctx.n_classes))
        if self.weights is not None:
            load_weights(self.net_, self.weights)
        train_set = self._dataset(x, y, soft_targets, train=True)
        val_set = y_val = None
        if eval_set is not None:
            X_val, y_val = eval_set
            y_val = np.asarray(y_val)
            val_set = self._dataset(self._inputs(X_val))
        loss_fn = Distill(self.head_, self.temperature, self.alpha) if soft_targets is not None else None
        self.result_: FitResult = train(
            self.net_, self.head_, train_set, val_set, y_val, ctx=self.ctx, cfg=self.cfg, loss_fn=loss_fn
        )
        return self

    def _net(self, n_out: int) -> nn.Module:
        return self.build(self.input_shape_, n_out)

    @property
    def budget_cut_(self) -> str | None:
        """What the time budget cut of the fit, in words (None: nothing)."""
        return self.result_.budget_cut

    def learning_curve(self) -> np.ndarray:
        """(epochs, 3): epoch, mean training loss, validation score (NaN without validation rows)."""
        rows = [(h["epoch"], h["loss"], np.nan if h["score"] is None else h["score"]) for h in self.result_.history]
        return np.asarray(rows, dtype=np.float64).reshape(-1, 3)

    def predict_output(self, X) -> np.ndarray:
        out = predict(
            self.net_, self.head_, self._dataset(self._inputs(X)), batch_size=self.cfg.eval_batch_size, amp=self.cfg.amp
        )
        return self._clip(out)

    def _clip(self, out: np.ndarray) -> np.ndarray:
        """Regression: clipped to the training targets' range (an MLP extrapolates on a row
        unlike every training row, e.g. House Prices' 5,600 sq ft house sold cheaply)."""
        return np.clip(out, *self.y_range_) if getattr(self, "y_range_", None) is not None else out

    def _check_soft(self, soft: np.ndarray, n: int) -> np.ndarray:
        k = self.ctx.n_classes
        want = (n, k) if self.ctx.task == "multiclass" else (n,)
        if soft.shape != want:
            raise ValueError(f"soft targets for {self.ctx.task} must have shape {want}, got {soft.shape}")
        return soft

    def onnx_inputs(self, X) -> np.ndarray:
        """What the exported graph takes for `X`: the float32 array fed to the net's wrapper."""
        return np.asarray(self._inputs(X), dtype=np.float32)

    def onnx_inputs_like(self, n: int) -> np.ndarray:
        """`n` rows of what the exported graph takes (its example input)."""
        return np.zeros((n, *self.input_shape_), dtype=np.float32)

    def exportable(self) -> nn.Module:
        """A CPU copy of net + head, raw model inputs in, contract outputs out (eval mode)."""
        return _Exported(
            copy.deepcopy(self.net_).cpu().float(),
            copy.deepcopy(self.head_).cpu(),
            *self._export_scaling(),
            y_range=getattr(self, "y_range_", None),
            views=self._views(),
        ).eval()

    def _export_scaling(self):
        return None, None

    def _views(self) -> tuple | None:
        """Test-time views of the inputs whose outputs are averaged (None: the inputs as they are)."""
        return None


class TabularTorchModel(TorchModel):
    """Tables: a pandas frame through `make_preprocessor` (fitted on the training rows only)."""

    modality = TABULAR

    def _fit_inputs(self, X, y) -> np.ndarray:
        from pipelines.features.preprocess import make_preprocessor

        self.preprocessor_ = make_preprocessor(self.ctx)
        # fit_transform on purpose: target encoders give training rows out-of-fold values
        return np.asarray(self.preprocessor_.fit_transform(X, y), dtype=np.float32)

    def _inputs(self, X) -> np.ndarray:
        return np.asarray(self.preprocessor_.transform(X), dtype=np.float32)

    def _dataset(self, x, y=None, soft=None, train=False) -> TabularDataset:
        return TabularDataset(x, y, soft)


class ImageTorchModel(TorchModel):
    """Images: uint8 (n, C, H, W), standardised per channel with the training rows' stats."""

    modality = IMAGE

    def __init__(self, ctx, cfg, build, *, augment: bool | dict, tta: bool, **kw):
        super().__init__(ctx, cfg, build, **kw)
        self.augment = augment
        self.tta = tta

    def _fit_inputs(self, X, y) -> np.ndarray:
        x = self._inputs(X)
        # a pretrained backbone's builder knows the statistics it was trained with
        stats = getattr(self.build, "stats", None)
        self.mean_, self.std_ = stats(x.shape[1]) if stats is not None else channel_stats(x)
        return x

    def _inputs(self, X) -> np.ndarray:
        x = np.asarray(X)
        if x.ndim == 3:  # (n, H, W): one channel
            x = x[:, None]
        if x.ndim != 4 or x.dtype != np.uint8:
            raise ValueError(f"image models take uint8 arrays (n, C, H, W), got {x.dtype} {x.shape}")
        return x

    def _dataset(self, x, y=None, soft=None, train=False, transform=None) -> ImageDataset:
        if train and self.augment:  # True: the defaults; a dict: DigitAugment's arguments
            transform = DigitAugment(**(self.augment if isinstance(self.augment, dict) else {}))
        return ImageDataset(x, y, soft, mean=self.mean_, std=self.std_, transform=transform)

    def _views(self) -> tuple | None:
        """The test-time views (None: the image as it is): with `tta`, the four mirrorings when
        training flips them (resnet's default), else one-pixel shifts. Shifts are off by
        default: on the seed-2 digit split the five fold models' out-of-fold accuracy fell
        from 0.9928 to 0.9918 with these views (hidden test 0.9870 both ways), and half-pixel
        shifts (0.9905) or random affine views like training's (0.9895) did worse."""
        if not self.tta:
            return None
        flips = isinstance(self.augment, dict) and self.augment.get("flip", False)
        return FLIP_VIEWS if flips else TTA_VIEWS

    def predict_output(self, X) -> np.ndarray:
        views = self._views()
        if views is None:
            return super().predict_output(X)
        x = self._inputs(X)  # the mean of the outputs over the views of every image
        outputs = [
            predict(self.net_, self.head_, self._dataset(x, transform=view), batch_size=self.cfg.eval_batch_size,
                    amp=self.cfg.amp)
            for view in views
        ]  # fmt: skip
        return self._clip(np.mean(outputs, axis=0))

    def _export_scaling(self):
        return self.mean_, self.std_


@dataclass(frozen=True)
class TextNet:
    """What a text model builds: its tokenizer (`tokens()` -> an unfitted `Tokens`) and its net
    (`net(input_shape, n_out, vocab_size=, pad_id=)`, once the tokenizer knows them)."""

    tokens: Callable
    net: Callable


class TextTorchModel(TorchModel):
    """Texts: the frame's `text` columns (joined by the separator token), tokenized by a
    tokenizer fitted on the training rows only, as int32 ids; `token_mask` > 0 masks that
    share of the training tokens afresh in every batch (`nn.data.TokenMask`)."""

    modality = TEXT

    def __init__(self, ctx, cfg, build, *, token_mask: float, **kw):
        super().__init__(ctx, cfg, build, **kw)
        try:  # TokenMask's own check, made where the model is made rather than in a fold worker
            TokenMask(token_mask, mask_id=0, keep=())
        except ValueError as err:
            raise PipelineError(str(err)) from None
        self.token_mask = token_mask

    def _texts(self, X):
        columns = self.ctx.roles.get("text", [])
        if not columns:
            raise ValueError("text models need the `text` columns of a `modality: text` competition")
        return X[columns]

    def _fit_inputs(self, X, y) -> np.ndarray:
        self.tokens_ = self.build.tokens().fit(self._texts(X))
        return self.tokens_.encode(self._texts(X))

    def _inputs(self, X) -> np.ndarray:
        return self.tokens_.encode(self._texts(X))

    def _dataset(self, x, y=None, soft=None, train=False) -> TokenDataset:
        pad_id = self.tokens_.pad_id_ if self.cfg.buckets else None  # batches of like length
        if not (train and self.token_mask > 0):
            return TokenDataset(x, y, soft, pad_id=pad_id)
        if self.tokens_.mask_id_ is None:
            raise PipelineError("token_mask: the tokenizer has no mask token ([MASK] or its mask_token)")
        mask = TokenMask(self.token_mask, self.tokens_.mask_id_, self.tokens_.special_ids_)
        return TokenDataset(x, y, soft, transform=mask, pad_id=pad_id)

    def _net(self, n_out: int) -> nn.Module:
        return self.build.net(self.input_shape_, n_out, vocab_size=self.tokens_.n_tokens, pad_id=self.tokens_.pad_id_)

    def onnx_inputs(self, X) -> np.ndarray:
        return self._inputs(X).astype(np.int64)

    def onnx_inputs_like(self, n: int) -> np.ndarray:
        return np.full((n, *self.input_shape_), self.tokens_.pad_id_, dtype=np.int64)


class _Exported(nn.Module):
    """The deployable graph: (pixel scaling) -> net -> head, so ONNX outputs = predict_output;
    with test-time `views` (images), the mean of the outputs over them, as `predict_output`."""

    def __init__(self, net: nn.Module, head: nn.Module, mean=None, std=None, y_range=None, views=None):
        super().__init__()
        self.net, self.head = net, head
        self.views = tuple(views) if views else None
        self.clip = y_range
        if y_range is not None:
            self.register_buffer("low", torch.tensor(y_range[0], dtype=torch.float32))
            self.register_buffer("high", torch.tensor(y_range[1], dtype=torch.float32))
        self.scale = mean is not None
        if self.scale:
            self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1))
            self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale:
            x = x / 255.0
        if self.views is None:
            out = self.head(self.net(self._standard(x)))
        else:  # views act on [0, 1] pixels, as ImageDataset applies them
            out = torch.stack([self.head(self.net(self._standard(view(x)))) for view in self.views]).mean(dim=0)
        return out.clamp(self.low, self.high) if self.clip is not None else out

    def _standard(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std if self.scale else x
