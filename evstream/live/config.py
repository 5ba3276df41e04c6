"""The live pipeline's settings: one frozen object, built once (by ``evstream run`` / ``gui`` from their flags,
or in code), changed at run time with ``dataclasses.replace`` (``Pipeline.set(...)`` does that).

    cfg = LiveConfig(speed=None, max_steps=8)
    pipe = Pipeline("recordings/demo_digits.aedat4", "models/mst-nmnist.pt", cfg)
    pipe.set(mask_ratio=0.5)                  # pipe.config is now replace(cfg, mask_ratio=0.5)
"""

from __future__ import annotations

from dataclasses import dataclass

from evstream.errors import EvstreamError
from evstream.live.policy import DecisionPolicy

VIEWS = ("frames", "sae", "time_surface")
LIVE_SETTINGS = ("steps_per_slice", "max_steps", "min_steps", "early_exit", "mask_ratio", "window_slices")


@dataclass(frozen=True)
class LiveConfig:
    """``mode``: conversion mode (None: ``ecmt`` where the model has it, else its first). Slicing: time
    slices of ``slice_ms`` or, with ``slice_events > 0``, of that many events; ``window_slices`` slices
    form the model input (None: as many as span one training sample). ``steps_per_slice`` SNN steps per
    slice; ``policy`` decides when (:mod:`evstream.live.policy`: ``early_exit``, ``min_steps``,
    ``max_steps``). ``mask_ratio`` (RSM), ``seed``, ``decay`` (running output = exponential mean; None:
    plain mean). ``speed`` x real time for recordings (None: as fast as possible, never drops), ``loop``,
    ``view`` (the event view kind). ``max_queue`` slices between the threads, ``outbox`` records kept for
    :meth:`Pipeline.drain`, ``threads`` torch threads of the model thread."""

    mode: str | None = None
    slice_ms: float = 10.0
    slice_events: int = 0
    window_slices: int | None = None
    steps_per_slice: int = 1
    max_steps: int = 32
    min_steps: int = 1
    early_exit: float | None = None
    mask_ratio: float = 0.0
    speed: float | None = 1.0
    loop: bool = False
    view: str = "frames"
    seed: int = 0
    decay: float | None = 0.5
    max_queue: int = 16
    outbox: int = 4096
    threads: int | None = 1
    policy: type = DecisionPolicy

    def __post_init__(self):
        if self.view not in VIEWS:
            raise EvstreamError(f"unknown view {self.view!r} (known: {', '.join(VIEWS)})")
        object.__setattr__(self, "speed", self.speed if self.speed else None)  # 0: unpaced
        object.__setattr__(self, "slice_ms", float(self.slice_ms))
        object.__setattr__(self, "slice_events", int(self.slice_events))

    def make_policy(self):
        return self.policy.from_config(self)
