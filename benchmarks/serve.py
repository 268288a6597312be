"""Serving speed of an exported student: rows/s in-process vs through the HTTP API.

    flock /tmp/kp-cpu.lock python -m benchmarks.serve [--export data/export/titanic --name titanic]

Without `--export`, builds a Titanic student as tests/test_serve.py does (a logistic
regression teacher, the default `student_mlp`, 2 folds; training length does not change
serving speed) in a temporary folder and exports it. For each batch size it times the same
raw test.csv rows (repeated to fill the batch) three ways: the ONNX graph alone on
preprocessed inputs, the whole path in this process (JSON rows -> features -> preprocessor
-> graph -> submission rows), and `POST /predict` to `python -m pipelines serve` on
loopback (one client, sequential requests, JSON both ways). Prints rows/s, the median
latency of a request, and the ratio HTTP / in-process measured in this same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.core.io import read_csv  # noqa: E402
from pipelines.outputs.exported import ExportedModel, json_rows  # noqa: E402

BATCHES = (1, 32, 256, 2048)


def build(tmp: Path) -> tuple[Path, Path]:
    """A tiny Titanic chain up to `export`; returns (export folder, raw folder)."""
    from pipelines.__main__ import main
    from tests.test_distill import _params, _run_until_distill
    from tests.test_serve import TITANIC

    params = _params(tmp, "titanic", TITANIC, ["logreg"])
    d = _run_until_distill(tmp, "titanic", params)
    out = tmp / "export" / "titanic"
    argv = ["export", "titanic", "--student", "--params", str(params), "--out", str(out)]
    assert main([*argv, *(x for k in ("raw", "clean", "distill") for x in (f"--{k}", str(d[k])))]) == 0
    return out, d["raw"]


def timed(fn, min_seconds: float = 1.0, min_runs: int = 5) -> list[float]:
    """Seconds per call of `fn`, after one warm-up, for at least `min_seconds` in all."""
    fn()
    times, start = [], time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def measure(model: ExportedModel, client: httpx.Client, rows: list[dict]) -> list[dict]:
    table = []
    for n in BATCHES:
        batch = (rows * (n // len(rows) + 1))[:n]
        x = model.inputs(model.frame(batch))
        graph = timed(lambda x=x: model.session.run(None, {model.input_name: x}))
        whole = timed(lambda b=batch: model.submission(model.predict(model.frame(b)), range(len(b))))

        def post(b=batch):
            resp = client.post("/predict", json={"rows": b})
            resp.raise_for_status()

        http = timed(post)
        runs = {"graph": graph, "in-process": whole, "http": http}
        table.append(
            {"batch": n, **{k: (n / statistics.median(t), statistics.median(t) * 1e3) for k, t in runs.items()}}
        )
    return table


def show(table: list[dict]) -> None:
    print(f"{'batch':>6} | {'graph rows/s':>12} | {'in-process rows/s':>17} {'ms':>8} | {'HTTP rows/s':>11} "
          f"{'ms':>8} | {'HTTP/in-process':>15}")  # fmt: skip
    for r in table:
        (g, _), (p, pms), (h, hms) = r["graph"], r["in-process"], r["http"]
        print(f"{r['batch']:>6} | {g:>12,.0f} | {p:>17,.0f} {pms:>8.2f} | {h:>11,.0f} {hms:>8.2f} | {h / p:>15.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, default=None)
    parser.add_argument("--raw", type=Path, default=None, help="the competition's raw folder (for test.csv)")
    parser.add_argument("--name", default="titanic")
    args = parser.parse_args()
    from tests.test_serve import served

    with tempfile.TemporaryDirectory() as tmp:
        folder, raw = (args.export, args.raw) if args.export else build(Path(tmp))
        model = ExportedModel.load(folder)
        rows = json_rows(read_csv(raw / "test.csv")[list(model.manifest.inputs)])
        with served(args.name, folder) as client:
            table = measure(model, client, rows)
    print(f"\n{model.manifest.student} ({model.manifest.name}), 1 onnxruntime thread, 1 uvicorn worker, loopback")
    show(table)


if __name__ == "__main__":
    main()
