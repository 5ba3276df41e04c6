"""The reader thread: iterates the source, paces recordings at ``speed`` x real time, cuts time (or count)
slices, updates the event view, writes recorded events, and hands whole slices to the model thread
(:class:`~evstream.live.queue.SliceQueue`). Controls arrive as small command objects (``Pause``, ``Play``,
``Step``, ``Seek``, ``SetSpeed``, ``SetSlicing``) from any thread and are applied between chunks.

    reader = Reader(source, slices, view, cfg, ...)   # built by the Pipeline
    reader.send(Seek(2_000_000))
    reader.run()                                      # in its own thread, until ``stop`` is set

Positions are stream time since the first event. A paused recording reads nothing; ``Step(n)`` releases
``n`` more slices. A live stream keeps flowing while paused: its slices are shown, not classified.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from evstream.filters import FilterChain
from evstream.live.queue import END, Reset
from evstream.live.records import ErrorRecord, StatusRecord
from evstream.slicing import CountSlicer, TimeSlicer


@dataclass(frozen=True)
class Pause:
    pass


@dataclass(frozen=True)
class Play:
    """Resume; a recording that ended plays again from the start."""


@dataclass(frozen=True)
class Step:
    """While paused: release ``n`` more slices of a recording."""

    n: int = 1


@dataclass(frozen=True)
class Seek:
    t_us: int


@dataclass(frozen=True)
class SetSpeed:
    speed: float | None


@dataclass(frozen=True)
class SetSlicing:
    slice_ms: float | None = None
    slice_events: int | None = None


@dataclass(frozen=True)
class SetFilters:
    """A new filter chain (:func:`evstream.filters.parse_filters`); its counts start from zero."""

    filters: tuple = ()


class Pacer:
    """Releases stream time at ``speed`` x wall time from an anchor (wall time, stream time) taken at the
    first release after :meth:`reset` (a seek, a loop, play, a new speed)."""

    def __init__(self):
        self.anchor: tuple[float, int] | None = None

    def reset(self) -> None:
        self.anchor = None

    def anchor_at(self, stream_t: int, now: float) -> None:
        if self.anchor is None:
            self.anchor = (now, int(stream_t))

    def delay(self, stream_t: int, speed: float, now: float) -> float:
        """Seconds until ``stream_t`` is due (<= 0: now)."""
        self.anchor_at(stream_t, now)
        return self.anchor[0] + (stream_t - self.anchor[1]) * 1e-6 / speed - now


def make_slicer(cfg):
    if cfg.slice_events > 0:
        return CountSlicer(cfg.slice_events)
    return TimeSlicer(max(1, int(round(cfg.slice_ms * 1000))))


class Reader:
    """See the module docstring. ``config()`` returns the pipeline's current :class:`LiveConfig`;
    ``update(**changes)`` replaces it (speed and slicing change here, in this thread); ``recorder()`` the
    current recorder or None; ``emit(record)`` posts a record."""

    def __init__(self, source, slices, view, *, config, update, recorder, emit, latency, stop, wake, spec: str):
        self.source, self.slices, self.view = source, slices, view
        self.config, self.update, self.recorder, self.emit = config, update, recorder, emit
        self.latency, self._stop, self._wake, self.spec = latency, stop, wake, spec
        self.is_live = bool(source.is_live)  # the evstream.stream.Source contract
        self.duration_us = int(source.duration_us or 0)
        self.pacer = Pacer()
        self._cmds: deque = deque()
        self.paused = False
        self.state = "ready"
        self.slices_in = 0
        self.position_us = 0
        self.t_first = None  # stream time of the first event (positions are relative to it)
        self._pos_next = 0
        self._steps_wanted = 0
        self._it = None
        self._ended = False
        self._last_t = None
        self._pending: deque = deque()  # slices cut from the last chunk, not yet released to the model
        self._pending_t = 0  # stream time of that chunk's last event: when its slices are due
        self._slicer = make_slicer(config())
        self.filters = FilterChain(self._sensor(), config().filters)  # before slicing: view, recording and model

    def _sensor(self, events=None) -> tuple[int, int]:
        w, h = (int(v) for v in self.source.sensor_size)
        if (w < 1 or h < 1) and events is not None and len(events):  # a source that does not say its size
            w, h = int(events["x"].max()) + 1, int(events["y"].max()) + 1
        return max(w, 1), max(h, 1)

    def send(self, cmd) -> None:
        """Queue a command (any thread); applied before the next chunk."""
        self._cmds.append(cmd)
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    def _idle(self, timeout: float = 0.05) -> None:
        self._wake.wait(timeout)
        self._wake.clear()

    def run(self) -> None:
        while not self._stop.is_set():
            while self._cmds:
                self._apply(self._cmds.popleft())
            held = self.paused and not self._steps_wanted and not self.is_live
            if self._pending:
                speed = self.config().speed
                if held:
                    self._idle()
                elif speed and not self.is_live and not self.paused:  # pacing: release when due
                    delay = self.pacer.delay(self._pending_t, speed, time.perf_counter())
                    if delay > 0:
                        self._idle(min(delay, 0.05))
                    else:
                        self._release()
                else:
                    self._release()
            elif self._ended or held:
                self._idle()
            else:
                self._read_chunk()

    # ---------------------------------------------------------------- commands
    def _apply(self, cmd) -> None:
        restart = self._ended and not self.is_live
        seek_to = None
        if isinstance(cmd, Pause):
            self.paused, self.state = True, "paused"
        elif isinstance(cmd, Play):  # a live stream that ended stays "ended": nothing would play
            self.paused = False
            self.state = "ended" if self._ended and self.is_live else "playing"
            self.pacer.reset()
            seek_to = 0 if restart else None  # play again from the start
        elif isinstance(cmd, Step):
            self._steps_wanted += int(cmd.n)
            seek_to = 0 if restart else None
        elif isinstance(cmd, SetSpeed):
            self.update(speed=cmd.speed)
            self.pacer.reset()
        elif isinstance(cmd, SetSlicing):
            changes = {} if cmd.slice_ms is None else {"slice_ms": float(cmd.slice_ms)}
            if cmd.slice_events is not None:
                changes["slice_events"] = int(cmd.slice_events)
            self.update(**changes)
            self._slicer = make_slicer(self.config())
            self._pending.clear()
            self.slices.put(Reset("slicing"), block=False)
        elif isinstance(cmd, SetFilters):
            self.update(filters=cmd.filters)
            self.filters = FilterChain(self._sensor(), self.config().filters)
        elif isinstance(cmd, Seek):
            seek_to = cmd.t_us
        if seek_to is not None and self.source.can_seek:
            self._seek(seek_to)

    def _seek(self, t_us: int) -> None:
        self.source.seek(t_us)
        if self._ended:
            self._ended, self._it = False, None
            self.state = "paused" if self.paused else "playing"
        self._slicer, self._last_t = make_slicer(self.config()), None
        self.pacer.reset()
        self.filters.reset()
        self._pending.clear()
        self.slices.flush()
        self.view.reset()
        self.slices.put(Reset("seek"), block=False)
        self.position_us = min(max(0, t_us), self.duration_us)

    # ---------------------------------------------------------------- reading
    def _read_chunk(self) -> None:
        src = self.source
        if self._it is None:
            self._it = iter(src)
        t_wait = time.perf_counter()
        try:
            chunk = next(self._it)
        except StopIteration:
            self._end_of_stream()
            return
        t0 = time.perf_counter()
        ev = chunk.events
        if not len(ev):
            return
        first_t, end_t = int(ev["t"][0]), int(ev["t"][-1])
        if self._last_t is not None and first_t < self._last_t:  # the recording looped
            self._slicer = make_slicer(self.config())
            self.view.reset()
            self.filters.reset()
            self.slices.put(Reset("loop"), block=False)
            self.pacer.reset()
        self._last_t = end_t
        pos = src.position_us  # None: the source does not know; positions come from event times
        if self.t_first is None:  # a recording knows its position; a live stream starts now
            self.t_first = end_t - int(pos or 0) if not self.is_live else first_t
        rec = self.recorder()
        if rec is not None:
            rec.write_events(ev)
        if self.config().speed and not self.is_live:
            self.pacer.anchor_at(first_t, time.perf_counter())
        if self.filters:
            ev = self._filtered(ev)
        self._pending.extend(self._slicer.push(ev))
        self._pending_t = end_t
        self._pos_next = int(pos) if pos is not None else end_t - self.t_first
        if not self._pending:
            self.position_us = self._pos_next
        # a recording's next() is decoding (pacing is separate); a live stream's is waiting for data
        self.latency.add("read", time.perf_counter() - t0 + (0 if self.is_live else t0 - t_wait))

    def _filtered(self, ev):
        w, h = self.filters.filters[0][1].sensor_size
        if int(ev["x"].max()) >= w or int(ev["y"].max()) >= h:  # a source whose size was unknown grew
            if self.source.sensor_size[0] > 0:
                ev = ev[(ev["x"] < w) & (ev["y"] < h)]
            else:
                self.filters = FilterChain(self._sensor(ev), self.filters.spec)
        return self.filters(ev)

    def _end_of_stream(self) -> None:
        self._ended = True
        self._pending.extend(self._slicer.flush())
        self._release()
        self.slices.put(END, block=False)
        self.state = "ended"
        if self.is_live and not self._stop.is_set():  # a camera unplugged, a stream given up
            self.emit(ErrorRecord(f"{self.spec}: the live stream ended"))
        else:
            self.emit(StatusRecord(f"end of {self.spec}"))

    def _release(self) -> None:
        """Hand cut slices to the model thread (one at a time while single-stepping a paused recording)."""
        pending = self._pending
        stepping = self.paused and not self.is_live
        block = self.config().speed is None and not self.is_live
        while pending and not self._stop.is_set():
            if stepping and not self._steps_wanted:
                break
            sl = pending.popleft()
            self.view.update(sl.events, sl.t_end)
            self.position_us = max(0, min(int(sl.t_end - (self.t_first or 0)), self._pos_next))
            if self.paused and self.is_live:
                continue  # a live stream keeps flowing; while paused its slices are shown, not classified
            sl.t_ready = time.perf_counter()
            self.slices_in += 1
            self.slices.put(sl, block=block)
            if stepping:
                self._steps_wanted -= 1
        if not pending:
            self.position_us = self._pos_next
