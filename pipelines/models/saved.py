"""A fitted model of the registry as files that `serve` reads back without pickle or torch.

    entry = save_fitted(model, folder, "fold0")   # what outputs/served.py's FoldModel reads

- torch models: `<stem>.onnx`, the net with its head (and pixel scaling, test-time views,
  clipping) as one graph (`onnx_export.export_onnx`), and `<stem>.json`, the safe state
  (`core/safe_state.py`) of what turns features into the graph's input: a table's fitted
  preprocessor, a text model's tokenizer (images: none, pixels go in as they are);
- every other model: `<stem>.json`, the safe state of the whole fitted adapter (preprocessing
  and estimator: scikit-learn's objects, LightGBM's model text, XGBoost's JSON, CatBoost's model).

The entry names the files, how the inputs are made (`table`, `tokens`, `pixels`) and the
library versions the state needs.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.core.context import TABULAR, TEXT
from pipelines.core.io import write_json
from pipelines.core.safe_state import encode, versions


def save_fitted(model, folder: Path, stem: str) -> dict:
    """Write one fitted model into `folder` as `<stem>.*`; returns its entry."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if type(model).__module__ == "pipelines.models.torch_adapter":
        return _save_torch(model, folder, stem)
    state = encode(model)
    write_json(folder / f"{stem}.json", state)
    return {"kind": "state", "state": f"{stem}.json", "libraries": versions(state)}


def _save_torch(model, folder: Path, stem: str) -> dict:
    from pipelines.models.onnx_export import export_onnx

    export_onnx(model, folder / f"{stem}.onnx")
    entry = {"kind": "onnx", "graph": f"{stem}.onnx", "inputs": "pixels", "state": None, "libraries": {}}
    if model.modality == TABULAR:
        state = {"preprocessor": encode(model.preprocessor_)}
        entry["inputs"] = "table"
    elif model.modality == TEXT:
        state = {"tokens": encode(model.tokens_), "columns": list(model.ctx.roles.get("text", []))}
        entry["inputs"] = "tokens"
    else:
        return entry
    write_json(folder / f"{stem}.json", state)
    return {**entry, "state": f"{stem}.json", "libraries": versions(state)}
