"""Cutting a stream of event chunks into windows: by time or by event count, with optional overlap.

    slicer = TimeSlicer(window_us=10_000)
    for chunk in source:
        for sl in slicer.push(chunk.events):   # only whole windows, even across chunk borders
            ...                                # sl.events, sl.t_start, sl.t_end
    tail = slicer.flush()                      # the last partial window, if keep_partial=True

Time windows are aligned to the first event's time and are half-open ``[t_start, t_end)``; windows with no
events are emitted too (time passed), so a live view keeps ticking. A slicer holds at most one window's
events plus the current chunk, whatever the stream's length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from evstream.events import EVENT_DTYPE, as_events


@dataclass
class EventSlice:
    """One window of events: ``events`` with ``t_start <= t < t_end`` (time windows)."""

    events: np.ndarray
    t_start: int
    t_end: int

    def __len__(self):
        return len(self.events)


class TimeSlicer:
    """Fixed time windows of ``window_us``, started every ``step_us`` (default: no overlap)."""

    def __init__(self, window_us: int, step_us: int | None = None, keep_partial: bool = False,
                 t0: int | None = None):
        if window_us <= 0:
            raise ValueError("window_us must be > 0")
        self.window_us = int(window_us)
        self.step_us = int(step_us or window_us)
        if self.step_us <= 0:
            raise ValueError("step_us must be > 0")
        self.keep_partial = keep_partial
        self._t0_init = t0
        self.reset()

    def reset(self) -> None:
        self._start = self._t0_init  # start of the next window to emit
        self._buf = np.zeros(0, EVENT_DTYPE)
        self._last_t = None

    def push(self, events: np.ndarray) -> list[EventSlice]:
        """Add events (time-ordered); return every window that is now complete."""
        events = as_events(events)
        if len(events):
            if self._start is None:
                self._start = int(events["t"][0])
            self._last_t = int(events["t"][-1])
            self._buf = np.concatenate([self._buf, events]) if len(self._buf) else events
        return self._emit(final=False)

    def advance_to(self, t_us: int) -> list[EventSlice]:
        """Declare that no event before ``t_us`` will come (a live stream's clock); emits empty windows."""
        if self._start is None:
            return []
        if self._last_t is None:
            self._last_t = self._start - 1
        return self._emit(final=False, horizon=int(t_us))

    def flush(self) -> list[EventSlice]:
        """End of stream: the remaining windows that hold events (partial ones only if ``keep_partial``)."""
        out = self._emit(final=True)
        self._buf = np.zeros(0, EVENT_DTYPE)
        return out

    def _emit(self, final: bool, horizon: int | None = None) -> list[EventSlice]:
        out = []
        if self._start is None:
            return out
        t = np.ascontiguousarray(self._buf["t"])  # one copy per push: searchsorted on a strided view copies it
        # [s, s+W) is complete once time has reached s+W: an event at t >= s+W (events are time-ordered)
        # or the clock (``advance_to``); at the end of the stream the rest is partial.
        known = self._last_t if horizon is None else max(self._last_t, horizon)

        def take(s):
            i0, i1 = np.searchsorted(t, [s, s + self.window_us], side="left")
            return EventSlice(self._buf[i0:i1], s, s + self.window_us)

        while self._start + self.window_us <= known:
            out.append(take(self._start))
            self._start += self.step_us
        if final and self.keep_partial:
            while self._start <= self._last_t:
                out.append(take(self._start))
                self._start += self.step_us
        keep_from = np.searchsorted(t, self._start, side="left")  # events no future window needs
        if keep_from:
            self._buf = self._buf[keep_from:]
        return out


class CountSlicer:
    """Windows of ``n_events`` events, started every ``step`` events (default: no overlap)."""

    def __init__(self, n_events: int, step: int | None = None, keep_partial: bool = False):
        if n_events <= 0:
            raise ValueError("n_events must be > 0")
        self.n_events = int(n_events)
        self.step = int(step or n_events)
        if self.step <= 0:
            raise ValueError("step must be > 0")
        self.keep_partial = keep_partial
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros(0, EVENT_DTYPE)
        self._skip = 0  # events still to skip when step > n_events

    def push(self, events: np.ndarray) -> list[EventSlice]:
        events = as_events(events)
        if self._skip:
            k = min(self._skip, len(events))
            events, self._skip = events[k:], self._skip - k
        if len(events):
            self._buf = np.concatenate([self._buf, events]) if len(self._buf) else events
        out = []
        pos = 0
        while len(self._buf) - pos >= self.n_events:
            w = self._buf[pos:pos + self.n_events]
            out.append(EventSlice(w, int(w["t"][0]), int(w["t"][-1]) + 1))
            pos += self.step
        if pos > len(self._buf):
            self._skip = pos - len(self._buf)
        self._buf = self._buf[pos:]
        return out

    def flush(self) -> list[EventSlice]:
        out = []
        if self.keep_partial and len(self._buf):
            w = self._buf
            out.append(EventSlice(w, int(w["t"][0]), int(w["t"][-1]) + 1))
        self._buf = np.zeros(0, EVENT_DTYPE)
        return out


def slice_stream(chunks: Iterable, slicer) -> Iterator[EventSlice]:
    """Every window of a stream of chunks (``EventChunk`` or event arrays), ending with ``flush()``."""
    for chunk in chunks:
        events = getattr(chunk, "events", chunk)
        yield from slicer.push(events)
    yield from slicer.flush()
