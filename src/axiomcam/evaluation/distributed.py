"""Spreading an evaluation over processes and machines with :mod:`torch.distributed`.

The same ``axiomcam evaluate`` command runs on one process, or under ``torchrun`` on
``N`` processes (``--nproc_per_node``, ``--nnodes`` across machines). :func:`join` reads
torchrun's environment (``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR``, ...) and starts the
process group: gloo on CPUs, NCCL on CUDA devices.

How the work is shared: batch ``b`` of the run (the data set's images in order, cut into
batches of ``batch_size``) belongs to rank ``b mod N``. The batches are the ones a
one-process run makes, so each image is computed with the same neighbours, the same seeds
and the same code path, and the merged results are those of the one-process run, row for
row (see :func:`axiomcam.evaluation.merging.merge_runs`).

Examples:
    >>> group = join(torch.device("cpu"))  # not under torchrun: one process
    >>> (group.rank, group.world_size, group.owns(7))
    (0, 1, True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["PROCESS_GROUP_TIMEOUT", "ProcessGroup", "join", "rank_device"]

#: how long a process waits at a barrier for the others (the slowest rank's whole share of
#: the data set, when ranks finish at different times); torchrun stops every process as
#: soon as one fails, so a dead rank does not make the others wait this long
PROCESS_GROUP_TIMEOUT = timedelta(hours=24)

_TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place in the run.

    Attributes:
        rank: this process's index, ``0 <= rank < world_size``.
        world_size: the number of processes (1: no torch.distributed).
        started_here: whether :func:`join` started the process group (and :meth:`leave`
            ends it); ``False`` when the caller had started it.
    """

    rank: int = 0
    world_size: int = 1
    started_here: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: merges the results and writes the summaries and report."""
        return self.rank == 0

    def owns(self, batch: int) -> bool:
        """Whether batch number ``batch`` is this process's to compute."""
        return batch % self.world_size == self.rank

    def barrier(self) -> None:
        """Wait for every process (nothing to wait for on one process)."""
        if self.world_size > 1:
            dist.barrier()

    def from_main(self, value: Any) -> Any:
        """Rank 0's ``value``, on every rank (picklable Python objects)."""
        if self.world_size == 1:
            return value
        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def total(self, value: int) -> int:
        """The sum of every rank's ``value``, on every rank (each waits for all, as at
        :meth:`barrier`)."""
        if self.world_size == 1:
            return value
        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)  # works on gloo and NCCL alike
        return sum(values)

    def leave(self) -> None:
        """End the process group if :func:`join` started it."""
        if self.started_here and dist.is_initialized():
            dist.destroy_process_group()


def join(device: torch.device) -> ProcessGroup:
    """This process's :class:`ProcessGroup`: from an existing ``torch.distributed`` group,
    from torchrun's environment (starting the group: NCCL for a CUDA ``device``, else
    gloo), or a single process.

    Raises:
        RuntimeError: ``WORLD_SIZE`` > 1 without the rest of torchrun's environment, or
            torch built without distributed support.
    """
    if dist.is_available() and dist.is_initialized():
        return ProcessGroup(dist.get_rank(), dist.get_world_size())
    try:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError as error:
        raise RuntimeError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number") from error
    if world_size <= 1:
        return ProcessGroup()
    missing = [name for name in _TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        raise RuntimeError(
            f"WORLD_SIZE is {world_size} but {', '.join(missing)} are not set: launch "
            "distributed runs with torchrun (see docs/scaling.md)")
    if not dist.is_available():
        raise RuntimeError("this torch was built without torch.distributed")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, timeout=PROCESS_GROUP_TIMEOUT)
    return ProcessGroup(dist.get_rank(), dist.get_world_size(), started_here=True)


def rank_device(device: str) -> str:
    """The device for this process: ``"cuda"`` becomes ``"cuda:LOCAL_RANK"`` under torchrun
    (one GPU per process); anything else is kept.

    Examples:
        >>> import os
        >>> os.environ["LOCAL_RANK"] = "3"
        >>> rank_device("cuda"), rank_device("cuda:0"), rank_device("cpu")
        ('cuda:3', 'cuda:0', 'cpu')
        >>> del os.environ["LOCAL_RANK"]
        >>> rank_device("cuda")
        'cuda'
    """
    local_rank = os.environ.get("LOCAL_RANK")
    if device == "cuda" and local_rank is not None:
        return f"cuda:{int(local_rank)}"
    return device
