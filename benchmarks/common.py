"""Helpers for benchmarks: a throw-away git + DVC repo holding this project's pipeline."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ENV = {
    **os.environ,
    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    "OMP_WAIT_POLICY": "PASSIVE",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}


@contextlib.contextmanager
def kept_or_temporary(keep: Path | None):
    """The folder to play in: `keep` (made if missing, left afterwards, so its repos can be
    read again, e.g. their `data/train` outputs re-blended) or a temporary one."""
    if keep is None:
        with tempfile.TemporaryDirectory() as tmp:
            yield tmp
    else:
        keep.mkdir(parents=True, exist_ok=True)
        yield str(keep)


def make_repo(where: Path, params: dict) -> Path:
    """A fresh repo at `where` with the pipeline code, dvc.yaml and the given params."""
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    shutil.copytree(ROOT / "pipelines", where / "pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", where / "dvc.yaml")
    (where / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=where, check=True, env=ENV)
    return where


def repro(repo: Path, *targets: str) -> float:
    """Run `dvc repro` and return its wall time in seconds (raises with the log on failure)."""
    start = time.perf_counter()
    proc = subprocess.run(["dvc", "repro", *targets], cwd=repo, env=ENV, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"dvc repro failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return time.perf_counter() - start


def write_local(folder: Path, train, test, id_col: str, target: str, encoding: str = "utf-8", filler=None) -> None:
    """A split in Kaggle's layout: train.csv, test.csv (no target) and sample_submission.csv
    (the test ids, the target column holding `filler`, else the training rows' mode)."""
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False, encoding=encoding)
    test.drop(columns=target).to_csv(folder / "test.csv", index=False, encoding=encoding)
    filler = train[target].mode()[0] if filler is None else filler
    test[[id_col]].assign(**{target: filler}).to_csv(folder / "sample_submission.csv", index=False)


def download_and_clean(root: Path, name: str, params: dict) -> Path:
    """`root/params.yaml`, then the `download` and `clean` stages in this process (skipped when
    `root/clean` is there already): the clean folder."""
    from pipelines.__main__ import main as cli

    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    clean = root / "clean"
    if not (clean / "meta.json").exists():
        assert cli(["download", name, "--params", str(path), "--out", str(root / "raw")]) == 0
        assert cli(["clean", name, "--params", str(path), "--raw", str(root / "raw"), "--out", str(clean)]) == 0
    return clean


def digit_frames(seed: int | None, size: str = "sample"):
    """Digit Recognizer's (train.csv with labels, test.csv pixels, hidden labels): the embedded
    split for None, else the digits re-carved with `seed` (stratified by label): 4,000 / 1,000
    of the 5,000 sample digits, or 42,000 / 28,000 of all 70,000 with size full. Shared by
    `digits.py`, `digit_recipes.py` and `reference_cnn.py`."""
    from pipelines.sources.embedded import carve, get_embedded

    dataset = "digit-recognizer" + ("-full" if size == "full" else "")
    if seed is None:
        parts = carve(dataset)
        return parts["train.csv"], parts["test.csv"], parts["answers"]["Label"].to_numpy()
    from sklearn.model_selection import train_test_split

    full = get_embedded(dataset).load()
    test_size = 28_000 if size == "full" else 1000
    train, test = train_test_split(full, test_size=test_size, random_state=seed, stratify=full["label"])
    return train, test.drop(columns=["label"]), test["label"].to_numpy()


def default_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def table(rows: list[dict]) -> str:
    cols = list(rows[0])
    width = {c: max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in cols}
    line = "| " + " | ".join(c.ljust(width[c]) for c in cols) + " |"
    sep = "|" + "|".join("-" * (width[c] + 2) for c in cols) + "|"
    body = ["| " + " | ".join(_fmt(r[c]).ljust(width[c]) for c in cols) + " |" for r in rows]
    return "\n".join([line, sep, *body])


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)
