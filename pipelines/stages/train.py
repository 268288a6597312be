"""Stage `train`: k-fold training of every model of the competition on the shared folds.

    python -m pipelines train <name> --clean data/clean/<name> --tuned data/tune/<name> \
        --cache data/cache/<name>/train --out data/train/<name>

Per model, `--out/<model>/` holds `oof.npy` (out-of-fold predictions), `test.npy` (mean of
the fold models' test predictions; with `train.refit`, that mean and each model refitted on
every training row alike) and `scores.json` (CV, per-fold scores, params, time, processes);
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

from pipelines.core.budget import OverBudget
from pipelines.core.context import set_threads
from pipelines.core.errors import PipelineError
from pipelines.core.io import atomic_dir, read_json, write_json
from pipelines.models.registry import create_model
from pipelines.models.selection import check_models
from pipelines.models.torch_adapter import TorchModel
from pipelines.nn.distributed import launch, rank_errors, setup_distributed
from pipelines.outputs.cleaned import CleanData
from pipelines.stages.common import model_context, save_predictions
from pipelines.training.cv import CVOptions, cross_validate
from pipelines.training.parallel import fold_workers
from pipelines.training.plan import make_plan

log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("--clean", type=Path, required=True)
    parser.add_argument("--tuned", type=Path, required=True, help="tune's folder (best_params.json)")
    parser.add_argument("--cache", type=Path, required=True, help="finished folds and checkpoints, for resuming")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--logs", type=Path, default=None, help="timings and the resolved plan (not hashed by DVC's later stages)"
    )
    # set by the stage itself for its torchrun ranks (train.nproc > 1), not by users
    parser.add_argument("--rank-model", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--fit-seconds", type=float, default=None, help=argparse.SUPPRESS)


def main(args, params) -> None:
    if args.rank_model is not None:
        return train_rank(args, params)
    set_threads(params.train.threads)
    data, ctx, tuned, plan = _setup(args, params)
    deadline = plan.deadline("train")
    summary, timings, left_out, cuts, rejected = {}, {}, {}, {}, {}
    with atomic_dir(args.out) as tmp:
        for i, model in enumerate(plan.models):
            if i and deadline.spent():  # the first model always trains: a submission needs one
                left_out[model.name] = "the train stage's share of the budget was spent"
                print(f"{args.name}: {model.name:>14} left out: {left_out[model.name]}")
                continue
            try:
                rest = len(plan.models) - i
                result, nproc = _train_one(args, data, ctx, plan, model, tuned, deadline, rest)
                result, note = _tuned_or_defaults(args, data, ctx, plan, (model, rest), tuned, deadline, result)
                if note:
                    rejected[model.name] = note
                    print(f"{args.name}: {model.name:>14} {note}")
            except OverBudget as err:
                left_out[model.name] = str(err)
                print(f"{args.name}: {model.name:>14} left out: {err}")
                continue
            merged = {"fold_fits": result.fold_fits} if model.folds else {}  # export fits them again so
            kept = model.name in tuned and model.name not in rejected
            save_predictions(tmp / model.name, result, {"tuned": kept, "processes": nproc, **merged})
            summary[model.name] = {"cv": result.score}
            if result.budget_cuts:  # what the budget cut of its fits
                cuts[model.name] = result.budget_cuts
                print(f"{args.name}: {model.name:>14} cut by the budget: {_cut_line(result.budget_cuts)}")
            # rows_per_s: one fitted model's; a submission's row runs `fits` of them (its folds and refits)
            fits = result.fold_fits + result.refit
            timings[model.name] = {"seconds": round(result.seconds, 2), "rows_per_s": round(result.rows_per_s, 1),
                                   "fits": fits}  # fmt: skip
            ranks = f", {nproc} processes" if nproc > 1 else ""
            print(
                f"{args.name}: {model.name:>14} cv {ctx.metric.name} {result.score:.5f} ({result.seconds:.1f}s{ranks})"
            )
        extra = {**({"left_out": left_out} if left_out else {}), **({"budget_cuts": cuts} if cuts else {})}
        extra |= {"tuning_rejected": rejected} if rejected else {}
        write_json(tmp / "cv.json", {"metric": ctx.metric.name, "models": summary, **extra})
    if args.logs is not None:  # machine facts: beside the outputs, never in what later stages hash
        write_json(args.logs / "train.json", {"models": timings})
        write_json(args.logs / "plan.json", plan.to_dict())


def _tuned_or_defaults(args, data, ctx, plan, planned, tuned: dict, deadline, result):
    """Params tuned on a subsample (`tune.max_rows`) must beat the defaults on every row: the
    model is cross-validated again without them, and the better CV is kept (on Adult, and on
    the 150,000-row delay set of issue 22, studies on 10,000 rows chose params that scored
    below the defaults on all rows). Returns the kept result and, when the defaults were kept,
    a note saying why. The check runs only while the train stage's share of a budget lasts.
    `planned`: (the planned model, models left to train)."""
    model, rest = planned
    rows = tuned.get(model.name, {}).get("rows")
    if rows is None or rows >= len(data.y) or not tuned[model.name].get("params") or deadline.spent():
        return result, None
    try:  # no tuned params: the defaults at this size under params.yaml's arguments
        defaults, _ = _train_one(args, data, ctx, plan, model, {}, deadline, rest)
    except OverBudget:
        return result, None
    seconds = result.seconds + defaults.seconds
    if ctx.metric.better(result.score, defaults.score):  # a tie keeps the defaults
        return replace(result, seconds=seconds), None
    note = (
        f"tuned on {rows:,} rows: cv {result.score:.5f} on all {len(data.y):,} rows against the defaults' "
        f"{defaults.score:.5f}; the defaults were kept"
    )
    return replace(defaults, seconds=seconds), note


def _train_one(args, data, ctx, plan, model, tuned: dict, deadline, rest: int):
    """Cross-validate one planned model, `rest` models (this one included) being left to train
    (under torchrun when it is a torch model and `train.nproc` > 1); returns its CVResult,
    timed from the start, and its process count."""
    model_params = _arguments(model, tuned)
    nproc = processes(model.name, ctx, model_params, plan.nproc)
    fits = plan.fits_of(model)
    workers = 1 if nproc > 1 else fold_workers(model.name, ctx, fits - model.refits)  # DDP splits the threads
    left = sum(plan.fits_of(m) for m in plan.models[len(plan.models) - rest :])
    timed = replace(ctx, fit_seconds=deadline.share(left), processes=nproc)
    first = rest == len(plan.models)  # the first model always trains: no budget check
    check = deadline.guard(model.name, fits) if not first and workers == 1 else None
    start = time.perf_counter()
    if nproc > 1:  # the ranks fill the fold cache; cross_validate below reads it
        launch(_rank_argv(args, model.name, timed.fit_seconds), nproc)
    opts = CVOptions(cache_dir=args.cache, workers=workers, refit=model.refits, on_fold=check, max_folds=model.folds,
                     deadline=deadline, fits_after=left - fits)  # fmt: skip
    result = cross_validate(model.name, model_params, data, timed, opts)
    return replace(result, seconds=time.perf_counter() - start), nproc


def _cut_line(cuts: dict[str, str]) -> str:
    """The budget's cuts of one model's fits on one line: the first fit's, and how many fits."""
    first, note = next(iter(cuts.items()))
    more = f" (and {len(cuts) - 1} more fits)" if len(cuts) > 1 else ""
    return f"{first}: {note}{more}"


def _arguments(model, tuned: dict) -> dict:
    """A planned model's arguments: params.yaml's over the tuned ones over the defaults at this
    data size (the factory's own below all three)."""
    return {**model.sized, **tuned.get(model.name, {}).get("params", {}), **model.args}


def _setup(args, params):
    """What every model's training needs: the data, the model context, tuned params, the plan."""
    check_models(params, args.params)
    data = CleanData(args.clean)
    tuned = read_json(args.tuned / "best_params.json")
    return data, model_context(data, params), tuned, make_plan(params, args.name, data)


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
            data, ctx, tuned, plan = _setup(args, params)
            model = plan.model(args.rank_model)
            ctx = replace(ctx, fit_seconds=args.fit_seconds, processes=world, progress=ctx.progress and rank == 0)
            opts = CVOptions(cache_dir=args.cache, refit=model.refits, writer=rank == 0, max_folds=model.folds)
            cross_validate(model.name, _arguments(model, tuned), data, ctx, opts)
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()
