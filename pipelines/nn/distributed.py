"""Processes and devices for the training loop: torch DDP under `torchrun`, threads, determinism.

Launched by `torchrun`, every process joins the process group (gloo on CPU, nccl on CUDA,
one GPU per process: `LOCAL_RANK`), trains its share of each batch on its own device, and
takes rank 0's decisions (validation score, stopping, what is cached), so that all ranks
run the same collectives and stop at the same epoch. Started plainly, the world is one process.

`launch(["pipelines", "train", ...], nproc)` is torchrun itself (`torch.distributed.run`,
`--standalone --nproc_per_node N`), run in the calling process so that a failed rank comes
back as one exception: a rank's `PipelineError` (recorded by `rank_errors`) is raised again
here with its one-line message; torchrun's agent ends the other ranks, so none is left waiting.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from pipelines.core.errors import PipelineError

_PIPELINE_ERROR = f"{PipelineError.__name__}: "


def setup_distributed() -> tuple[int, int, torch.device]:
    """(world size, rank, device); joins the process group when started by `torchrun`."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if cuda else torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if cuda else "gloo")
    return world, (dist.get_rank() if world > 1 else 0), device


def configure_torch(threads: int, deterministic: bool, world: int = 1) -> None:
    # processes of one machine share its cores: oversubscribing threads is the main slowdown
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    torch.set_num_threads(max(1, threads // max(1, local)))
    if torch.cuda.is_available():
        # only CUDA kernels (atomics, cuDNN autotuning) are nondeterministic for our nets; the
        # CPU ones already repeat bit for bit, and the switch costs a 3 s import of inductor
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
        torch.backends.cudnn.benchmark = not deterministic


def wrap(net: nn.Module, world: int, device: torch.device) -> nn.Module:
    """`net` in DistributedDataParallel when there are several processes, else `net` itself."""
    if world == 1:
        return net
    return DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def broadcast(value, world: int):
    """Rank 0's `value` (a score, a decision: anything picklable) for every rank, so that all
    of them take the same branch (and stop, and report, at the same epoch)."""
    if world == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def agree(value):
    """`broadcast` in whatever world this process is in (one process: `value` itself)."""
    return broadcast(value, dist.get_world_size() if dist.is_initialized() else 1)


def mean_over_ranks(total: torch.Tensor, count: int, world: int) -> float:
    """The mean of a per-row sum over every rank's rows (an epoch's training loss)."""
    if world == 1:
        return float(total) / max(count, 1)
    both = torch.stack([total.double(), torch.tensor(float(count), device=total.device, dtype=torch.float64)])
    dist.all_reduce(both)
    return float(both[0]) / max(float(both[1]), 1.0)


@contextlib.contextmanager
def rank_errors():
    """Around the work of a rank started by `launch`, so that the launcher prints one line.

    A `PipelineError` goes to torchrun's error file (the launcher raises it again) and is
    flagged in the job's store; a rank that fails after that (its collective's peer is gone,
    or torchrun's agent stopped it) exits without a word. An interrupt ends a rank quietly
    too: the launcher was interrupted as well, and says so."""
    try:
        yield
    except PipelineError as err:
        from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

        ErrorHandler().record_exception(err)
        _job_store(_FAILED, "1")
        raise SystemExit(2) from None
    except KeyboardInterrupt as err:
        raise SystemExit(143 if "signal" in str(err) else 130) from None  # SIGTERM's Stopped says "signal 15"
    except Exception:
        if _job_store(_FAILED) is None:  # this rank's own failure: its traceback is the report
            raise
        raise SystemExit(2) from None


_FAILED = "pipelines/failed"  # a key of the torchrun job's store: a rank had a PipelineError


def _job_store(key: str, value: str | None = None) -> str | None:
    """Set `key` in torchrun's store (the agent's, it outlives the ranks), or read it (None: not set)."""
    if "MASTER_PORT" not in os.environ:
        return None
    from datetime import timedelta

    try:
        store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                              timeout=timedelta(seconds=10))  # fmt: skip
        if value is not None:
            store.set(key, value)
            return value
        return store.get(key).decode() if store.check([key]) else None
    except (RuntimeError, OSError):  # no store to reach: say nothing was flagged
        return None


def launch(argv: list[str], nproc: int) -> None:
    """`torchrun --standalone --nproc_per_node <nproc> -m <argv...>`, in this process.

    A rank's PipelineError is raised here again; any other failure raises RuntimeError naming
    the rank. SIGTERM / Ctrl-C: torchrun's agent stops the ranks (they save what they
    finished), then this process's own handler runs as if the signal had come just now."""
    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    omp = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # the ranks set their own share; this only silences torchrun's warning
    for name in list(logging.root.manager.loggerDict):  # torchelastic sets a level on each of its loggers
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)  # rendezvous chatter; failures are ours to report
    try:
        run(parse_args(["--standalone", f"--nproc_per_node={nproc}", "--max-restarts=0", "-m", *argv]))
    except ChildFailedError as err:
        raise _failure(err) from None
    except SignalException as err:
        _restore(handlers, omp)
        handler = handlers[err.sigval]
        if callable(handler):
            handler(err.sigval, None)  # ours raises (Stopped / KeyboardInterrupt) and unwinds the stage
        raise KeyboardInterrupt(str(err)) from None
    finally:
        _restore(handlers, omp)


def _restore(handlers: dict, omp: str | None) -> None:
    for sig, handler in handlers.items():
        signal.signal(sig, handler)  # torchrun's agent leaves its own handlers installed
    if omp is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = omp


def _failure(err) -> Exception:
    """The exception a failed torchrun stands for: a rank's PipelineError if any rank had one
    (the others were only stopped because of it), else the first failure."""
    for _, failure in sorted(err.failures.items()):
        message = failure.message  # the error file's record: {"message": "<type>: <text>", "extraInfo": ...}
        message = message.get("message", "") if isinstance(message, dict) else message
        if message.startswith(_PIPELINE_ERROR):
            return PipelineError(message.removeprefix(_PIPELINE_ERROR))
    rank, failure = err.get_first_failure()
    return RuntimeError(f"torchrun: rank {rank} failed (exit code {failure.exitcode}); its output is above")
