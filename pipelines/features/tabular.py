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
from pipelines.features.language import free_text

HOOKS = [titanic]
MAX_CATEGORIES = 50  # more distinct values than this (and > 5% of rows): a key, not a category
RARE_COUNT = 10  # levels seen fewer times in train are grouped into __rare__
RARE = "__rare__"
MISSING = "__missing__"  # the key of missing values in value shares

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


def parse_dates(values: pd.Series) -> pd.Series:
    """Dates and times as naive timestamps, NaT where unparsable; those with a time zone
    ("2013-01-01T10:00:00Z", "+02:00") in UTC, so one column may mix zones."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd.to_datetime(values, errors="coerce", utc=True).dt.tz_localize(None)


def _as_dates(values: pd.Series) -> pd.Series | None:
    sample = values.dropna().astype("string").head(200)
    if sample.empty or not sample.str.match(r"^\d{4}[-/]\d{1,2}[-/]\d{1,2}").all():
        return None
    parsed = parse_dates(values)
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


def _levels(train: pd.Series) -> list[str]:
    """The training levels a categorical keeps (rarer ones, and unseen ones, become RARE)."""
    counts = train.astype("string").value_counts()
    return [str(v) for v in sorted(counts[counts >= RARE_COUNT].index)]


def _categorical(values: pd.Series, keep: list[str]) -> pd.Series:
    s = values.astype("string")
    s = s.where(s.isin(keep) | s.isna(), RARE)
    return pd.Series(pd.Categorical(s, categories=[*keep, RARE]), index=values.index)


def _shares(values: pd.Series) -> dict[str, float]:
    """Share of rows (train and test) holding each value; missing values count too."""
    keys = values.astype("string").fillna(MISSING)
    return {str(k): float(v) for k, v in keys.value_counts(normalize=True).items()}


def _counts(values: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in values.astype("string").value_counts().items()}


def find_text_columns(train: pd.DataFrame, exclude) -> list[str]:
    """The free-text columns of a text competition: those that carry language
    (`features/language.py`: sentences, not names or codes)."""
    return free_text(train, exclude)[0]


def text_columns(train: pd.DataFrame, named: list[str] | None, exclude, where: str) -> list[str]:
    """A text competition's text columns: those `named` (checked), else those found."""
    if named is None:
        found = find_text_columns(train, exclude)
        if not found:
            raise PipelineError(
                f"{where}: modality text, but no column holds free text, language rather than names or codes "
                f"({free_text(train, exclude)[1]}); name the text columns in the spec's 'text'"
            )
        return found
    for col in named:
        if col not in train:
            raise PipelineError(f"{where}: text column {col!r} not found")
        values = train[col]
        check_text(train, [col], where)
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            raise PipelineError(f"{where}: text column {col!r} holds numbers, not text")
    return list(named)


def check_text(frame: pd.DataFrame, columns: list[str], where: str) -> None:
    """Each text column holds some text in `frame` (train's, or test's: a text column empty in
    every test row would turn the text models' predictions into a constant)."""
    for col in columns:
        if col in frame and not frame[col].astype("string").str.strip().fillna("").astype(bool).any():
            raise PipelineError(f"{where}: text column {col!r} is empty in every row")


class _Features:
    """The feature columns being built and their roles."""

    def __init__(self, n_rows: int):
        self.n_rows = n_rows  # rows the recipe was fitted on: a value never seen there is one of them
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

    def dates(self, col: str, values: pd.Series, hours: bool) -> None:
        dates = parse_dates(values)
        if hours:
            self.add("numeric", f"{col}__hour", dates.dt.hour + dates.dt.minute / 60)
        self.add("numeric", f"{col}__year", dates.dt.year)
        self.add("numeric", f"{col}__month", dates.dt.month)
        self.add("numeric", f"{col}__dayofweek", dates.dt.day_of_week)
        # days since 1970; with times of day, fractional: one number that orders every hour
        # (rows of the same day and hour share what happened then: a storm's delays)
        since = dates - pd.Timestamp("1970-01-01")
        self.add("numeric", f"{col}__ordinal", since / pd.Timedelta(days=1) if hours else since.dt.days)

    def categorical(self, col: str, values: pd.Series, step: dict) -> None:
        self.add("categorical", col, _categorical(values, step["levels"]))
        if step["scale"] is not None:
            self.add("numeric", f"{col}__ord", _ordinal(values, step["scale"]))
        if step["shares"] is not None:
            keys = values.astype("string").fillna(MISSING)
            self.add("frequency", f"{col}__freq", keys.map(step["shares"]).astype(np.float64).fillna(1 / self.n_rows))

    def key(self, col: str, values: pd.Series, counts: dict) -> None:
        keys = values.astype("string")
        self.add("key", col, keys)
        count = keys.map(counts).astype(np.float64)
        self.add("numeric", f"{col}__count", count.where(keys.isna() | count.notna(), 1.0).fillna(0))

    def apply(self, step: dict, values: pd.Series) -> None:
        col, kind = step["column"], step["kind"]
        if kind == "text":
            self.add("text", col, values.astype("string").fillna(""))
            self.text_stats(col, self.columns[col])
        elif kind == "numeric":
            self.add("numeric", col, pd.to_numeric(values, errors="coerce").replace([np.inf, -np.inf], np.nan))
            if step["missing"]:
                self.add("numeric", f"{col}__missing", values.isna())
        elif kind == "date":
            self.dates(col, values, step.get("hours", False))
        elif kind == "categorical":
            self.categorical(col, values, step)
        elif kind == "text_stats":
            self.text_stats(col, values.astype("string").fillna(""))
        else:
            self.key(col, values, step["counts"])


def _fit_column(values: pd.Series, n_train: int, is_text: bool) -> dict | None:
    """How one column becomes features, decided on the training rows (None: dropped)."""
    tr = values.iloc[:n_train]
    if is_text:
        return {"kind": "text"}
    if tr.isna().all() or tr.nunique(dropna=False) < 2:
        return None  # nothing to learn from a column that is empty or constant in train
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return {"kind": "numeric", "missing": bool(values.isna().any())}
    n_levels = tr.nunique()
    dates = _as_dates(values)
    if dates is not None:  # with times of day: the hour too (a timestamp's strongest seasonality)
        times = dates.iloc[:n_train].dropna()
        return {"kind": "date", "hours": bool(((times.dt.hour != 0) | (times.dt.minute != 0)).any())}
    if n_levels <= MAX_CATEGORIES or n_levels <= 0.05 * n_train:
        scale = ordinal_scale(tr.dropna().unique())
        shares = _shares(values) if n_levels > 2 else None
        return {"kind": "categorical", "levels": _levels(tr), "scale": scale and list(scale), "shares": shares}
    if _is_text(tr):
        return {"kind": "text_stats"}
    return {"kind": "key", "counts": _counts(values)}


def _input_kind(values: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(values):
        return "boolean"
    if pd.api.types.is_integer_dtype(values):
        return "integer"
    return "number" if pd.api.types.is_numeric_dtype(values) else "string"


def _inputs(train: pd.DataFrame, test: pd.DataFrame, id_col: str | None, target_col: str) -> pd.DataFrame:
    both = pd.concat([train.drop(columns=[target_col]), test], ignore_index=True)
    return both.drop(columns=[id_col]) if id_col in both else both


def fit_features(
    train: pd.DataFrame, test: pd.DataFrame, id_col: str | None, target_col: str, text: list[str] = ()
) -> dict:
    """The recipe of `build_features` as plain JSON: the raw input columns and their kinds, the
    hooks' state, and for each column how it becomes features (levels, scales, value counts)."""
    both = _inputs(train, test, id_col, target_col)
    recipe = {"inputs": {str(c): _input_kind(both[c]) for c in both.columns}, "n_rows": len(both), "hooks": {}}
    for hook in HOOKS:
        if hook.applies(both.columns):
            recipe["hooks"][hook.NAME] = hook.fit(both)
            both = hook.add_features(both, recipe["hooks"][hook.NAME])
    steps = ((col, _fit_column(both[col], len(train), col in text)) for col in both.columns)
    recipe["columns"] = [{"column": str(col), **step} for col, step in steps if step is not None]
    return recipe


def apply_features(recipe: dict, frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """The features of raw rows (the columns of `recipe["inputs"]`) and their roles."""
    for hook in HOOKS:
        if hook.NAME in recipe["hooks"]:
            frame = hook.add_features(frame, recipe["hooks"][hook.NAME])
    out = _Features(recipe["n_rows"])
    for step in recipe["columns"]:
        out.apply(step, frame[step["column"]])
    return pd.DataFrame(out.columns, index=frame.index), out.roles


def typed_inputs(recipe: dict, frame: pd.DataFrame) -> pd.DataFrame:
    """Raw rows (e.g. from JSON) with the dtypes test.csv's columns had in `clean`: integers
    stay integers where a value is missing (as nullable ints), so that text made of them
    (a key such as "Smith-3-1234") reads as it did there."""
    typed = {}
    for col, kind in recipe["inputs"].items():
        values = frame[col]
        if kind == "integer":
            values = pd.to_numeric(values).astype("Int64" if values.isna().any() else np.int64)
        elif kind == "number":
            values = pd.to_numeric(values).astype(np.float64)
        elif kind == "boolean":
            values = values.astype("boolean" if values.isna().any() else bool)
        typed[col] = values
    return pd.DataFrame(typed, index=frame.index)


def build_features(
    train: pd.DataFrame, test: pd.DataFrame, id_col: str | None, target_col: str, text: list[str] = ()
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, list[str]]]:
    """`text`: columns kept as text (role `text`, for the text models, missing as ""), each
    also giving its length and word count; free text elsewhere gives only those two numbers.
    The same as `apply_features(fit_features(...), train and test rows)`."""
    frame, roles = apply_features(
        fit_features(train, test, id_col, target_col, text), _inputs(train, test, id_col, target_col)
    )
    n_train = len(train)
    return frame.iloc[:n_train].reset_index(drop=True), frame.iloc[n_train:].reset_index(drop=True), roles
