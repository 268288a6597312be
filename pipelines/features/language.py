"""Whether a column carries language (free text), and the figures that say so.

    ok, why = language(train["review"])   # True, "median 23 words a value, 98% with 3+ words, 4,210 distinct words"
    columns, why = free_text(train, exclude={"id", "target"})

A column of several words is not text for that alone: Titanic's names ("Braund, Mr. Owen
Harris") hold four words each, and a text model trained on them scored below the tabular
Titanic. Language is sentences: half the values hold MIN_MEDIAN_WORDS words or more, most
hold several, its words are mostly words (not codes or numbers: tickets, addresses), the
vocabulary is more than a handful of words and the values mostly differ (a few repeated
phrases are a category). `new` infers a competition's modality from it, and `clean` finds
a text competition's text columns with it.
"""

from __future__ import annotations

import pandas as pd

MIN_MEDIAN_WORDS = 5  # names, tickets and cabins hold 1-4 words a value; sentences more
MIN_SEVERAL_SHARE = 0.6  # share of values holding 3+ words
MIN_WORD_SHARE = 0.6  # share of words without a digit (not codes, numbers, addresses)
MIN_VOCABULARY = 10  # distinct words, lower-cased
MIN_DISTINCT = 50  # distinct values (or 5% of rows, if fewer): a few repeated phrases are a category
SAMPLE = 5_000  # values looked at in a large column (a seeded sample)


def language(values: pd.Series) -> tuple[bool, str]:
    """Whether `values` (a column of strings) carry language, and the figures that decide it."""
    present = values.dropna().astype("string")
    present = present[present.str.strip() != ""]
    if present.empty:
        return False, "no values"
    sample = present.sample(SAMPLE, random_state=0) if len(present) > SAMPLE else present
    words = sample.str.split()
    counts = words.str.len()
    tokens = words.explode().dropna().str.lower()
    median, several = float(counts.median()), float((counts >= 3).mean())
    word_share = float((~tokens.str.contains(r"\d")).mean()) if len(tokens) else 0.0
    vocabulary = tokens.nunique()
    per_value = f"median {median:g} word{'' if median == 1 else 's'} a value"
    figures = f"{per_value}, {several:.0%} with 3+ words, {vocabulary:,} distinct words"
    if median < MIN_MEDIAN_WORDS:
        return False, f"{per_value} (free text: {MIN_MEDIAN_WORDS}+)"
    if several < MIN_SEVERAL_SHARE:
        return False, f"{several:.0%} of values with 3+ words (free text: {MIN_SEVERAL_SHARE:.0%}+)"
    if word_share < MIN_WORD_SHARE:
        return False, f"{1 - word_share:.0%} of its words hold digits: codes or numbers, not language"
    if vocabulary < MIN_VOCABULARY:
        return False, f"{vocabulary} distinct words (free text: {MIN_VOCABULARY}+)"
    if values.nunique() <= min(MIN_DISTINCT, 0.05 * len(values)):
        return False, f"{values.nunique()} distinct values: a category"
    return True, figures


def candidates(train: pd.DataFrame, exclude) -> list[str]:
    """String columns (not `exclude`) whose values hold more than one word on average."""
    out = []
    for col in train.columns:
        values = train[col]
        if col in exclude or pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        counts = values.dropna().astype("string").str.count(r"\S+")
        if len(counts) and float(counts.mean()) > 1:
            out.append(col)
    return out


def free_text(train: pd.DataFrame, exclude) -> tuple[list[str], str]:
    """The columns that carry language, and why, in words: the figures of each found, or of
    each column of several words that is not language (why it is not)."""
    verdicts = {col: language(train[col]) for col in candidates(train, exclude)}
    found = [col for col, (ok, _) in verdicts.items() if ok]
    if found:
        return found, "free text in " + "; ".join(f"{col} ({verdicts[col][1]})" for col in found)
    rejected = "; ".join(f"{col}: {why}" for col, (_, why) in verdicts.items())
    return [], "no free text" + (f" ({rejected})" if rejected else "")
