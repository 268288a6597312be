"""Command line: `python -m pipelines <stage> <name> [paths...]`.

Stages (run by `dvc repro`): download, clean, zoo, tune, train, distill, ensemble. Commands
beside them (not DVC stages): submit, leaderboard, new, report, export (the ensemble that made
the submission, or with --student the distilled student, as a self-contained folder in
data/export/<name>), serve (a REST API over it), plan (what the stages will
run, resolved from params.yaml and clean's metadata). `--[no-]progress` overrides
params.yaml's `progress` (bars on stderr; auto: when it is a terminal). A user error (a bad spec,
parameter or file) prints one line, `error: ...`, naming the file, column or key, and exits
2 (`--debug` shows the traceback). Ctrl-C / SIGTERM stop the stage after what it finished
has been saved (fold files, checkpoints, Optuna trials; the output itself is written
atomically or not at all) and exit 130 / 143; re-running the same command resumes.
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

from pipelines.core.errors import PipelineError  # noqa: E402

STAGES = ("download", "clean", "zoo", "tune", "train", "distill", "ensemble")  # DVC stages: pipelines/stages/<verb>.py
COMMANDS = (
    "submit",
    "leaderboard",
    "new",
    "report",
    "export",
    "serve",
    "plan",
)  # beside them: pipelines/commands/<verb>.py
VERBS = STAGES + COMMANDS
# commands that take their own positional and read params.yaml themselves: `new` writes the
# file, and must work before it lists any competition (or exists at all); `serve` reads only
# the export folder (a container holds no params.yaml)
OWN_PARAMS = ("new", "serve")


def build_parser(verbs=VERBS) -> argparse.ArgumentParser:
    """The command line of `verbs`: a stage's run imports its own module only, so that the
    modules a stage's command loads are those `dvc.yaml` lists for it (tests/test_structure.py)."""
    # the console script shows its own name; `python -m pipelines` would show "__main__.py"
    prog = "python -m pipelines" if Path(sys.argv[0]).name == "__main__.py" else Path(sys.argv[0]).name
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="stage", required=True)
    for verb in verbs:
        module = importlib.import_module(f"pipelines.{'stages' if verb in STAGES else 'commands'}.{verb}")
        p = sub.add_parser(verb, help=(module.__doc__ or "").strip().splitlines()[0])
        if verb not in OWN_PARAMS:
            p.add_argument("name", help="competition name (a key under 'competitions' in params.yaml)")
        p.add_argument("--params", type=Path, default=Path("params.yaml"))
        p.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
        bars = "progress bars on stderr (default: params.yaml's `progress`; auto: when stderr is a terminal)"
        p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help=bars)
        module.add_arguments(p)
        p.set_defaults(module=module)
    return parser


class Stopped(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it unwinds like Ctrl-C (atomic outputs stay clean)."""


def _terminate(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM while unwinding ends us at once
    raise Stopped(f"signal {signum}")


class _NoInterruptTraceback(logging.Filter):
    """Libraries log what they caught on the way out (Optuna: "Trial 3 failed ... Stopped");
    the line is kept, the traceback of an interruption is not."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):
            record.exc_info, record.exc_text = None, None
        return True


def _quiet_interrupts() -> None:
    for name in ("", "optuna"):  # the root logger, and Optuna's own (it does not propagate)
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, _NoInterruptTraceback) for f in handler.filters):
                handler.addFilter(_NoInterruptTraceback())


def _oserror_line(err: OSError) -> str:
    where = f"{err.filename}: " if err.filename else ""
    return f"{where}{err.strerror or err}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser([a for a in argv[:1] if a in VERBS] or VERBS).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    _quiet_interrupts()
    previous = signal.signal(signal.SIGTERM, _terminate)
    from pipelines.core import progress
    from pipelines.core.config import load_params

    try:
        params = None if args.stage in OWN_PARAMS else load_params(args.params)
        progress.configure(args.progress if args.progress is not None else params.progress if params else "auto")
        args.module.main(args, params)
    except PipelineError as err:
        if args.debug:
            raise
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)  # one line, always
        return 2
    except OSError as err:  # a path the user gave that cannot be read or written
        if args.debug or err.errno is None:
            raise
        print(f"error: {_oserror_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        how = "SIGTERM" if isinstance(err, Stopped) else "Ctrl-C"
        print(f"interrupted ({how}): {args.stage} {args.name} stopped; finished work is kept, re-run to resume",
              file=sys.stderr)  # fmt: skip
        return 143 if isinstance(err, Stopped) else 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
