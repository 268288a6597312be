"""Sparse text models: TF-IDF of word and character n-grams with a linear model.

The strong, cheap baseline of every Kaggle text competition, and the text student. Each text
column (role `text`, kept by `clean` for `modality: text`) gives word n-grams and character
n-grams within word boundaries (robust to misspellings, hashtags and "fr33 entry"), both with
sublinear term frequency; the competition's other columns join them through
`make_preprocessor` (scaled numbers, one-hot categories). Everything is fitted inside the
fold, so no validation text shapes the vocabulary.

- `tfidf_linear`: logistic regression (classes) or ridge (values), `C` tuned by Optuna.
- `student_tfidf`: ridge regression on the teachers' soft targets in logit space (the
  labels' share `1 - alpha`), the distilled student of text competitions: no torch, a sparse
  matrix product per row.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logit, softmax
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline

from pipelines.core.context import KD_ALPHA, TEXT, ModelContext
from pipelines.features.preprocess import make_preprocessor
from pipelines.models.registry import register_model
from pipelines.models.tabular import SklearnModel

CLIP = 1e-4  # soft targets are clipped to [CLIP, 1 - CLIP] before their logit


def tfidf_features(
    ctx: ModelContext, *, word_ngrams: int = 2, char_ngrams: int = 5, min_df: int = 2, max_features: int = 200_000
) -> ColumnTransformer:
    """Word 1..`word_ngrams`-grams and character 2..`char_ngrams`-grams (0: none) of every
    text column, beside the other columns as the linear models see them."""
    parts = []
    for col in ctx.roles.get("text", []):
        words = TfidfVectorizer(
            ngram_range=(1, word_ngrams), min_df=min_df, max_features=max_features, sublinear_tf=True,
            strip_accents="unicode", dtype=np.float32,
        )  # fmt: skip
        parts.append((f"{col}:words", words, col))
        if char_ngrams:
            chars = TfidfVectorizer(
                analyzer="char_wb", ngram_range=(2, char_ngrams), min_df=min_df, max_features=max_features,
                sublinear_tf=True, dtype=np.float32,
            )  # fmt: skip
            parts.append((f"{col}:chars", chars, col))
    parts += [(name, step, cols) for name, step, cols in make_preprocessor(ctx).transformers if cols]
    return ColumnTransformer(parts, sparse_threshold=1.0)


def tfidf_space(trial) -> dict:
    return {
        "C": trial.suggest_float("C", 0.3, 100.0, log=True),
        "char_ngrams": trial.suggest_categorical("char_ngrams", [0, 4, 5]),
        "word_ngrams": trial.suggest_int("word_ngrams", 1, 3),
    }


@register_model(
    "tfidf_linear", modality=TEXT, search_space=tfidf_space,
    defaults=dict(C=10.0, word_ngrams=2, char_ngrams=5, min_df=2),
)  # fmt: skip
def tfidf_linear(ctx: ModelContext, *, C, word_ngrams, char_ngrams, min_df):
    """`C`: inverse regularisation (ridge's alpha is 1/C for values)."""
    features = tfidf_features(ctx, word_ngrams=word_ngrams, char_ngrams=char_ngrams, min_df=min_df)
    if ctx.task == "regression":
        est = Ridge(alpha=1.0 / C)
    else:
        est = LogisticRegression(C=C, max_iter=3000, random_state=ctx.seed)
    return SklearnModel(Pipeline([("tfidf", features), ("model", est)]), ctx.task, n_classes=ctx.n_classes)


class TfidfStudent:
    """Ridge on TF-IDF features fitted to the teachers' outputs in logit space.

    Soft targets carry what the teachers know about each row (how spam-like, how negative)
    as numbers a least-squares fit can follow; without them it fits the labels the same way."""

    def __init__(self, ctx: ModelContext, features: ColumnTransformer, alpha: float, ridge: float):
        self.task, self.n_classes = ctx.task, ctx.n_classes
        self.features, self.alpha, self.ridge = features, alpha, ridge

    def _targets(self, y: np.ndarray, soft) -> np.ndarray:
        hard = np.eye(self.n_classes)[y.astype(int)] if self.task == "multiclass" else y.astype(np.float64)
        mixed = hard if soft is None else self.alpha * np.asarray(soft, dtype=np.float64) + (1 - self.alpha) * hard
        if self.task == "regression":
            return mixed
        mixed = np.clip(mixed, CLIP, 1 - CLIP)
        if self.task == "binary":
            return logit(mixed)
        log_p = np.log(mixed)
        return log_p - log_p.mean(axis=1, keepdims=True)

    def fit(self, X, y, eval_set=None, soft_targets=None) -> TfidfStudent:
        y = np.asarray(y)
        x = self.features.fit_transform(X, y)
        self.model_ = Ridge(alpha=self.ridge).fit(x, self._targets(y, soft_targets))
        return self

    def predict_output(self, X) -> np.ndarray:
        z = self.model_.predict(self.features.transform(X))
        if self.task == "binary":
            return expit(z)
        return softmax(z, axis=1) if self.task == "multiclass" else z


@register_model(
    "student_tfidf", modality=TEXT, accepts_soft_targets=True,
    defaults=dict(alpha=KD_ALPHA, ridge=1.0, word_ngrams=2, char_ngrams=4),
)  # fmt: skip
def student_tfidf(ctx: ModelContext, *, alpha, ridge, word_ngrams, char_ngrams):
    """`alpha`: the teachers' share of each target; `ridge`: the L2 penalty."""
    features = tfidf_features(ctx, word_ngrams=word_ngrams, char_ngrams=char_ngrams, max_features=100_000)
    return TfidfStudent(ctx, features, alpha, ridge)
