"""What the live pipeline posts: one typed record per event, read by the GUI (``Pipeline.drain()``) and by
``evstream run`` (the step / decision callbacks, ``--json-lines``).

    step       one SNN timestep: prediction, class probabilities, spikes, rates, energy
    decision   a committed answer: class, confidence, top 3, timesteps and energy it took, why
    model      a checkpoint was attached (what the GUI shows about it)
    status     news for the status bar;  error  a one-line problem (the GUI shows a dialog)
    reset      the SNN restarted (seek, loop, new slicing);  end  the stream is over

Every record has ``kind`` (a class constant) and ``to_dict()`` (the plain dict, ``kind`` included);
:func:`decision_json` is the line ``evstream run --json-lines`` prints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import ClassVar

import numpy as np


class Record:
    kind: ClassVar[str] = ""

    def to_dict(self) -> dict:
        """``{"kind": ..., field: value, ...}`` in field order (optional fields left out while None)."""
        d = {"kind": self.kind}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None and f.metadata.get("optional"):
                continue
            d[f.metadata.get("key", f.name)] = v
        return d


def _optional():
    return field(default=None, metadata={"optional": True})


@dataclass
class StepRecord(Record):
    """One SNN timestep of the live model (batch 1). ``probs``: softmax of the running output; ``spikes``
    {neuron layer: spikes}; ``rates`` spikes per neuron of each layer, in ``spikes``' order."""

    kind: ClassVar[str] = "step"
    wall_time: float
    t_us: int
    step: int
    decision: int
    decision_step: int
    pred: int
    confidence: float
    margin: float
    probs: np.ndarray
    spikes: dict
    rates: list
    total_spikes: int
    sops: float
    macs: float
    energy_uJ: float
    power_alpha: float
    mask_ratio: float
    mode: str


@dataclass
class DecisionRecord(Record):
    """A decision at ``t_us`` (stream time from its first event) on the events of ``[t_us - window_us, t_us]``:
    ``class_name`` (``"class"`` in the dict and JSON; None: undecided), its ``index`` and ``confidence``, the
    ``top`` 3 as [name, probability], the ``timesteps``, ``energy_uJ`` and ``spikes`` it took (the ANN's
    ``ann_energy_uJ`` for one inference beside it), ``reason`` (the policy's, or ``"end"``), and
    ``latency_ms`` from its last slice being complete to the decision (absent at the end of a stream), ``degraded``
(absent unless the machine was too slow: ``{"level", "every", "steps", "reason"}``, ``live/degrade.py``)."""

    kind: ClassVar[str] = "decision"
    decision: int
    t_us: int
    window_us: int
    class_name: str | None = field(metadata={"key": "class"})
    index: int | None
    confidence: float
    margin: float
    timesteps: int
    reason: str
    energy_uJ: float
    ann_energy_uJ: float
    spikes: int
    top: list
    mask_ratio: float
    mode: str
    dropped_slices: int
    latency_ms: float | None = _optional()
    degraded: dict | None = _optional()  # the load governor's level when degraded (evstream/live/degrade.py)


@dataclass
class ModelRecord(Record):
    """A checkpoint was attached: ``LoadedModel.info()``."""

    kind: ClassVar[str] = "model"
    path: str
    arch: str
    mode: str | None
    modes: list
    classes: list
    representation: dict
    window_slices: int
    window_us: int
    ann_energy_uJ: float


@dataclass
class StatusRecord(Record):
    kind: ClassVar[str] = "status"
    text: str


@dataclass
class ErrorRecord(Record):
    kind: ClassVar[str] = "error"
    text: str


@dataclass
class ResetRecord(Record):
    kind: ClassVar[str] = "reset"
    why: str


@dataclass
class EndRecord(Record):
    kind: ClassVar[str] = "end"


def json_line(d: dict) -> str:
    """One JSON line, floats rounded to 6 digits."""
    return json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items() if k != "kind"})


def decision_json(rec: DecisionRecord, **extra) -> str:
    """One JSON line for a decision (what ``evstream run --json-lines`` prints); ``extra`` keys (a label) last."""
    return json_line(rec.to_dict() | extra)
