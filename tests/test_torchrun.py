"""`train` under torchrun (`train.nproc: 2`: two CPU processes, DDP with gloo).

The stage's own command line launches the ranks, gives the same out layout and, for a
torch net without BatchNorm and dropout, the predictions of one process up to float
rounding; SIGTERM ends every rank and a re-run resumes. A PipelineError on one rank ends
all of them with its one line, without a hang.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipelines.__main__ import build_parser, main
from pipelines.core.errors import PipelineError
from pipelines.nn.distributed import launch
from tests.conftest import ROOT, TITANIC, tiny_params

# mlp with layers 0 is one Linear layer: no BatchNorm (whose statistics are each rank's
# half-batch) and no dropout (whose masks are each rank's own), so that DDP's mean of the
# two half-batch gradients is the full batch's gradient up to float32 summation order
MODELS = {"logreg": {}, "mlp": {"layers": 0}}
# measured: |diff| <= 1.5e-8 after 3 epochs x 2 folds (1.2e-7 after up to 30 epochs x 5 folds,
# benchmarks/torchrun.py), for probabilities with a std of 0.14; a real difference (another
# global batch, ranks seeing other rows, another seed) moves them by > 1e-3
ATOL = 1e-6


def _setup(root: Path) -> tuple[Path, Path]:
    """download + clean + tune in-process; returns the params files for nproc 1 and 2."""
    params = tiny_params(titanic=TITANIC)
    params["folds"]["n_splits"] = 2
    params["train"].update(models={**params["train"]["models"], "tabular": list(MODELS)}, params=MODELS, epochs=3)
    one, two = root / "params.yaml", root / "params2.yaml"
    one.write_text(yaml.safe_dump(params))
    params["train"]["nproc"] = 2
    two.write_text(yaml.safe_dump(params))
    common = ["titanic", "--params", str(one)]
    assert main(["download", *common, "--out", str(root / "raw")]) == 0
    assert main(["clean", *common, "--raw", str(root / "raw"), "--out", str(root / "clean")]) == 0
    assert main(["tune", *common, "--clean", str(root / "clean"), "--out", str(root / "tune")]) == 0
    return one, two


def _train_argv(root: Path, params: Path, run: str) -> list[str]:
    return ["train", "titanic", "--params", str(params), "--clean", str(root / "clean"), "--tuned",
            str(root / "tune"), "--cache", str(root / run / "cache"), "--out", str(root / run / "train")]  # fmt: skip


def _cli(argv: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PIPELINES_PROGRESS": "", "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE"}
    with open(log, "wb") as fh:
        return subprocess.Popen([sys.executable, "-m", "pipelines", *argv], cwd=ROOT, env=env, stdout=fh, stderr=fh)


def _alive(marker: str) -> list[str]:
    """Command lines of running processes that mention `marker` (the ranks of one run)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        found += [cmd] if proc.name.isdigit() and marker in cmd else []
    return found


def _layout(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.slow
def test_train_under_torchrun_matches_one_process_and_resumes_after_sigterm(tmp_path):
    one, two = _setup(tmp_path)
    assert main(_train_argv(tmp_path, one, "one")) == 0
    # the stage's own command (dvc.yaml's), with train.nproc 2: stopped by SIGTERM mid-fold
    proc = _cli(_train_argv(tmp_path, two, "two"), tmp_path / "two.log")
    cache = tmp_path / "two" / "cache"
    while next(cache.glob("mlp-*/ckpt*/last.pt"), None) is None:  # rank 0 writes the epoch checkpoints
        assert proc.poll() is None, (tmp_path / "two.log").read_text()[-3000:]
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143, (tmp_path / "two.log").read_text()[-3000:]
    assert not _alive(str(cache)) and not (tmp_path / "two" / "train").exists()
    log = (tmp_path / "two.log").read_text()
    assert "Traceback" not in log and log.count("interrupted") == 1  # the ranks stop quietly, the stage says it
    assert log.strip().splitlines()[-1].startswith("interrupted (SIGTERM): train titanic stopped")
    # the re-run resumes from the cache and the checkpoints
    proc = _cli(_train_argv(tmp_path, two, "two"), tmp_path / "again.log")
    assert proc.wait(timeout=300) == 0, (tmp_path / "again.log").read_text()[-3000:]
    assert "mlp cv accuracy" in (tmp_path / "again.log").read_text()

    a, b = tmp_path / "one" / "train", tmp_path / "two" / "train"
    assert _layout(a) == _layout(b)
    for model, processes in (("logreg", 1), ("mlp", 2)):
        assert json.loads((b / model / "scores.json").read_text())["processes"] == processes
        for name in ("oof.npy", "test.npy"):
            x, y = np.load(a / model / name), np.load(b / model / name)
            if processes == 1:  # trained once, in the stage's own process, as with nproc 1
                np.testing.assert_array_equal(x, y)
            else:
                np.testing.assert_allclose(y, x, rtol=0, atol=ATOL)
                assert x.std() > 0.05  # predictions that say something, not a constant


def test_a_pipeline_error_on_one_rank_ends_every_rank_with_its_one_line(capfd):
    start = time.monotonic()
    with pytest.raises(PipelineError, match="rank 1: column 'Age' is missing"):
        launch(["tests.rank_failure"], 2)  # rank 0 waits for rank 1 in a collective meanwhile
    assert time.monotonic() - start < 60
    err = capfd.readouterr().err
    assert "Traceback" not in err and "column 'Age'" not in err  # the caller prints the line, once


def test_only_torch_models_get_processes_and_ranks_get_this_command_line(tmp_path):
    from pipelines.core.context import ModelContext
    from pipelines.core.metrics import get_metric
    from pipelines.stages.train import _rank_argv, processes

    ctx = ModelContext(task="binary", metric=get_metric("accuracy"), n_classes=2)
    assert processes("mlp", ctx, {"layers": 0}, 2) == 2
    assert processes("lightgbm", ctx, {}, 2) == 1 and processes("mlp", ctx, {}, 1) == 1
    with pytest.raises(PipelineError, match="mlp"):  # a bad factory argument fails here, not in a rank
        processes("mlp", ctx, {"nope": 1}, 2)
    args = build_parser(["train"]).parse_args(_train_argv(tmp_path, tmp_path / "p.yaml", "x"))
    rank = build_parser(["train"]).parse_args(_rank_argv(args, "mlp", 0.1 + 0.2)[1:])
    assert rank.rank_model == "mlp" and rank.fit_seconds == 0.1 + 0.2  # the same float: the same cache key
    assert {k: v for k, v in vars(rank).items() if k not in ("rank_model", "fit_seconds")} == {
        k: v for k, v in vars(args).items() if k not in ("rank_model", "fit_seconds")
    }
