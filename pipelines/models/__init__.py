"""The model zoo: importing the package registers every family (see `registry`)."""

from pipelines.models import catboost_model, gbdt, tabular, text, torch_zoo, xgb  # noqa: F401  (fills the registry)
