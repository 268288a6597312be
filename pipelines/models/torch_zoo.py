"""The registered torch models: small factories over `nets`, fitted by `torch_adapter`'s models.

Tabular: `mlp` (with an Optuna search space) and `student_mlp` (small, for distillation).
Image (uint8 arrays (n, C, H, W)): `cnn` (compact, for 28x28 digits), `resnet` (any timm
architecture, stem shrunk for images under 32 px; resnet18 with flips by default), `vit` (a
small transformers ViT built from its config) and `student_cnn` (tiny, for distillation).

Each function below takes its net's own arguments and returns the net's builder;
`@torch_model(name, adapter, net={...})` registers it with those arguments' defaults (`net`)
and the training arguments: `FIT` for every model and those in `takes`, their defaults stated
once, in `Recipe`, and changed per model only where its recipe differs. Together they are the
entry's declared `defaults` (the net's arguments, then the training ones), so `create_model`
rejects any other argument and names those accepted.

`epochs=None` means `ctx.epochs` (params' `train.epochs`), capped for the image nets at a
per-model `budget` measured so that 5 folds train in minutes on 2 CPU cores (the 4,000
embedded digits: cnn 20, student_cnn 20 epochs; the 1,968 training solar cells at 32x32:
resnet 15); the warmup + cosine schedule spans whatever number runs.
`fit(..., soft_targets=...)` trains with the distillation loss (`temperature`, `alpha`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

from pipelines.core.context import KD_ALPHA, KD_TEMPERATURE, ModelContext
from pipelines.features.tokens import Tokens
from pipelines.models.nets import CNN, MLP, StudentCNN, TextEncoder, ViT, timm_net
from pipelines.models.registry import register_model
from pipelines.models.torch_adapter import ImageTorchModel, TabularTorchModel, TextNet, TextTorchModel, TorchModel
from pipelines.nn.loop import TrainConfig


@dataclass(frozen=True)
class Recipe:
    """How a torch model trains: the factories' training arguments, each default stated once
    (the loop's own where it has one); `@torch_model(..., lr=3e-3)` changes one for a model."""

    lr: float = TrainConfig.lr  # peak learning rate (linear warmup, then cosine)
    weight_decay: float = TrainConfig.weight_decay  # AdamW's, matrices and kernels only
    batch_size: int = TrainConfig.batch_size
    epochs: int | None = None  # None: params' train.epochs, capped at the model's budget
    patience: int = TrainConfig.patience  # epochs without a better validation score before stopping
    augment: bool | dict = True  # images: True for DigitAugment's defaults, or a dict of its arguments
    tta: bool = False  # images: average the outputs over the mirrorings trained on, else one-pixel shifts
    weights: str | None = None  # a local state dict to start from (`nets.load_weights`)
    label_smoothing: float = 0.0  # classification: the uniform target's share
    token_mask: float = 0.0  # texts: the share of training tokens masked afresh in every batch
    temperature: float = KD_TEMPERATURE  # distillation: softens teacher and student outputs alike
    alpha: float = KD_ALPHA  # distillation: the teacher's share of the loss
    # not a factory argument (a per-model default, like `budget`): without `epochs`, epochs are
    # capped so that one fit sees about this many images (large image sets; see `cnn`)
    max_images: int | None = None

    def train_config(self, ctx: ModelContext, budget: int | None) -> TrainConfig:
        """`epochs` when given; else `ctx.epochs` (params' `train.epochs`, the global upper
        bound), capped at the model's own `budget` (what its measured time per epoch affords)."""
        epochs = self.epochs
        if epochs is None:
            epochs = ctx.epochs if budget is None else min(ctx.epochs, budget)
        return TrainConfig(
            epochs=epochs,
            lr=self.lr,
            weight_decay=self.weight_decay,
            batch_size=self.batch_size,
            patience=self.patience,
            max_images=self.max_images if self.epochs is None else None,
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


# Large image sets: a fit of `cnn` or `student_cnn` without `epochs` sees at most about this many
# images, so 3 folds and a refit of Kaggle's 42,000 digits (14 epochs of 28,000, 10 of 42,000)
# train in 29 minutes on 2 CPU cores (the whole `dvc repro` 36). Fold 0 there with 21 and 28
# epochs instead of 14 scored 0.9953 and 0.9954 on the hidden digits against 0.9950: not worth
# 1.5x and 2x the time. Below 20,000 images per fit the epoch budgets (20) are what binds.
LARGE_IMAGE_FIT = 400_000

FIT = ("lr", "weight_decay", "batch_size", "epochs", "patience")  # every torch model takes these
IMAGES = ("augment", "tta", "weights", "label_smoothing")  # the image models that learn from labels
DISTILL = ("temperature", "alpha")  # the students


def torch_model(
    name: str,
    adapter: type[TorchModel],
    *,
    net: dict,
    takes: tuple[str, ...] = (),
    budget: int | None = None,
    search_space: Callable | None = None,
    accepts_soft_targets: bool = False,
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
            return adapter(ctx, chosen.train_config(ctx, budget), build, **chosen.model_args(adapter))

        register = register_model(
            name, modality=adapter.modality, defaults=defaults, search_space=search_space,
            accepts_soft_targets=accepts_soft_targets, export="onnx",
        )  # fmt: skip
        return register(factory)

    return decorate


def mlp_space(trial) -> dict:
    return {
        "hidden": trial.suggest_categorical("hidden", [64, 128, 256, 512]),
        "layers": trial.suggest_int("layers", 1, 3),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True),
    }


@torch_model("mlp", TabularTorchModel, net=dict(hidden=256, layers=2, dropout=0.1), search_space=mlp_space)
def mlp(*, hidden, layers, dropout):
    return partial(MLP, hidden=hidden, layers=layers, dropout=dropout)


@torch_model(
    "student_mlp", TabularTorchModel, net=dict(hidden=64, layers=1, dropout=0.0), takes=DISTILL,
    accepts_soft_targets=True, lr=3e-3, patience=8,
)  # fmt: skip
def student_mlp(*, hidden, layers, dropout):
    return partial(MLP, hidden=hidden, layers=layers, dropout=dropout)


@torch_model(
    "cnn", ImageTorchModel, net=dict(width=32, hidden=256, dropout=0.25, head_dropout=0.5), takes=IMAGES,
    budget=20, lr=3e-3, weight_decay=1e-2, batch_size=64, patience=8, max_images=LARGE_IMAGE_FIT,
)  # fmt: skip
def cnn(*, width, hidden, dropout, head_dropout):
    """The digits' net; without `epochs`, at most 20, and on large sets as many as show it
    about `LARGE_IMAGE_FIT` images (the warmup + cosine schedule spans whatever runs). Width
    and budget come from `benchmarks/digit_recipes.py` (README: wider or longer did not pay
    on 4,000 digits)."""
    return partial(CNN, width=width, hidden=hidden, dropout=dropout, head_dropout=head_dropout)


FLIPS = {"shift": 0.0, "degrees": 0.0, "scale": 0.0, "flip": True}  # mirror images only: no affine


@torch_model(
    "resnet", ImageTorchModel, net=dict(arch="resnet18", drop_rate=0.1, width=1.0, timm_kwargs=None), takes=IMAGES,
    budget=15, lr=3e-3, weight_decay=5e-2, patience=4, augment=FLIPS, tta=True,
)  # fmt: skip
def resnet(*, arch, drop_rate, width, timm_kwargs):
    """The default for images of 32 px and more (`train.min_side`), e.g. the solar cells:
    `arch` is any timm name (resnet18: its stem keeps the max-pool from 32 px); `width` scales
    a timm ResNet's stage channels (0.5: 32-64-128-256; other architectures need `width=1`);
    `timm_kwargs`: extra arguments for `timm.create_model` (e.g. `channels`). Trained with
    flips only (`FLIPS`: cells, tissue and satellite images have no orientation; digits keep
    `cnn`) and predicting the mean over the four mirrorings (`tta`: on the first solar split
    CV 0.8543 against 0.8462, held out 0.8851 against 0.8801). Without `epochs`, at most 15
    run (README, "Solar cells, image files")."""
    return partial(timm_net, arch=arch, drop_rate=drop_rate, width=width, timm_kwargs=timm_kwargs)


@torch_model(
    "vit", ImageTorchModel, net=dict(patch=4, dim=64, depth=4, heads=4, dropout=0.1), takes=IMAGES, weight_decay=5e-2
)
def vit(*, patch, dim, depth, heads, dropout):
    return partial(ViT, patch=patch, dim=dim, depth=depth, heads=heads, dropout=dropout)


@torch_model(
    "student_cnn",
    ImageTorchModel,
    net=dict(width=16, hidden=128),
    takes=(*DISTILL, "augment"),
    accepts_soft_targets=True,
    budget=20,
    lr=5e-3,
    weight_decay=1e-2,
    batch_size=64,
    patience=8,
    max_images=LARGE_IMAGE_FIT,
)
def student_cnn(*, width, hidden):
    """About an eighth of `cnn`'s multiply-adds; without `epochs`, at most 20 (distill's
    `epochs` param is the upper bound), fewer on large sets (`LARGE_IMAGE_FIT`)."""
    return partial(StudentCNN, width=width, hidden=hidden)


TEXTS = ("label_smoothing", "token_mask")  # the text models that learn from labels


@torch_model(
    "text_bert", TextTorchModel,
    net=dict(hidden=128, layers=2, heads=2, dropout=0.1, vocab_size=8000, max_len=128, pretrained=None),
    takes=TEXTS, budget=8, lr=1e-3, weight_decay=1e-2, patience=3,
)  # fmt: skip
def text_bert(*, hidden, layers, heads, dropout, vocab_size, max_len, pretrained):
    """A small BERT from scratch (WordPiece vocabulary of `vocab_size` learnt on the fold's
    training texts), or `pretrained`: a local transformers checkpoint folder (model and fast
    tokenizer, as `save_pretrained` writes them) or a model name in the Hugging Face cache;
    nothing is downloaded. Without `epochs`, at most 8 (what a CPU affords). `token_mask`:
    text augmentation, off by default (0.15 gained nothing on either embedded text set: README)."""
    return TextNet(
        tokens=partial(Tokens, vocab_size=vocab_size, max_len=max_len, pretrained=pretrained),
        net=partial(TextEncoder, hidden=hidden, layers=layers, heads=heads, dropout=dropout, pretrained=pretrained),
    )
