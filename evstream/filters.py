"""Event filters: background-activity noise, refractory / hot pixels, region of interest, polarity,
spatial downsampling. Pure functions for one array; filter objects keep per-pixel memory across chunks
(so a stream filtered chunk by chunk equals the whole recording filtered at once) and have ``reset()``.

The noise and refractory filters follow tonic's ``denoise`` and ``refractory_period`` (same decisions on
the same events, see docs/representations.md for the two start-up differences) at numba speed.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from evstream.errors import EvstreamError
from evstream.events import EVENT_DTYPE

NEVER = np.iinfo(np.int64).min // 4


@nb.njit(cache=True, nogil=True)
def _ba_filter(t, x, y, memory, dt, keep):
    """Keep an event if one of its 4 neighbours fired within ``dt`` before it (tonic ``denoise``)."""
    h, w = memory.shape
    for i in range(t.shape[0]):
        xi = x[i]
        yi = y[i]
        if xi >= w or yi >= h:
            return i
        ti = t[i]
        memory[yi, xi] = ti
        ok = False
        if xi > 0 and ti - memory[yi, xi - 1] < dt:
            ok = True
        elif xi < w - 1 and ti - memory[yi, xi + 1] < dt:
            ok = True
        elif yi > 0 and ti - memory[yi - 1, xi] < dt:
            ok = True
        elif yi < h - 1 and ti - memory[yi + 1, xi] < dt:
            ok = True
        keep[i] = ok
    return -1


@nb.njit(cache=True, nogil=True)
def _refractory(t, x, y, memory, period, keep):
    """Keep an event if its pixel's previous event is more than ``period`` µs older (tonic)."""
    h, w = memory.shape
    for i in range(t.shape[0]):
        xi = x[i]
        yi = y[i]
        if xi >= w or yi >= h:
            return i
        keep[i] = t[i] - memory[yi, xi] > period
        memory[yi, xi] = t[i]
    return -1


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
        keep = np.empty(len(events), np.bool_)
        j = type(self).kernel(events["t"], events["x"], events["y"], self.memory, self.param, keep)
        _check(events, j, self.sensor_size)
        return events[keep]


class BackgroundActivityFilter(_PixelMemoryFilter):
    """Drops events without support: no event at a 4-neighbour pixel within ``dt_us`` before them."""

    kernel = staticmethod(_ba_filter)

    def __init__(self, sensor_size, dt_us: int = 10_000):
        super().__init__(sensor_size, dt_us)


class RefractoryFilter(_PixelMemoryFilter):
    """Drops events that follow their pixel's previous event by ``period_us`` or less (hot pixels)."""

    kernel = staticmethod(_refractory)

    def __init__(self, sensor_size, period_us: int = 1_000):
        super().__init__(sensor_size, period_us)


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


__all__ = ["BackgroundActivityFilter", "RefractoryFilter", "downsample", "roi", "select_polarity", "EVENT_DTYPE"]
