"""The `train` stage of one torch model with `train.nproc` 1 against 2 (torchrun, DDP), same threads.

    python benchmarks/torchrun.py [--competition titanic|digits] [--model mlp] [--folds 5]
                                  [--epochs 30] [--threads 2] [--model-params '{"layers": 0}'] [--keep DIR]

Builds a throw-away repo (`dvc repro tune@<name>` once), then times `dvc repro -s --force
train@<name>` from an empty fold cache with `train.nproc: 1`, with `train.nproc: 2` (twice:
the result must repeat) and, for scale, with `nproc: 1` and another seed. One table: wall
time, CV, and how far each run's OOF and test predictions are from the `nproc: 1` run's
(max and mean absolute difference). `train.threads` is the same in every row: with
`nproc: 2` each rank has half of it. With nproc 1 an image model trains its folds two at a
time on a CPU (`fold_workers`), as the stage does by default.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import default_params, make_repo, repro, table  # noqa: E402
from benchmarks.digits import SPEC as DIGITS  # noqa: E402
from tests.conftest import TITANIC  # noqa: E402

COMPETITIONS = {"titanic": ("titanic", TITANIC, "tabular"), "digits": ("digit-recognizer", DIGITS, "image")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--competition", choices=sorted(COMPETITIONS), default="titanic")
    parser.add_argument("--model", default=None, help="default: mlp (titanic), cnn (digits)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model-params", type=json.loads, default={}, help="train.params of the model (JSON)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the repo here")
    args = parser.parse_args()
    name, spec, modality = COMPETITIONS[args.competition]
    model = args.model or ("mlp" if modality == "tabular" else "cnn")

    params = default_params()
    params["competitions"] = {name: spec}
    params["folds"]["n_splits"] = args.folds
    params["tune"].update(models=[], n_trials=0)
    params["train"].update(models={**params["train"]["models"], modality: [model]}, epochs=args.epochs,
                           threads=args.threads, params={model: args.model_params})  # fmt: skip
    where = args.keep or Path(tempfile.mkdtemp(prefix="bench-torchrun-"))
    repo = make_repo(where, params)
    repro(repo, f"tune@{name}")

    runs, rows = {}, []
    for label, nproc, seed in (
        ("nproc 1", 1, 42),
        ("nproc 2", 2, 42),
        ("nproc 2 again", 2, 42),
        ("nproc 1, seed 43", 1, 43),
    ):
        params["train"]["nproc"], params["seed"] = nproc, seed
        (repo / "params.yaml").write_text(json.dumps(params))  # JSON is YAML
        shutil.rmtree(repo / "data" / "cache" / name / "train", ignore_errors=True)  # train every fold
        seconds = repro(repo, "-s", "--force", f"train@{name}")
        out = repo / "data" / "train" / name / model
        runs[label] = {k: np.load(out / f"{k}.npy") for k in ("oof", "test")}
        cv = json.loads((out / "scores.json").read_text())["cv"]
        base = runs["nproc 1"]
        diff = {k: np.abs(runs[label][k] - base[k]) for k in base}
        rows.append({
            "run": label, "train stage s": f"{seconds:.1f}", "cv": f"{cv:.4f}",
            "max |d oof|": f"{diff['oof'].max():.2e}", "mean |d oof|": f"{diff['oof'].mean():.2e}",
            "max |d test|": f"{diff['test'].max():.2e}",
        })  # fmt: skip
    again = all(np.array_equal(runs["nproc 2"][k], runs["nproc 2 again"][k]) for k in ("oof", "test"))
    what = f"{model} {json.dumps(args.model_params)}, {args.folds} folds, <= {args.epochs} epochs"
    print(f"{name}, {what}, train.threads {args.threads}:")
    print(table(rows))
    print(f"nproc 2 repeats bit for bit: {again}")
    if args.keep is None:
        shutil.rmtree(where, ignore_errors=True)


if __name__ == "__main__":
    main()
