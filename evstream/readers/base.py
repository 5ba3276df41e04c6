"""The reader interface every format implements.

A reader opens one recording, knows its ``format``, ``sensor_size`` ``(width, height)`` and ``meta`` (what
the header says), and gives its events either all at once (:meth:`Reader.read_all`) or as a stream of
bounded chunks (:meth:`Reader.chunks`). A damaged file in streaming mode first yields every event that was
read before the damage, then raises :class:`~evstream.errors.FormatError` naming the file and byte offset.
"""

from __future__ import annotations

import os
import re
import stat as _stat
from pathlib import Path
from typing import Iterator

import numpy as np

from evstream.errors import FormatError
from evstream.events import EVENT_DTYPE, EventChunk
from evstream.readers._kernels import NO_LIMIT, check_events

DEFAULT_CHUNK = 1_000_000
SMALL_FILE = 32 << 20  # files up to this size are read with one system call and decoded from memory
NO_TIME = -(1 << 62)  # 'no event yet' for the time-order check
NO_EVENTS = np.zeros(0, EVENT_DTYPE)
U1, U2, U4 = np.dtype(np.uint8), np.dtype("<u2"), np.dtype("<u4")  # file words


class Reader:
    """Base class: subclasses set ``format``, ``sensor_size``, ``meta`` and implement :meth:`_iter_events`."""

    format: str = "?"
    _state_size = 1  # length of the decoder state (see evstream.readers._kernels); state[0] = last time

    def __init__(self, path: str | os.PathLike, sensor_size: tuple[int, int] | None = None,
                 blob: bytes | None = None, size: int | None = None):
        self.path = path if isinstance(path, Path) else Path(path)
        self.meta: dict = {"format": self.format, "path": str(self.path)}
        self.sensor_size: tuple[int, int] = sensor_size or (0, 0)
        self._user_sensor = sensor_size
        self._n_read = 0
        self._state = None
        self._blob: bytes | None = blob  # the whole file, when the caller already read it
        self._size = size

    # --- file access shared by the binary formats ----------------------------------------------------
    def _small(self) -> bool:
        return self._size <= SMALL_FILE

    def _load_blob(self) -> bytes:
        if self._blob is None:
            with open(self.path, "rb") as f:
                self._blob = f.read()
        return self._blob

    def _header(self, prefix: bytes) -> tuple[list[str], int]:
        """The ``prefix`` header lines (prefix stripped) and the offset of the first data byte."""
        if self._small():
            return split_header(self._load_blob(), prefix)
        with open(self.path, "rb") as f:
            return read_text_header(f, prefix)

    def _block(self, offset: int, dtype: np.dtype, count: int) -> np.ndarray:
        """``count`` items of ``dtype`` (a ``np.dtype``) at byte ``offset`` (fewer at the end of the file)."""
        blob = self._blob
        if blob is not None or self._small():
            if blob is None:
                blob = self._load_blob()
            count = max(0, min(count, (len(blob) - offset) // dtype.itemsize))
            return np.frombuffer(blob, dtype=dtype, count=count, offset=offset)
        return read_block(self.path, offset, dtype, count)

    # --- what subclasses implement -------------------------------------------------------------------
    def _iter_events(self, max_events: int) -> Iterator[tuple[np.ndarray, str | None, int | None]]:
        """Yield ``(events, problem, byte_offset)`` in file order: at most ``max_events`` checked events,
        then (once, last) the problem that stopped the reading and its byte offset where known.
        Decoders check with the fused kernels and :meth:`_decoded`; other formats with :meth:`_check`."""
        raise NotImplementedError

    # --- the public interface ------------------------------------------------------------------------
    def chunks(self, max_events: int = DEFAULT_CHUNK) -> Iterator[EventChunk]:
        """Stream the recording as :class:`EventChunk` objects of at most ``max_events`` events."""
        self._reset()
        for events, problem, offset in self._iter_events(max(1, int(max_events))):
            if len(events):
                self._n_read += len(events)
                yield EventChunk(events, self.sensor_size, dict(self.meta))
            if problem is not None:
                raise FormatError(problem, where=self.path, offset=offset)

    def read_all(self) -> EventChunk:
        """The whole recording as one chunk (raises on damage; use :meth:`chunks` to keep the good part)."""
        self._reset()
        parts = []
        for events, problem, offset in self._iter_events(1 << 40):
            if problem is not None:
                raise FormatError(problem, where=self.path, offset=offset)
            if len(events):
                self._n_read += len(events)
                parts.append(events)
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
    def _reset(self) -> None:
        self._n_read = 0
        self._state = np.zeros(self._state_size, np.int64)
        self._state[0] = NO_TIME

    def _decoded(self, out: np.ndarray, n: int, code: int, offset: int | None):
        """``(events, problem, byte_offset)`` from a fused kernel that wrote ``n`` good events into ``out``
        and stopped on problem ``code`` (``out[n]`` is the offending event, ``offset`` its byte offset)."""
        return out[:n], self._problem(out[n], n, code), offset

    def _fixed_records(self, start: int, kernel, max_events: int, what: str = "event"):
        """Decode a body of 8-byte records (two uint32 words each) from byte ``start`` with a fused ``kernel``
        in chunks of ``max_events``: yields ``(events, problem, byte_offset)`` triples, the last one naming
        stray bytes after the last whole record."""
        n_total, rest = divmod(self._size - start, 8)
        w, h = self._limits()
        for s in range(0, n_total, max_events):
            e = min(n_total, s + max_events)
            words = self._block(start + 8 * s, U4, 2 * (e - s))
            out = np.empty(e - s, EVENT_DTYPE)
            n, code, i = kernel(words, self._state, out, w, h)
            if code:
                yield self._decoded(out, n, code, start + 8 * (s + i))
                return
            yield out[:n], None, None
        if rest:
            yield NO_EVENTS, f"truncated: {rest} stray bytes after the last whole {what} ({n_total} events read)", \
                start + 8 * n_total

    def _limits(self) -> tuple[int, int]:
        """The sensor size as the kernels' limits (an unknown size, 0 x 0, checks no coordinates)."""
        w, h = self.sensor_size
        return (w, h) if w > 0 and h > 0 else (NO_LIMIT, NO_LIMIT)

    def _check(self, events: np.ndarray):
        """``(good prefix, problem, None)`` for events decoded without a fused kernel."""
        w, h = self._limits()
        n, code, _ = check_events(events["t"], events["x"], events["y"], self._state, w, h)
        if code == 0:
            return events, None, None
        return events[:n], self._problem(events[n], n, code), None

    def _checked_parts(self, parts: list, max_events: int):
        """Check the events of ``parts`` (arrays decoded without a fused kernel) and yield them in chunks of
        at most ``max_events``, then the problem the check found, if any. Returns True if it found one."""
        good, problem, _ = self._check(parts[0] if len(parts) == 1 else np.concatenate(parts))
        for s in range(0, len(good), max_events):
            yield good[s:s + max_events], None, None
        if problem is not None:
            yield NO_EVENTS, problem, None
        return problem is not None

    def _problem(self, bad, n: int, code: int) -> str:
        k = self._n_read + n
        if code == 1:
            before = int(self._state[0])
            return (f"timestamps go backwards at event {k} ({int(bad['t'])} us after {before} us); "
                    f"{k} events before it were read")
        w, h = self.sensor_size
        return f"event {k} at (x={int(bad['x'])}, y={int(bad['y'])}) lies outside the {w}x{h} sensor"


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
    p = path if isinstance(path, Path) else Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise FormatError("no such file", where=p) from None
    except OSError as exc:
        raise FormatError(exc.strerror or str(exc), where=p) from None
    _check_kind(st, p)
    if not os.access(p, os.R_OK):
        raise FormatError("permission denied", where=p)
    return p, st.st_size


def open_checked(path: str | os.PathLike) -> tuple[Path, int, int]:
    """``(path, fd, size)``: the file opened for reading, with the checks of :func:`check_path` in one
    open and one fstat. The caller closes ``fd``."""
    p = path if isinstance(path, Path) else Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)  # O_NONBLOCK: a FIFO must not hang us
    except FileNotFoundError:
        raise FormatError("no such file", where=p) from None
    except PermissionError:
        raise FormatError("permission denied", where=p) from None
    except OSError as exc:
        raise FormatError(exc.strerror or str(exc), where=p) from None
    try:
        st = os.fstat(fd)
        _check_kind(st, p)
    except BaseException:
        os.close(fd)
        raise
    return p, fd, st.st_size


_KINDS = ((_stat.S_ISFIFO, "a FIFO (named pipe)"), (_stat.S_ISSOCK, "a socket"),
          (_stat.S_ISCHR, "a character device"), (_stat.S_ISBLK, "a block device"))


def _check_kind(st: os.stat_result, p: Path) -> None:
    """A one-line error unless ``st`` is a regular, non-empty file (readers need to know the length)."""
    if _stat.S_ISDIR(st.st_mode):
        raise FormatError("is a directory, not a recording", where=p)
    for test, kind in _KINDS:
        if test(st.st_mode):
            raise FormatError(f"is {kind}, not a recording file (readers need a regular file)", where=p)
    if st.st_size == 0:
        raise FormatError("empty file (0 bytes)", where=p)


MAX_SENSOR = 1 << 16  # coordinates are uint16


def checked_sensor(width, height, where, what: str = "header") -> tuple[int, int]:
    """``(width, height)`` as ints after a one-line error unless both are in 1..65536."""
    try:
        w, h = int(width), int(height)
    except (TypeError, ValueError, OverflowError):
        raise FormatError(f"{what} gives an unreadable sensor size ({width!r} x {height!r})", where=where) from None
    if not (0 < w <= MAX_SENSOR and 0 < h <= MAX_SENSOR):
        raise FormatError(f"{what} gives an impossible sensor size {w} x {h} (each side must be 1..{MAX_SENSOR})",
                          where=where)
    return w, h


def check_values(columns: dict, k0: int, where) -> None:
    """A one-line error if column ``t``, ``x`` or ``y`` of events ``k0``... (before the cast to the event
    type) holds a value the event type cannot: x or y outside 0..65535, a time that is not finite."""
    for name, v in columns.items():
        if name == "t":
            bad = ~np.isfinite(v) | (np.abs(v) > 2.0 ** 62) if v.dtype.kind == "f" else None
        elif name in "xy" and (v.dtype.kind in "if" or (v.dtype.kind == "u" and v.dtype.itemsize > 2)):
            bad = ~((v >= 0) & (v <= 0xFFFF))  # NaN too
        else:
            bad = None
        if bad is not None and len(v) and bad.any():
            i = int(np.argmax(bad))
            raise FormatError(f"event {k0 + i} has {name} = {v[i]}, which no event can have", where=where)


def pread(fd: int, size: int, offset: int, where) -> bytes:
    """``os.pread`` with an OSError turned into a one-line :class:`FormatError`."""
    try:
        return os.pread(fd, size, offset)
    except OSError as exc:
        raise FormatError(exc.strerror or str(exc), where=where) from None


def header_end(buf: bytes, prefix: bytes) -> int:
    """Offset of the first byte after the lines of ``buf`` that start with ``prefix`` (one regex scan)."""
    rx = _HEADER_RX.get(prefix)
    if rx is None:
        rx = _HEADER_RX[prefix] = re.compile(b"(?:" + re.escape(prefix) + b"[^\n]*\n)*")
    pos = rx.match(buf).end()
    if buf.startswith(prefix, pos):
        pos = len(buf)  # the last header line runs to the end of the buffer
    return pos


def split_header(buf: bytes, prefix: bytes) -> tuple[list[str], int]:
    """:func:`read_text_header` over bytes already in memory (the same lines and offset)."""
    pos = header_end(buf, prefix)
    if pos == 0:
        return [], 0
    text = buf[:pos].decode("latin-1")
    parts = text.split("\n")
    if text.endswith("\n"):
        parts.pop()
    k = len(prefix)
    return [ln[k:].rstrip("\r") for ln in parts], pos


_HEADER_RX: dict = {}


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
