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

import torch
from torch import nn

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
    Models can add spike-spike products through ``pair_ops`` attributes (``_qk_ops``, ``_av_ops``).
    Modules with a ``count_extra`` attribute (ECMT's expectation compensation) report their own
    operations of the last call as ``_extra_ops = (sops, macs)`` (SNN view only).
    """

    def __init__(self, model: nn.Module, analog: set[str], spiking: bool):
        self.model, self.analog, self.spiking = model, set(analog), spiking
        self.count = OpCount()
        self._handles = []
        for name, m in model.named_modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                self._handles.append(m.register_forward_hook(self._hook(name)))
            if hasattr(m, "count_pairs"):
                m.count_pairs = True
                self._handles.append(m.register_forward_hook(self._pair_hook(name)))
            if hasattr(m, "count_extra"):
                m.count_extra = True
                self._handles.append(m.register_forward_hook(self._extra_hook(name)))

    def _hook(self, name):
        def hook(module, args, out):
            inp = args[0]
            if self.spiking and name not in self.analog:
                # a layer marked ``counts_input`` receives spike counts (0, 1, 2, ...: Spikformer's residual
                # stream adds spike trains): one accumulate per arriving spike, i.e. the sum of its input
                n = float(inp.abs().sum()) if getattr(module, "counts_input", False) else float(inp.count_nonzero())
                ops, kind = n * fan_out(module), "sops"
            else:
                ops, kind = float(dense_macs(module, inp, out)), "macs"
            setattr(self.count, kind, getattr(self.count, kind) + ops)
            self.count.per_module[name] = self.count.per_module.get(name, 0.0) + ops
        return hook

    def _pair_hook(self, name):
        def hook(module, args, out):
            if self.spiking:
                ops = float(module._qk_ops + module._av_ops)
                self.count.sops += ops
            else:
                ops = float(module._qk_dense + module._av_dense)
                self.count.macs += ops
            self.count.per_module[name + ".products"] = self.count.per_module.get(name + ".products", 0.0) + ops
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
            if hasattr(m, "count_pairs"):
                m.count_pairs = False
            if hasattr(m, "count_extra"):
                m.count_extra = False
