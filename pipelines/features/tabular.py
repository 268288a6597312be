"""Generic feature engineering for any tabular Kaggle CSV.

`build_features(train, test, id_col, target_col)` types every column and returns model-ready
frames plus the *roles* the models use:

- numeric: numbers as float32, with a `<col>__missing` flag where values are missing;
- categorical: low-cardinality text/booleans as pandas `category` with the training levels,
  rare levels (and levels unseen in train) grouped into `__rare__`; each with more than
  two levels also yields `<col>__freq`, how common its level is (numeric, and listed again
  under the role `frequency`: trees use it, one-hot models have the levels already);
- ordinal scales: a categorical whose levels all belong to a known ordered scale (quality
  `Po < Fa < TA < Gd < Ex`, `low < medium < high`, ...) also becomes the number
  `<col>__ord` (1..k along the scale, 0 where missing: "no garage" sits below "poor");
  the scale is recognised by its level set, never by the column's name;
- key: high-cardinality identifiers (a ticket, a surname); each also yields a frequency
  count, and the models target-encode keys inside each fold (no leakage);
- dates become year/month/day-of-week/ordinal numbers; free text becomes length and word
  counts (the text itself is dropped).

Competition-aware features are added first by hooks chosen by the columns they need
(`HOOKS`); they only ever look at features, never at labels. Frequencies are counted over
train and test rows together, which uses no label (as on Kaggle, test features are known).
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

# Ordered scales seen in Kaggle data, lowest first. A categorical column whose training
# levels (case-insensitive) all lie in one scale, with at least 3 of them present, gets its
# position on the smallest such scale as a number.
ORDINAL_SCALES: list[tuple[str, ...]] = [
    ("po", "fa", "ta", "gd", "ex"),  # poor, fair, typical, good, excellent
    ("poor", "fair", "average", "good", "excellent"),
    ("poor", "fair", "good", "very good", "excellent"),
    ("fair", "good", "very good", "premium", "ideal"),  # cut grades
    ("no", "mn", "av", "gd"),  # none, minimum, average, good (exposure)
    ("unf", "lwq", "rec", "blq", "alq", "glq"),  # finish quality
    ("unf", "rfn", "fin"),  # unfinished, rough, finished
    ("sal", "sev", "maj2", "maj1", "mod", "min2", "min1", "typ"),  # damage: salvage .. typical
    ("n", "p", "y"),  # no, partial, yes
    ("i1", "si2", "si1", "vs2", "vs1", "vvs2", "vvs1", "if"),  # clarity grades
    ("very low", "low", "medium", "high", "very high"),
    ("very low", "low", "moderate", "high", "very high"),
    ("low", "medium", "high"),
    ("low", "moderate", "high"),
    ("none", "low", "medium", "high"),
    ("low", "mid", "high"),
    ("l", "m", "h"),
    ("xxs", "xs", "s", "m", "l", "xl", "xxl", "xxxl"),
    ("never", "rarely", "sometimes", "often", "always"),
    ("strongly disagree", "disagree", "neutral", "agree", "strongly agree"),
    ("very unlikely", "unlikely", "neutral", "likely", "very likely"),
    ("very dissatisfied", "dissatisfied", "neutral", "satisfied", "very satisfied"),
    ("first", "second", "third", "fourth", "fifth"),
    ("freshman", "sophomore", "junior", "senior"),
    ("novice", "beginner", "intermediate", "advanced", "expert"),
    ("elementary", "middle", "high", "college", "graduate"),
    ("a", "b", "c", "d", "e", "f", "g"),  # letter grades (loan grade, diamond colour D..J below)
    ("d", "e", "f", "g", "h", "i", "j"),
]
MIN_ORDINAL_LEVELS = 3


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


def ordinal_scale(levels) -> tuple[str, ...] | None:
    """The smallest known ordered scale holding every level (case-insensitive), if any."""
    norm = {str(v).strip().lower() for v in levels}
    if len(norm) < MIN_ORDINAL_LEVELS:
        return None
    fits = [s for s in ORDINAL_SCALES if norm <= set(s)]
    return min(fits, key=len) if fits else None


def _ordinal(values: pd.Series, scale: tuple[str, ...]) -> pd.Series:
    rank = {level: i + 1 for i, level in enumerate(scale)}
    codes = values.astype("string").str.strip().str.lower().map(rank)
    return pd.to_numeric(codes, errors="coerce").fillna(0)  # missing / unknown: below the scale


def _categorical(train: pd.Series, test: pd.Series) -> tuple[pd.Series, pd.Series]:
    train, test = train.astype("string"), test.astype("string")
    counts = train.value_counts()
    keep = sorted(counts[counts >= RARE_COUNT].index)

    def encode(s: pd.Series) -> pd.Series:
        s = s.where(s.isin(keep) | s.isna(), RARE)
        return pd.Categorical(s, categories=[*keep, RARE])

    return pd.Series(encode(train), index=train.index), pd.Series(encode(test), index=test.index)


def _frequency(values: pd.Series) -> pd.Series:
    """Share of rows (train and test) holding each row's value; missing values count too."""
    keys = values.astype("string").fillna("__missing__")
    return keys.map(keys.value_counts(normalize=True)).astype(np.float32)


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
    roles: dict[str, list[str]] = {"numeric": [], "categorical": [], "key": [], "frequency": []}

    def numeric(name: str, values: pd.Series) -> None:
        features[name] = values.astype(np.float32)
        roles["numeric"].append(name)

    for col in both.columns:
        values = both[col]
        tr = values.iloc[:n_train]
        if tr.isna().all() or tr.nunique(dropna=False) < 2:
            continue  # nothing to learn from a column that is empty or constant in train
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
            scale = ordinal_scale(tr.dropna().unique())
            if scale is not None:
                numeric(f"{col}__ord", _ordinal(values, scale))
            if n_levels > 2:
                numeric(f"{col}__freq", _frequency(values))
                roles["frequency"].append(f"{col}__freq")
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
