"""The event view the GUI shows: the latest events as an image (frames, SAE or time surface)."""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

from evstream.live.config import VIEWS


class EventView:
    """The latest events as an RGB image (ON red, OFF blue): polarity counts of the last ``span_us``,
    the SAE (50 ms horizon) or the time surface (τ = 20 ms), switchable live.

    ``update`` runs in the reader thread for every slice; ``image`` in the GUI thread when it draws."""

    def __init__(self, sensor_size, kind: str = "frames", span_us: int = 40_000):
        from evstream.representations import SAE, TimeSurface

        self.sensor_size = (int(sensor_size[0]) or 1, int(sensor_size[1]) or 1)
        self.kind = kind
        self.span_us = span_us
        self._recent: deque = deque(maxlen=256)  # (t_end, events) of recent slices
        self._counts: deque = deque(maxlen=8192)  # (t_end, events in the slice): the event rate
        self._sae = SAE(self.sensor_size)
        self._ts = TimeSurface(self.sensor_size)
        self.t = None
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._recent.clear()
            self._counts.clear()
            self._sae.reset()
            self._ts.reset()
            self.t = None

    def update(self, events: np.ndarray, t_end: int) -> None:
        w, h = self.sensor_size
        if len(events) and (int(events["x"].max()) >= w or int(events["y"].max()) >= h):
            events = events[(events["x"] < w) & (events["y"] < h)]
        with self._lock:
            self._recent.append((int(t_end), events))
            self._counts.append((int(t_end), len(events)))
            while self._recent and self._recent[0][0] <= t_end - self.span_us:
                self._recent.popleft()
            if self.kind == "sae":
                self._sae.update(events)
            elif self.kind == "time_surface":
                self._ts.update(events)
            self.t = int(t_end)

    def rate(self, span_us: int = 10_000_000, bin_us: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
        """Events per second of stream in bins of ``bin_us`` over the last ``span_us`` before the newest slice:
        (bin ends in seconds before it, <= 0; rates). Empty before any slice."""
        with self._lock:
            counts = list(self._counts)
        if not counts:
            return np.zeros(0), np.zeros(0)
        t = np.array([c[0] for c in counts], np.int64)
        n = np.array([c[1] for c in counts], np.float64)
        now = int(t[-1])
        keep = t > now - span_us
        nbins = max(1, span_us // bin_us)
        idx = np.minimum((now - t[keep]) // bin_us, nbins - 1)
        per_bin = np.bincount(idx, weights=n[keep], minlength=nbins)
        first = int(idx.max()) + 1  # bins that have stream time behind them
        x = -np.arange(first, dtype=np.float64) * bin_us / 1e6
        return x[::-1], per_bin[:first][::-1] / (bin_us / 1e6)

    def set_kind(self, kind: str) -> None:
        if kind not in VIEWS:
            raise ValueError(f"unknown view {kind!r} (known: {', '.join(VIEWS)})")
        with self._lock:
            if kind != self.kind:  # rebuild the new surface from the events still held
                self._sae.reset()
                self._ts.reset()
                for _, ev in self._recent:
                    (self._sae if kind == "sae" else self._ts).update(ev)
            self.kind = kind

    def planes(self) -> np.ndarray:
        """``(2, H, W)`` float32 in [0, 1]: OFF and ON planes of the current view."""
        from evstream.representations.functional import count_image

        with self._lock:
            w, h = self.sensor_size
            if self.kind == "frames":
                evs = [e for _, e in self._recent if len(e)]
                if not evs:
                    return np.zeros((2, h, w), np.float32)
                c = count_image(np.concatenate(evs), self.sensor_size).astype(np.float32)
                m = float(np.percentile(c[c > 0], 99)) if (c > 0).any() else 1.0
                return np.minimum(c / max(m, 1.0), 1.0)
            src = self._sae if self.kind == "sae" else self._ts
            return src.read(self.t).astype(np.float32)

    def image(self, theme: str = "dark") -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB: ON events red, OFF events blue, on black (``theme="dark"``) or white."""
        return colorize(self.planes(), theme)


THEMES = ("dark", "light")


def colorize(p: np.ndarray, theme: str = "dark") -> np.ndarray:
    """OFF/ON planes ``(2, H, W)`` in [0, 1] as RGB: ON red, OFF blue, both magenta-white, on black (dark) or
    on white (light: the complement of the other two channels, so ON is still red and OFF blue)."""
    if theme not in THEMES:
        raise ValueError(f"unknown theme {theme!r} (known: {', '.join(THEMES)})")
    rgb = np.zeros((*p.shape[1:], 3), np.uint8)
    if theme == "dark":
        rgb[..., 0] = (p[1] * 255).astype(np.uint8)
        rgb[..., 1] = (np.minimum(p[0], p[1]) * 180).astype(np.uint8)
        rgb[..., 2] = (p[0] * 255).astype(np.uint8)
    else:
        rgb[..., 0] = ((1 - p[0]) * 255).astype(np.uint8)
        rgb[..., 1] = ((1 - np.maximum(p[0], p[1])) * 255).astype(np.uint8)
        rgb[..., 2] = ((1 - p[1]) * 255).astype(np.uint8)
    return rgb
