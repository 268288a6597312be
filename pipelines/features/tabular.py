"""Generic feature engineering for any tabular Kaggle CSV.

`build_features(train, test, id_col, target_col)` types every column and returns model-ready
frames plus the *roles* the models use:

- numeric: numbers as float32, with a `<col>__missing` flag where values are missing;
- categorical: low-cardinality text/booleans as pandas `category` with the training levels,
  rare levels (and levels unseen in train) grouped into `__rare__`;
- key: high-cardinality identifiers (a ticket, a surname); each also yields a frequency
  count, and the models target-encode keys inside each fold (no leakage);
- dates become year/month/day-of-week/ordinal numbers; free text becomes length and word
  counts (the text itself is dropped).

Competition-aware features are added first by hooks chosen by the columns they need
(`HOOKS`); they only ever look at features, never at labels.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from pipelines.features import titanic

HOOKS = [titanic]
MAX_CATEGORIES = 50  # more distinct values than this (and > 5% of rows): a key, not a category
RARE_COUNT = 10  # levels seen fewer times in train are grouped into __rare__
RARE = "__rare__"


def _is_text(values: pd.Series) -> bool:
    words = values.dropna().astype("string").str.count(r"\s+") + 1
    return len(words) > 0 and float(words.mean()) >= 3


def _as_dates(values: pd.Series) -> pd.Series | None:
    sample = values.dropna().astype("string").head(200)
    if sample.empty or not sample.str.match(r"^\d{4}[-/]\d{1,2}[-/]\d{1,2}").all():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(values, errors="coerce")
    return parsed if parsed.notna().mean() > 0.9 * values.notna().mean() else None


def _categorical(train: pd.Series, test: pd.Series) -> tuple[pd.Series, pd.Series]:
    train, test = train.astype("string"), test.astype("string")
    counts = train.value_counts()
    keep = sorted(counts[counts >= RARE_COUNT].index)

    def encode(s: pd.Series) -> pd.Series:
        s = s.where(s.isin(keep) | s.isna(), RARE)
        return pd.Categorical(s, categories=[*keep, RARE])

    return pd.Series(encode(train), index=train.index), pd.Series(encode(test), index=test.index)


def build_features(
    train: pd.DataFrame, test: pd.DataFrame, id_col: str | None, target_col: str
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, list[str]]]:
    n_train = len(train)
    both = pd.concat([train.drop(columns=[target_col]), test], ignore_index=True)
    if id_col in both:
        both = both.drop(columns=[id_col])
    for hook in HOOKS:
        if hook.applies(both.columns):
            both = hook.add_features(both)

    features: dict[str, pd.Series] = {}
    roles: dict[str, list[str]] = {"numeric": [], "categorical": [], "key": []}

    def numeric(name: str, values: pd.Series) -> None:
        features[name] = values.astype(np.float32)
        roles["numeric"].append(name)

    for col in both.columns:
        values = both[col]
        tr = values.iloc[:n_train]
        if tr.isna().all():
            continue  # nothing to learn from a column that is empty in train
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            numeric(col, pd.to_numeric(values, errors="coerce").replace([np.inf, -np.inf], np.nan))
            if values.isna().any():
                numeric(f"{col}__missing", values.isna().astype(np.float32))
            continue
        dates = _as_dates(values)
        if dates is not None:
            numeric(f"{col}__year", dates.dt.year)
            numeric(f"{col}__month", dates.dt.month)
            numeric(f"{col}__dayofweek", dates.dt.day_of_week)
            numeric(f"{col}__ordinal", (dates - pd.Timestamp("1970-01-01")).dt.days)
            continue
        n_levels = tr.nunique()
        if n_levels <= MAX_CATEGORIES or n_levels <= 0.05 * n_train:
            cat_tr, cat_te = _categorical(tr, values.iloc[n_train:])
            features[col] = pd.concat([cat_tr, cat_te], ignore_index=True).astype(cat_tr.dtype)
            roles["categorical"].append(col)
        elif _is_text(tr):
            text = values.astype("string").fillna("")
            numeric(f"{col}__len", text.str.len())
            numeric(f"{col}__words", text.str.count(r"\S+"))
        else:
            features[col] = values.astype("string")
            roles["key"].append(col)
            numeric(f"{col}__count", values.map(values.value_counts()).fillna(0))

    frame = pd.DataFrame(features)
    return frame.iloc[:n_train].reset_index(drop=True), frame.iloc[n_train:].reset_index(drop=True), roles
