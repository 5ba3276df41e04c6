"""The live pipeline's settings: one frozen object, built once (by ``evstream run`` / ``gui`` from their flags,
or in code), changed at run time with ``dataclasses.replace`` (``Pipeline.set(...)`` does that).

    cfg = LiveConfig(speed=None, max_steps=8)
    pipe = Pipeline("recordings/demo_digits.aedat4", "models/mst-nmnist.pt", cfg)
    pipe.set(mask_ratio=0.5)                  # pipe.config is now replace(cfg, mask_ratio=0.5)
"""

from __future__ import annotations

from dataclasses import dataclass

from evstream.errors import EvstreamError
from evstream.filters import parse_filters
from evstream.live.policy import DecisionPolicy

VIEWS = ("frames", "sae", "time_surface")
LIVE_SETTINGS = ("steps_per_slice", "max_steps", "min_steps", "early_exit", "mask_ratio", "window_slices",
                 "state", "decide_every_ms", "window_ms", "smooth", "switch_margin", "min_confidence")
STATES = ("reset", "carry")
POOLS = ("sum", "mean")


def parse_roi(value) -> tuple[int, int, int, int] | None:
    """A region of interest from ``"x,y,w,h"`` (or a 4-sequence; None or "" for none); one-line error."""
    if value is None or value == "" or value == "none":
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        x, y, w, h = (int(str(v).strip()) for v in parts)
    except ValueError:
        raise EvstreamError(f"region of interest {value!r} is not x,y,w,h (four whole numbers)") from None
    if x < 0 or y < 0 or w < 1 or h < 1:
        raise EvstreamError(f"region of interest {value!r}: x, y must be >= 0 and w, h >= 1")
    return x, y, w, h


def parse_downscale(value) -> int | str | None:
    """``"auto"``, a factor >= 1 (``"2"`` or 2) or None; one-line error."""
    if value is None or value == "auto":
        return value
    try:
        factor = int(value)
    except (TypeError, ValueError):
        factor = 0
    if factor < 1 or str(value).strip() not in (str(factor), f"{factor}.0"):
        raise EvstreamError(f"downscale {value!r} is not 'auto' or a whole factor >= 1")
    return factor
# SNN timesteps per decision where neither the flag nor the checkpoint (meta["live"]["steps"]) says:
# rate-coded IF neurons (mst) need tens of steps on one input, ECMT and the directly trained Spikformer a few.
DEFAULT_STEPS = {"mst": 32, "ecmt": 4, "spikformer": 4}
# the fraction of a decision's steps left out of its answer where neither the flag nor the checkpoint
# (meta["live"]["burn_in"]) says: IF neurons (mst) settle over the first steps of a new input
DEFAULT_BURN_IN = {"mst": 0.5}
MIN_QUEUE = 16  # slices between the threads at least (LiveConfig.queue_slices)
# decision period (ms of stream time) where the flag does not say: mst needs 64 steps per decision, 16x ecmt's 4
DEFAULT_DECIDE_EVERY_MS = {"mst": 200.0, "ecmt": 50.0, "spikformer": 50.0}


def _checkpoint_live(lm, key: str):
    """The checkpoint's live setting ``key`` for the loaded model's mode (``meta["live"][key][mode]``; None
    where the checkpoint does not say or says it in another shape)."""
    meta = getattr(lm, "meta", None)
    live = meta.get("live") if isinstance(meta, dict) else None
    per_mode = live.get(key) if isinstance(live, dict) else None
    return per_mode.get(getattr(lm, "mode", None)) if isinstance(per_mode, dict) else None


@dataclass(frozen=True)
class LiveConfig:
    """``mode``: conversion mode (None: ``ecmt`` where the model has it, else its first). Slicing: time
    slices of ``slice_ms`` or, with ``slice_events > 0``, of that many events.

    ``state="reset"`` (the default, docs/model.md "Live streams"): every ``decide_every_ms`` of stream time
    (None: ``DEFAULT_DECIDE_EVERY_MS`` for the mode)
    the model answers on the events of the last ``window_ms`` (None: the checkpoint's ``window_us``),
    starting from a reset SNN and running ``max_steps`` timesteps on that window (None: the checkpoint's
    ``meta["live"]["steps"]`` for the mode, else ``DEFAULT_STEPS``), fewer when ``early_exit`` is reached
    after ``min_steps``; the first ``burn_in`` of those steps (a fraction; None: the checkpoint's
    ``meta["live"]["burn_in"]`` for the mode, else ``DEFAULT_BURN_IN``) are left out of the answer, the
    membranes' settling on the new input; the announced class is smoothed over decisions (``smooth``, ``switch_margin``,
    ``min_confidence``: :class:`~evstream.live.policy.DecisionSmoother`).
    ``state="carry"`` (the former behaviour): membranes carry over from slice to slice,
    ``steps_per_slice`` steps per slice on the last ``window_slices`` slices, a decision every
    ``max_steps`` steps (or at ``early_exit``), the running output an exponential mean (``decay``).

    ``roi`` (x, y, w, h) and ``downscale`` (an int factor, ``"auto"`` or None) map a camera onto the sensor
    the model was trained on (:meth:`~evstream.representations.SpatialPool.fit`: the region, pooled, centred
    in the model's input); None and None: the camera must be the model's size. ``pool``: "sum" (every event
    kept, as tonic's Downsample) or "mean" (1 of factor² events per pooled pixel, tonic's Decimation after it).

    ``filters``: the noise filters every event passes before the event view, the recording's slices and the
    model (:func:`evstream.filters.parse_filters`: ``"ba=10000,refractory=1000"`` or (name, µs) pairs; () none).

    ``give_up_s``: a DV network stream that drops is reconnected with back-off for that long (None: until
    the pipeline is stopped).

    ``mask_ratio`` (RSM), ``seed``. ``speed`` x real time for recordings (None: as fast as possible, never
    drops), ``loop``, ``view`` (the event view kind). ``max_queue`` slices between the threads (None:
    :meth:`queue_slices` chooses), ``outbox`` records kept for :meth:`Pipeline.drain`, ``threads`` torch threads
    of the model thread. ``step``: how the SNN step runs (``evstream.live.model.STEPS``; "eager" forces the
    reference runner); ``degrade``: on a paced stream the model thread decides less often or with fewer steps
    when it cannot keep up (shown in the decision records and the summary) instead of dropping slices;
    ``unpaced_batch``: unpaced, up to this many decisions are computed in one call, ``unpaced_threads`` such
    calls side by side (the same answers, ``evstream.live.batch``)."""

    mode: str | None = None
    slice_ms: float = 10.0
    slice_events: int = 0
    window_slices: int | None = None
    steps_per_slice: int = 1
    max_steps: int | None = None
    min_steps: int = 1
    burn_in: float | None = None
    early_exit: float | None = None
    mask_ratio: float = 0.0
    speed: float | None = 1.0
    loop: bool = False
    view: str = "frames"
    seed: int = 0
    decay: float | None = None
    state: str = "reset"
    decide_every_ms: float | None = None
    window_ms: float | None = None
    smooth: float = 0.4
    switch_margin: float = 0.05
    min_confidence: float = 0.0
    roi: tuple[int, int, int, int] | None = None
    downscale: int | str | None = None
    pool: str = "sum"
    give_up_s: float | None = None
    filters: tuple = ()
    max_queue: int | None = None
    outbox: int = 4096
    threads: int | None = 1
    policy: type = DecisionPolicy
    step: str = "auto"  # the SNN step: "auto", "eager", "inductor", "ort" (evstream/live/model.py STEPS)
    degrade: bool = True  # paced streams: fewer decisions / steps when too slow (evstream/live/degrade.py)
    unpaced_batch: int = 8  # unpaced replay: decisions computed in one call at most (evstream/live/batch.py; 1: alone)
    unpaced_threads: int = 2  # unpaced replay: threads computing those calls side by side

    def __post_init__(self):
        if self.view not in VIEWS:
            raise EvstreamError(f"unknown view {self.view!r} (known: {', '.join(VIEWS)})")
        object.__setattr__(self, "speed", self.speed if self.speed else None)  # 0: unpaced
        object.__setattr__(self, "slice_ms", float(self.slice_ms))
        object.__setattr__(self, "slice_events", int(self.slice_events))
        if self.state not in STATES:
            raise EvstreamError(f"unknown state {self.state!r} (known: {', '.join(STATES)})")
        if (self.decide_every_ms is not None and self.decide_every_ms <= 0) or \
                (self.window_ms is not None and self.window_ms <= 0):
            raise EvstreamError("decide_every_ms and window_ms must be positive")
        object.__setattr__(self, "roi", parse_roi(self.roi))
        object.__setattr__(self, "downscale", parse_downscale(self.downscale))
        object.__setattr__(self, "filters", parse_filters(self.filters))
        if self.pool not in POOLS:
            raise EvstreamError(f"unknown pooling {self.pool!r} (known: {', '.join(POOLS)})")
        if not 0 <= self.smooth < 1:
            raise EvstreamError(f"smooth must be in [0, 1), not {self.smooth}")
        if self.burn_in is not None and not 0 <= self.burn_in < 1:
            raise EvstreamError(f"burn_in is a fraction of a decision's steps in [0, 1), not {self.burn_in}")
        if int(self.unpaced_batch) < 1 or int(self.unpaced_threads) < 1:
            raise EvstreamError(f"unpaced_batch and unpaced_threads are counts (1 or more), not "
                                f"{self.unpaced_batch} and {self.unpaced_threads}")

    def steps_for(self, lm) -> int:
        """Timesteps per decision: ``max_steps``, else the checkpoint's for its mode, else the default."""
        if self.max_steps:
            return int(self.max_steps)
        steps = _checkpoint_live(lm, "steps")
        if isinstance(steps, int) and steps > 0:
            return int(steps)
        return DEFAULT_STEPS.get(lm.mode, 32)

    def burn_in_for(self, lm) -> float:
        """The fraction of a decision's steps left out of its answer: ``burn_in``, else the checkpoint's for
        its mode, else the mode's default (mst 0.5, others 0)."""
        if self.burn_in is not None:
            return float(self.burn_in)
        burn = _checkpoint_live(lm, "burn_in")
        if isinstance(burn, (int, float)) and 0 <= burn < 1:
            return float(burn)
        return DEFAULT_BURN_IN.get(getattr(lm, "mode", None), 0.0)

    def every_us_for(self, lm) -> int:
        """Stream time between decisions (µs): ``decide_every_ms``, else the mode's default."""
        ms = self.decide_every_ms or DEFAULT_DECIDE_EVERY_MS.get(getattr(lm, "mode", None), 100.0)
        return max(1, int(round(ms * 1000)))

    def window_us_for(self, lm) -> int:
        """The span of events one decision summarises (µs)."""
        if self.window_ms:
            return int(round(self.window_ms * 1000))
        return int(lm.window_us or 0) or 100_000

    def queue_slices(self, lm=None) -> int:
        """Slices the queue between the reader and the model thread holds: ``max_queue`` when set; else at
        least ``MIN_QUEUE`` and, for decisions from a reset SNN on time slices, two decision periods, so that
        one decision's compute (mode mst: 64 steps every 200 ms) cannot overflow it and drop slices while the
        model keeps up on average (a lasting backlog is the governor's: ``evstream.live.degrade``)."""
        if self.max_queue:
            return int(self.max_queue)
        if lm is None or self.state != "reset" or self.slice_events or self.slice_ms <= 0:
            return MIN_QUEUE
        return max(MIN_QUEUE, -(-2 * self.every_us_for(lm) // int(self.slice_ms * 1000)))

    def make_policy(self):
        return self.policy.from_config(self)
