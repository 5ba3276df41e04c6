"""Event filters: background-activity noise, refractory / hot pixels, region of interest, polarity,
spatial downsampling. Pure functions for one array; filter objects keep per-pixel memory across chunks
(so a stream filtered chunk by chunk equals the whole recording filtered at once) and have ``reset()``.

The noise and refractory filters follow tonic's ``denoise`` and ``refractory_period`` (same decisions on
the same events, see docs/representations.md for the two start-up differences) at numba speed.
"""

from __future__ import annotations

import numpy as np

from evstream.errors import EvstreamError
from evstream.events import EVENT_DTYPE
from evstream.jit import nb

NEVER = np.iinfo(np.int64).min // 4


@nb.njit(cache=True, nogil=True)
def _ba_filter(t, x, y, p, memory, dt, ot, ox, oy, op):
    """Keep an event if one of its 4 neighbours fired within ``dt`` before it (tonic ``denoise``).

    ``memory`` is padded by one pixel of NEVER on each side, so border pixels need no special case."""
    hp, wp = memory.shape
    flat = memory.reshape(-1)
    w = wp - 2
    h = hp - 2
    n = 0
    for i in range(t.shape[0]):
        xi = np.int64(x[i])
        yi = np.int64(y[i])
        if xi >= w or yi >= h:
            return n, i
        ti = t[i]
        k = (yi + 1) * wp + xi + 1
        flat[k] = ti
        newest = max(max(flat[k - 1], flat[k + 1]), max(flat[k - wp], flat[k + wp]))
        if ti - newest < dt:
            ot[n] = ti
            ox[n] = xi
            oy[n] = yi
            op[n] = p[i]
            n += 1
    return n, -1


@nb.njit(cache=True, nogil=True)
def _refractory(t, x, y, p, memory, period, ot, ox, oy, op):
    """Keep an event if its pixel's previous event is more than ``period`` µs older (tonic)."""
    h, w = memory.shape
    n = 0
    for i in range(t.shape[0]):
        xi = x[i]
        yi = y[i]
        if xi >= w or yi >= h:
            return n, i
        if t[i] - memory[yi, xi] > period:
            ot[n] = t[i]
            ox[n] = xi
            oy[n] = yi
            op[n] = p[i]
            n += 1
        memory[yi, xi] = t[i]
    return n, -1


def _check(events, j, sensor_size):
    if j >= 0:
        raise EvstreamError(f"event {j} at (x={int(events['x'][j])}, y={int(events['y'][j])}) lies outside "
                            f"the configured {sensor_size[0]}x{sensor_size[1]} sensor")


class _PixelMemoryFilter:
    kernel = None

    def __init__(self, sensor_size, param):
        self.sensor_size = (int(sensor_size[0]), int(sensor_size[1]))
        self.param = int(param)
        self.reset()

    def reset(self):
        w, h = self.sensor_size
        self.memory = np.full((h, w), NEVER, np.int64)

    def __call__(self, events: np.ndarray) -> np.ndarray:
        out = np.empty(len(events), EVENT_DTYPE)  # kept events are written here in the same pass
        n, j = type(self).kernel(events["t"], events["x"], events["y"], events["p"], self.memory, self.param,
                                 out["t"], out["x"], out["y"], out["p"])
        _check(events, j, self.sensor_size)
        return out[:n]


class BackgroundActivityFilter(_PixelMemoryFilter):
    """Drops events without support: no event at a 4-neighbour pixel within ``dt_us`` before them."""

    kernel = staticmethod(_ba_filter)

    def __init__(self, sensor_size, dt_us: int = 10_000):
        super().__init__(sensor_size, dt_us)

    def reset(self):
        w, h = self.sensor_size
        self.memory = np.full((h + 2, w + 2), NEVER, np.int64)


class RefractoryFilter(_PixelMemoryFilter):
    """Drops events that follow their pixel's previous event by ``period_us`` or less (hot pixels)."""

    kernel = staticmethod(_refractory)

    def __init__(self, sensor_size, period_us: int = 1_000):
        super().__init__(sensor_size, period_us)


FILTERS = {"ba": ("background activity", BackgroundActivityFilter), "refractory": ("refractory", RefractoryFilter)}


def parse_filters(value) -> tuple[tuple[str, int], ...]:
    """A filter chain setting from ``"ba=10000,refractory=1000"`` (µs; a name alone takes its default) or a
    sequence of (name, µs) pairs; None, "" or "none": no filter. One-line error otherwise."""
    if value is None or value == "" or value == "none":
        return ()
    items = [s.strip() for s in value.split(",") if s.strip()] if isinstance(value, str) else list(value)
    out = []
    for item in items:
        name, _, param = item.partition("=") if isinstance(item, str) else (item[0], None, item[1])
        name = str(name).strip()
        if name not in FILTERS:
            raise EvstreamError(f"unknown filter {name!r} in {value!r} (known: {', '.join(FILTERS)})")
        default = FILTERS[name][1].__init__.__defaults__[0]
        try:
            us = int(str(param).strip()) if param not in (None, "") else int(default)
        except ValueError:
            raise EvstreamError(f"filter {name!r}: {param!r} is not a whole number of µs") from None
        if us < 1:
            raise EvstreamError(f"filter {name!r}: the time must be >= 1 µs, not {us}")
        if name in (n for n, _ in out):
            raise EvstreamError(f"filter {name!r} is given twice in {value!r}")
        out.append((name, us))
    return tuple(out)


class FilterChain:
    """The filters of a :func:`parse_filters` setting applied in order, counting what comes in and what each
    removes (``counts()``: ``{"in": n, "ba": removed, ...}``, since it was built). ``reset()`` forgets the
    pixels' memory (a seek, a loop), not the counts."""

    def __init__(self, sensor_size, spec=()):
        self.spec = parse_filters(spec)
        self.filters = [(name, FILTERS[name][1](sensor_size, us)) for name, us in self.spec]
        self.n_in = 0
        self.removed = {name: 0 for name, _ in self.spec}

    def __bool__(self) -> bool:
        return bool(self.filters)

    def __call__(self, events: np.ndarray) -> np.ndarray:
        self.n_in += len(events)
        for name, f in self.filters:
            n = len(events)
            events = f(events)
            self.removed[name] += n - len(events)
        return events

    def reset(self) -> None:
        for _, f in self.filters:
            f.reset()

    def counts(self) -> dict:
        return {"in": self.n_in, **self.removed}


def roi(events: np.ndarray, x0: int, y0: int, width: int, height: int, shift: bool = True) -> np.ndarray:
    """Events inside the rectangle; with ``shift`` their coordinates become relative to its corner."""
    m = (events["x"] >= x0) & (events["x"] < x0 + width) & (events["y"] >= y0) & (events["y"] < y0 + height)
    out = events[m]
    if shift:
        out = out.copy()
        out["x"] -= x0
        out["y"] -= y0
    return out


def select_polarity(events: np.ndarray, polarity: int) -> np.ndarray:
    """Only the ON (1) or OFF (0) events."""
    return events[events["p"] == polarity]


def downsample(events: np.ndarray, factor: int) -> np.ndarray:
    """Spatial downsampling: pixel coordinates integer-divided by ``factor`` (sensor shrinks by it)."""
    if factor < 1:
        raise ValueError("factor must be >= 1")
    out = events.copy()
    out["x"] //= factor
    out["y"] //= factor
    return out


__all__ = ["BackgroundActivityFilter", "FilterChain", "parse_filters", "RefractoryFilter", "downsample", "roi", "select_polarity", "EVENT_DTYPE"]
