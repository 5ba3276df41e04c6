"""Data parallelism over processes with ``torch.distributed`` (``torchrun``; gloo on CPU).

    torchrun --nproc_per_node 2 -m evstream train ...     # the same result as one process
    torchrun --nproc_per_node 2 -m evstream eval ...

Each process takes a fixed share of every global batch (``shard``); gradients are averaged by
``DistributedDataParallel``; BatchNorm statistics are taken over the global batch (:class:`BatchNorm`,
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


class BatchNorm(nn.BatchNorm1d):
    """BatchNorm over dimension ``channel_dim`` of any tensor (tokens ``(..., C)`` or images ``(B, C, H, W)``).

    Under ``torch.distributed`` in training mode the batch statistics are summed over all processes
    (autograd flows through the reduction), so sharded training equals one process on the whole batch.
    Its parameters and buffers are those of ``nn.BatchNorm1d`` (checkpoints are interchangeable).
    """

    def __init__(self, num_features: int, channel_dim: int = -1, **kw):
        super().__init__(num_features, **kw)
        self.channel_dim = channel_dim

    def forward(self, x):
        moved = x.movedim(self.channel_dim, -1) if self.channel_dim not in (-1, x.dim() - 1) else x
        flat = moved.reshape(-1, moved.shape[-1])
        if self.training and active():
            y = self._global_batch_norm(flat)
        else:
            y = super().forward(flat)
        y = y.reshape(moved.shape)
        return y.movedim(-1, self.channel_dim) if moved is not x else y

    def _global_batch_norm(self, flat):
        from torch.distributed.nn.functional import all_reduce

        n_local = torch.tensor([float(flat.shape[0])], dtype=flat.dtype)
        stats = all_reduce(torch.cat([flat.sum(0), (flat * flat).sum(0), n_local]))
        c = flat.shape[1]
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean * mean).clamp(min=0)
        with torch.no_grad():
            m = self.momentum if self.momentum is not None else 0.1
            self.running_mean.mul_(1 - m).add_(m * mean.detach())
            self.running_var.mul_(1 - m).add_(m * var.detach() * n / max(float(n) - 1, 1.0))
            self.num_batches_tracked += 1
        y = (flat - mean) * torch.rsqrt(var + self.eps)
        return y * self.weight + self.bias if self.affine else y
