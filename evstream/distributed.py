"""Data parallelism over processes with ``torch.distributed`` (``torchrun``; gloo on CPU).

    torchrun --nproc_per_node 2 -m evstream train ...     # the same result as one process
    torchrun --nproc_per_node 2 -m evstream eval ...

Each process takes a fixed share of every global batch (``shard``); gradients are averaged by
``DistributedDataParallel``; BatchNorm statistics are taken over the global batch (``evstream.snn.layers.BatchNorm``,
because PyTorch's ``SyncBatchNorm`` refuses CPU tensors), so two processes compute what one computes on
the whole batch, to float rounding. Sums (correct answers, spikes, energy) are added with ``all_sum``.
Only rank 0 writes files and prints progress.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


def init() -> tuple[int, int]:
    """(rank, world size); joins the process group when started by torchrun (``WORLD_SIZE`` > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return rank(), world_size()


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def shard(items):
    """This process's share of a global batch (every world-th item from its rank)."""
    return items[rank()::world_size()]


def all_sum(values):
    """Element-wise sum over processes of a list of numbers (unchanged in one process)."""
    if not active():
        return list(values)
    t = torch.tensor([float(v) for v in values], dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def wrap(model: nn.Module) -> nn.Module:
    """``DistributedDataParallel`` around ``model`` when distributed, else ``model``."""
    if not active():
        return model
    return nn.parallel.DistributedDataParallel(model)


def finish() -> None:
    """Leave the process group once every process got here (no process tears down a peer's collective)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()

