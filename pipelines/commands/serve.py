"""Command `serve`: a REST API (FastAPI, run by uvicorn) over an exported student.

    python -m pipelines serve <name> [--model data/export/<name>] [--host 127.0.0.1] [--port 8000]

Reads only `export`'s folder (no params.yaml, no training code: what a container needs).
- `POST /predict` with `{"rows": [{<test.csv's columns>}, ...]}` answers the rows in the
  submission's format, `{"columns": [...], "rows": [{<id>: ..., <value columns>: ...}]}`
  (`?format=csv`: the text of a submission.csv). The id column is optional (missing: the
  row's position). Images: a row holds test.csv's pixel columns, or `pixels` (a flat list,
  test.csv's order) or `png` (a base64 PNG/JPEG file, resized like clean does).
- `GET /health`: what is served; `GET /docs` and `/openapi.json`: FastAPI's own schema.
- Bad input (a missing column, a wrong type, a wrong pixel count, an undecodable image):
  422 with FastAPI's `detail` list, whose `loc` names the row and the field.

The teacher ensemble is not served: `train` keeps each model's predictions, not its fitted
fold models, so there is nothing to run on a new row; the student is the deployable model
distilled from the ensemble (its CV is in /health).
"""

# no `from __future__ import annotations`: FastAPI reads the request model built at runtime
# from the annotations, which must stay objects

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, conint, create_model

from pipelines.core.paths import Paths
from pipelines.outputs.exported import BadRow, ExportedModel

MAX_ROWS = 10_000  # rows per request
INT64 = conint(strict=True, ge=-(2**63), le=2**63 - 1)  # what a CSV column of integers holds
KINDS = {
    "integer": INT64 | None,
    "number": INT64 | StrictFloat | None,
    "boolean": StrictBool | None,
    "string": StrictStr | None,
}


def add_arguments(parser) -> None:
    export = Paths("<name>").export
    parser.add_argument("name", help=f"competition name (its export is {export})")
    parser.add_argument("--model", type=Path, default=None, help=f"export folder (default: {export})")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads per request")


def row_model(model: ExportedModel) -> type[BaseModel]:
    """One request row: test.csv's columns with their JSON types (tables), or an image."""
    m = model.manifest
    fields = {"row_id": (StrictInt | StrictStr | None, Field(default=None, alias=m.id))}
    if m.modality == "tabular":
        fields.update({f"c{i}": (KINDS[kind], Field(alias=col)) for i, (col, kind) in enumerate(m.inputs.items())})
        config = ConfigDict(extra="ignore")
    else:
        fields["pixels"] = (list[StrictInt] | None, Field(default=None, description="C*H*W values, 0..255"))
        fields["png"] = (StrictStr | None, Field(default=None, description="a base64-encoded image file"))
        config = ConfigDict(extra="allow")  # pixel columns, checked with the image
    return create_model("Row", __config__=config, **fields)


def create_app(model: ExportedModel, max_rows: int = MAX_ROWS):
    from fastapi import FastAPI, HTTPException
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import PlainTextResponse

    m = model.manifest
    Row = row_model(model)
    Request = create_model("PredictRequest", rows=(list[Row], Field(min_length=1, max_length=max_rows)))
    app = FastAPI(title=f"kaggle-pipelines: {m.name}", description=f"{m.student} distilled for {m.task} ({m.metric})")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "name": m.name, "student": m.student, "student_cv": m.student_cv, "task": m.task,
                "metric": m.metric, "submits": model.metric.submits, "columns": m.submission_columns}  # fmt: skip

    @app.post("/predict")
    def predict(request: Request, format: Literal["json", "csv"] = "json"):
        rows = [r.model_dump(by_alias=True) for r in request.rows]
        try:
            outputs = model.predict(model.frame(rows))
        except BadRow as err:
            loc = ("body", "rows", err.row, err.field)
            raise RequestValidationError([{"type": "value_error", "loc": loc, "msg": err.msg, "input": None}]) from None
        except (ValueError, OverflowError) as err:  # a value pandas or numpy cannot take
            raise HTTPException(422, f"rows: {err}") from None
        ids = [r[m.id] if r.get(m.id) is not None else i for i, r in enumerate(rows)]
        sub = model.submission(outputs, ids)
        if format == "csv":
            return PlainTextResponse(sub.to_csv(index=False), media_type="text/csv")
        return {"columns": list(sub.columns), "rows": sub.to_dict("records")}

    return app


def main(args, params) -> None:
    import uvicorn

    folder = args.model or Paths(args.name).export
    model = ExportedModel.load(folder, threads=args.threads)
    print(f"{args.name}: serving {model.manifest.student} from {folder} on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(create_app(model), host=args.host, port=args.port, log_level="info")
