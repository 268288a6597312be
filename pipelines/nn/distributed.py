"""Processes and devices for the training loop: torch DDP under `torchrun`, threads, determinism.

Launched by `torchrun`, every process joins the process group (gloo on CPU, nccl on CUDA),
trains its share of the batches on its own device, and takes rank 0's validation score, so
that all ranks stop at the same epoch. Started plainly, the world is one process.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


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


def broadcast(value: float, world: int) -> float:
    """Rank 0's score for every rank, so all of them stop (and report) at the same epoch."""
    if world == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
