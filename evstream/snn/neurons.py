"""QCFS activations (the ANN view) that become IF neurons with soft reset (the SNN view), and Random
Spike Masking.

QCFS (Bu et al., used by MST; supplement Eq. 1):
    y = λ/L · clip(floor(x·L/λ + 1/2), 0, L)
with L quantisation levels (16) and a learnable threshold λ (initialised to 3). Its SNN twin is an
integrate-and-fire neuron with threshold θ = λ, soft reset (subtract θ) and membrane starting at θ/2;
the neuron's spike (0/1) carries the value θ. Over T steps the mean output approaches the QCFS output.
"""

from __future__ import annotations

import numpy as np
import torch
from spikingjelly.activation_based import neuron
from torch import nn

from evstream.jit import nb


class _FloorSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.floor(x)

    @staticmethod
    def backward(ctx, g):
        return g


class HalfIF(neuron.IFNode):
    """SpikingJelly's IF neuron (single step, soft reset) whose membrane starts at half the threshold."""

    def __init__(self, threshold: float):
        super().__init__(v_threshold=float(threshold), v_reset=None, step_mode="s")
        self.v = 0.5 * float(threshold)

    def reset(self):
        super().reset()
        self.v = 0.5 * self.v_threshold

    def single_step_forward(self, x: torch.Tensor) -> torch.Tensor:
        """SpikingJelly's IF step (H = V + X; S = H >= θ; V = H − S·θ). Without autograd it runs as
        :meth:`fire` (tests check both give the same spikes and membranes)."""
        if torch.is_grad_enabled() or x.dtype != torch.float32:
            return super().single_step_forward(x)
        return self.fire(x)[0]

    def fire(self, x: torch.Tensor, value: float = 1.0, keep: torch.Tensor | None = None):
        """Inference: one IF step in place, fused into one numba pass (SpikingJelly's step is five tensor
        operations, whose dispatch costs more than the arithmetic on these small layers). Returns the output
        (``value`` where a spike is sent, else 0; ``keep`` False drops a spike after the reset: Random
        Spike Masking) and the number of spikes sent."""
        v = self._memories["v"]  # what ``self.v`` reads, without nn.Module's attribute lookup (a hot path)
        if type(v) is not torch.Tensor or v.shape != x.shape:
            v = torch.full(x.shape, float(v)) if not isinstance(v, torch.Tensor) else v.expand_as(x).clone()
            self.v = v
        return run_kernel(_if_step, x, v, keep, self.v_threshold, value)


NO_KEEP = np.empty(0, dtype=np.bool_)  # a numba neuron kernel's ``keep`` when nothing is masked


def run_kernel(kernel, x: torch.Tensor, v: torch.Tensor, keep: torch.Tensor | None, *params):
    """Run a numba neuron ``kernel(x, v, out, keep, *params) -> spikes sent`` over ``x`` (as contiguous
    float32) with the membrane ``v`` (float32, x's shape) updated in place; returns (out, spikes sent)."""
    if x.dtype != torch.float32 or not x.is_contiguous():
        x = x.detach().to(torch.float32).contiguous()
    out = torch.empty(x.shape)
    k = NO_KEEP if keep is None else keep.numpy().reshape(-1)
    return out, kernel(x.numpy().reshape(-1), v.numpy().reshape(-1), out.numpy().reshape(-1), k, *params)


@nb.njit(cache=True, nogil=True)
def _if_step(x, v, out, keep, theta, value):
    """IF with soft reset, element-wise in float32: h = v + x; spike where h ≥ θ, then v = h − θ; ``out`` is
    ``value`` where a spike is sent (``keep``, when not empty, masks spikes after the reset)."""
    th, val, zero = np.float32(theta), np.float32(value), np.float32(0.0)
    masking = keep.size > 0
    n = 0
    for i in range(x.size):
        h = v[i] + x[i]
        o = zero
        if h >= th:
            h = h - th
            if not masking or keep[i]:
                o = val
                n += 1
        v[i] = h
        out[i] = o
    return n


@nb.njit(cache=True, nogil=True)
def lif_step(x, v, out, keep, tau, theta):
    """SpikingJelly's LIF step (decay_input, hard reset to 0) element-wise in float32, in place:
    h = v + (x − v)/τ; spike where h ≥ θ, then v = 0, else v = h. ``out`` is 1 where a spike is sent
    (``keep``, when not empty, masks spikes after the reset); returns the number sent."""
    t, th = np.float32(tau), np.float32(theta)
    masking = keep.size > 0
    n = 0
    for i in range(x.size):
        h = v[i] + (x[i] - v[i]) / t
        o = np.float32(0.0)
        if h >= th:
            h = np.float32(0.0)
            if not masking or keep[i]:
                o = np.float32(1.0)
                n += 1
        v[i] = h
        out[i] = o
    return n


@nb.njit(cache=True, nogil=True)
def if_steps(xs, v, out, counts, theta, value, fresh, v0):
    """``_if_step`` (unmasked) for each row ``t`` of ``xs (T, N)`` into ``out[t]``, ``counts[t]`` its spikes;
    the membrane ``v`` in place (one call for a whole decision's steps of one layer), set to ``v0`` first
    when ``fresh`` (a decision's start after a reset)."""
    keep = np.empty(0, dtype=np.bool_)
    if fresh:
        v[:] = v0
    for t in range(xs.shape[0]):
        counts[t] = _if_step(xs[t], v, out[t], keep, theta, value)


@nb.njit(cache=True, nogil=True)
def lif_steps(xs, v, out, counts, tau, theta, fresh, v0):
    """``lif_step`` (unmasked) for each row of ``xs (T, N)``, as :func:`if_steps`."""
    keep = np.empty(0, dtype=np.bool_)
    if fresh:
        v[:] = v0
    for t in range(xs.shape[0]):
        counts[t] = lif_step(xs[t], v, out[t], keep, tau, theta)


class QCFS(nn.Module):
    """QCFS activation in the ANN view; an IF neuron (``HalfIF``) in the SNN view.

    ``spiking`` switches the view. In the SNN view ``forward`` takes one timestep's input and returns
    spikes x θ; ``last_spikes`` holds that step's spike count (after masking) for the monitors.
    A mask ratio (Random Spike Masking) drops each output spike / activation with that probability,
    drawn from ``generator`` anew at every call, in both views (a masked model is evaluated masked).
    """

    def __init__(self, levels: int = 16, threshold: float = 3.0, name: str = ""):
        super().__init__()
        self.levels = levels
        self.threshold = nn.Parameter(torch.tensor(float(threshold)))
        self.name = name
        self.spiking = False
        self.mask_ratio = 0.0
        self.generator: torch.Generator | None = None
        self.node: HalfIF | None = None
        self.last_spikes = 0
        self.last_numel = 0

    def to_spiking(self) -> None:
        self.spiking = True
        self.node = HalfIF(float(self.threshold.detach().abs()))

    def reset(self) -> None:
        if self.node is not None:
            self.node.reset()
        self.last_spikes = 0

    def keep_mask(self, like: torch.Tensor) -> torch.Tensor | None:
        """This call's Random Spike Masking draw: True where an output survives (None when not masking)."""
        r = self.mask_ratio
        if r <= 0:  # a ratio set on the model applies in every view: ANN training, ANN eval, SNN
            return None
        return torch.rand(like.shape, generator=self.generator, device=like.device) >= r

    def _mask(self, y: torch.Tensor) -> torch.Tensor:
        keep = self.keep_mask(y)
        return y if keep is None else y * keep / (1 - self.mask_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spiking:
            r = self.mask_ratio
            keep = self.keep_mask(x)
            if torch.is_grad_enabled():
                s = self.node(x) if keep is None else self.node(x) * keep
                out, n = s * (self.node.v_threshold / (1 - r)), s.count_nonzero()
            else:  # surviving spikes weigh 1/(1 - r), as in _mask
                out, n = self.node.fire(x, self.node.v_threshold / (1 - r), keep)
            # per-step numbers set straight into the instance dict: nn.Module.__setattr__ is slow per call
            self.__dict__.update(last_spikes=int(n), last_numel=out.numel())
            return out
        lam = self.threshold.abs() + 1e-6
        y = lam / self.levels * torch.clamp(_FloorSTE.apply(x * self.levels / lam + 0.5), 0, self.levels)
        return self._mask(y)

    def extra_repr(self) -> str:
        return f"{self.name}, L={self.levels}, λ={float(self.threshold.detach()):.3f}, spiking={self.spiking}"
