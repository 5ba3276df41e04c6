"""The one event type used everywhere in evstream.

Events are a numpy structured array with fields ``t`` (int64, microseconds), ``x`` and ``y`` (uint16,
pixel column and row) and ``p`` (int8, polarity in {0, 1}; 1 = ON / brighter). They travel in
:class:`EventChunk` objects together with the sensor size ``(width, height)`` and metadata from the source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

EVENT_DTYPE = np.dtype([("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "i1")])


def empty_events(n: int = 0) -> np.ndarray:
    """An array of ``n`` zeroed events of :data:`EVENT_DTYPE`."""
    return np.zeros(n, dtype=EVENT_DTYPE)


def make_events(t, x, y, p) -> np.ndarray:
    """Build an event array from four equally long sequences (polarity is mapped to {0, 1}: p > 0 -> 1)."""
    t = np.asarray(t)
    n = len(t)
    ev = np.empty(n, dtype=EVENT_DTYPE)
    ev["t"] = t
    ev["x"] = np.asarray(x)
    ev["y"] = np.asarray(y)
    ev["p"] = np.asarray(p) > 0
    return ev


def as_events(arr: np.ndarray) -> np.ndarray:
    """Return ``arr`` as :data:`EVENT_DTYPE` (copying only if fields or types differ)."""
    if arr.dtype == EVENT_DTYPE:
        return arr
    names = arr.dtype.names or ()
    if not {"t", "x", "y", "p"} <= set(names):
        raise ValueError(f"event array needs fields t, x, y, p; got {names}")
    return make_events(arr["t"], arr["x"], arr["y"], arr["p"])


def check_in_sensor(events: np.ndarray, sensor_size: tuple[int, int], where: str | None = None) -> None:
    """Raise a one-line :class:`~evstream.errors.EvstreamError` if any event lies outside ``sensor_size``."""
    from evstream.errors import EvstreamError

    if len(events) == 0:
        return
    w, h = sensor_size
    bad = (events["x"] >= w) | (events["y"] >= h)
    if bad.any():
        i = int(np.argmax(bad))
        raise EvstreamError(
            f"event {i} at (x={int(events['x'][i])}, y={int(events['y'][i])}) lies outside the "
            f"{w}x{h} sensor",
            where=where,
        )


@dataclass
class EventChunk:
    """A contiguous run of events from one source, in time order.

    ``sensor_size`` is ``(width, height)``. ``meta`` carries source metadata (format, path, serial...).
    """

    events: np.ndarray
    sensor_size: tuple[int, int]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.events = as_events(self.events)
        self.sensor_size = (int(self.sensor_size[0]), int(self.sensor_size[1]))

    def __len__(self) -> int:
        return len(self.events)

    @property
    def t_start(self) -> int | None:
        return int(self.events["t"][0]) if len(self.events) else None

    @property
    def t_end(self) -> int | None:
        return int(self.events["t"][-1]) if len(self.events) else None
