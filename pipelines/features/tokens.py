"""Texts to token ids for the transformer text models.

`Tokens.fit(frame)` (the text columns, joined per row by the separator token) counts a
WordPiece vocabulary in the training texts (`wordpiece_vocab`; Hugging Face `tokenizers`
splits and encodes, as BERT's own) or, with `pretrained` (a local checkpoint folder, or a model
name already in the Hugging Face cache; nothing is downloaded), loads that checkpoint's
tokenizer. `encode(frame)` gives int32 ids (n, max_len), padded with `pad_id` on the right,
with [CLS] first and [SEP] last; `max_len` shrinks to the 99th percentile of the training
texts' lengths, so short texts (tweets, SMS) do not pay for padding. For `nn.data.TokenMask`,
`special_ids_` are padding, [CLS], [SEP] and every other special token, and `mask_id_` is
[MASK]'s id (None when the tokenizer has none).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np

from pipelines.core.errors import PipelineError
from pipelines.core.io import read_json

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # our threads are set by train.threads
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def checkpoint_folder(pretrained: str) -> Path:
    """A local checkpoint folder, or the cached snapshot of a Hugging Face model name (never
    downloaded)."""
    path = Path(pretrained).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(pretrained, local_files_only=True))
    except Exception:  # noqa: BLE001 (any miss: not a name, not cached, offline)
        raise PipelineError(
            f"pretrained {pretrained!r}: neither a folder nor a model in the Hugging Face cache (nothing is downloaded)"
        ) from None


def _special(folder: Path, key: str, default: str) -> str:
    """A special token's text from `special_tokens_map.json`, as `save_pretrained` writes it."""
    path = folder / "special_tokens_map.json"
    value = read_json(path).get(key, default) if path.is_file() else default
    return value.get("content", default) if isinstance(value, dict) else value


def load_pretrained_tokenizer(pretrained: str):
    """(tokenizer, pad id, separator, mask token) of a checkpoint's fast tokenizer:
    `tokenizer.json`, plain JSON read by `tokenizers` (no pickles, no remote code)."""
    from tokenizers import Tokenizer

    folder = checkpoint_folder(pretrained)
    file = folder / "tokenizer.json"
    if not file.is_file():
        raise PipelineError(f"{folder}: no tokenizer.json (the fast tokenizer that save_pretrained writes)")
    tokenizer = Tokenizer.from_file(str(file))
    pad_id = tokenizer.token_to_id(_special(folder, "pad_token", "[PAD]"))
    sep, mask = _special(folder, "sep_token", "[SEP]"), _special(folder, "mask_token", "[MASK]")
    return tokenizer, 0 if pad_id is None else pad_id, sep, mask


def wordpiece_vocab(texts: list[str], size: int) -> dict[str, int]:
    """BERT's specials, every character seen (alone and as a word piece), then the words seen
    at least twice, most frequent first (ties by spelling), up to `size` entries.

    Counted here rather than by `tokenizers`' WordPiece trainer, whose merges break ties
    differently from run to run (the same texts gave vocabularies differing in 41 of 7,800
    tokens), so the same seed would not give the same model. A word outside the vocabulary
    is spelt out in characters."""
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer

    normalize, split = BertNormalizer(lowercase=True, strip_accents=True).normalize_str, BertPreTokenizer()
    counts = Counter(word for text in texts for word, _ in split.pre_tokenize_str(normalize(text)))
    chars = sorted({c for word in counts for c in word})
    words = [w for w, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= 2 and len(w) > 1]
    tokens = list(dict.fromkeys([*SPECIALS, *chars, *(f"##{c}" for c in chars), *words]))
    return {token: i for i, token in enumerate(tokens[: max(size, len(SPECIALS) + 2 * len(chars))])}


class Tokens:
    def __init__(self, vocab_size: int = 8000, max_len: int = 128, pretrained: str | None = None):
        self.vocab_size, self.max_len, self.pretrained = vocab_size, max_len, pretrained

    def _texts(self, frame) -> list[str]:
        """One text per row: the text columns joined by the separator token."""
        frame = frame.astype("string").fillna("")
        joined = frame.iloc[:, 0]
        for col in frame.columns[1:]:
            joined = joined + f" {self.sep_} " + frame[col]
        return joined.tolist()

    def fit(self, frame) -> Tokens:
        """Learn (or load) the tokenizer on `frame`, the training rows' text columns."""
        self.sep_, mask = "[SEP]", "[MASK]"
        if self.pretrained is not None:
            self.tokenizer_, self.pad_id_, self.sep_, mask = load_pretrained_tokenizer(self.pretrained)
        texts = self._texts(frame)  # joined once the separator is known
        if self.pretrained is None:
            from tokenizers import BertWordPieceTokenizer

            tok = BertWordPieceTokenizer(wordpiece_vocab(texts, self.vocab_size), lowercase=True)
            self.tokenizer_, self.pad_id_ = tok._tokenizer, tok.token_to_id("[PAD]")
        self.tokenizer_.no_padding()
        self.tokenizer_.no_truncation()
        added = self.tokenizer_.get_added_tokens_decoder()
        self.special_ids_ = tuple(sorted({self.pad_id_, *(i for i, t in added.items() if t.special)}))
        self.mask_id_ = self.tokenizer_.token_to_id(mask)
        lengths = [len(e.ids) for e in self.tokenizer_.encode_batch(texts)]
        self.length_ = int(min(self.max_len, max(8, np.percentile(lengths, 99))))
        return self

    @property
    def n_tokens(self) -> int:
        return self.tokenizer_.get_vocab_size()

    def encode(self, frame) -> np.ndarray:
        texts = self._texts(frame)
        self.tokenizer_.enable_truncation(self.length_)
        self.tokenizer_.enable_padding(length=self.length_, pad_id=self.pad_id_)
        try:
            return np.array([e.ids for e in self.tokenizer_.encode_batch(texts)], dtype=np.int32)
        finally:
            self.tokenizer_.no_padding()
            self.tokenizer_.no_truncation()
