"""The SNN view of a model, one timestep at a time.

    snn = model.spiking(mode="mst", mask_ratio=0.5, seed=0)
    snn.reset()
    out = snn.step(x_t)        # out.logits (this step), out.mean (running mean), out.spikes per module,
                               # out.confidence, out.margin, out.sops / out.macs / out.energy_uJ this step
    means = snn.run(x, T)      # (T, B, K): running mean after each step, the same input every step

Every conversion mode is a recipe over this one runner (as SpikingJelly's ann2snn converter and its
``MemoryModule``): ``convert(ann)`` builds the spiking copy (copy, calibrate, replace modules, fuse), every
module of that copy with a ``reset()`` is state that :meth:`SpikingRunner.reset` clears, and the runner
itself only declares its running output. A mode registers its runner class by decorator
(``evstream.snn.registry``); modes ``mst`` (here), ``ecmt`` (``ecmt.py``) and ``spikformer`` are built so.

Conversion (mode "mst"): a copy of the ANN with every QCFS turned into an IF neuron with soft reset,
threshold λ and membrane starting at λ/2 (SpikingJelly ``IFNode``, single-step); the first layers take
the analog input. Masks (Random Spike Masking) are drawn anew at every step from a generator seeded by
``seed``, so ``reset()`` gives bit-identical reruns. On a live stream, ``decay`` (0..1) makes the running
mean an exponential average that follows the scene; ``reset_mean()`` forgets it on a scene change.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from evstream.energy import OpCounter, energy_uJ, mst_power_alpha
from evstream.snn.layers import fast_linears
from evstream.snn.registry import register_conversion


@dataclass
class StepResult:
    t: int
    logits: torch.Tensor
    mean: torch.Tensor
    confidence: torch.Tensor
    margin: torch.Tensor
    spikes: dict
    total_spikes: int
    sops: float
    macs: float
    energy_uJ: float
    power_alpha: float


@register_conversion("mst")
class SpikingRunner:
    """Streaming inference over the SNN view of ``model`` (a deep copy: the ANN stays untouched).

    A mode subclasses this and overrides :meth:`convert` (and, for another running output, :meth:`step`);
    ``analog`` names the layers whose input is analog (counted as MACs)."""

    analog = {"reduction", "patch_embed"}

    def __init__(self, model, mask_ratio=0.0, seed: int = 0, decay: float | None = None, count_ops: bool = True):
        self.ann = model
        self.seed = seed
        self.decay = decay
        self.burn_in = 0  # the first steps after a reset that the running output leaves out (set_burn_in)
        self.model = fast_linears(self.convert(model))  # inference: its weights are final once converted
        self.neurons = self.model.activations()  # listed once: a hot path
        neurons = {id(m) for m in self.neurons}  # any other module with state (a reset()) is reset with them
        self.memories = [m for m in self.model.modules() if m is not self.model and id(m) not in neurons
                         and callable(getattr(m, "reset", None))]
        self.generator = torch.Generator().manual_seed(seed)
        self.model.set_mask_ratio(mask_ratio, self.generator)
        self.counter = OpCounter(self.model, self.analog, spiking=True) if count_ops else None
        self.reset()

    def convert(self, model):
        """Mode "mst": a copy with folded BatchNorms etc. (fewer operations per step), every QCFS an IF neuron."""
        snn = copy.deepcopy(model).eval().fuse()
        for m in snn.activations():
            m.to_spiking()
        return snn

    @property
    def mask_ratios(self) -> dict:
        return self.model.mask_ratios

    def set_mask_ratio(self, ratio) -> None:
        """Change the masking ratio(s); applies from the next step, no rebuild."""
        self.model.set_mask_ratio(ratio, self.generator)

    def reset(self) -> None:
        """Every neuron and other stateful module reset (membranes back to their start), running output
        cleared, mask generator reseeded: a deterministic restart."""
        self.reset_modules()
        self.reset_run()

    def reset_modules(self) -> None:
        """Every neuron and other stateful module of the model back to its start."""
        for m in self.neurons:
            m.reset()
        for m in self.memories:
            m.reset()

    def reset_run(self) -> None:
        """The run's own state: step count, running output, totals, mask generator, operation counter."""
        self.generator.manual_seed(self.seed)
        self.t = 0
        self._sum = None
        self._mean = None
        self._k = 0
        self._w = 0.0
        self.total_spikes = 0
        self.total_energy_uJ = 0.0
        if self.counter:
            self.counter.take()

    def reset_mean(self) -> None:
        """Forget the running output (a scene change) but keep the membranes."""
        self.reset_output()

    def reset_output(self) -> None:
        """Only the running output's sums cleared (nothing else: membranes and a mode's own state stay; a
        mode's ``reset_mean`` may clear more)."""
        self._sum = None
        self._mean = None
        self._k = 0
        self._w = 0.0

    @torch.inference_mode()
    def step(self, x_t: torch.Tensor) -> StepResult:
        """Exactly one timestep for a batch ``x_t (B, C, H, W)``."""
        logits = self.model(x_t)
        return self._result(logits, self.accumulate(logits))

    def set_burn_in(self, steps: int) -> None:
        """Leave the first ``steps`` steps after each reset out of the running output (DECOLLE's burn-in):
        an IF network's first steps on a new input are its membranes settling, not its answer."""
        self.burn_in = max(0, int(steps))

    def accumulate(self, logits: torch.Tensor) -> torch.Tensor:
        """One more step's output into the running output; returns the running mean (this mode's rule).
        During the burn-in the mean covers the steps so far, then restarts after its last step."""
        self.t += 1
        if self.decay:
            self._mean = logits.clone() if self._mean is None else self.decay * self._mean + (1 - self.decay) * logits
            return self._mean
        self._sum = logits.clone() if self._sum is None else self._sum + logits
        self._k += 1
        mean = self._sum / self._k
        if self.t == self.burn_in:  # the burn-in's last step: the answer counts from the next one
            self.reset_output()
        return mean

    def _result(self, logits, mean, result=StepResult, **extra) -> StepResult:
        """This step's spikes, operations, energy and confidence, added to the run's totals."""
        spikes = {m.name: m.last_spikes for m in self.neurons}
        ops = self.counter.take() if self.counter else None
        return self.result(logits, mean, spikes, ops.sops if ops else 0.0, ops.macs if ops else 0.0, result, **extra)

    def result(self, logits, mean, spikes: dict, sops: float, macs: float, result=StepResult, **extra) -> StepResult:
        """A step's record from its output, running mean, spikes per neuron layer and operations (added to
        the run's totals); shared with the compiled step (``evstream.snn.compiled``)."""
        total = sum(spikes.values())
        self.total_spikes += total
        e = energy_uJ(sops, macs) if self.counter else 0.0
        self.total_energy_uJ += e
        p = torch.softmax(mean, dim=-1)
        top2 = p.topk(min(2, p.shape[-1]), dim=-1).values
        margin = top2[:, 0] - (top2[:, 1] if top2.shape[-1] > 1 else 0)
        return result(self.t, logits, mean, top2[:, 0], margin, spikes, total, sops, macs, e, mst_power_alpha(total),
                      **extra)

    @torch.no_grad()
    def run(self, x: torch.Tensor, T: int) -> torch.Tensor:
        """Reset, then present the same analog input for ``T`` steps; (T, B, K) running means."""
        self.reset()
        return torch.stack([self.step(x).mean for _ in range(T)])
