"""Layers the model families share: a BatchNorm over any channel dimension that takes its statistics over
every process when training under ``torch.distributed`` (``torchrun``; PyTorch's ``SyncBatchNorm`` refuses
CPU tensors)."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


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
        if self.training and _distributed():
            y = self._global_batch_norm(flat.float()).to(flat.dtype)  # statistics in float32 (under --amp too)
        else:
            y = super().forward(flat)
        y = y.reshape(moved.shape)
        return y.movedim(-1, self.channel_dim) if moved is not x else y

    def _global_batch_norm(self, flat):
        from torch.distributed.nn.functional import all_reduce

        n_local = torch.tensor([float(flat.shape[0])], dtype=flat.dtype, device=flat.device)
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


class SpikeMatmul(nn.Module):
    """The product of two spike tensors (attention's Q·Kᵀ and A·V): ``a @ b``, or with ``bias``
    ``bias + alpha · (a @ b)`` as one batched ``baddbmm`` over ``(..., n, d) @ (..., d, m)`` (returned as
    ``(batch, n, m)``). ``nnz`` (the operands' non-zero counts, when known) is for stateful products.

    The energy counter (:class:`evstream.energy.OpCounter`) hooks every module with ``spike_product``:
    one accumulate per pair of non-zero entries that meet (the SNN view), the dense products as MACs (the
    ANN view). Models therefore never count operations themselves."""

    spike_product = True

    def forward(self, a, b, bias=None, alpha: float = 1.0, nnz=None):
        if bias is None:
            return a @ b
        n, d, m = a.shape[-2], a.shape[-1], b.shape[-1]
        return torch.baddbmm(bias, a.reshape(-1, n, d), b.reshape(-1, d, m), alpha=alpha)


def bn_scale_shift(bn):
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias.detach() - bn.running_mean * scale


@torch.no_grad()
def fold_bn(layer: nn.Linear | nn.Conv2d, bn: nn.BatchNorm1d) -> None:
    """bn(layer(x)) becomes layer(x): the eval-mode BatchNorm after a linear or convolutional layer (over its
    output channels) folded into its weights and bias (``fuse()`` of the model families)."""
    scale, shift = bn_scale_shift(bn)
    layer.weight.mul_(scale.view(-1, *[1] * (layer.weight.dim() - 1)))
    b = layer.bias if layer.bias is not None else torch.zeros_like(shift)
    layer.bias = nn.Parameter(b * scale + shift)


class FastLinear(nn.Linear):
    """``nn.Linear`` for inference (the streaming runners' layers, :func:`fast_linears`): y = x·Wᵀ as one matrix
    product with Wᵀ kept contiguous, then the bias added in place. ``F.linear`` (``addmm``) first copies the bias
    into the whole output and then adds the product onto it — a pass over megabytes at mode mst's 64 steps
    (benchmarks/RESULTS.md "Seventh session": 4–6 % of a decision). The same float operations per output:
    the product's sum, then + b. With gradients on (training through a runner) it is ``nn.Linear`` itself."""

    @classmethod
    def of(cls, lin: nn.Linear) -> FastLinear:
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.in_features, new.out_features = lin.in_features, lin.out_features
        new.weight, new.bias = lin.weight, lin.bias
        new.register_buffer("weight_t", lin.weight.detach().t().contiguous(), persistent=False)
        return new

    def forward(self, x, parts: int = 1):
        """y = x·Wᵀ + b; ``parts`` k > 1: ``y.split(out_features // k, -1)`` with each part contiguous (k matrix
        products with column blocks of Wᵀ, views), so whatever reads a part — ECMT's Q, K and V neurons — gets it
        without a copy; the same numbers. Called as a module either way: hooks (the energy counter) see it."""
        if torch.is_grad_enabled() and self.weight.requires_grad:
            y = super().forward(x)
            return y if parts == 1 else tuple(y.split(self.out_features // parts, -1))
        x2 = x.reshape(-1, self.in_features)
        m = self.out_features // parts
        out = []
        for i in range(parts):
            y = torch.mm(x2, self.weight_t[:, i * m:(i + 1) * m])
            if self.bias is not None:
                y.add_(self.bias[i * m:(i + 1) * m])
            out.append(y.view(*x.shape[:-1], m))
        return out[0] if parts == 1 else tuple(out)


def fast_linears(model: nn.Module) -> nn.Module:
    """Every ``nn.Linear`` of ``model`` (its weights final: after ``fuse()``) swapped in place for a
    :class:`FastLinear` with the same parameters; returns ``model``."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear:
                setattr(parent, name, FastLinear.of(child))
    return model
