"""Folds trained side by side (`CVOptions.workers`; see `training/cv.py`): `fold_workers`
picks how many, `run_parallel` trains the jobs a cross-validation hands it in that many
spawned one-thread processes, each writing its fold to the cache that the parent then
reads in order."""

from __future__ import annotations

import logging
import multiprocessing
import time
from dataclasses import replace

from pipelines.core.context import TABULAR, ModelContext
from pipelines.models.registry import get_entry

log = logging.getLogger(__name__)


def _worker_init() -> None:
    from pipelines.core.context import set_threads

    set_threads(1)


def _worker_run(job, k: int) -> tuple[int, float, float | None]:
    start = time.perf_counter()
    _, preds = job.run(k)
    score = None if k < 0 else job.ctx.metric(job.data.y[job.data.folds == k], preds.val, job.ctx.task)
    return k, time.perf_counter() - start, score


def run_parallel(job, todo: list[int], workers: int) -> None:
    """Run the `todo` jobs of a cross-validation's fold job (`cv._FoldJob`: fold indices, a
    negative one for the refit on every row) in `workers` one-thread processes at once; each
    saves its fold to the job's cache.

    The caller hands over only the first `workers * (len(jobs) // workers)` of its jobs;
    the rest (one fold of 5 on 2 workers, without refit) it trains itself on all threads
    instead of leaving a core idle. Which job runs where depends on its place alone, so a
    resumed run gives the same predictions as an uninterrupted one."""
    if not todo:
        return
    job = replace(job, ctx=replace(job.ctx, threads=1, progress=False))
    pool = multiprocessing.get_context("spawn").Pool(min(workers, len(todo)), initializer=_worker_init)
    try:
        pending = [pool.apply_async(_worker_run, (job, k)) for k in todo]
        for res in pending:
            k, fold_s, score = res.get()
            what = "refit on every row" if k < 0 else f"fold {k}: {job.ctx.metric.name} {score:.5f}"
            log.info("%s %s (%.0fs, %d at once)", job.model, what, fold_s, workers)
        pool.close()
    finally:
        pool.terminate()  # on Ctrl-C / SIGTERM: stop the workers now (finished folds are cached)
        pool.join()


def fold_workers(model: str, ctx: ModelContext, n_splits: int) -> int:
    """Folds to train at once: for an image or text model on a CPU, one per thread of
    `train.threads` (each on one thread: small torch nets and sparse linear fits use one
    thread well); tabular ones one at a time on all threads (LightGBM and scikit-learn use
    their threads well; a GPU is shared, not split), as are the frozen-embedding members
    (`one_process`: each worker would embed every row again; on the solar cells image_embed
    took 202 s in two workers)."""
    entry = get_entry(model)
    if entry.modality == TABULAR or entry.one_process or ctx.threads < 2:
        return 1
    import torch

    if torch.cuda.is_available():
        return 1
    return min(ctx.threads, n_splits)
