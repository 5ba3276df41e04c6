"""The reader interface every format implements.

A reader opens one recording, knows its ``format``, ``sensor_size`` ``(width, height)`` and ``meta`` (what
the header says), and gives its events either all at once (:meth:`Reader.read_all`) or as a stream of
bounded chunks (:meth:`Reader.chunks`). A damaged file in streaming mode first yields every event that was
read before the damage, then raises :class:`~evstream.errors.FormatError` naming the file and byte offset.
"""

from __future__ import annotations

import io
import os
import stat as _stat
from pathlib import Path
from typing import Iterator

import numpy as np

from evstream.errors import FormatError
from evstream.events import EVENT_DTYPE, EventChunk
from evstream.readers._kernels import first_bad

DEFAULT_CHUNK = 1_000_000
SMALL_FILE = 32 << 20  # files up to this size are read with one system call and decoded from memory


class Reader:
    """Base class: subclasses set ``format``, ``sensor_size``, ``meta`` and implement :meth:`_iter_events`."""

    format: str = "?"

    def __init__(self, path: str | os.PathLike, sensor_size: tuple[int, int] | None = None,
                 blob: bytes | None = None):
        self.path = Path(path)
        self.meta: dict = {"format": self.format, "path": str(self.path)}
        self.sensor_size: tuple[int, int] = sensor_size or (0, 0)
        self._user_sensor = sensor_size
        self._last_t: int | None = None
        self._n_read = 0
        self._blob: bytes | None = blob  # the whole file, when the caller already read it

    # --- file access shared by the binary formats ----------------------------------------------------
    def _small(self) -> bool:
        return self._size <= SMALL_FILE

    def _load_blob(self) -> bytes:
        if self._blob is None:
            with open(self.path, "rb") as f:
                self._blob = f.read()
        return self._blob

    def _open(self):
        """A binary file object: the whole file in memory for small files, else the file itself."""
        return io.BytesIO(self._load_blob()) if self._small() else open(self.path, "rb")

    def _block(self, offset: int, dtype, count: int) -> np.ndarray:
        """``count`` items of ``dtype`` at byte ``offset`` (fewer at the end of the file)."""
        if self._small():
            blob = self._load_blob()
            dt = np.dtype(dtype)
            count = max(0, min(count, (len(blob) - offset) // dt.itemsize))
            return np.frombuffer(blob, dtype=dt, count=count, offset=offset)
        return read_block(self.path, offset, dtype, count)

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
        parts = [c.events for c in self.chunks(max_events=1 << 40)]
        events = parts[0] if len(parts) == 1 else (np.concatenate(parts) if parts else np.zeros(0, EVENT_DTYPE))
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
        w, h = self.sensor_size
        prev = -(1 << 62) if self._last_t is None else self._last_t
        i, code = first_bad(events["t"], events["x"], events["y"], w, h, prev)
        if code == 0:
            self._last_t = int(events["t"][-1])
            return events, None
        k = self._n_read + i
        if code == 1:
            before = prev if i == 0 else int(events["t"][i - 1])
            problem = (f"timestamps go backwards at event {k} ({int(events['t'][i])} us after {before} us); "
                       f"{k} events before it were read")
        else:
            problem = (f"event {k} at (x={int(events['x'][i])}, y={int(events['y'][i])}) lies outside the "
                       f"{w}x{h} sensor")
        return events[:i], problem


def new_events(n: int):
    """An uninitialised event array and its four field views (for decoders to fill in place)."""
    ev = np.empty(n, EVENT_DTYPE)
    return ev, ev["t"], ev["x"], ev["y"], ev["p"]


def read_block(path, offset: int, dtype, count: int) -> np.ndarray:
    """``count`` items of ``dtype`` at byte ``offset`` (fewer at the end of the file)."""
    with open(path, "rb") as f:
        f.seek(offset)
        return np.fromfile(f, dtype=dtype, count=count)


def check_path(path: str | os.PathLike) -> Path:
    """Fail early, in one line, for a missing path, a directory, an unreadable or empty file."""
    return check_path_size(path)[0]


def check_path_size(path: str | os.PathLike) -> tuple[Path, int]:
    """:func:`check_path` that also returns the file size (one ``stat``)."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise FormatError("no such file", where=p) from None
    except OSError as exc:
        raise FormatError(exc.strerror or str(exc), where=p) from None
    if _stat.S_ISDIR(st.st_mode):
        raise FormatError("is a directory, not a recording", where=p)
    if st.st_size == 0:
        raise FormatError("empty file (0 bytes)", where=p)
    if not os.access(p, os.R_OK):
        raise FormatError("permission denied", where=p)
    return p, st.st_size


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
