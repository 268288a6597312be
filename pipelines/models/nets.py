"""The image and text nets behind `torch_zoo`'s models, built from scratch.

`CNN` (compact, for 28x28 digits), `StudentCNN` (tiny, for distillation), `timm_net` (any
timm architecture, stem shrunk for small images), `ViT` (a small transformers ViT built from
its config) and `TextEncoder` (a BERT encoder). Each takes `(input_shape, n_outputs,
**options)`. The tabular `MLP` lives with its models in `models/mlp.py`, so that a tabular
competition's code does not hold these.
"""

from __future__ import annotations

import torch
from torch import nn

from pipelines.core.errors import PipelineError
from pipelines.features.tokens import checkpoint_folder


def _conv(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class CNN(nn.Sequential):
    """Two blocks of two 3x3 convs (BatchNorm, ReLU), each ending in max-pooling and dropout,
    then a dense head on the flattened 7x7 maps (Linear -> BatchNorm -> ReLU -> Dropout).

    The usual recipe that passes 99% on MNIST digits. The dense head keeps where strokes are:
    the former global-average-pooled head scored 0.982-0.985 on the hidden digits against
    0.992 for this one (one fold, 3,200 images to train, 25 epochs).
    """

    def __init__(
        self, input_shape, n_out: int, *, width: int = 32, hidden: int = 256, dropout: float = 0.25,
        head_dropout: float = 0.5,
    ):  # fmt: skip
        c, w = input_shape[0], width
        cells = (input_shape[1] // 4) * (input_shape[2] // 4)
        super().__init__(
            *_conv(c, w),
            *_conv(w, w),
            nn.MaxPool2d(2),
            nn.Dropout(dropout),
            *_conv(w, 2 * w),
            *_conv(2 * w, 2 * w),
            nn.MaxPool2d(2),
            nn.Dropout(dropout),
            nn.Flatten(),
            nn.Linear(2 * w * cells, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(head_dropout),
            nn.Linear(hidden, n_out),
        )


class StudentCNN(nn.Sequential):
    """Three single 3x3 convs, pooling after the first two, and a small dense head: about a
    fifth of the teacher CNN's multiply-adds at the default widths."""

    def __init__(self, input_shape, n_out: int, *, width: int = 16, hidden: int = 128):
        c, w = input_shape[0], width
        cells = (input_shape[1] // 4) * (input_shape[2] // 4)
        super().__init__(
            *_conv(c, w),
            nn.MaxPool2d(2),
            *_conv(w, 2 * w),
            nn.MaxPool2d(2),
            *_conv(2 * w, 4 * w),
            nn.Flatten(),
            nn.Linear(4 * w * cells, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, n_out),
        )


def timm_net(
    input_shape,
    n_out: int,
    *,
    arch: str = "resnet10t",
    drop_rate: float = 0.0,
    width: float = 1.0,
    timm_kwargs: dict | None = None,
) -> nn.Module:
    """A timm architecture from scratch; for images under 32 px the stem's max-pool goes, so
    28x28 digits still reach the last stage at 2x2 instead of 1x1 (from 32 px it stays, as in
    timm: a quarter of the multiply-adds). `width` scales a timm ResNet's stage channels
    (64, 128, 256, 512); other architectures need width 1."""
    import timm

    kw = dict(timm_kwargs or {})
    if width != 1.0:
        kw.setdefault("channels", tuple(max(8, int(round(c * width))) for c in (64, 128, 256, 512)))
    try:
        net = timm.create_model(
            arch, pretrained=False, in_chans=input_shape[0], num_classes=n_out, drop_rate=drop_rate, **kw
        )
    except RuntimeError as err:  # timm's message for an unknown name
        raise PipelineError(f"resnet: {err}") from None
    except TypeError as err:  # timm_kwargs the architecture does not take
        raise PipelineError(f"resnet: {arch}: {err}") from None
    if min(input_shape[1:]) < 32 and isinstance(getattr(net, "maxpool", None), nn.MaxPool2d):
        net.maxpool = nn.Identity()
    return net


class ViT(nn.Module):
    """A small transformers ViT (`ViTForImageClassification` from a `ViTConfig`), logits out."""

    def __init__(
        self,
        input_shape,
        n_out: int,
        *,
        patch: int = 4,
        dim: int = 64,
        depth: int = 4,
        heads: int = 4,
        dropout: float = 0.1,
    ):
        super().__init__()
        from transformers import ViTConfig, ViTForImageClassification

        c, h, w = input_shape
        if h % patch or w % patch:
            raise PipelineError(f"vit: patch size {patch} does not divide the image ({h}x{w})")
        config = ViTConfig(
            image_size=h if h == w else (h, w),
            patch_size=patch,
            num_channels=c,
            hidden_size=dim,
            num_hidden_layers=depth,
            num_attention_heads=heads,
            intermediate_size=2 * dim,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=0.0,
            num_labels=n_out,
        )
        self.vit = ViTForImageClassification(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit(pixel_values=x).logits


class TextEncoder(nn.Module):
    """A BERT encoder (transformers) over token ids, pooled over the real tokens (`pooling`:
    mean, cls or max, as the checkpoint was trained), then a linear head. From scratch: a
    small `BertConfig` (`hidden`, `layers`, `heads`); with `pretrained` (a local checkpoint,
    or one in the Hugging Face cache) that model's encoder, its `body_parameters()` (the loop
    trains them at `body_lr` times the head's rate). Each batch is cut to its longest text
    (ids are right-padded), so short batches run short."""

    def __init__(
        self, input_shape, n_out: int, *, vocab_size: int, pad_id: int = 0, hidden: int = 128, layers: int = 2,
        heads: int = 2, dropout: float = 0.1, pretrained: str | None = None, pooling: str = "mean",
    ):  # fmt: skip
        super().__init__()
        from transformers import AutoModel, BertConfig, BertModel

        self.pad_id, self.pooling, self.pretrained = pad_id, pooling, pretrained is not None
        if pretrained is not None:
            try:
                folder = checkpoint_folder(pretrained)
                self.encoder = AutoModel.from_pretrained(folder, local_files_only=True, use_safetensors=True)
            except (OSError, ValueError) as err:
                first = (str(err).strip().splitlines() or [type(err).__name__])[0]
                raise PipelineError(f"pretrained {pretrained!r}: no safetensors model there ({first[:160]})") from None
        else:
            config = BertConfig(
                vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                intermediate_size=4 * hidden, max_position_embeddings=input_shape[0], pad_token_id=pad_id,
                hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
            )  # fmt: skip
            self.encoder = BertModel(config, add_pooling_layer=False)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(self.encoder.config.hidden_size, n_out)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = ids != self.pad_id
        if not torch.jit.is_tracing():  # an exported graph keeps the full width
            longest = max(1, int(mask.sum(dim=1).max()))
            ids, mask = ids[:, :longest], mask[:, :longest]
        ids = ids.long()
        hidden = self.encoder(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        return self.out(self.drop(pool_tokens(hidden, mask, self.pooling)))

    def body_parameters(self) -> list[nn.Parameter]:
        """The pretrained encoder's parameters (none from scratch: one rate for the whole net)."""
        return list(self.encoder.parameters()) if self.pretrained else []


def pool_tokens(hidden: torch.Tensor, mask: torch.Tensor, mode: str = "mean") -> torch.Tensor:
    """(n, length, width) token states -> (n, width): the first token's (cls), or the mean or
    max over the real tokens (`mask`)."""
    if mode == "cls":
        return hidden[:, 0]
    weight = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "max":
        return hidden.masked_fill(weight == 0, -1e4).max(dim=1).values
    return (hidden * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1.0)
