"""A torchrun job for tests/test_torchrun.py: rank 1 fails with a PipelineError while rank 0
waits for it in a collective (as a rank of `train` would), under the CLI's SIGTERM handler.

    python -m torch.distributed.run --standalone --nproc_per_node=2 -m tests.rank_failure
"""

from __future__ import annotations

import signal

import torch.distributed as dist

from pipelines.__main__ import _terminate
from pipelines.core.errors import PipelineError
from pipelines.nn.distributed import agree, rank_errors, setup_distributed


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        with rank_errors():
            _, rank, _ = setup_distributed()
            if rank == 1:
                raise PipelineError("rank 1: column 'Age' is missing")
            agree("rank 0 waits here for rank 1, which never comes")
            dist.barrier()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as the CLI does on its way out


if __name__ == "__main__":
    main()
