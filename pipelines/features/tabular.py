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
  counts (the text itself is dropped, except in text competitions: `text` columns stay text).

Competition-aware features are added first by hooks chosen by the columns they need
(`HOOKS`); they only ever look at features, never at labels. Frequencies are counted over
train and test rows together, which uses no label (as on Kaggle, test features are known).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from pipelines.core.errors import PipelineError
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


def find_text_columns(train: pd.DataFrame, exclude) -> list[str]:
    """The free-text columns of a text competition: text of three or more words on average
    whose values mostly differ (a column of a few repeated phrases is a category)."""
    found = []
    for col in train.columns:
        values = train[col]
        if col in exclude or pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        if _is_text(values) and values.nunique() > min(MAX_CATEGORIES, 0.05 * len(values)):
            found.append(col)
    return found


def text_columns(train: pd.DataFrame, named: list[str] | None, exclude, where: str) -> list[str]:
    """A text competition's text columns: those `named` (checked), else those found."""
    if named is None:
        found = find_text_columns(train, exclude)
        if not found:
            raise PipelineError(
                f"{where}: modality text, but no column holds free text (3+ words per value); "
                "name the text columns in the spec's 'text'"
            )
        return found
    for col in named:
        if col not in train:
            raise PipelineError(f"{where}: text column {col!r} not found")
        values = train[col]
        if not values.astype("string").str.strip().fillna("").astype(bool).any():
            raise PipelineError(f"{where}: text column {col!r} is empty in every row")
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            raise PipelineError(f"{where}: text column {col!r} holds numbers, not text")
    return list(named)


class _Features:
    """The feature columns being built and their roles."""

    def __init__(self):
        self.columns: dict[str, pd.Series] = {}
        self.roles: dict[str, list[str]] = {"numeric": [], "categorical": [], "key": [], "frequency": [], "text": []}

    def add(self, role: str, name: str, values: pd.Series) -> None:
        self.columns[name] = values.astype(np.float32) if role in ("numeric", "frequency") else values
        self.roles[role].append(name)
        if role == "frequency":  # trees use it as a number; one-hot models have the levels already
            self.roles["numeric"].append(name)

    def text_stats(self, col: str, text: pd.Series) -> None:
        self.add("numeric", f"{col}__len", text.str.len())
        self.add("numeric", f"{col}__words", text.str.count(r"\S+"))

    def dates(self, col: str, dates: pd.Series) -> None:
        self.add("numeric", f"{col}__year", dates.dt.year)
        self.add("numeric", f"{col}__month", dates.dt.month)
        self.add("numeric", f"{col}__dayofweek", dates.dt.day_of_week)
        self.add("numeric", f"{col}__ordinal", (dates - pd.Timestamp("1970-01-01")).dt.days)

    def categorical(self, col: str, values: pd.Series, n_train: int) -> None:
        tr = values.iloc[:n_train]
        cat_tr, cat_te = _categorical(tr, values.iloc[n_train:])
        self.add("categorical", col, pd.concat([cat_tr, cat_te], ignore_index=True).astype(cat_tr.dtype))
        scale = ordinal_scale(tr.dropna().unique())
        if scale is not None:
            self.add("numeric", f"{col}__ord", _ordinal(values, scale))
        if tr.nunique() > 2:
            self.add("frequency", f"{col}__freq", _frequency(values))


def build_features(
    train: pd.DataFrame, test: pd.DataFrame, id_col: str | None, target_col: str, text: list[str] = ()
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, list[str]]]:
    """`text`: columns kept as text (role `text`, for the text models, missing as ""), each
    also giving its length and word count; free text elsewhere gives only those two numbers."""
    n_train = len(train)
    both = pd.concat([train.drop(columns=[target_col]), test], ignore_index=True)
    if id_col in both:
        both = both.drop(columns=[id_col])
    for hook in HOOKS:
        if hook.applies(both.columns):
            both = hook.add_features(both)

    out = _Features()
    for col in both.columns:
        values = both[col]
        tr = values.iloc[:n_train]
        if col in text:
            out.add("text", col, values.astype("string").fillna(""))
            out.text_stats(col, out.columns[col])
            continue
        if tr.isna().all() or tr.nunique(dropna=False) < 2:
            continue  # nothing to learn from a column that is empty or constant in train
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            out.add("numeric", col, pd.to_numeric(values, errors="coerce").replace([np.inf, -np.inf], np.nan))
            if values.isna().any():
                out.add("numeric", f"{col}__missing", values.isna())
            continue
        dates = _as_dates(values)
        n_levels = tr.nunique()
        if dates is not None:
            out.dates(col, dates)
        elif n_levels <= MAX_CATEGORIES or n_levels <= 0.05 * n_train:
            out.categorical(col, values, n_train)
        elif _is_text(tr):
            out.text_stats(col, values.astype("string").fillna(""))
        else:
            out.add("key", col, values.astype("string"))
            out.add("numeric", f"{col}__count", values.map(values.value_counts()).fillna(0))

    frame = pd.DataFrame(out.columns)
    return frame.iloc[:n_train].reset_index(drop=True), frame.iloc[n_train:].reset_index(drop=True), out.roles
