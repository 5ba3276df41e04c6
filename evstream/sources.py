"""Event sources behind one interface: recordings, DV network streams, DVS cameras (and webcams through
the emulator).

    with open_source("recording.aedat4", speed=1.0) as src:   # or "tcp://127.0.0.1:7777", "camera"
        print(src.sensor_size)
        for chunk in src:                                     # EventChunk objects, in time order
            ...

The source string is the same everywhere (CLI, GUI, config): a file path, ``tcp://HOST:PORT`` for a DV
network stream, ``camera`` or ``camera:SERIAL`` for a DVS camera, ``webcam[:N]`` or a video file for the
emulator.
"""

from __future__ import annotations

import re
import struct
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from evstream.errors import EvstreamError, StreamError
from evstream.events import EVENT_DTYPE, EventChunk
from evstream.stream import Source  # noqa: F401  (the contract every source keeps: evstream/stream.py)

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


class FileSource(Source):
    """A recording, read in bounded chunks, as fast as possible (``speed=None``) or paced at real time x
    ``speed``; ``seek(t_us)`` (relative to the first event) and ``loop`` for replay.

    Chunks are at most ``chunk_us`` of recording time (paced replay) so a live view stays smooth.
    """

    is_live = False
    can_seek = True

    def __init__(self, path, speed: float | None = None, loop: bool = False, chunk_us: int = 10_000,
                 max_events: int = 200_000):
        from evstream.readers import open_reader

        self.path = Path(path)
        self._reader = open_reader(self.path)
        self.sensor_size = self._reader.sensor_size
        self.meta = dict(self._reader.meta)
        self.speed = speed
        self.loop = loop
        self.chunk_us = int(chunk_us)
        self.max_events = int(max_events)
        self._t_first, self._t_last = self._time_range()
        self.position_us = 0
        self._seek_to: int | None = None
        self._closed = False

    def _time_range(self) -> tuple[int, int]:
        """First and last event time, from one pass. A file damaged after some good events still opens:
        those events play, and its FormatError comes when playback reaches the damage (``damage`` says it
        now); a file with no readable event fails here."""
        from evstream.errors import FormatError

        first = last = None
        self.damage = None
        try:
            for c in self._reader.chunks(self.max_events * 5):
                if first is None:
                    first = c.t_start
                last = c.t_end
        except FormatError as exc:
            if first is None:
                raise
            self.damage = str(exc)
        return (first or 0, last or 0)

    @property
    def duration_us(self) -> int:
        return self._t_last - self._t_first

    def seek(self, t_us: int) -> None:
        """Continue from ``t_us`` after the first event (takes effect at the next chunk)."""
        self._seek_to = int(min(max(0, t_us), self.duration_us))

    def __iter__(self) -> Iterator[EventChunk]:
        while not self._closed:
            start = self._seek_to or 0
            self._seek_to = None
            restarted = yield from self._play(self._t_first + start)
            if not restarted and not self.loop:
                return

    def _play(self, t_from: int):
        wall0, rec0 = time.perf_counter(), t_from
        for c in self._reader.chunks(self.max_events):
            ev = c.events
            if ev["t"][-1] < t_from:
                continue
            ev = ev[np.searchsorted(ev["t"], t_from):]
            # cut into pieces of at most chunk_us recording time
            edges = np.searchsorted(ev["t"], np.arange(int(ev["t"][0]) + self.chunk_us,
                                                       int(ev["t"][-1]) + self.chunk_us, self.chunk_us))
            for piece in np.split(ev, edges):
                if self._closed:
                    return False
                if self._seek_to is not None:
                    return True
                if len(piece) == 0:
                    continue
                if self.speed:
                    due = wall0 + (int(piece["t"][-1]) - rec0) * 1e-6 / self.speed
                    delay = due - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                self.position_us = int(piece["t"][-1]) - self._t_first
                yield EventChunk(piece, self.sensor_size, self.meta)
        return False

    def close(self):
        self._closed = True
        self._reader.close()


def _parse_host(spec: str) -> tuple[str, int]:
    m = re.fullmatch(r"tcp://([^:/]+|\[[^\]]+\]):(\d+)/?", spec)
    if not m:
        raise EvstreamError(f"bad network source {spec!r}: expected tcp://HOST:PORT")
    return m.group(1).strip("[]"), int(m.group(2))


class _Dropped(Exception):
    """The connection ended or stalled (the server may come back)."""


class NetworkSource(Source):
    """A DV event stream over TCP, as DV software, DV cameras and ``evstream serve`` send it (the AEDAT 4.0
    network protocol, decoded by :mod:`evstream.readers.dvpackets`; uncompressed or LZ4 packets).

    Nothing the server says is trusted: the stream header and each packet have size limits
    (``max_header`` / ``max_packet`` bytes) and are checked before use, and every read has a time limit
    (``header_s`` for the stream header after connecting, ``stall_s`` inside a packet) -- a server that
    sends garbage, huge sizes or nothing at all gives one :class:`~evstream.errors.StreamError` line.

    When the connection drops, the source reconnects with exponential back-off (``retry_s`` doubling up to
    ``max_retry_s``) and keeps iterating; ``status`` says what is going on and ``on_status`` (a callback
    taking one string) is told of every change. After ``give_up_s`` without a server (``None``: never) the
    iteration raises :class:`~evstream.errors.StreamError`: a stream that is gone for good is an error,
    not a quiet end. ``idle_s`` (default ``None``: wait) treats that long without a packet as a drop.
    """

    is_live = True

    def __init__(self, host: str = "127.0.0.1", port: int = 7777, retry_s: float = 0.2,
                 max_retry_s: float = 5.0, give_up_s: float | None = 30.0,
                 on_status: Callable[[str], None] | None = None, connect_s: float = 5.0, header_s: float = 5.0,
                 stall_s: float = 10.0, idle_s: float | None = None, max_header: int = 1 << 20,
                 max_packet: int = 1 << 26):
        from evstream.readers import dvpackets

        self._dvp = dvpackets
        self.host, self.port = host, int(port)
        self.where = f"tcp://{host}:{port}"
        self.retry_s, self.max_retry_s, self.give_up_s = retry_s, max_retry_s, give_up_s
        self.connect_s, self.header_s, self.stall_s, self.idle_s = connect_s, header_s, stall_s, idle_s
        self.max_header, self.max_packet = int(max_header), min(int(max_packet), dvpackets.MAX_PACKET)
        self.on_status = on_status
        self.reconnects = 0
        self.packets = 0
        self._closed = False
        self._sock = None
        self._scratch = np.empty(1 << 16, np.uint32)
        try:
            self._connect()
        except _Dropped as exc:
            raise StreamError(f"cannot connect to DV event stream ({exc})", where=self.where) from None
        self.meta = {"format": "dv-network", "path": self.where, "camera": self._camera}
        self._set_status(f"connected to {self.where}")

    def _set_status(self, text: str) -> None:
        self.status = text
        if self.on_status:
            self.on_status(text)

    # --- connection --------------------------------------------------------------------------------------
    def _connect(self) -> None:
        """Connect and read the stream header; raises _Dropped (may come back) or StreamError (never will)."""
        import socket

        self._drop()
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_s)
        except OSError as exc:
            raise _Dropped(_os_reason(exc)) from None
        sock.settimeout(0.25)  # short waits, so close() from another thread is noticed
        self._sock = sock
        try:
            hs = struct.unpack("<i", self._recv(4, self.header_s, self.header_s, "the stream header"))[0]
            if not 0 < hs <= self.max_header:
                raise StreamError(f"not a DV event stream (declared header size {hs})", where=self.where)
            info = self._dvp.parse_io_header(self._recv(hs, self.header_s, self.header_s, "the stream header"))
        except self._dvp.HeaderProblem as exc:
            self._drop()
            raise StreamError(f"not a DV event stream ({exc})", where=self.where) from None
        except BaseException:
            self._drop()
            raise
        events = {i: s for i, s in info["streams"].items() if s["type"] == "EVTS"}
        if not events:
            self._drop()
            raise StreamError("the stream carries no events", where=self.where)
        if info["compression"] not in (0, 1, 2):
            self._drop()
            raise StreamError(f"{self._dvp.COMPRESSIONS[info['compression']]}-compressed streams are not supported "
                              f"(ask the server for LZ4 or none)", where=self.where)
        self._lz4 = info["compression"] != 0
        self._stream_id = min(events)
        s = events[self._stream_id]
        size = (s["width"], s["height"])
        if getattr(self, "sensor_size", None) not in (None, (0, 0), size):
            self._drop()
            raise StreamError(f"the server came back with another sensor ({size[0]}x{size[1]} instead of "
                              f"{self.sensor_size[0]}x{self.sensor_size[1]})", where=self.where)
        self.sensor_size = size
        self._camera = s["source"] or None
        self._known = np.zeros(max(info["streams"]) + 1, np.uint8)
        self._known[list(info["streams"])] = 1

    def _recv(self, n: int, first_s: float | None, stall_s: float | None, what: str) -> bytes:
        """Exactly ``n`` bytes; _Dropped on end of stream, error, close(), or no byte for ``first_s`` before
        the first one / ``stall_s`` between later ones (None: no limit)."""
        import socket

        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        limit = first_s
        last = time.monotonic()
        while got < n:
            if self._closed or self._sock is None:
                raise _Dropped("closed")
            try:
                k = self._sock.recv_into(view[got:], min(n - got, 1 << 20))
            except socket.timeout:
                if limit is not None and time.monotonic() - last > limit:
                    raise _Dropped(f"no data for {limit:g} s while waiting for {what}") from None
                continue
            except OSError as exc:
                raise _Dropped(_os_reason(exc)) from None
            if k == 0:
                raise _Dropped("the server closed the connection" + (
                    " before sending a stream header (it may be full, or not a DV stream)"
                    if what == "the stream header" else ""))
            got += k
            last = time.monotonic()
            limit = stall_s
        return bytes(buf)

    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    @classmethod
    def from_spec(cls, spec: str, **opts) -> "NetworkSource":
        host, port = _parse_host(spec)
        return cls(host, port, **opts)

    # --- packets -----------------------------------------------------------------------------------------
    def _next_events(self) -> np.ndarray | None:
        """The events of the next packet of the event stream (None for packets of other streams)."""
        from evstream.readers._kernels import NO_LIMIT

        dvp = self._dvp
        head = self._recv(8, self.idle_s, self.stall_s, "a packet")
        sid, size = struct.unpack("<ii", head)
        if not 0 <= size <= self.max_packet:
            raise StreamError(f"bad packet from the server (declared size {size}; the limit is {self.max_packet})",
                              where=self.where)
        if not 0 <= sid < len(self._known) or not self._known[sid]:
            raise StreamError(f"bad packet from the server (stream {sid} was not announced)", where=self.where)
        body = self._recv(size, self.stall_s, self.stall_s, "a packet")
        self.packets += 1
        if sid != self._stream_id:
            return None
        data = np.frombuffer(head + body, np.uint8)
        out = np.empty(max(1, size // 8), EVENT_DTYPE)  # an uncompressed packet holds at most size / 16
        state = np.full(1, -(1 << 62), np.int64)  # time order is checked within a packet (a looping server
        w, h = self.sensor_size  # jumps back between packets)
        while True:
            _, n, code, need = dvp.decode_packets(data, 0, len(data), sid, self._known, self._lz4, self._scratch,
                                                  state, out, 0, w or NO_LIMIT, h or NO_LIMIT)
            if code == dvp.OK:
                return out[:n]
            if code == dvp.OUT_FULL:
                out = np.empty(need, EVENT_DTYPE)
            elif code == dvp.SCRATCH_SMALL and 4 * len(self._scratch) < dvp.MAX_PACKET:
                self._scratch = np.empty(min(4 * len(self._scratch), dvp.MAX_PACKET // 4), np.uint32)
            else:
                what = {dvp.BAD_TIME: "its timestamps go backwards", dvp.OUT_OF_SENSOR:
                        f"an event lies outside the {w}x{h} sensor"}.get(code) or \
                    dvp.PROBLEMS.get(code, "corrupt").format(size=need, room=size)
                raise StreamError(f"bad packet from the server ({what})", where=self.where)

    def __iter__(self) -> Iterator[EventChunk]:
        while not self._closed:
            try:
                if self._sock is None:
                    raise _Dropped("not connected")
                ev = self._next_events()
            except _Dropped:
                if self._closed:
                    return
                self._reconnect()
                continue
            if ev is not None and len(ev):
                yield EventChunk(ev, self.sensor_size, self.meta)

    def _reconnect(self) -> None:
        """Back-off reconnecting; returns once connected, raises StreamError when giving up."""
        self._set_status(f"stream {self.where} dropped; reconnecting")
        self._drop()
        delay, t0, reason = self.retry_s, time.monotonic(), "closed"
        while not self._closed:
            time.sleep(delay)
            try:
                self._connect()
            except _Dropped as exc:
                reason = str(exc)
            else:
                self.reconnects += 1
                self._set_status(f"reconnected to {self.where} (reconnect #{self.reconnects})")
                return
            waited = time.monotonic() - t0
            if self.give_up_s is not None and waited >= self.give_up_s:
                self._set_status(f"gave up on {self.where} after {waited:.1f} s")
                raise StreamError(f"the stream ended and did not come back within {self.give_up_s:g} s "
                                  f"(last attempt: {reason})", where=self.where)
            delay = min(delay * 2, self.max_retry_s)

    def close(self):
        self._closed = True
        self._drop()


def _os_reason(exc: OSError) -> str:
    return (exc.strerror or str(exc) or type(exc).__name__).strip()


class CameraSource(Source):
    """A DVS camera through ``dv.io.camera.open()`` (any, or the one with ``serial``)."""

    is_live = True

    def __init__(self, serial: str | None = None):
        import dv_processing as dv

        try:
            self._cam = dv.io.camera.open(serial) if serial else dv.io.camera.open()
        except (IndexError, RuntimeError) as exc:
            what = f" with serial {serial}" if serial else ""
            raise StreamError(f"no DVS camera found{what}") from None
        res = self._cam.getEventResolution()
        self.sensor_size = (int(res[0]), int(res[1])) if res is not None else (0, 0)
        self.meta = {"format": "dv-camera", "path": f"camera:{self._cam.getCameraName()}",
                     "camera": self._cam.getCameraName()}
        self._closed = False

    def __iter__(self) -> Iterator[EventChunk]:
        from evstream.writers import from_dv_store

        while not self._closed:
            try:
                if not self._cam.isRunning():
                    return  # unplugged: the stream ends cleanly
                batch = self._cam.getNextEventBatch()
            except Exception:
                return
            if batch is None or batch.size() == 0:
                time.sleep(0.001)
                continue
            yield EventChunk(from_dv_store(batch), self.sensor_size, self.meta)

    def close(self):
        self._closed = True
        self._cam = None


def open_source(spec: str, **opts) -> Source:
    """The source named by ``spec``: a file path, ``tcp://HOST:PORT``, ``camera[:SERIAL]``, ``webcam[:N]``
    or a video file. ``opts`` go to the source (``speed``, ``loop`` for files...)."""
    spec = str(spec)
    if spec.startswith("tcp://"):
        return NetworkSource.from_spec(spec, **opts)
    if spec == "camera" or spec.startswith("camera:"):
        return CameraSource(spec.partition(":")[2] or None)
    if spec == "webcam" or re.fullmatch(r"webcam:\d+", spec):
        from evstream.emulator import EmulatorSource

        return EmulatorSource.from_webcam(int(spec.partition(":")[2] or 0), **opts)
    if Path(spec).suffix.lower() in VIDEO_EXTENSIONS:
        from evstream.emulator import EmulatorSource

        return EmulatorSource.from_video(spec, **opts)
    file_opts = {k: v for k, v in opts.items() if k in ("speed", "loop", "chunk_us", "max_events")}
    return FileSource(spec, **file_opts)
