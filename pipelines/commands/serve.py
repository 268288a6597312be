"""Command `serve`: a REST API (FastAPI, run by uvicorn) over whatever `export` wrote: the
ensemble the submission came from (the default export), or the distilled student (`--student`).

    python -m pipelines serve <name> [--model data/export/<name>] [--host 127.0.0.1] [--port 8000] \
        [--max-body 1048576]

Reads only `export`'s folder (no params.yaml, no training code, no torch: what a container needs).
- `POST /predict` with `{"rows": [{<test.csv's columns>}, ...]}` answers the rows in the
  submission's format, `{"columns": [...], "rows": [{<id>: ..., <value columns>: ...}]}`
  (`?format=csv`: the text of a submission.csv); the ensemble's answers for test.csv's rows
  are submission.csv's. The id column is optional (missing: the row's position). Images: a
  row holds test.csv's pixel columns, or `pixels` (a flat list, test.csv's order) or `png`
  (a base64 PNG/JPEG file, resized like clean does).
- `GET /health`: what is served (the ensemble's method, members and CV, or the student).
- A request body over `--max-body` bytes (default 1 MiB, `MAX_BODY`) is refused with 413 and a
  one-line JSON body, before it is read whole (a declared Content-Length at once; a chunked
  body as soon as it passes the limit).
- Bad input (a missing column, a wrong type, a wrong pixel count, an undecodable image): 422
  whose `detail` lists each error's `loc` (the row and the field), `msg` and `type`, never the
  input itself (FastAPI's default echoes it: a 10 MB body came back in the error), at most
  `MAX_ERRORS` of them.
- Docs without a CDN: `/docs` (Swagger UI) and `/redoc` load their JavaScript and CSS from the
  bundle the `fastapi-offline` package ships, served here under `/static-offline-docs`, so they
  work offline; `/openapi.json` is FastAPI's own schema. Without that package the docs routes
  are off (docs_url=None, redoc_url=None) and `/openapi.json` stays.
"""

# no `from __future__ import annotations`: FastAPI reads the request model built at runtime
# from the annotations, which must stay objects

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, conint, create_model

from pipelines.core.paths import Paths
from pipelines.outputs.exported import BadRow, ServedModel
from pipelines.outputs.served import load_export

MAX_ROWS = 10_000  # rows per request
MAX_BODY = 1 << 20  # bytes per request body (--max-body)
MAX_ERRORS = 20  # validation errors listed in one 422
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
    parser.add_argument("--max-body", type=int, default=MAX_BODY, help=f"request body limit in bytes ({MAX_BODY})")


def row_model(model: ServedModel) -> type[BaseModel]:
    """One request row: test.csv's columns with their JSON types (tables, texts), or an image."""
    m = model.manifest
    fields = {"row_id": (StrictInt | StrictStr | None, Field(default=None, alias=m.id))}
    if m.modality != "image":
        fields.update({f"c{i}": (KINDS[kind], Field(alias=col)) for i, (col, kind) in enumerate(m.inputs.items())})
        config = ConfigDict(extra="ignore")
    else:
        fields["pixels"] = (list[StrictInt] | None, Field(default=None, description="C*H*W values, 0..255"))
        fields["png"] = (StrictStr | None, Field(default=None, description="a base64-encoded image file"))
        config = ConfigDict(extra="allow")  # pixel columns, checked with the image
    return create_model("Row", __config__=config, **fields)


class BodyLimit:
    """ASGI middleware: a request body over `max_body` bytes gets 413 and a one-line body. A
    declared Content-Length is checked before anything is read; a chunked body is counted as
    it arrives, and reading stops at the limit (FastAPI passes an HTTPException on unchanged)."""

    def __init__(self, app, max_body: int):
        self.app, self.max_body = app, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_body:
            return await self.too_large()(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body:
                from fastapi import HTTPException

                raise HTTPException(413, self.detail())
            return message

        return await self.app(scope, counted, send)

    def detail(self) -> str:
        return f"request body over {self.max_body} bytes"

    def too_large(self):
        from fastapi.responses import JSONResponse

        return JSONResponse({"detail": self.detail()}, status_code=413)


def _docs(title: str, description: str):
    """A FastAPI app whose docs load from a local bundle (fastapi-offline), else have no docs routes."""
    try:
        from fastapi_offline import FastAPIOffline
    except ImportError:
        from fastapi import FastAPI

        return FastAPI(title=title, description=description, docs_url=None, redoc_url=None)
    return FastAPIOffline(title=title, description=description)


def _errors(errors: list[dict]) -> dict:
    """A 422's body: where and what, never the input (nor a context that may quote it)."""
    listed = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors[:MAX_ERRORS]]
    more = {"more_errors": len(errors) - MAX_ERRORS} if len(errors) > MAX_ERRORS else {}
    return {"detail": listed, **more}


def create_app(model: ServedModel, max_rows: int = MAX_ROWS, max_body: int = MAX_BODY):
    from fastapi import HTTPException
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, PlainTextResponse

    m = model.manifest
    Row = row_model(model)
    Request = create_model("PredictRequest", rows=(list[Row], Field(min_length=1, max_length=max_rows)))
    what = model.describe()
    app = _docs(f"kaggle-pipelines: {m.name}", f"{what['model']} for {m.task} ({m.metric})")
    app.add_middleware(BodyLimit, max_body=max_body)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc: RequestValidationError):
        return JSONResponse(_errors(exc.errors()), status_code=422)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "name": m.name, **what, "task": m.task, "metric": m.metric,
                "submits": model.metric.submits, "columns": m.submission_columns}  # fmt: skip

    @app.post("/predict")
    def predict(request: Request, format: Literal["json", "csv"] = "json"):
        rows = [r.model_dump(by_alias=True) for r in request.rows]
        try:
            outputs = model.predict(model.frame(rows))
        except BadRow as err:
            loc = ("body", "rows", err.row, err.field)
            raise RequestValidationError([{"type": "value_error", "loc": loc, "msg": err.msg}]) from None
        except (ValueError, OverflowError) as err:  # a value pandas or numpy cannot take
            raise HTTPException(422, f"rows: a value the model cannot take ({type(err).__name__})") from None
        ids = [r[m.id] if r.get(m.id) is not None else i for i, r in enumerate(rows)]
        sub = model.submission(outputs, ids)
        if format == "csv":
            return PlainTextResponse(sub.to_csv(index=False), media_type="text/csv")
        return {"columns": list(sub.columns), "rows": sub.to_dict("records")}

    return app


def main(args, params) -> None:
    import uvicorn

    folder = args.model or Paths(args.name).export
    model = load_export(folder, threads=args.threads)
    shown = model.describe()
    shown = shown.get("student") or f"the ensemble ({shown['method']} of {', '.join(shown['members'])})"
    print(f"{args.name}: serving {shown} from {folder} on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(create_app(model, max_body=args.max_body), host=args.host, port=args.port, log_level="info")
