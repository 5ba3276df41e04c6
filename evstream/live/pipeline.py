"""The live pipeline: source -> slicer -> representation -> model step -> monitors -> sinks, shared by the GUI
(``app/``) and the headless ``evstream run``. This class only wires the rooms of :mod:`evstream.live` and
exposes the control API:

    pipe = Pipeline("recordings/demo_digits.aedat4", "models/mst-nmnist.pt", LiveConfig(speed=1.0))
    pipe.run(on_decision=print)          # headless: until the stream ends (or max_decisions / duration_s)

    pipe.start()                         # or in two worker threads (the GUI): a reader and a model thread
    for rec in pipe.drain(): ...         # step / decision / status / error / reset records since the last call
    pipe.pause(); pipe.step(); pipe.seek(2_000_000); pipe.set(mask_ratio=0.5); pipe.load_model(path)
    pipe.stop()                          # joins both threads, closes the source and any recording

Threads: the reader (:mod:`evstream.live.reader`: pacing, slicing, the event view, recording) and the model
thread (:mod:`evstream.live.stepper`: windows, steps, monitors, the decision policy), joined by a bounded
:class:`~evstream.live.queue.SliceQueue` (``LiveConfig.queue_slices``: two decision periods, at least 16 slices):
on a paced or live stream a full queue drops the oldest whole slice (``dropped_slices``); unpaced replay
(``speed=None``) waits and never drops.

Stage latencies (``stats()["latency"]``): ``read`` (slicing, view, recording and queueing of one chunk,
not the wait for the stream), ``queue`` (a slice's wait before the model thread takes it), ``represent``,
``step`` (one timestep), ``slice`` (all of a slice's work in the model thread), ``total`` (slice complete ->
its last step done); the GUI adds ``draw``. Memory is bounded: the queue, the window, the record outbox
and every monitor are fixed-size.
"""

from __future__ import annotations

import dataclasses
import datetime
import threading
import time
from collections import deque
from pathlib import Path

from evstream.errors import EvstreamError, FormatError
from evstream.live.config import LIVE_SETTINGS, LiveConfig
from evstream.live.model import LoadedModel, load_model, use_compiled_step
from evstream.live.queue import END, SliceQueue
from evstream.live.reader import Pause, Play, Reader, Seek, SetSlicing, SetSpeed, Step
from evstream.live.recorder import Recorder
from evstream.live.region import fit as fit_region
from evstream.live.region import region_of, set_region
from evstream.live.records import ErrorRecord, StatusRecord
from evstream.live.stepper import ModelStepper
from evstream.live.view import EventView
from evstream.monitors import LatencyStats


class Pipeline:
    """See the module docstring. Opening the source and the model happens here, so bad input raises one
    :class:`~evstream.errors.EvstreamError` line at construction. ``model=None`` streams events only.
    Settings: ``config`` (a :class:`LiveConfig`), with keyword ``overrides`` of its fields."""

    def __init__(self, source, model=None, config: LiveConfig | None = None, *, on_status=None, **overrides):
        from evstream.sources import open_source

        self.config = dataclasses.replace(config or LiveConfig(), **overrides)
        cfg = self.config
        self.spec = str(source)
        self._out: deque | None = deque(maxlen=cfg.outbox)
        self.outbox_overflow = 0
        # a recording that is not there says so at once, before the model loads (seconds)
        if not self.spec.startswith(("tcp://", "camera", "webcam")) and not Path(self.spec).exists():
            raise FormatError("no such file", where=self.spec)
        # the checkpoint first: a live stream starts flowing as soon as it is opened
        lm = load_model(model, None, mode=cfg.mode, mask_ratio=cfg.mask_ratio, seed=cfg.seed, decay=cfg.decay) \
            if model is not None else None
        self.source = open_source(self.spec, **self._source_options())
        self.sensor_size = tuple(self.source.sensor_size)
        if lm is not None:
            try:
                lm = self._fit(lm)
            except EvstreamError:
                self.source.close()
                raise
        self.is_live = bool(self.source.is_live)
        self.on_status = on_status
        self.view = EventView(self.sensor_size if self.sensor_size != (0, 0) else (1, 1), cfg.view)
        self._lock = threading.RLock()
        self._stop, wake = threading.Event(), threading.Event()
        self.slices = SliceQueue(cfg.queue_slices(lm), self._stop)
        self.latency = LatencyStats()
        self.recorder: Recorder | None = None
        self.error: str | None = None
        self._threads: list[threading.Thread] = []
        common = dict(config=lambda: self.config, recorder=lambda: self.recorder, emit=self._emit,
                      latency=self.latency, stop=self._stop)
        self.reader = Reader(self.source, self.slices, self.view, update=self._update, wake=wake, spec=self.spec,
                             **common)
        self.stepper = ModelStepper(self.slices, load=self._load, t_first=lambda: self.reader.t_first,
                                    dropped=lambda: self.slices.dropped, lock=self._lock, **common)
        if lm is not None:
            use_compiled_step(lm, cfg, notice=self._notice)
            self.stepper.attach(lm)

    def _source_options(self) -> dict:
        if self.spec.startswith("tcp://"):
            # retry at least every second so closing never waits long for a reconnect attempt
            return {"on_status": self._source_status, "max_retry_s": 1.0, "give_up_s": self.config.give_up_s}
        if self.spec == "camera" or self.spec.startswith("camera:"):
            return {}
        return {"speed": None, "loop": self.config.loop}  # recordings are paced here (pause, speed at run time)

    def _load(self, path, mode=None) -> LoadedModel:
        cfg = self.config
        lm = self._fit(load_model(path, None, mode=mode, mask_ratio=cfg.mask_ratio, seed=cfg.seed, decay=cfg.decay))
        use_compiled_step(lm, cfg, notice=self._notice)
        return lm

    def _fit(self, lm: LoadedModel) -> LoadedModel:
        """The camera mapped onto the model's sensor (:mod:`evstream.live.region`); CheckpointError otherwise."""
        return fit_region(lm, self.sensor_size, self.config.roi, self.config.downscale, self.config.pool == "mean")

    region = property(lambda self: region_of(self.lm))  # the SpatialPool the model sees through (None: as is)

    def set_region(self, roi=None, downscale=None) -> None:
        """A region of interest (x, y, w, h; None: the whole sensor) and downscale factor for the running model
        from its next input (:func:`evstream.live.region.set_region`)."""
        set_region(self, roi, downscale)

    def _notice(self, text: str) -> None:
        """A one-line notice (the compiled step fell back to eager): stderr and a status record."""
        import sys

        print(f"evstream: {text}", file=sys.stderr)
        self._emit(StatusRecord(text))

    def _update(self, **changes) -> None:
        with self._lock:
            self.config = dataclasses.replace(self.config, **changes)

    # ---------------------------------------------------------------- state (read by the GUI and the CLI)
    lm = property(lambda self: self.stepper.lm)
    energy = property(lambda self: self.stepper.energy)
    spikes = property(lambda self: self.stepper.spikes)
    steps = property(lambda self: self.stepper.steps)
    decisions = property(lambda self: self.stepper.decisions)
    slices_in = property(lambda self: self.reader.slices_in)
    slices_done = property(lambda self: self.stepper.slices_done)
    dropped_slices = property(lambda self: self.slices.dropped)
    paused = property(lambda self: self.reader.paused)
    position_us = property(lambda self: self.reader.position_us)
    duration_us = property(lambda self: self.reader.duration_us)
    link = "connected"  # a network stream: "connected", "reconnecting" or "lost" (told by the source)

    @property
    def state(self) -> str:
        """ready, playing, paused, ended, error, stopped; "reconnecting" while a dropped stream is retried."""
        st = self.reader.state
        return "reconnecting" if self.link == "reconnecting" and st in ("playing", "paused") else st
    modes = property(lambda self: self.lm.modes if self.lm else ())
    classes = property(lambda self: self.lm.classes if self.lm else [])

    # ---------------------------------------------------------------- controls (any thread)
    def pause(self) -> None:
        self.reader.send(Pause())

    def play(self) -> None:
        self.reader.send(Play())

    def step(self, n: int = 1) -> None:
        """While paused: process ``n`` more slices (recordings)."""
        self.reader.send(Step(int(n)))

    def seek(self, t_us: int) -> None:
        """Continue a recording from ``t_us`` after its first event (the SNN restarts)."""
        self.reader.send(Seek(int(t_us)))

    def set_speed(self, speed: float | None) -> None:
        self.reader.send(SetSpeed(speed if speed else None))

    def set_loop(self, loop: bool) -> None:
        self._update(loop=bool(loop))
        self.source.loop = bool(loop)

    def set_slicing(self, slice_ms: float | None = None, slice_events: int | None = None) -> None:
        """Time slices of ``slice_ms`` or, with ``slice_events > 0``, slices of that many events."""
        self.reader.send(SetSlicing(slice_ms, slice_events))

    def set_view(self, kind: str) -> None:
        self.view.set_kind(kind)
        self._update(view=kind)

    def set(self, **settings) -> None:
        """Change ``steps_per_slice``, ``max_steps``, ``min_steps``, ``early_exit`` (None: off), ``mask_ratio``,
        ``window_slices``: applied at the next step."""
        bad = set(settings) - set(LIVE_SETTINGS)
        if bad:
            raise ValueError(f"unknown settings {sorted(bad)}")
        self._update(**settings)

    def set_mode(self, mode: str) -> None:
        """Switch the conversion mode (one of ``self.modes``); the SNN restarts."""
        self.load_model(self.lm.path if self.lm else None, mode)

    def load_model(self, path, mode: str | None = None) -> None:
        """Swap the checkpoint without stopping the stream (loaded by the model thread; a checkpoint that
        does not fit leaves the current model running and posts an ``error`` record)."""
        if path is None:
            return
        self.stepper.request(path, mode)
        if not self._threads:  # not running: load now, errors raise
            self.stepper.apply_request(raise_errors=True)

    def start_recording(self, base=None) -> Recorder:
        """Record from now on to ``<base>.aedat4`` and ``<base>.csv`` (default ``recordings/session-<time>``)."""
        if base is None:
            base = Path("recordings") / f"session-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}"
        rec = Recorder(base, self.sensor_size if self.sensor_size != (0, 0) else self.view.sensor_size)
        with self._lock:
            old, self.recorder = self.recorder, rec
        if old is not None:
            old.close()
        self._emit(StatusRecord(f"recording to {rec.events_path} and {rec.csv_path}"))
        return rec

    def stop_recording(self) -> Recorder | None:
        with self._lock:
            rec, self.recorder = self.recorder, None
        if rec is not None:
            rec.close()
            self._emit(StatusRecord(f"recorded {rec.events} events to {rec.events_path}, "
                                    f"{rec.rows} steps to {rec.csv_path}"))
        return rec

    # ---------------------------------------------------------------- outputs
    def _emit(self, rec) -> None:
        out = self._out
        if out is None:
            return
        if len(out) == out.maxlen:
            self.outbox_overflow += 1
        out.append(rec)

    def _source_status(self, text: str) -> None:
        """A live source's news: a drop is a ``status`` (it is being reconnected: ``state`` says
        "reconnecting"), giving up an ``error``."""
        if "gave up" in text:
            self.link = "lost"
        elif "dropped" in text:
            self.link = "reconnecting"
        elif "connected" in text:
            self.link = "connected"
        self._emit((ErrorRecord if self.link == "lost" else StatusRecord)(text))

    def drain(self, limit: int | None = None) -> list:
        """Records posted since the last call (oldest first): ``step``, ``decision``, ``status``, ``error``,
        ``model``, ``reset``, ``end`` (:mod:`evstream.live.records`)."""
        out = []
        while self._out and (limit is None or len(out) < limit):
            try:
                out.append(self._out.popleft())
            except IndexError:
                break
        return out

    def stats(self) -> dict:
        return {"state": self.state, "paused": self.paused, "position_us": self.position_us,
                "duration_us": self.duration_us, "slices_in": self.slices_in, "slices_done": self.slices_done,
                "dropped_slices": self.dropped_slices, "queued": self.slices.qsize(),
                "queue_slices": self.slices.maxsize, "steps": self.steps, "decisions": self.decisions,
                "latency": self.latency.summary(), "energy": self.energy.per_second(),
                "ann_uJ": self.energy.ann_uJ, "recording": str(self.recorder.base) if self.recorder else None,
                "error": self.error, "step": type(self.lm.runner).__name__ if self.lm else None,
                "degrade": self._degrade(), "first_decision_s": self.stepper.first_decision_s}

    def _degrade(self) -> dict:
        """What the load governor did (evstream/live/degrade.py): its level now, the deepest, how often it
        moved, and the decision times passed over because a later one was already queued."""
        gov = self.stepper.governor
        return {"level": gov.level.to_dict() if gov else None, "deepest_level": gov.deepest if gov else 0,
                "changes": gov.changes if gov else 0, "skipped_decisions": self.stepper.skipped}

    # ---------------------------------------------------------------- running
    def _thread(self, fn, name) -> threading.Thread:
        def run():
            try:
                fn()
            except EvstreamError as exc:
                self._fail(str(exc))
            except Exception as exc:  # a bug must not kill the app silently: report it in one line
                self._fail(f"{type(exc).__name__}: {exc}")
        return threading.Thread(target=run, name=name, daemon=True)

    def _fail(self, text: str) -> None:
        self.error = text
        self.reader.state = "error"
        self._emit(ErrorRecord(text))
        self.slices.put(END, block=False)

    def start(self) -> None:
        """Run in two daemon threads (reader, model) until the stream ends or :meth:`stop`."""
        if self._threads:
            return
        self._stop.clear()
        self.reader.state = "playing" if not self.paused else "paused"
        self._threads = [self._thread(self.reader.run, "evstream-reader"),
                         self._thread(self.stepper.run, "evstream-model")]
        for t in self._threads:
            t.start()

    def run(self, on_step=None, on_decision=None, max_decisions: int | None = None,
            duration_s: float | None = None) -> dict:
        """Headless: the reader in a thread, the model loop here, until the stream ends, ``max_decisions``
        decisions or ``duration_s`` seconds; callbacks get each step / decision record. Returns ``stats()``."""
        self._out = None  # nobody drains in headless mode
        self.stepper.headless = True
        self._stop.clear()
        self.reader.state = "playing"
        t_end = None if duration_s is None else time.monotonic() + duration_s
        self._threads = [self._thread(self.reader.run, "evstream-reader")]
        self._threads[0].start()
        try:
            self.stepper.run(on_step=on_step, on_decision=on_decision, max_decisions=max_decisions, t_end=t_end)
        finally:
            self.stop()
        if self.error:
            raise EvstreamError(self.error)
        return self.stats()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop both threads, close the recording and the source. Safe to call twice."""
        self._stop.set()
        self.reader.wake()
        if self.is_live:
            self.source.close()  # unblocks a reader waiting for a live stream
        me = threading.current_thread()
        for t in self._threads:
            if t is not me:
                t.join(timeout)
        self._threads = []
        self.stop_recording()
        self.source.close()
        if self.state not in ("ended", "error"):
            self.reader.state = "stopped"
