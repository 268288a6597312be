"""Stage `train`: k-fold training of every model of the competition on the shared folds.

    python -m pipelines train <name> --clean data/clean/<name> --tuned data/tune/<name> \
        --cache data/cache/<name>/train --out data/train/<name>

Per model, `--out/<model>/` holds `oof.npy` (out-of-fold predictions), `test.npy` (mean of
the fold models' test predictions; with `train.refit`, half that and half a model refitted
on every training row) and `scores.json` (CV, per-fold scores, params, time, processes);
`--out/cv.json` sums them up (with a `budget`, also what was left out and why; see
`core/budget.py`). Tuned params from `tune` replace the defaults. Finished folds are kept
in `--cache`, so an interrupted run resumes without redoing them.

With `train.nproc: N > 1`, each torch model's folds train under torchrun: this command
launches `N` copies of itself (`--rank-model <model>`, torch DDP: gloo on CPU, nccl on
GPUs), which split every batch and `train.threads` between them; rank 0 alone writes the
fold cache and checkpoints, the others only compute. This process then reads the folds
from the cache and writes `--out` as always. Other models (LightGBM, ...) train here, once,
on all threads.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import replace
from pathlib import Path

from pipelines.core.budget import Deadline, OverBudget
from pipelines.core.context import set_threads
from pipelines.core.errors import PipelineError
from pipelines.core.io import atomic_dir, read_json, write_json
from pipelines.models.registry import create_model
from pipelines.models.selection import check_models, models_for
from pipelines.models.torch_adapter import TorchModel
from pipelines.nn.distributed import launch, rank_errors, setup_distributed
from pipelines.outputs.cleaned import CleanData
from pipelines.stages.common import model_context, save_predictions
from pipelines.training.cv import cross_validate, fold_workers

log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("--clean", type=Path, required=True)
    parser.add_argument("--tuned", type=Path, required=True, help="tune's folder (best_params.json)")
    parser.add_argument("--cache", type=Path, required=True, help="finished folds and checkpoints, for resuming")
    parser.add_argument("--out", type=Path, required=True)
    # set by the stage itself for its torchrun ranks (train.nproc > 1), not by users
    parser.add_argument("--rank-model", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--fit-seconds", type=float, default=None, help=argparse.SUPPRESS)


def main(args, params) -> None:
    if args.rank_model is not None:
        return train_rank(args, params)
    set_threads(params.train.threads)
    data, ctx, tuned, refit = _setup(args, params)
    deadline = Deadline.for_stage(params.budget, "train")
    models = models_for(params, args.name, len(data.y))
    fits = data.n_splits + refit
    summary, left_out = {}, {}
    with atomic_dir(args.out) as tmp:
        for i, model in enumerate(models):
            if i and deadline.spent():  # the first model always trains: a submission needs one
                left_out[model] = "the train stage's share of the budget was spent"
                print(f"{args.name}: {model:>14} left out: {left_out[model]}")
                continue
            model_params = _model_params(model, tuned, params)
            nproc = processes(model, ctx, model_params, params.train.nproc)
            workers = 1 if nproc > 1 else fold_workers(model, ctx, data.n_splits)  # DDP splits the threads
            timed = replace(ctx, fit_seconds=deadline.share((len(models) - i) * fits), processes=nproc)
            check = deadline.fold_check(model, fits) if i and workers == 1 and params.budget else None
            start = time.perf_counter()
            try:
                if nproc > 1:  # the ranks fill the fold cache; cross_validate below reads it
                    launch(_rank_argv(args, model, timed.fit_seconds), nproc)
                result = cross_validate(
                    model, model_params, data.X, data.y, data.X_test, data.folds, timed,
                    cache_dir=args.cache, workers=workers, refit=refit, on_fold=check, score_rows=data.score_rows,
                )  # fmt: skip
            except OverBudget as err:
                left_out[model] = str(err)
                print(f"{args.name}: {model:>14} left out: {err}")
                continue
            result = replace(result, seconds=time.perf_counter() - start)
            save_predictions(tmp / model, result, {"tuned": model in tuned, "processes": nproc})
            summary[model] = {"cv": result.score, "seconds": round(result.seconds, 2)}
            ranks = f", {nproc} processes" if nproc > 1 else ""
            print(f"{args.name}: {model:>14} cv {ctx.metric.name} {result.score:.5f} ({result.seconds:.1f}s{ranks})")
        extra = {"left_out": left_out} if left_out else {}
        write_json(tmp / "cv.json", {"metric": ctx.metric.name, "models": summary, **extra})


def _setup(args, params):
    """What every model's training needs: the data, the model context, tuned params, refit."""
    check_models(params, args.params)
    data = CleanData(args.clean)
    tuned = read_json(args.tuned / "best_params.json")
    return data, model_context(data, params), tuned, params.train.refit_for(data.meta["modality"])


def _model_params(model: str, tuned: dict, params) -> dict:
    return {**tuned.get(model, {}).get("params", {}), **params.train.params_for(model)}


def processes(model: str, ctx, model_params: dict, nproc: int) -> int:
    """How many torch processes train `model`: `train.nproc` for a torch model, else 1 (it
    trains in this process, once). Its params are checked here, before any rank starts."""
    if nproc == 1 or not isinstance(create_model(model, ctx, **model_params), TorchModel):
        return 1
    import torch

    if torch.cuda.is_available() and nproc > torch.cuda.device_count():
        raise PipelineError(f"train.nproc is {nproc}, but there are {torch.cuda.device_count()} GPUs (one per process)")
    return nproc


def _rank_argv(args, model: str, fit_seconds: float | None) -> list[str]:
    """This command line again, for a torchrun rank training `model`'s folds."""
    paths = [f"--{name}={getattr(args, name)}" for name in ("params", "clean", "tuned", "cache", "out")]
    timed = [f"--fit-seconds={fit_seconds!r}"] if fit_seconds is not None else []  # repr: the same float back
    return ["pipelines", "train", args.name, *paths, f"--rank-model={model}", *timed, *(["--debug"] * args.debug)]


def train_rank(args, params) -> None:
    """One torchrun rank: train `--rank-model`'s folds with the others (DDP); rank 0 writes
    them to `--cache` (and the checkpoints), the other ranks only compute."""
    import torch.distributed as dist

    with rank_errors():
        world, rank, _ = setup_distributed()
        try:
            set_threads(max(1, params.train.threads // world))  # BLAS and preprocessing share the cores too
            data, ctx, tuned, refit = _setup(args, params)
            model = args.rank_model
            ctx = replace(ctx, fit_seconds=args.fit_seconds, processes=world, progress=ctx.progress and rank == 0)
            cross_validate(
                model, _model_params(model, tuned, params), data.X, data.y, data.X_test, data.folds, ctx,
                cache_dir=args.cache, refit=refit, writer=rank == 0,
            )  # fmt: skip
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()
