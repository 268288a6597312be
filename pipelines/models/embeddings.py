"""Frozen pretrained embeddings with a linear model: what a Kaggler tries first on text and
images, and a strong ensemble member.

- `text_embed`: each text column through a pretrained encoder (a Hugging Face checkpoint:
  sentence-transformers' all-MiniLM-L6-v2 by default), pooled as the checkpoint was trained
  (its `1_Pooling/config.json`: mean, CLS or max; mean without one) and L2-normalised where it
  says so (`modules.json`'s Normalize), beside the competition's other columns; logistic
  regression (classes) or ridge (values).
- `image_embed`: the images through a pretrained timm backbone (EfficientNet-Lite0 ImageNet
  weights by default), resized and normalised as the backbone's config says, global-pooled;
  the same linear models on the standardised features.

The encoder never trains, so a text or image is embedded once per process (kept in memory,
keyed by its content) and every fold's fit reuses it. `weights` is a source
(`nn.pretrained.resolve`); the plan fills it from the competition's `weights:` or
`train.weights`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from pipelines.core.context import IMAGE, TEXT, ModelContext
from pipelines.core.errors import PipelineError
from pipelines.core.progress import bar
from pipelines.features.preprocess import make_preprocessor
from pipelines.features.tokens import load_pretrained_tokenizer
from pipelines.models.nets import pool_tokens
from pipelines.models.registry import register_model
from pipelines.models.tabular import SklearnModel
from pipelines.nn.pretrained import fit_state, load_state, resolve

_ENCODERS: dict[tuple, object] = {}  # (kind, checkpoint, ...) -> a loaded encoder, per process
_SEEN: dict[tuple, dict[bytes, np.ndarray]] = {}  # encoder key -> content digest -> embedding


def _need(weights: str | None, model: str) -> str:
    if not weights:
        raise PipelineError(
            f"model {model!r} needs pretrained weights: set the competition's `weights:` or train.weights"
        )
    return weights


def _embed_all(key: tuple, items: list, digests: list[bytes], encode, batch_size: int, what: str) -> np.ndarray:
    """Embeddings of `items`: those seen before from memory, the rest `encode`d in batches (texts
    of like length together, so a batch pads little)."""
    seen = _SEEN.setdefault(key, {})
    todo = {d: i for i, d in enumerate(digests) if d not in seen}.items()
    todo = sorted(todo, key=lambda kv: (len(items[kv[1]]) if isinstance(items[kv[1]], str) else 0, kv[1]))
    for start in bar(range(0, len(todo), batch_size), desc=what, unit="batch"):
        chunk = todo[start : start + batch_size]
        for (digest, _), vec in zip(chunk, encode([items[i] for _, i in chunk]), strict=True):
            seen[digest] = vec
    return np.stack([seen[d] for d in digests]).astype(np.float32)


class TextEmbedder(BaseEstimator, TransformerMixin):
    """One text column -> (n, width) sentence embeddings of a frozen Hugging Face encoder."""

    def __init__(self, weights: str, max_len: int = 128, batch_size: int = 64):
        self.weights, self.max_len, self.batch_size = weights, max_len, batch_size

    def fit(self, X, y=None):
        return self

    def _encoder(self):
        key = ("text", self.weights)
        if key not in _ENCODERS:
            from transformers import AutoModel

            folder = resolve(self.weights)
            if not folder.is_dir():
                raise PipelineError(f"weights {self.weights!r}: a text encoder needs a Hugging Face folder")
            tokenizer, pad_id, _, _ = load_pretrained_tokenizer(str(folder))  # tokenizer.json: plain JSON
            model = AutoModel.from_pretrained(folder, local_files_only=True, use_safetensors=True).eval()
            _ENCODERS[key] = (tokenizer, pad_id, model, *pooling_of(folder))
        return _ENCODERS[key]

    def transform(self, X) -> np.ndarray:
        texts = ["" if t is None or t != t else str(t) for t in np.asarray(X).ravel()]
        tokenizer, pad_id, model, pooling, normalise = self._encoder()

        @torch.inference_mode()
        def encode(batch: list[str]) -> np.ndarray:
            tokenizer.no_padding()  # padded below, to this batch's longest text
            tokenizer.enable_truncation(self.max_len)  # keeps the special tokens ([CLS] ... [SEP])
            ids = [e.ids for e in tokenizer.encode_batch(batch)]
            width = max(len(i) for i in ids)
            mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids])
            ids = torch.tensor([i + [pad_id] * (width - len(i)) for i in ids])
            hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
            vec = pool_tokens(hidden, mask, pooling)
            return (torch.nn.functional.normalize(vec, dim=1) if normalise else vec).numpy()

        digests = [hashlib.sha1(t.encode()).digest() for t in texts]
        key = ("text", self.weights, self.max_len)
        return _embed_all(key, texts, digests, encode, self.batch_size, "embedding texts")


def pooling_of(folder: Path) -> tuple[str, bool]:
    """How a sentence-transformers checkpoint pools its tokens, and whether it normalises."""
    mode, normalise = "mean", False
    config = folder / "1_Pooling" / "config.json"
    if config.is_file():
        flags = json.loads(config.read_text())
        keys = {"cls": "pooling_mode_cls_token", "max": "pooling_mode_max_tokens", "mean": "pooling_mode_mean_tokens"}
        mode = next((m for m, key in keys.items() if flags.get(key)), "mean")
    modules = folder / "modules.json"
    if modules.is_file():
        normalise = any("Normalize" in m.get("type", "") for m in json.loads(modules.read_text()))
    return mode, normalise


def _linear(ctx: ModelContext, C: float):
    if ctx.task == "regression":
        return Ridge(alpha=1.0 / C)
    return LogisticRegression(C=C, max_iter=3000, random_state=ctx.seed)


def embed_space(trial) -> dict:
    return {"C": trial.suggest_float("C", 0.01, 100.0, log=True)}


@register_model(
    "text_embed", modality=TEXT, search_space=embed_space, pretrained=True, one_process=True,
    defaults=dict(weights=None, C=1.0, max_len=128),
)  # fmt: skip
def text_embed(ctx: ModelContext, *, weights, C, max_len):
    """Frozen sentence embeddings of every text column (and the other columns) -> a linear model."""
    weights = _need(weights, "text_embed")
    texts = ctx.roles.get("text", [])
    parts = [(f"{col}:embed", TextEmbedder(weights, max_len=max_len), col) for col in texts]
    parts += [(name, step, cols) for name, step, cols in make_preprocessor(ctx).transformers if cols]
    pipe = Pipeline([("features", ColumnTransformer(parts)), ("scale", StandardScaler()), ("model", _linear(ctx, C))])
    return SklearnModel(pipe, ctx.task, n_classes=ctx.n_classes)


class ImageEmbedder(BaseEstimator, TransformerMixin):
    """uint8 images (n, C, H, W) -> (n, width) pooled features of a frozen timm backbone."""

    def __init__(self, weights: str, arch: str, size: int, batch_size: int = 64):
        self.weights, self.arch, self.size, self.batch_size = weights, arch, size, batch_size

    def fit(self, X, y=None):
        return self

    def _encoder(self):
        key = ("image", self.weights, self.arch)
        if key not in _ENCODERS:
            import timm

            net = timm.create_model(self.arch, pretrained=False, num_classes=0)
            fit_state(net, load_state(resolve(self.weights)), repr(self.weights))
            cfg = net.pretrained_cfg
            mean = torch.tensor(cfg.get("mean", (0.485, 0.456, 0.406))).view(1, 3, 1, 1)
            std = torch.tensor(cfg.get("std", (0.229, 0.224, 0.225))).view(1, 3, 1, 1)
            _ENCODERS[key] = (net.eval(), mean, std)
        return _ENCODERS[key]

    def transform(self, X) -> np.ndarray:
        images = np.asarray(X)
        net, mean, std = self._encoder()

        @torch.inference_mode()
        def encode(batch: list[np.ndarray]) -> np.ndarray:
            x = torch.from_numpy(np.stack(batch)).float().div_(255.0)
            x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x[:, :3]  # grey as RGB, alpha dropped
            x = torch.nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True)
            return net((x - mean) / std).numpy()

        digests = [hashlib.sha1(np.ascontiguousarray(img).tobytes()).digest() for img in images]
        key = ("image", self.weights, self.arch, self.size)
        return _embed_all(key, list(images), digests, encode, self.batch_size, "embedding images")


@register_model(
    "image_embed", modality=IMAGE, search_space=embed_space, pretrained=True, one_process=True,
    defaults=dict(weights=None, C=1.0, arch="tf_efficientnet_lite0", size=224),
)  # fmt: skip
def image_embed(ctx: ModelContext, *, weights, C, arch, size):
    """Frozen ImageNet features (`arch`: a timm architecture matching the weights; `size`: the
    side images are resized to) -> a linear model."""
    embedder = ImageEmbedder(_need(weights, "image_embed"), arch, size)
    pipe = Pipeline([("embed", embedder), ("scale", StandardScaler()), ("model", _linear(ctx, C))])
    return SklearnModel(pipe, ctx.task, n_classes=ctx.n_classes)
