"""The registered image and text torch models: small factories over `nets`, fitted by
`torch_adapter`'s models (the tabular ones are in `mlp.py`; the machinery in `torch_recipe.py`).

Image (uint8 arrays (n, C, H, W)): `cnn` (compact, for 28x28 digits), `resnet` (any timm
architecture, stem shrunk for images under 32 px; resnet18 with flips by default), `vit` (a
small transformers ViT built from its config) and `student_cnn` (tiny, for distillation).
Text: `text_bert`. Without `epochs`, each trains at most its `epoch_cap` epochs (what its
time per epoch affords on 2 CPU cores); the warmup + cosine schedule spans whatever runs.
"""

from __future__ import annotations

from functools import partial

from pipelines.features.tokens import Tokens
from pipelines.models.nets import CNN, StudentCNN, TextEncoder, ViT, timm_net
from pipelines.models.torch_adapter import ImageTorchModel, TextNet, TextTorchModel
from pipelines.models.torch_recipe import DISTILL, IMAGES, torch_model

# Large image sets: a fit of `cnn` or `student_cnn` without `epochs` sees at most about this many
# images (more epochs on the full digits did not pay; benchmarks/README.md)
LARGE_IMAGE_FIT = 400_000


@torch_model(
    "cnn", ImageTorchModel, net=dict(width=32, hidden=256, dropout=0.25, head_dropout=0.5), takes=IMAGES,
    epoch_cap=20, lr=3e-3, weight_decay=1e-2, batch_size=64, patience=8, max_images=LARGE_IMAGE_FIT,
)  # fmt: skip
def cnn(*, width, hidden, dropout, head_dropout):
    """The digits' net; without `epochs`, at most 20, and on large sets as many as show it
    about `LARGE_IMAGE_FIT` images (the warmup + cosine schedule spans whatever runs). Width
    and epoch cap come from `benchmarks/digit_recipes.py` (wider or longer did not pay
    on 4,000 digits)."""
    return partial(CNN, width=width, hidden=hidden, dropout=dropout, head_dropout=head_dropout)


FLIPS = {"shift": 0.0, "degrees": 0.0, "scale": 0.0, "flip": True}  # mirror images only: no affine


@torch_model(
    "resnet", ImageTorchModel, net=dict(arch="resnet18", drop_rate=0.1, width=1.0, timm_kwargs=None), takes=IMAGES,
    epoch_cap=15, lr=3e-3, weight_decay=5e-2, patience=4, augment=FLIPS, tta=True,
)  # fmt: skip
def resnet(*, arch, drop_rate, width, timm_kwargs):
    """The default for images of 32 px and more (`train.min_side`), e.g. the solar cells:
    `arch` is any timm name (resnet18: its stem keeps the max-pool from 32 px); `width` scales
    a timm ResNet's stage channels (0.5: 32-64-128-256; other architectures need `width=1`);
    `timm_kwargs`: extra arguments for `timm.create_model` (e.g. `channels`). Trained with
    flips only (`FLIPS`: cells, tissue and satellite images have no orientation; digits keep
    `cnn`) and predicting the mean over the four mirrorings (`tta`, which paid on the solar
    cells: benchmarks/README.md). Without `epochs`, at most 15 run."""
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
    epoch_cap=20,
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
    takes=TEXTS, epoch_cap=8, lr=1e-3, weight_decay=1e-2, patience=3,
)  # fmt: skip
def text_bert(*, hidden, layers, heads, dropout, vocab_size, max_len, pretrained):
    """A small BERT from scratch (WordPiece vocabulary of `vocab_size` learnt on the fold's
    training texts), or `pretrained`: a local transformers checkpoint folder (model and fast
    tokenizer, as `save_pretrained` writes them) or a model name in the Hugging Face cache;
    nothing is downloaded. Without `epochs`, at most 8 (what a CPU affords). `token_mask`:
    text augmentation, off by default (it gained nothing on either embedded text set)."""
    return TextNet(
        tokens=partial(Tokens, vocab_size=vocab_size, max_len=max_len, pretrained=pretrained),
        net=partial(TextEncoder, hidden=hidden, layers=layers, heads=heads, dropout=dropout, pretrained=pretrained),
    )
