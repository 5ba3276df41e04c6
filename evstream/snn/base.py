"""What every spiking-transformer family shares: its neuron layers, Random Spike Masking by module kind,
and the streaming view (``spiking(mode)``), so MST and Spikformer expose one API.

A family sets ``arch``, ``modes`` (its streaming/conversion modes; the first is the default), ``NEURON``
(the class of its neuron layers, each with ``name``, ``mask_ratio``, ``generator``), ``MASKABLE`` (mask
kind -> a substring of the layer names it covers) and ``MASKED_BY_RATIO`` (the kinds a bare float masks).
"""

from __future__ import annotations

import torch
from torch import nn

from evstream.snn.registry import runner_class


class SpikingModel(nn.Module):
    arch = ""  # set by evstream.snn.registry.register_arch
    CONFIG: type = None  # the family's ModelConfig dataclass
    PRESETS: dict = {}
    modes: tuple = ()
    NEURON: type = nn.Module
    MASKABLE: dict = {}
    MASKED_BY_RATIO: tuple = ("q", "k")

    @classmethod
    def make_config(cls, config):
        """The family's validated config object from a dict (``{"preset": ..., ...overrides}``)."""
        return cls.CONFIG.make(config, cls.PRESETS)

    def activations(self) -> list:
        """Every neuron layer, in module order."""
        return [m for m in self.modules() if isinstance(m, self.NEURON)]

    def fuse(self) -> "SpikingModel":
        """Inference-only rewrites of the same function (folded BatchNorms, merged layers), in place; a family
        without any returns itself unchanged."""
        return self

    def set_mask_ratio(self, ratio: float | dict, generator: torch.Generator | None = None) -> None:
        """RSM: a float masks the ``MASKED_BY_RATIO`` kinds at that ratio; a dict gives a ratio per kind."""
        ratios = ratio if isinstance(ratio, dict) else {k: ratio for k in self.MASKED_BY_RATIO}
        unknown = set(ratios) - set(self.MASKABLE)
        if unknown:
            raise ValueError(f"unknown mask targets {sorted(unknown)}; known: {sorted(self.MASKABLE)}")
        for m in self.activations():
            m.mask_ratio = 0.0
            for key, r in ratios.items():
                if self.MASKABLE[key] in m.name:
                    m.mask_ratio = float(r)
            if generator is not None:
                m.generator = generator
        self.mask_ratios = dict(ratios)

    def spiking(self, mode: str | None = None, mask_ratio: float | dict = 0.0, seed: int = 0,
                decay: float | None = None):
        """The streaming view of these weights (``reset``, ``step``, ``run``): see :mod:`evstream.snn.streaming`."""
        mode = mode or self.modes[0]
        if mode not in self.modes:
            raise ValueError(f"unknown streaming mode {mode!r} for {self.arch} (known: {', '.join(self.modes)})")
        return runner_class(mode)(self, mask_ratio=mask_ratio, seed=seed, decay=decay)
