"""QCFS activations (the ANN view) that become IF neurons with soft reset (the SNN view), and Random
Spike Masking.

QCFS (Bu et al., used by MST; supplement Eq. 1):
    y = λ/L · clip(floor(x·L/λ + 1/2), 0, L)
with L quantisation levels (16) and a learnable threshold λ (initialised to 3). Its SNN twin is an
integrate-and-fire neuron with threshold θ = λ, soft reset (subtract θ) and membrane starting at θ/2;
the neuron's spike (0/1) carries the value θ. Over T steps the mean output approaches the QCFS output.
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based import neuron
from torch import nn


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
        """Inference (no autograd): SpikingJelly's IF step (H = V + X; S = H >= θ; V = H - S·θ) in place,
        without its custom-op and surrogate dispatch, which cost more than the arithmetic on small layers.
        With gradients enabled it is SpikingJelly's own step (tests check both give the same spikes)."""
        if torch.is_grad_enabled():
            return super().single_step_forward(x)
        v = self.v
        if not isinstance(v, torch.Tensor) or v.shape != x.shape:
            v = torch.full_like(x, float(v)) if not isinstance(v, torch.Tensor) else v.expand_as(x).clone()
        h = v.add_(x)
        spike = (h >= self.v_threshold).to(x.dtype)
        self.v = h.sub_(spike * self.v_threshold)
        return spike


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

    def _mask(self, y: torch.Tensor) -> torch.Tensor:
        r = self.mask_ratio
        if r <= 0:  # a ratio set on the model applies in every view: ANN training, ANN eval, SNN
            return y
        keep = torch.rand(y.shape, generator=self.generator, device=y.device) >= r
        return y * keep / (1 - r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spiking:
            s = self._mask(self.node(x))
            self.last_spikes = int(s.count_nonzero())
            self.last_numel = s.numel()
            return s * self.node.v_threshold
        lam = self.threshold.abs() + 1e-6
        y = lam / self.levels * torch.clamp(_FloorSTE.apply(x * self.levels / lam + 0.5), 0, self.levels)
        return self._mask(y)

    def extra_repr(self) -> str:
        return f"{self.name}, L={self.levels}, λ={float(self.threshold.detach()):.3f}, spiking={self.spiking}"
