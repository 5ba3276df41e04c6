"""The reader interface every format implements.

A reader opens one recording, knows its ``format``, ``sensor_size`` ``(width, height)`` and ``meta`` (what
the header says), and gives its events either all at once (:meth:`Reader.read_all`) or as a stream of
bounded chunks (:meth:`Reader.chunks`). A damaged file in streaming mode first yields every event that was
read before the damage, then raises :class:`~evstream.errors.FormatError` naming the file and byte offset.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np

from evstream.errors import FormatError
from evstream.events import EVENT_DTYPE, EventChunk, check_in_sensor

DEFAULT_CHUNK = 1_000_000


class Reader:
    """Base class: subclasses set ``format``, ``sensor_size``, ``meta`` and implement :meth:`_iter_events`."""

    format: str = "?"

    def __init__(self, path: str | os.PathLike, sensor_size: tuple[int, int] | None = None):
        self.path = Path(path)
        self.meta: dict = {"format": self.format, "path": str(self.path)}
        self.sensor_size: tuple[int, int] = sensor_size or (0, 0)
        self._user_sensor = sensor_size
        self._last_t: int | None = None
        self._n_read = 0

    # --- what subclasses implement -------------------------------------------------------------------
    def _iter_events(self, max_events: int) -> Iterator[tuple[np.ndarray, int]]:
        """Yield ``(events, byte_offset_after)`` arrays of at most ``max_events`` events, in file order."""
        raise NotImplementedError

    # --- the public interface ------------------------------------------------------------------------
    def chunks(self, max_events: int = DEFAULT_CHUNK) -> Iterator[EventChunk]:
        """Stream the recording as :class:`EventChunk` objects of at most ``max_events`` events."""
        self._last_t = None
        self._n_read = 0
        for events, offset in self._iter_events(max(1, int(max_events))):
            if len(events) == 0:
                continue
            good, problem = self._validate(events)
            if len(good):
                self._n_read += len(good)
                yield EventChunk(good, self.sensor_size, dict(self.meta))
            if problem is not None:
                raise FormatError(problem, where=self.path, offset=None)

    def read_all(self) -> EventChunk:
        """The whole recording as one chunk (raises on damage; use :meth:`chunks` to keep the good part)."""
        parts = [c.events for c in self.chunks()]
        events = np.concatenate(parts) if parts else np.zeros(0, EVENT_DTYPE)
        return EventChunk(events, self.sensor_size, dict(self.meta))

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __iter__(self):
        return self.chunks()

    # --- checks shared by every format ---------------------------------------------------------------
    def _validate(self, events: np.ndarray) -> tuple[np.ndarray, str | None]:
        """Return the valid prefix of ``events`` and a problem string if the rest is bad."""
        t = events["t"]
        prev = self._last_t
        if prev is not None and t[0] < prev:
            bad = 0
        else:
            d = np.diff(t)
            back = np.flatnonzero(d < 0)
            bad = int(back[0]) + 1 if len(back) else -1
        if bad >= 0:
            i = self._n_read + bad
            before = prev if bad == 0 else int(t[bad - 1])
            return events[:bad], (
                f"timestamps go backwards at event {i} ({int(t[bad])} us after {before} us); "
                f"{i} events before it were read"
            )
        if self.sensor_size != (0, 0):
            try:
                check_in_sensor(events, self.sensor_size)
            except Exception:
                w, h = self.sensor_size
                outside = np.flatnonzero((events["x"] >= w) | (events["y"] >= h))
                j = int(outside[0])
                return events[:j], (
                    f"event {self._n_read + j} at (x={int(events['x'][j])}, y={int(events['y'][j])}) "
                    f"lies outside the {w}x{h} sensor"
                )
        self._last_t = int(t[-1])
        return events, None


def check_path(path: str | os.PathLike) -> Path:
    """Fail early, in one line, for a missing path, a directory, an unreadable or empty file."""
    p = Path(path)
    if not p.exists():
        raise FormatError("no such file", where=p)
    if p.is_dir():
        raise FormatError("is a directory, not a recording", where=p)
    if not os.access(p, os.R_OK):
        raise FormatError("permission denied", where=p)
    if p.stat().st_size == 0:
        raise FormatError("empty file (0 bytes)", where=p)
    return p


def read_text_header(f, prefix: bytes) -> tuple[list[str], int]:
    """Read consecutive header lines starting with ``prefix`` from binary file ``f``.

    Returns the decoded lines (prefix stripped) and the byte offset of the first data byte.
    """
    lines = []
    while True:
        pos = f.tell()
        peek = f.read(len(prefix))
        if peek != prefix:
            f.seek(pos)
            return lines, pos
        rest = f.readline()
        lines.append((peek + rest).decode("latin-1").rstrip("\r\n")[len(prefix):])
        if not rest.endswith(b"\n"):
            return lines, f.tell()
