"""Data parallelism over processes with ``torch.distributed`` (``torchrun``; gloo on CPU, NCCL on CUDA).

    torchrun --nproc_per_node 2 -m evstream train ...     # the same result as one process
    torchrun --nproc_per_node 2 -m evstream eval ...
    torchrun --nproc_per_node 8 -m evstream train --device cuda ...   # one GPU per process (LOCAL_RANK)

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

from evstream.errors import EvstreamError


def init(device: str = "cpu") -> tuple[int, int]:
    """(rank, world size); joins the process group when started by torchrun (``WORLD_SIZE`` > 1): NCCL for
    ``device="cuda"`` (each process on GPU ``LOCAL_RANK``), gloo otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        if torch.device(device).type == "cuda":
            torch.cuda.set_device(local_rank())
            dist.init_process_group("nccl")
        else:
            dist.init_process_group("gloo")
    return rank(), world_size()


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def device(kind: str = "cpu") -> torch.device:
    """This process's device: ``cuda`` is GPU ``LOCAL_RANK`` (one per torchrun process)."""
    d = torch.device(kind)
    if d.type != "cuda":
        return d
    if not torch.cuda.is_available():
        raise EvstreamError("--device cuda: no CUDA device (this torch build or machine has none); use --device cpu")
    if d.index is None:
        d = torch.device("cuda", local_rank() % torch.cuda.device_count())
    return d


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


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
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t)
    return t.tolist()


def wrap(model: nn.Module) -> nn.Module:
    """``DistributedDataParallel`` around ``model`` when distributed, else ``model``."""
    if not active():
        return model
    p = next(model.parameters(), None)
    if p is not None and p.device.type == "cuda":
        return nn.parallel.DistributedDataParallel(model, device_ids=[p.device.index])
    return nn.parallel.DistributedDataParallel(model)


class Autocast(nn.Module):
    """``module`` run under ``torch.autocast`` (bfloat16: no loss scaling needed); outputs in float32."""

    def __init__(self, module: nn.Module, device_type: str):
        super().__init__()
        self.module, self.device_type = module, device_type

    def forward(self, *args, **kw):
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            out = self.module(*args, **kw)
        return out.float()


def autocast(module: nn.Module, device, enabled: bool) -> nn.Module:
    """Mixed precision (``--amp``): ``module`` under bfloat16 autocast when ``enabled``, else ``module``."""
    return Autocast(module, torch.device(device).type) if enabled else module


def finish() -> None:
    """Leave the process group once every process got here (no process tears down a peer's collective)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
