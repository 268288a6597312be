"""How every torch model is registered and trained: `Recipe` (the training arguments, each
default stated once) and `@torch_model`, which registers a net's builder with them.

A decorated function takes its net's own arguments and returns the net's builder;
`@torch_model(name, adapter, net={...})` registers it with those arguments' defaults (`net`)
and the training arguments: `FIT` for every model and those in `takes`, their defaults in
`Recipe`, changed per model only where its recipe differs. Together they are the entry's
declared `defaults` (the net's arguments, then the training ones), so `create_model` rejects
any other argument and names those accepted. `epochs=None` means `ctx.epochs` (params'
`train.epochs`), capped at the model's `epoch_cap`; `fit(..., soft_targets=...)` trains with
the distillation loss (`temperature`, `alpha`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

from pipelines.core.context import KD_ALPHA, KD_TEMPERATURE, ModelContext
from pipelines.models.registry import register_model
from pipelines.models.torch_adapter import ImageTorchModel, TextTorchModel, TorchModel
from pipelines.nn.loop import TrainConfig


@dataclass(frozen=True)
class Recipe:
    """How a torch model trains: the factories' training arguments, each default stated once
    (the loop's own where it has one); `@torch_model(..., lr=3e-3)` changes one for a model."""

    lr: float = TrainConfig.lr  # peak learning rate (linear warmup, then cosine)
    weight_decay: float = TrainConfig.weight_decay  # AdamW's, matrices and kernels only
    batch_size: int = TrainConfig.batch_size
    epochs: int | None = None  # None: params' train.epochs, capped at the model's epoch_cap
    patience: int = TrainConfig.patience  # epochs without a better validation score before stopping
    augment: bool | dict = True  # images: True for DigitAugment's defaults, or a dict of its arguments
    tta: bool = False  # images: average the outputs over the mirrorings trained on, else one-pixel shifts
    weights: str | None = None  # a local state dict to start from (`nn.weights.load_weights`)
    label_smoothing: float = 0.0  # classification: the uniform target's share
    token_mask: float = 0.0  # texts: the share of training tokens masked afresh in every batch
    temperature: float = KD_TEMPERATURE  # distillation: softens teacher and student outputs alike
    alpha: float = KD_ALPHA  # distillation: the teacher's share of the loss
    # not a factory argument (a per-model default, like `epoch_cap`): without `epochs`, epochs are
    # capped so that one fit sees about this many images (large image sets; see `cnn`)
    max_images: int | None = None
    body_lr: float = TrainConfig.body_lr  # a pretrained body's learning rate as a share of `lr`
    # not factory arguments either: a fine-tune warms up longer, keeps no EMA (a few hundred
    # steps from pretrained weights) and batches texts of like length
    warmup: float = TrainConfig.warmup
    ema_decay: float = TrainConfig.ema_decay
    buckets: bool = TrainConfig.buckets

    def train_config(self, ctx: ModelContext, epoch_cap: int | None) -> TrainConfig:
        """`epochs` when given; else `ctx.epochs` (params' `train.epochs`, the global upper
        bound), capped at the model's own `epoch_cap` (what its time per epoch affords)."""
        epochs = self.epochs
        if epochs is None:
            epochs = ctx.epochs if epoch_cap is None else min(ctx.epochs, epoch_cap)
        return TrainConfig(
            epochs=epochs,
            lr=self.lr,
            weight_decay=self.weight_decay,
            batch_size=self.batch_size,
            patience=self.patience,
            max_images=self.max_images if self.epochs is None else None,
            body_lr=self.body_lr,
            warmup=self.warmup,
            ema_decay=self.ema_decay,
            buckets=self.buckets,
        )

    def model_args(self, adapter: type[TorchModel]) -> dict:
        """The keyword arguments of `adapter` (a `TorchModel` class)."""
        args = {
            "temperature": self.temperature,
            "alpha": self.alpha,
            "weights": self.weights,
            "label_smoothing": self.label_smoothing,
        }
        if issubclass(adapter, ImageTorchModel):
            args.update(augment=self.augment, tta=self.tta)
        if issubclass(adapter, TextTorchModel):
            args.update(token_mask=self.token_mask)
        return args


FIT = ("lr", "weight_decay", "batch_size", "epochs", "patience")  # every torch model takes these
IMAGES = ("augment", "tta", "weights", "label_smoothing")  # the image models that learn from labels
DISTILL = ("temperature", "alpha")  # the students


def torch_model(
    name: str,
    adapter: type[TorchModel],
    *,
    net: dict,
    takes: tuple[str, ...] = (),
    epoch_cap: int | None = None,
    search_space: Callable | None = None,
    accepts_soft_targets: bool = False,
    pretrained: bool = False,
    **recipe_changes,
):
    """Register torch model `name`. The decorated function takes the net's own arguments (`net`:
    each one's default) and returns its builder; the registered factory `(ctx, **arguments)`
    takes those and the training arguments `takes` + `FIT` (defaults: `Recipe`, with
    `recipe_changes` over it)."""
    recipe = replace(Recipe(), **recipe_changes)  # a misspelt name fails at import
    training = (*takes, *FIT)
    defaults = {**net, **{n: getattr(recipe, n) for n in training}}

    def decorate(net_factory: Callable) -> Callable:
        @functools.wraps(net_factory)
        def factory(ctx: ModelContext, **arguments) -> TorchModel:  # every argument of `defaults`
            build = net_factory(**{n: arguments[n] for n in net})
            chosen = replace(recipe, **{n: arguments[n] for n in training})
            return adapter(ctx, chosen.train_config(ctx, epoch_cap), build, **chosen.model_args(adapter))

        register = register_model(
            name, modality=adapter.modality, defaults=defaults, search_space=search_space,
            accepts_soft_targets=accepts_soft_targets, export="onnx", pretrained=pretrained,
        )  # fmt: skip
        return register(factory)

    return decorate
