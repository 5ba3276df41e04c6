"""Energy by the papers' conventions, counted with forward hooks.

Spikformer V2 (and MST's appendix): E = 0.9 pJ x SOPs + 4.6 pJ x MACs (45 nm), where
- a synaptic operation (SOP, an accumulate) happens for every spike arriving at a layer, once per output
  it fans out to: Linear(in, out) -> ``out`` per input spike; Conv2d -> ``out_ch x k x k / stride²``;
- products of two spike matrices (Q·Kᵀ and A·V in spiking attention) cost one accumulate per pair of
  non-zero entries that meet;
- the first layers (the reduction conv and the patch embedding, which see the analog frames) and every
  other analog operation are MACs (their dense operation count);
- BatchNorm is folded into the neighbouring linear layer and residual additions are not counted (the
  Spikformer convention).
The ANN energy of the same model counts every operation of every layer as a MAC.
MST's power model: P = spikes per timestep / 1 ms x α (Watts), reported in units of α.
Counting rules are checked by hand on a two-layer example in tests/test_energy.py (docs/energy.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from evstream.jit import nb

E_AC_PJ = 0.9
E_MAC_PJ = 4.6


def energy_uJ(sops: float, macs: float) -> float:
    return (E_AC_PJ * sops + E_MAC_PJ * macs) * 1e-6


def mst_power_alpha(spikes_per_step: float, step_s: float = 1e-3) -> float:
    """MST Eq. 10: P = spikes / 1 ms x α; returned in units of α (Watts per α)."""
    return spikes_per_step / step_s


def dense_macs(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    if isinstance(module, nn.Linear):
        return int(inp.numel() // module.in_features * module.in_features * module.out_features)
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size[0] * module.kernel_size[1]
        return int(out.numel() * module.in_channels // module.groups * k)
    return 0


def pair_ops(a: torch.Tensor, b: torch.Tensor) -> int:
    """Number of scalar products in the (batched) matrix product ``a @ b`` where both factors are non-zero:
    one accumulate each (a spike gates an add). Equal to ``((a != 0) @ (b != 0)).sum()``, counted without
    the product: Σ_k (non-zeros in column k of a) x (non-zeros in row k of b), in one numba pass over the
    tensors as they are (views, any strides), as this runs for every attention at every timestep."""
    return int(_pairs_per_step(a.detach()[None], b.detach()[None])[0])


@nb.njit(cache=True, nogil=True)
def _pairs(a, b):
    """a (Z1, Z2, n, m), b (Z1, Z2, m, p): Σ over z1, z2, k of nnz(a[z1, z2, :, k]) x nnz(b[z1, z2, k, :])."""
    total = 0
    for z1 in range(a.shape[0]):
        for z2 in range(a.shape[1]):
            for k in range(a.shape[3]):
                ca = 0
                for i in range(a.shape[2]):
                    if a[z1, z2, i, k] != 0:
                        ca += 1
                if ca:
                    cb = 0
                    for j in range(b.shape[3]):
                        if b[z1, z2, k, j] != 0:
                            cb += 1
                    total += ca * cb
    return total


def pair_ops_steps(a: torch.Tensor, b: torch.Tensor, steps: int) -> np.ndarray:
    """:func:`pair_ops` of each of ``steps`` timesteps, ``(steps,)`` int64 numpy: the leading dimension of ``a`` and
    ``b`` is time-major (T·B, ...), as in a batched step; one numba call for all of them."""
    return _pairs_per_step(a.detach().unflatten(0, (steps, -1)), b.detach().unflatten(0, (steps, -1)))


def _pairs_per_step(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """:func:`pair_ops` of ``a[t] @ b[t]`` for each t of ``a (T, ...)``, ``b (T, ...)``."""
    a, b = as_steps_5d(a), as_steps_5d(b)
    if a.shape[:3] != b.shape[:3]:  # broadcast batch dimensions
        lead = np.broadcast_shapes(tuple(a.shape[:3]), tuple(b.shape[:3]))
        a, b = a.expand(*lead, *a.shape[3:]), b.expand(*lead, *b.shape[3:])
    out = np.empty(a.shape[0], dtype=np.int64)
    _pairs_steps(a.numpy(), b.numpy(), out)
    return out


def as_steps_5d(t: torch.Tensor) -> torch.Tensor:
    """(T, ...) as (T, Z1, Z2, n, m)."""
    if t.dim() > 5:
        return t.reshape(t.shape[0], 1, -1, *t.shape[-2:])
    return t[(slice(None),) + (None,) * (5 - t.dim())]


@nb.njit(cache=True, nogil=True)
def _pairs_steps(a, b, out):
    for t in range(a.shape[0]):
        out[t] = _pairs(a[t], b[t])


def product_macs(a: torch.Tensor, b: torch.Tensor) -> int:
    """Multiply-adds of the (batched, broadcast) matrix product ``a @ b``."""
    # numpy's rule (the same as torch's): torch.broadcast_shapes' first call imports its symbolic-shape
    # machinery, about a second of a live start
    batch = np.broadcast_shapes(tuple(a.shape[:-2]), tuple(b.shape[:-2]))
    return int(np.prod(batch, dtype=np.int64) * a.shape[-2] * a.shape[-1] * b.shape[-1])


def fan_out(module: nn.Module) -> float:
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size[0] * module.kernel_size[1]
        s = module.stride[0] * module.stride[1]
        return module.out_channels * k / s
    return 0


@dataclass
class OpCount:
    sops: float = 0.0
    macs: float = 0.0
    per_module: dict = field(default_factory=dict)

    @property
    def energy_uJ(self) -> float:
        return energy_uJ(self.sops, self.macs)


class OpCounter:
    """Counts SOPs and MACs of a model's forward passes with hooks.

    ``analog`` names the modules whose input is analog (MACs); all other Linear/Conv2d layers receive
    spikes (SOPs = non-zero inputs x fan-out) when ``spiking``, else everything is MACs (the ANN).
    Products of two spike tensors are modules marked ``spike_product`` (``evstream.snn.layers.SpikeMatmul``):
    one accumulate per pair of non-zero entries that meet (``pair_ops`` of the two operands), or the dense
    product as MACs in the ANN view.
    Modules with a ``count_extra`` attribute (ECMT's expectation compensation) report their own
    operations of the last call as ``_extra_ops = (sops, macs)`` (SNN view only).
    """

    def __init__(self, model: nn.Module, analog: set[str], spiking: bool, sources: bool = True):
        self.model, self.analog, self.spiking = model, set(analog), spiking
        self.count = OpCount()
        self._handles = []
        # a layer whose whole input is one neuron layer's output (``model.spike_sources()``) receives exactly
        # that layer's spikes: its SOPs are that spike count x fan-out, summed by one hook per forward pass
        # instead of a hook per layer (the same numbers; tests/test_snn.py checks)
        by_name = dict(model.named_modules())
        fed = getattr(model, "spike_sources", dict)() if spiking and sources else {}
        self._fed = [(name, src, fan_out(by_name[name])) for name, src in fed.items()
                     if name in by_name and name not in self.analog]
        if self._fed:
            self._handles.append(model.register_forward_hook(self._fed_hook))
        counted_by_source = {name for name, *_ in self._fed}
        for name, m in model.named_modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)) and name not in counted_by_source:
                self._handles.append(m.register_forward_hook(self._hook(name)))
            if getattr(m, "spike_product", False):
                self._handles.append(m.register_forward_hook(self._pair_hook(name)))
            if hasattr(m, "count_extra"):
                m.count_extra = True
                self._handles.append(m.register_forward_hook(self._extra_hook(name)))

    def _fed_hook(self, module, args, out):
        per = self.count.per_module
        total = 0.0
        for name, src, f in self._fed:
            ops = src.last_spikes * f
            total += ops
            per[name] = per.get(name, 0.0) + ops
        self.count.sops += total

    def _hook(self, name):
        def hook(module, args, out):
            inp = args[0]
            if self.spiking and name not in self.analog:
                # a layer marked ``counts_input`` receives spike counts (0, 1, 2, ...: Spikformer's residual
                # stream adds spike trains): one accumulate per arriving spike, i.e. the sum of its input
                n = float(inp.abs().sum()) if getattr(module, "counts_input", False) else float((inp != 0).sum())
                ops, kind = n * fan_out(module), "sops"
            else:
                ops, kind = float(dense_macs(module, inp, out)), "macs"
            setattr(self.count, kind, getattr(self.count, kind) + ops)
            self.count.per_module[name] = self.count.per_module.get(name, 0.0) + ops
        return hook

    def _pair_hook(self, name):
        def hook(module, args, out):
            a, b = args[0], args[1]
            if self.spiking:
                ops = float(pair_ops(a, b))
                self.count.sops += ops
            else:
                ops = float(product_macs(a, b))
                self.count.macs += ops
            self.count.per_module[name] = self.count.per_module.get(name, 0.0) + ops
        return hook

    def _extra_hook(self, name):
        def hook(module, args, out):
            if self.spiking:
                sops, macs = module._extra_ops
                self.count.sops += sops
                self.count.macs += macs
                key = name + ".compensation"
                self.count.per_module[key] = self.count.per_module.get(key, 0.0) + sops + macs
        return hook

    def take(self) -> OpCount:
        c, self.count = self.count, OpCount()
        return c

    def remove(self):
        for h in self._handles:
            h.remove()
        self._handles = []
        for m in self.model.modules():
            if hasattr(m, "count_extra"):
                m.count_extra = False
