"""The command line (`pipelines/__main__.py`): a refused input is exit status 2 and one
`error:` line, `--debug` shows the traceback instead, Ctrl-C is 130 and SIGTERM 143.

The tables of refused inputs live with the modules that refuse them (test_config,
test_selection, test_io, test_layout, test_download, test_clean); here a few of them run as
a real `python -m pipelines` subprocess, and the tables together must cover every stage.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipelines.__main__ import Stopped, main
from tests import test_clean, test_config, test_download, test_io, test_layout, test_selection
from tests.bad_inputs import Case, Workspace, error_line, output_untouched, prepare
from tests.conftest import ROOT

CASES = test_config.CASES + test_selection.CASES + test_io.CASES + test_layout.CASES
CASES += test_download.CASES + test_clean.CASES
BY_ID = {c.id: c for c in CASES}


def test_corpus_is_large_and_covers_every_edge():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)
    assert {c.stage for c in CASES} >= {"download", "clean", "train", "tune", "distill"}


SUBPROCESS = ["unknown spec key", "truncated", "path escape"]


@pytest.mark.parametrize("case", [BY_ID[i] for i in SUBPROCESS], ids=SUBPROCESS)
def test_exit_status_end_to_end(case: Case, tmp_path):
    ws = prepare(tmp_path, case)
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines", *ws.argv(case.stage)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2, proc.stderr
    line = error_line(proc.stderr)
    assert all(needle in line for needle in case.expect), line
    output_untouched(ws)


def test_debug_flag_shows_the_traceback(tmp_path):
    from pipelines.core.errors import PipelineError

    ws = prepare(tmp_path, BY_ID["empty file"])
    with pytest.raises(PipelineError, match="file is empty"):
        main([*ws.argv("download"), "--debug"])
    output_untouched(ws)


def test_interrupt_exit_status(monkeypatch, tmp_path, capsys):
    """Ctrl-C exits 130, SIGTERM 143, each with one line saying the work is kept."""
    import pipelines.stages.download as download

    ws = Workspace(tmp_path)
    ws.save_params()
    for exc, status, how in ((KeyboardInterrupt(), 130, "Ctrl-C"), (Stopped("signal 15"), 143, "SIGTERM")):

        def stop(args, params, exc=exc):
            raise exc

        monkeypatch.setattr(download, "main", stop)
        assert main(ws.argv("download")) == status
        assert f"interrupted ({how})" in capsys.readouterr().err


def test_unwritable_output_is_one_line(tmp_path, capsys):
    ws = Workspace(tmp_path)
    ws.save_params()
    blocker = tmp_path / "out"
    blocker.write_text("a file where a folder should be")
    assert main(ws.argv("download")) == 2
    line = error_line(capsys.readouterr().err)
    assert str(blocker) in line and blocker.read_text() == "a file where a folder should be"
