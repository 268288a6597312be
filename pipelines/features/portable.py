"""A fitted `make_preprocessor` as plain JSON, and the code that applies it again.

`preprocessor_state(ct)` reads the fitted parameters of the dense preprocessor the torch
tabular models use (numeric: `NumericCleaner` + `StandardScaler`; categorical: `OneHotEncoder`;
keys: `GroupTargetEncoder` + `StandardScaler`) into numbers and strings only, and
`Portable(state).transform(frame)` applies them, so an exported model needs no pickle (which
would run whatever code the file names) to rebuild its inputs. `distill` writes the state
beside the ONNX student; `export` ships it; a test checks the outputs equal scikit-learn's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from pipelines.core.errors import PipelineError
from pipelines.features.preprocess import GroupTargetEncoder, NumericCleaner

FORMAT = 1  # bumped when the state's layout changes; `Portable` refuses other versions


def _floats(a) -> list[float]:
    return [float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


def _scaler(step) -> dict:
    if not isinstance(step, StandardScaler):
        raise PipelineError(f"preprocessor: {type(step).__name__} cannot be exported (a StandardScaler expected)")
    return {"mean": _floats(step.mean_), "scale": _floats(step.scale_)}


def _numeric(part, columns) -> dict:
    steps = part.steps if isinstance(part, Pipeline) else []
    if len(steps) != 2 or not isinstance(steps[0][1], NumericCleaner):
        raise PipelineError("preprocessor: numeric columns must go through NumericCleaner + StandardScaler to export")
    clean = steps[0][1]
    return {
        "kind": "numeric",
        "columns": columns,
        "median": _floats(clean.median_),
        "log": [bool(v) for v in clean.log_],
        "low": _floats(np.broadcast_to(clean.low_, clean.median_.shape)),
        "high": _floats(np.broadcast_to(clean.high_, clean.median_.shape)),
        **_scaler(steps[1][1]),
    }


def _onehot(enc: OneHotEncoder, columns) -> dict:
    """Each level's output column, found by asking the fitted encoder itself (so its
    infrequent-level grouping and its handling of unknown levels are kept exactly)."""
    width = len(enc.get_feature_names_out())
    base = {c: [cats[0]] for c, cats in zip(columns, enc.categories_, strict=True)}
    maps, nan_out = [], []
    for c, cats in zip(columns, enc.categories_, strict=True):
        # object columns, as the encoder saw them (a column of NaN alone would turn float)
        probe = pd.DataFrame({k: pd.Series(v * (len(cats) + 1), dtype=object) for k, v in base.items()})
        probe[c] = pd.Series([*cats, "\x00unseen"], dtype=object)  # the last row: a level never seen
        out = enc.transform(probe)
        others = out[-1] if out[-1].sum() else None  # the other columns' hot outputs alone
        levels, nan_col = {}, None
        for level, row in zip(cats, out[:-1], strict=True):
            hot = np.flatnonzero(row - (others if others is not None else 0) > 0.5)
            where = int(hot[0]) if len(hot) else None
            if isinstance(level, float) and np.isnan(level):
                nan_col = where
            else:
                levels[str(level)] = where
        maps.append(levels)
        nan_out.append(nan_col)
    return {"kind": "onehot", "columns": columns, "width": width, "levels": maps, "nan": nan_out}


def _keys(part, columns) -> dict:
    steps = part.steps if isinstance(part, Pipeline) else []
    if len(steps) != 2 or not isinstance(steps[0][1], GroupTargetEncoder):
        raise PipelineError("preprocessor: key columns must go through GroupTargetEncoder + StandardScaler to export")
    enc = steps[0][1]
    stats = {
        c: {"keys": [str(k) for k in s.index], "sums": s.drop(columns="_n").to_numpy().tolist(), "n": s["_n"].tolist()}
        for c, s in enc.stats_.items()
    }
    return {"kind": "target", "columns": columns, "n_classes": enc.n_classes, "smoothing": float(enc.smoothing),
            "prior": _floats(enc.prior_), "stats": stats, **_scaler(steps[1][1])}  # fmt: skip


def preprocessor_state(ct: ColumnTransformer) -> dict:
    """The fitted `make_preprocessor(ctx)` (defaults: scaled, one-hot) as JSON-able numbers."""
    parts = []
    for name, part, columns in ct.transformers_:
        columns = [str(c) for c in columns]
        if name == "remainder" or part == "drop" or not columns:
            continue
        if name == "num":
            parts.append(_numeric(part, columns))
        elif name == "cat" and isinstance(part, OneHotEncoder):
            parts.append(_onehot(part, columns))
        elif name == "key":
            parts.append(_keys(part, columns))
        else:
            raise PipelineError(f"preprocessor: part {name!r} ({type(part).__name__}) cannot be exported")
    return {"format": FORMAT, "parts": parts}


class Portable:
    """`preprocessor_state`'s output applied again: `transform(frame)` -> float32 inputs."""

    def __init__(self, state: dict):
        if state.get("format") != FORMAT:
            raise PipelineError(f"preprocessor state: format {state.get('format')!r}, expected {FORMAT}")
        self.parts = state["parts"]
        self.columns = [c for p in self.parts for c in p["columns"]]
        self.width = sum(_width(p) for p in self.parts)
        # the fitted objects are rebuilt once, not for every request
        self._fitted = [_BUILD[p["kind"]](p) for p in self.parts]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        blocks = [
            _APPLY[p["kind"]](p, fitted, frame[p["columns"]])
            for p, fitted in zip(self.parts, self._fitted, strict=True)
        ]
        return np.hstack(blocks).astype(np.float32) if blocks else np.zeros((len(frame), 0), np.float32)


def _width(part: dict) -> int:
    if part["kind"] == "onehot":
        return int(part["width"])
    if part["kind"] == "target":
        k = 1 if part["n_classes"] <= 2 else part["n_classes"] - 1
        return len(part["columns"]) * (k + 1)
    return len(part["columns"])


def _scaled(part: dict, x: np.ndarray) -> np.ndarray:
    return (x - np.asarray(part["mean"])) / np.asarray(part["scale"])


def _cleaner(part: dict) -> NumericCleaner:
    clean = NumericCleaner()
    clean.median_, clean.log_ = np.asarray(part["median"]), np.asarray(part["log"], dtype=bool)
    clean.low_, clean.high_ = np.asarray(part["low"]), np.asarray(part["high"])
    return clean


def _apply_numeric(part: dict, clean: NumericCleaner, frame: pd.DataFrame) -> np.ndarray:
    return _scaled(part, clean.transform(frame))


def _apply_onehot(part: dict, _, frame: pd.DataFrame) -> np.ndarray:
    out = np.zeros((len(frame), part["width"]))
    for col, levels, nan_col in zip(part["columns"], part["levels"], part["nan"], strict=True):
        values = frame[col].astype("string")
        where = values.map(levels).astype("Float64").mask(values.isna(), np.nan if nan_col is None else nan_col)
        rows = np.flatnonzero(where.notna().to_numpy())
        out[rows, where.dropna().to_numpy(np.int64)] = 1.0
    return out


def _encoder(part: dict) -> GroupTargetEncoder:
    enc = GroupTargetEncoder(n_classes=part["n_classes"], smoothing=part["smoothing"])
    enc.columns_, enc.prior_ = list(part["columns"]), np.asarray(part["prior"])
    enc.stats_ = {}
    for col, s in part["stats"].items():
        sums = np.asarray(s["sums"], dtype=np.float64).reshape(len(s["keys"]), len(part["prior"]))
        stats = pd.DataFrame(sums, index=pd.Index(s["keys"], dtype="string", name="_key"))
        stats["_n"] = np.asarray(s["n"], dtype=np.int64)
        enc.stats_[col] = stats
    return enc


def _apply_target(part: dict, enc: GroupTargetEncoder, frame: pd.DataFrame) -> np.ndarray:
    return _scaled(part, enc.transform(frame))


_BUILD = {"numeric": _cleaner, "onehot": lambda part: None, "target": _encoder}
_APPLY = {"numeric": _apply_numeric, "onehot": _apply_onehot, "target": _apply_target}
