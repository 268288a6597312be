"""Interrupted training resumes to the very same predictions.

`python -m pipelines train` is stopped mid-run twice over, in two independent runs: once by
SIGTERM after the first finished fold of the torch model (it must exit 143 through the
clean path) and once by SIGKILL while a fold is half trained (an epoch checkpoint exists;
nothing can run on the way out). "Mid-run" is detected by polling the `--cache` folder,
where `cv.py` writes `fold{k}.npz` and the torch loop `ckpt{k}/last.pt`. Re-running the
same command must not redo finished folds and must end with `oof.npy` / `test.npy`
byte-identical to those of an uninterrupted run; the output folder never holds a partial
result in between.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipelines.__main__ import main
from tests.conftest import ROOT, TITANIC, tiny_params

MODELS = ["logreg", "mlp"]


def _setup(root: Path) -> Path:
    """download + clean + tune through the CLI entry point; returns the params file."""
    params = tiny_params(titanic=TITANIC)
    params["train"]["models"]["tabular"] = MODELS
    params["train"]["epochs"] = 4
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    common = ["titanic", "--params", str(path)]
    assert main(["download", *common, "--out", str(root / "raw")]) == 0
    assert main(["clean", *common, "--raw", str(root / "raw"), "--out", str(root / "clean")]) == 0
    assert main(["tune", *common, "--clean", str(root / "clean"), "--out", str(root / "tune")]) == 0
    return path


def _train_argv(root: Path, params: Path, run: str) -> list[str]:
    return ["train", "titanic", "--params", str(params), "--clean", str(root / "clean"), "--tuned",
            str(root / "tune"), "--cache", str(root / run / "cache"), "--out", str(root / run / "train")]  # fmt: skip


def _start(argv: list[str], log: Path) -> subprocess.Popen:
    """`python -m pipelines ...` in the background, stdout and stderr into `log` (no pipe to fill)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "wb") as fh:
        return subprocess.Popen([sys.executable, "-m", "pipelines", *argv], cwd=ROOT, env=env, stdout=fh, stderr=fh)


def _interrupt_when(procs: dict, timeout: float = 400.0) -> None:
    """procs: name -> (process, cache folder, globs that mean "mid-run", signal). Signal each on sight."""
    pending = dict(procs)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for name, (proc, cache, patterns, sig) in list(pending.items()):
            if any(next(cache.glob(pattern), None) is not None for pattern in patterns):
                proc.send_signal(sig)
                del pending[name]
            elif proc.poll() is not None:
                raise AssertionError(f"{name}: finished (rc {proc.returncode}) before it could be interrupted")
        time.sleep(0.005)
    assert not pending, f"never reached mid-run: {list(pending)}"


def _fold_files(cache: Path) -> dict[str, int]:
    return {str(p.relative_to(cache)): p.stat().st_mtime_ns for p in cache.rglob("fold*.npz")}


@pytest.mark.slow
def test_sigterm_and_sigkill_resume_to_identical_predictions(tmp_path):
    params = _setup(tmp_path)
    assert main(_train_argv(tmp_path, params, "reference")) == 0  # uninterrupted

    # SIGTERM once the torch model has finished a fold; SIGKILL once one of its folds is half
    # trained (an epoch checkpoint; should the loop stop writing one, a finished fold does)
    runs = {
        "term": (["mlp-*/fold0.npz"], signal.SIGTERM),
        "kill": (["mlp-*/ckpt*/last.pt", "mlp-*/fold*.npz"], signal.SIGKILL),
    }
    procs = {}
    for run, (patterns, sig) in runs.items():
        (tmp_path / run).mkdir()
        log = tmp_path / f"{run}-1.log"
        procs[run] = (_start(_train_argv(tmp_path, params, run), log), tmp_path / run / "cache", patterns, sig)
    _interrupt_when(procs)
    outcome = {
        run: (proc.wait(timeout=300), (tmp_path / f"{run}-1.log").read_text()) for run, (proc, *_) in procs.items()
    }

    rc, err = outcome["term"]
    assert rc == 143, err
    assert "interrupted (SIGTERM): train titanic stopped" in err and "Traceback" not in err
    assert outcome["kill"][0] == -signal.SIGKILL
    kept = {}
    for run in runs:
        assert not (tmp_path / run / "train").exists(), f"{run}: a partial output was left"
        kept[run] = _fold_files(tmp_path / run / "cache")
        assert kept[run], f"{run}: no finished fold was kept"
    assert [p.name for p in (tmp_path / "term").iterdir()] == ["cache"]  # SIGTERM cleaned its temporaries

    resumed = {run: _start(_train_argv(tmp_path, params, run), tmp_path / f"{run}-2.log") for run in runs}
    for run, proc in resumed.items():
        assert proc.wait(timeout=400) == 0, (tmp_path / f"{run}-2.log").read_text()
        folds = _fold_files(tmp_path / run / "cache")
        assert all(folds[f] == mtime for f, mtime in kept[run].items()), f"{run}: a finished fold was redone"
        assert sorted(p.name for p in (tmp_path / run).iterdir()) == ["cache", "train"]  # the killed run's temp swept
        for model in MODELS:
            for name in ("oof.npy", "test.npy"):
                ours = (tmp_path / run / "train" / model / name).read_bytes()
                assert ours == (tmp_path / "reference" / "train" / model / name).read_bytes(), f"{run}: {model}/{name}"
