"""Titanic-aware features, applied to any table that has Titanic's passenger columns.

The hook is chosen by the columns it finds (not by the competition's name), so a Titanic
split played as a `local` competition gets the same features as the embedded one. All
features use passenger attributes only (train and test rows alike, as on Kaggle), never
labels: the group survival signal comes later, from the fold-aware target encoder over
the `Surname` / `Ticket` / `FamilyKey` keys.
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


def applies(columns) -> bool:
    return COLUMNS.issubset(set(columns))


def add_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Return `frame` (train and test rows together) with Titanic features added."""
    out = frame.copy()
    name = out["Name"].astype("string").fillna("")
    title = name.str.extract(r",\s*([^\.]+)\.", expand=False).str.strip()
    out["Title"] = title.map(_TITLES).fillna("Other").astype("string")
    out["Surname"] = name.str.split(",").str[0].str.strip()
    out["FamilySize"] = out["SibSp"].fillna(0) + out["Parch"].fillna(0) + 1
    out["IsAlone"] = (out["FamilySize"] == 1).astype(np.int8)
    ticket = out["Ticket"].astype("string").fillna("")
    out["TicketGroupSize"] = ticket.map(ticket.value_counts()).astype(np.float32)
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
    out["Age"] = age.fillna(out.groupby("Title")["Age"].transform("median"))
    out["IsBoy"] = (out["Title"] == "Master").astype(np.int8)
    out["IsWomanOrBoy"] = ((out["Sex"] == "female") | (out["Title"] == "Master")).astype(np.int8)
    # a family travels under one surname and (mostly) one ticket: key for the group encoder
    out["FamilyKey"] = out["Surname"] + "-" + out["Pclass"].astype("string") + "-" + ticket.str[:-1]
    # women and boys of a family mostly lived or died together; men are left out of the key
    out["WomanBoyFamily"] = out["FamilyKey"].where(out["IsWomanOrBoy"] == 1)
    return out
