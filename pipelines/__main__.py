"""Command line: `python -m pipelines <stage> <name> [paths...]`.

Stages (run by `dvc repro`): download, clean, tune, train, distill, ensemble. Commands
with side effects (not DVC stages): submit, leaderboard. A user error prints one line,
`error: ...`, and exits 2 (`--debug` shows the traceback); Ctrl-C / SIGTERM exit 130 / 143
after the stage's finished work has been saved.
"""

from __future__ import annotations

import os

# Before numpy/LightGBM/torch load: idle OpenMP threads must sleep, not spin, or two
# processes sharing 2 cores slow each other down 15-50x (measured on this machine).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("KMP_BLOCKTIME", "0")

import argparse  # noqa: E402
import importlib  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from pipelines.errors import PipelineError  # noqa: E402

STAGES = ("download", "clean", "tune", "train", "distill", "ensemble", "submit", "leaderboard")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="stage", required=True)
    for stage in STAGES:
        module = importlib.import_module(f"pipelines.stages.{stage}")
        p = sub.add_parser(stage, help=(module.__doc__ or "").strip().splitlines()[0])
        p.add_argument("name", help="competition name (a key under 'competitions' in params.yaml)")
        p.add_argument("--params", type=Path, default=Path("params.yaml"))
        p.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
        module.add_arguments(p)
        p.set_defaults(module=module)
    return parser


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _terminate)  # SIGTERM unwinds like Ctrl-C: atomic outputs stay clean
    from pipelines.config import load_params

    try:
        params = load_params(args.params)
        args.module.main(args, params)
    except PipelineError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: {args.stage} {args.name} stopped; finished work is kept, re-run to resume", file=sys.stderr)
        return 143 if signal.getsignal(signal.SIGTERM) is _terminate else 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
