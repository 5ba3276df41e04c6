"""What the live pipeline watches while the model runs: spike rates per module and block, energy per decision
and per second (against the same model as an ANN), and the latency of each stage.

    spikes = SpikeMonitor()
    rates = spikes.update(step.spikes, neurons)      # {module: spikes / neurons} of this step
    spikes.block_rates()                             # {block: mean rate over the recent steps}
    energy = EnergyMonitor(ann_uJ=45.2)
    energy.add(t_us, step.energy_uJ, step.total_spikes)
    energy.per_second()                              # SNN µJ in the last second of stream time
    lat = LatencyStats()
    lat.add("step", 0.007)
    lat.summary()                                    # {"step": {"p50_ms", "p99_ms", "mean_ms", "n"}}

Every monitor keeps a fixed number of recent values (ring buffers), so memory is bounded on endless
streams. Energy follows ``evstream.energy`` (0.9 pJ per SOP, 4.6 pJ per MAC; MST's power P = spikes per
1 ms timestep x α).
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np


def block_of(module: str) -> str:
    """The block a neuron module belongs to: ``stage0.block1.attn.q`` -> ``stage0.block1``; ``stage1.merge``
    -> ``stage1``; ``embed`` -> ``embed`` (the first two dotted parts, never the module's own last part)."""
    parts = module.split(".")
    if len(parts) > 2:
        return ".".join(parts[:2])
    return parts[0]


def neuron_counts(runner) -> dict:
    """{module: number of neurons} of a streaming runner's spiking model after at least one step (QCFS
    activations record ``last_numel``); empty when the runner does not expose them."""
    model = getattr(runner, "model", None)
    acts = getattr(model, "activations", None)
    if not callable(acts):
        return {}
    return {m.name: int(getattr(m, "last_numel", 0) or 0) for m in acts() if getattr(m, "name", "")}


class SpikeMonitor:
    """Spike rates (spikes per neuron per timestep) per module and per block, over the last ``history``
    steps. Without neuron counts the rate is the raw spike count."""

    def __init__(self, history: int = 200):
        self.history = history
        self.modules: list[str] = []
        self.blocks: list[str] = []
        self._rates: deque = deque(maxlen=history)  # arrays over self.modules
        self._neurons = np.zeros(0)

    def reset(self, modules: list[str] | None = None) -> None:
        if modules is not None:
            self.modules = list(modules)
            self.blocks = list(dict.fromkeys(block_of(m) for m in self.modules))
            self._block_idx = np.array([self.blocks.index(block_of(m)) for m in self.modules], dtype=np.int64)
            self._neurons = np.zeros(len(self.modules))
        self._rates.clear()

    def update(self, spikes: dict, neurons: dict | None = None) -> np.ndarray:
        """Record one step; returns its rate per module (in ``self.modules`` order)."""
        if list(spikes) != self.modules:
            self.reset(list(spikes))
        if neurons:
            self._neurons = np.array([max(1, neurons.get(m, 0)) for m in self.modules], dtype=np.float64)
        counts = np.fromiter(spikes.values(), dtype=np.float64, count=len(spikes))
        rates = counts / self._neurons if len(self._neurons) and self._neurons.all() else counts
        self._rates.append(rates)
        return rates

    def recent(self, n: int | None = None) -> np.ndarray:
        """``(steps, modules)`` rates of the last ``n`` steps (oldest first)."""
        rows = list(self._rates)[-(n or self.history):]
        return np.stack(rows) if rows else np.zeros((0, len(self.modules)))

    def module_rates(self) -> dict:
        r = self.recent()
        return dict(zip(self.modules, r.mean(0).tolist())) if len(r) else {}

    def block_rates(self) -> dict:
        """Mean rate per block over the recent steps, weighted by each module's neurons."""
        r = self.recent()
        if not len(r):
            return {}
        w = self._neurons if len(self._neurons) and self._neurons.all() else np.ones(len(self.modules))
        num = np.bincount(self._block_idx, weights=r.mean(0) * w, minlength=len(self.blocks))
        den = np.bincount(self._block_idx, weights=w, minlength=len(self.blocks))
        return dict(zip(self.blocks, (num / np.maximum(den, 1e-12)).tolist()))


class EnergyMonitor:
    """SNN energy per decision and per second of stream time, against the ANN energy of one forward pass
    of the same model (``ann_uJ``); MST's power figure (spikes per 1 ms timestep, in units of α)."""

    def __init__(self, ann_uJ: float = 0.0, window_us: int = 1_000_000):
        self.ann_uJ = float(ann_uJ)
        self.window_us = int(window_us)
        self.reset()

    def reset(self) -> None:
        self._steps: deque = deque()  # (t_us, energy_uJ, spikes) within the last window
        self.total_uJ = 0.0
        self.steps = 0

    def add(self, t_us: int, energy_uJ: float, spikes: float) -> None:
        self._steps.append((int(t_us), float(energy_uJ), float(spikes)))
        self.total_uJ += energy_uJ
        self.steps += 1
        while self._steps and self._steps[0][0] <= t_us - self.window_us:
            self._steps.popleft()
        if len(self._steps) > 100_000:  # a stream whose clock stalls: stay bounded
            self._steps.popleft()

    def per_second(self) -> dict:
        """SNN µJ per second of stream time, steps in that second, and the mean MST power (α W)."""
        if not self._steps:
            return {"snn_uJ_per_s": 0.0, "steps_per_s": 0.0, "power_alpha": 0.0}
        span = max(self.window_us, 1) * 1e-6
        e = sum(s[1] for s in self._steps)
        spikes = sum(s[2] for s in self._steps) / len(self._steps)
        return {"snn_uJ_per_s": e / span, "steps_per_s": len(self._steps) / span, "power_alpha": spikes / 1e-3}


class LatencyStats:
    """Per-stage durations over the last ``history`` samples: p50, p99 and mean in ms. Thread-safe."""

    def __init__(self, history: int = 2000):
        self.history = history
        self._d: dict[str, deque] = {}
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            q = self._d.get(stage)
            if q is None:
                q = self._d[stage] = deque(maxlen=self.history)
            q.append(seconds)

    def reset(self) -> None:
        with self._lock:
            self._d.clear()

    def summary(self) -> dict:
        with self._lock:
            data = {k: np.fromiter(v, dtype=np.float64) for k, v in self._d.items()}
        return {k: {"p50_ms": float(np.percentile(v, 50) * 1e3), "p99_ms": float(np.percentile(v, 99) * 1e3),
                    "mean_ms": float(v.mean() * 1e3), "n": int(len(v))} for k, v in data.items() if len(v)}
