"""Titanic-aware features, applied to any table that has Titanic's passenger columns.

The hook is chosen by the columns it finds (not by the competition's name), so a Titanic
split played as a `local` competition gets the same features as the embedded one. All
features use passenger attributes only (train and test rows alike, as on Kaggle), never
labels: the group survival signal comes later, from the fold-aware target encoder over
the `Surname` / `Ticket` / `FamilyKey` keys.

Two features look at other rows (ticket group sizes, the median age per title): `fit`
gives those numbers as plain JSON, over train and test rows, and `add_features(frame, state)`
applies them, so that `serve` builds a single passenger's features as `clean` built them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

COLUMNS = {"Name", "Sex", "Age", "SibSp", "Parch", "Ticket", "Fare", "Pclass"}

_TITLES = {
    "Mr": "Mr", "Mrs": "Mrs", "Miss": "Miss", "Master": "Master", "Mlle": "Miss", "Ms": "Miss",
    "Mme": "Mrs", "Lady": "Noble", "Countess": "Noble", "the Countess": "Noble", "Sir": "Noble",
    "Don": "Noble", "Dona": "Noble", "Jonkheer": "Noble", "Dr": "Officer", "Rev": "Officer",
    "Col": "Officer", "Major": "Officer", "Capt": "Officer",
}  # fmt: skip


NAME = "titanic"  # the hook's key in a feature recipe


def applies(columns) -> bool:
    return COLUMNS.issubset(set(columns))


def _titles(frame: pd.DataFrame) -> pd.Series:
    name = frame["Name"].astype("string").fillna("")
    title = name.str.extract(r",\s*([^\.]+)\.", expand=False).str.strip()
    return title.map(_TITLES).fillna("Other").astype("string")


def _tickets(frame: pd.DataFrame) -> pd.Series:
    return frame["Ticket"].astype("string").fillna("")


def fit(frame: pd.DataFrame) -> dict:
    """What the features need from all rows (train and test): passengers per ticket, and
    the median age per title (None where a title has no known age)."""
    ages = frame["Age"].groupby(_titles(frame).to_numpy()).median()
    return {
        "ticket_counts": {str(k): int(v) for k, v in _tickets(frame).value_counts().items()},
        "title_age": {str(k): (None if pd.isna(v) else float(v)) for k, v in ages.items()},
    }


def add_features(frame: pd.DataFrame, state: dict) -> pd.DataFrame:
    """Return `frame` with Titanic features added, using `fit`'s `state` (a ticket it never
    saw counts one passenger: the row itself)."""
    out = frame.copy()
    name = out["Name"].astype("string").fillna("")
    out["Title"] = _titles(out)
    out["Surname"] = name.str.split(",").str[0].str.strip()
    out["FamilySize"] = out["SibSp"].fillna(0) + out["Parch"].fillna(0) + 1
    out["IsAlone"] = (out["FamilySize"] == 1).astype(np.int8)
    ticket = _tickets(out)
    out["TicketGroupSize"] = ticket.map(state["ticket_counts"]).fillna(1).astype(np.float32)
    out["TicketPrefix"] = ticket.str.replace(r"[\d\./ ]", "", regex=True).str.upper().replace("", "NUM")
    out["TicketNumber"] = pd.to_numeric(ticket.str.extract(r"(\d+)$", expand=False), errors="coerce")
    group = np.maximum(out["TicketGroupSize"], out["FamilySize"])
    out["FarePerPerson"] = out["Fare"] / out["TicketGroupSize"]
    out["GroupSize"] = group
    if "Cabin" in out:
        cabin = out["Cabin"].astype("string")
        out["Deck"] = cabin.str[0].fillna("U")
        out["HasCabin"] = cabin.notna().astype(np.int8)
    # age is most often missing for adults without title hints; impute by title median
    age = out["Age"]
    out["AgeMissing"] = age.isna().astype(np.int8)
    medians = out["Title"].map(state["title_age"]).astype(np.float64)
    out["Age"] = age.fillna(pd.Series(medians.to_numpy(), index=out.index))
    out["IsBoy"] = (out["Title"] == "Master").astype(np.int8)
    out["IsWomanOrBoy"] = ((out["Sex"] == "female") | (out["Title"] == "Master")).astype(np.int8)
    # a family travels under one surname and (mostly) one ticket: key for the group encoder
    out["FamilyKey"] = out["Surname"] + "-" + out["Pclass"].astype("string") + "-" + ticket.str[:-1]
    # women and boys of a family mostly lived or died together; men are left out of the key
    out["WomanBoyFamily"] = out["FamilyKey"].where(out["IsWomanOrBoy"] == 1)
    return out
