"""Fitted models as plain JSON, read back without pickle: `encode(obj)` -> JSON, `decode(json)` -> obj.

    state = encode(fitted)          # numbers, strings, lists and tagged dicts only
    again = decode(state)           # the same object, predicting the same numbers

The skops idea: an object is written as its class's name and its attributes (`__dict__`),
recursively; reading rebuilds only the classes on the `TRUSTED` list (`cls.__new__(cls)`, then
the attributes: no constructor runs) and only the functions on `FUNCTIONS`, so a file can name
no code to run. Arrays are their dtype, shape and the base64 of their bytes (floats exact);
a Cython object with `__reduce__` (scikit-learn's `Tree`) only from `REDUCE`. The boosting
libraries' models go in their own formats, read by their own parsers: LightGBM's model text,
XGBoost's JSON, CatBoost's model bytes; a `tokenizers` tokenizer as its JSON. The library
versions matter (attributes change between releases): `versions()` names those an export
was made with, and a reader refuses other ones (`check_versions`).
"""

from __future__ import annotations

import base64
import importlib
import math
from types import BuiltinFunctionType, FunctionType

import numpy as np
import pandas as pd

from pipelines.core.errors import PipelineError

_SK = "sklearn."
TRUSTED = frozenset({
    f"{_SK}pipeline:Pipeline", f"{_SK}compose._column_transformer:ColumnTransformer",
    f"{_SK}preprocessing._encoders:OneHotEncoder", f"{_SK}preprocessing._data:StandardScaler",
    f"{_SK}preprocessing._function_transformer:FunctionTransformer", f"{_SK}preprocessing._label:LabelEncoder",
    f"{_SK}impute._base:SimpleImputer", f"{_SK}linear_model._logistic:LogisticRegression",
    f"{_SK}linear_model._ridge:Ridge", f"{_SK}linear_model._ridge:RidgeCV", f"{_SK}svm._classes:SVC",
    f"{_SK}svm._classes:SVR", f"{_SK}feature_extraction.text:TfidfVectorizer",
    f"{_SK}feature_extraction.text:TfidfTransformer", f"{_SK}ensemble._forest:RandomForestClassifier",
    f"{_SK}ensemble._forest:RandomForestRegressor", f"{_SK}tree._classes:DecisionTreeClassifier",
    f"{_SK}tree._classes:DecisionTreeRegressor",
    f"{_SK}ensemble._hist_gradient_boosting.gradient_boosting:HistGradientBoostingClassifier",
    f"{_SK}ensemble._hist_gradient_boosting.gradient_boosting:HistGradientBoostingRegressor",
    f"{_SK}ensemble._hist_gradient_boosting.predictor:TreePredictor",
    f"{_SK}ensemble._hist_gradient_boosting.binning:_BinMapper", f"{_SK}_loss.loss:HalfBinomialLoss",
    f"{_SK}_loss.loss:HalfMultinomialLoss", f"{_SK}_loss.loss:HalfSquaredError", f"{_SK}_loss.link:LogitLink",
    f"{_SK}_loss.link:IdentityLink", f"{_SK}_loss.link:MultinomialLogit", f"{_SK}_loss.link:Interval",
    "pipelines.features.preprocess:GroupTargetEncoder", "pipelines.features.preprocess:NumericCleaner",
    "pipelines.features.tokens:Tokens", "pipelines.models.tabular:SklearnModel",
    "pipelines.models.tabular:RowCappedForest", "pipelines.models.tabular:RobustRidge",
    "pipelines.models.tabular:ScaledSVR", "pipelines.models.gbdt:LightGBMModel", "pipelines.models.gbdt:GBDTStudent",
    "pipelines.models.xgb:XGBoostModel", "pipelines.models.catboost_model:CatBoostModel",
    "pipelines.models.text:TfidfStudent", "pipelines.models.embeddings:TextEmbedder",
    "pipelines.models.embeddings:ImageEmbedder", "lightgbm.sklearn:LGBMClassifier", "lightgbm.sklearn:LGBMRegressor",
    "xgboost.sklearn:XGBClassifier", "xgboost.sklearn:XGBRegressor",
})  # fmt: skip
FUNCTIONS = frozenset({
    "pipelines.features.preprocess:category_codes", "pipelines.features.preprocess:category_code_frame",
    "pipelines.features.preprocess:wide_as_codes",
    "pipelines.core.tables:with_safe_names",
})  # fmt: skip
REDUCE = frozenset({f"{_SK}tree._tree:Tree"})
STATELESS = frozenset({  # Cython objects without state: made again by calling the class
    f"{_SK}_loss._loss:CyHalfBinomialLoss", f"{_SK}_loss._loss:CyHalfMultinomialLoss",
    f"{_SK}_loss._loss:CyHalfSquaredError",
})  # fmt: skip
CATBOOST = frozenset({"catboost.core:CatBoostClassifier", "catboost.core:CatBoostRegressor"})
LIBRARIES = ("sklearn", "lightgbm", "xgboost", "catboost", "tokenizers")  # whose versions an export records
LIBRARY_TAGS = {"lightgbm": "lightgbm", "xgboost": "xgboost", "tokenizer": "tokenizers"}
BUILTIN_TYPES = {"float": float, "int": int, "bool": bool, "str": str, "object": object}


def _name(obj) -> str:
    cls = obj if isinstance(obj, type | FunctionType | BuiltinFunctionType) else type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def _resolve(name: str, allowed: frozenset):
    if name not in allowed:
        raise PipelineError(f"safe state: {name} is not on the list of what is read back")
    module, _, qualname = name.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _array(arr: np.ndarray) -> dict:
    if arr.dtype.hasobject:
        return {"$": "objects", "shape": list(arr.shape), "v": [encode(x) for x in arr.ravel().tolist()]}
    data = base64.b64encode(np.ascontiguousarray(arr).tobytes()).decode("ascii")
    return {"$": "array", "dtype": np.lib.format.dtype_to_descr(arr.dtype), "shape": list(arr.shape), "v": data}


def _frame(df: pd.DataFrame) -> dict:
    cols = [{"name": encode(c), "dtype": str(df[c].dtype), "v": _array(df[c].to_numpy(object))} for c in df.columns]
    index = {"name": encode(df.index.name), "dtype": str(df.index.dtype), "v": _array(df.index.to_numpy(object))}
    return {"$": "frame", "columns": cols, "index": index}


def encode(obj):  # noqa: C901 (one branch per kind of value, read top to bottom)
    """`obj` as JSON-able values; PipelineError names what cannot be written safely."""
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, np.generic) and not isinstance(obj, np.void):
        return encode(obj.item())
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else {"$": "float", "v": repr(float(obj))}
    if isinstance(obj, list):
        return [encode(x) for x in obj]
    if isinstance(obj, tuple | set | frozenset):
        return {"$": type(obj).__name__, "v": [encode(x) for x in obj]}
    if isinstance(obj, dict):
        return {"$": "dict", "v": [[encode(k), encode(v)] for k, v in obj.items()]}
    if isinstance(obj, slice):
        return {"$": "slice", "v": [obj.start, obj.stop, obj.step]}
    if isinstance(obj, np.ndarray):
        return _array(obj)
    if isinstance(obj, np.dtype):
        return {"$": "dtype", "v": np.lib.format.dtype_to_descr(obj)}
    if isinstance(obj, type) and issubclass(obj, np.generic):
        return {"$": "scalar_type", "v": np.dtype(obj).str}
    if isinstance(obj, type) and BUILTIN_TYPES.get(obj.__name__) is obj:
        return {"$": "builtin_type", "v": obj.__name__}
    if isinstance(obj, pd.DataFrame):
        return _frame(obj)
    if isinstance(obj, np.random.Generator | np.random.RandomState):
        return None  # a fit's random state: predictions never draw from it
    return _encode_object(obj, _name(obj))


def _encode_object(obj, name: str) -> dict:
    if isinstance(obj, FunctionType | BuiltinFunctionType):
        if name not in FUNCTIONS:
            raise PipelineError(f"safe state: function {name} cannot be written (not on the list read back)")
        return {"$": "function", "name": name}
    if name == "lightgbm.basic:Booster":
        return {"$": "lightgbm", "v": obj.model_to_string()}
    if name == "xgboost.core:Booster":
        return {"$": "xgboost", "v": bytes(obj.save_raw("json")).decode("utf-8")}
    if name in CATBOOST:
        return {"$": "catboost", "class": name, "v": base64.b64encode(obj._serialize_model()).decode("ascii")}
    if name == "tokenizers:Tokenizer":
        return {"$": "tokenizer", "v": obj.to_str()}
    if name in STATELESS:
        return {"$": "reduce", "class": name, "args": {"$": "tuple", "v": []}, "state": None}
    if name in REDUCE:
        _, args, state = obj.__reduce__()
        return {"$": "reduce", "class": name, "args": encode(args), "state": encode(state)}
    if name not in TRUSTED:
        raise PipelineError(f"safe state: a fitted {name} cannot be written (not on the list of classes read back)")
    state = {k: v for k, v in vars(obj).items() if k != "_sklearn_version"}
    return {"$": "object", "class": name, "state": encode(state)}


def _decode_array(data: dict) -> np.ndarray:
    if data["$"] == "objects":
        return np.array([decode(x) for x in data["v"]] + [None], dtype=object)[:-1].reshape(data["shape"])
    dtype = np.lib.format.descr_to_dtype(_descr(data["dtype"]))
    return np.frombuffer(base64.b64decode(data["v"]), dtype=dtype).reshape(data["shape"]).copy()


def _descr(descr):
    """JSON turns the (name, type) pairs of a structured dtype's descr into lists."""
    if not isinstance(descr, list):
        return descr
    return [tuple(_descr(x) if isinstance(x, list) else x for x in d) for d in descr]


def _decode_frame(data: dict) -> pd.DataFrame:
    idx = data["index"]
    index = pd.Index(_decode_array(idx["v"]), dtype=idx["dtype"], name=decode(idx["name"]))
    columns = {decode(c["name"]): pd.Series(_decode_array(c["v"]), index=index).astype(c["dtype"])
               for c in data["columns"]}  # fmt: skip
    return pd.DataFrame(columns, index=index)


def _decode_object(data: dict):
    cls = _resolve(data["class"], TRUSTED)
    obj = cls.__new__(cls)
    obj.__dict__.update(decode(data["state"]))
    return obj


def _decode_library(kind: str, data: dict):
    if kind == "lightgbm":
        import lightgbm as lgb

        return lgb.Booster(model_str=data["v"])
    if kind == "xgboost":
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(bytearray(data["v"].encode("utf-8")))  # not pickle: XGBoost's own JSON
        return booster
    if kind == "catboost":
        model = _resolve(data["class"], CATBOOST)()
        model.load_model(blob=base64.b64decode(data["v"]))  # not pickle: CatBoost's own model format
        return model
    from tokenizers import Tokenizer

    return Tokenizer.from_str(data["v"])


def decode(data):  # noqa: C901 (the inverse of `encode`, one branch per tag)
    """The object `encode` wrote; only trusted classes and functions are rebuilt."""
    if isinstance(data, list):
        return [decode(x) for x in data]
    if not isinstance(data, dict):
        return data
    kind = data.get("$")
    if kind == "float":
        return float(data["v"])
    if kind in ("tuple", "set", "frozenset"):
        return {"tuple": tuple, "set": set, "frozenset": frozenset}[kind](decode(x) for x in data["v"])
    if kind == "dict":
        return {_key(decode(k)): decode(v) for k, v in data["v"]}
    if kind == "slice":
        return slice(*data["v"])
    if kind in ("array", "objects"):
        return _decode_array(data)
    if kind == "dtype":
        return np.lib.format.descr_to_dtype(_descr(data["v"]))
    if kind == "scalar_type":
        return np.dtype(data["v"]).type
    if kind == "builtin_type":
        return BUILTIN_TYPES[data["v"]]
    if kind == "frame":
        return _decode_frame(data)
    if kind == "function":
        return _resolve(data["name"], FUNCTIONS)
    if kind == "object":
        return _decode_object(data)
    if kind == "reduce":
        obj = _resolve(data["class"], REDUCE | STATELESS)(*decode(data["args"]))
        if data["state"] is not None:
            obj.__setstate__(decode(data["state"]))
        return obj
    if kind in ("lightgbm", "xgboost", "catboost", "tokenizer"):
        return _decode_library(kind, data)
    raise PipelineError(f"safe state: unknown tag {kind!r}")


def _key(key):
    return tuple(key) if isinstance(key, list) else key  # a list cannot be a key: it was a tuple


def versions(state) -> dict[str, str]:
    """The versions of the libraries (module names) whose objects `state` (encode's output) holds."""
    found = set()

    def walk(node):
        if isinstance(node, dict):
            tag = node.get("$")
            named = node.get("class") or node.get("name") if tag in ("object", "reduce", "catboost", "function") else ""
            found.add(LIBRARY_TAGS.get(tag) or named.split(".")[0].split(":")[0])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(state)
    return {m: importlib.import_module(m).__version__ for m in sorted(found & set(LIBRARIES))}


def check_versions(wanted: dict[str, str], where) -> None:
    """Refuse a state written with other library versions (attributes change between releases)."""
    for module, want in wanted.items():
        if module not in LIBRARIES:
            raise PipelineError(f"{where}: unknown library {module!r}")
        try:
            have = importlib.import_module(module).__version__
        except ImportError:
            have = "none"
        if have != want:
            raise PipelineError(f"{where}: exported with {module} {want}, this environment has {have}; install {want}")
