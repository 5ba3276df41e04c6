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
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from evstream.errors import EvstreamError, StreamError
from evstream.events import EventChunk
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
        first = last = None
        for c in self._reader.chunks(self.max_events * 5):
            if first is None:
                first = c.t_start
            last = c.t_end
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


class NetworkSource(Source):
    """A DV event stream over TCP (``dv.io.NetworkReader``), as DV software and DV cameras send it.

    When the server goes away the source reconnects with exponential back-off (``retry_s`` doubling up to
    ``max_retry_s``) and keeps iterating; ``status`` says what is going on and ``on_status`` (a callback
    taking one string) is told of every change. ``give_up_s`` ends the stream after that long without a
    server (``None``: never). Opening fails with one line naming host:port if no server answers.
    """

    is_live = True

    def __init__(self, host: str = "127.0.0.1", port: int = 7777, retry_s: float = 0.2,
                 max_retry_s: float = 5.0, give_up_s: float | None = 30.0,
                 on_status: Callable[[str], None] | None = None):
        self.host, self.port = host, int(port)
        self.where = f"tcp://{host}:{port}"
        self.retry_s, self.max_retry_s, self.give_up_s = retry_s, max_retry_s, give_up_s
        self.on_status = on_status
        self.reconnects = 0
        self._closed = False
        self._reader = self._connect()
        if self._reader is None:
            raise StreamError(f"cannot connect to DV event stream ({self._last_error})", where=self.where)
        res = self._reader.getEventResolution()
        self.sensor_size = (int(res[0]), int(res[1])) if res is not None else (0, 0)
        self.meta = {"format": "dv-network", "path": self.where, "camera": self._reader.getCameraName()}
        self._set_status(f"connected to {self.where}")

    def _set_status(self, text: str) -> None:
        self.status = text
        if self.on_status:
            self.on_status(text)

    def _connect(self):
        import dv_processing as dv

        try:
            reader = dv.io.NetworkReader(self.host, self.port)
        except Exception as exc:
            self._last_error = (str(exc).splitlines()[0].split(" [")[0] if str(exc) else type(exc).__name__)
            return None
        if not reader.isEventStreamAvailable():
            self._last_error = "the stream carries no events"
            return None
        return reader

    @classmethod
    def from_spec(cls, spec: str, **opts) -> "NetworkSource":
        host, port = _parse_host(spec)
        return cls(host, port, **opts)

    def __iter__(self) -> Iterator[EventChunk]:
        while not self._closed:
            try:
                batch = self._reader.getNextEventBatch()
                running = self._reader.isRunning()
            except Exception:
                batch, running = None, False
            if batch is not None and batch.size() > 0:
                from evstream.writers import from_dv_store

                yield EventChunk(from_dv_store(batch), self.sensor_size, self.meta)
                continue
            if running:
                time.sleep(0.001)
                continue
            if not self._reconnect():
                return

    def _reconnect(self) -> bool:
        self._set_status(f"stream {self.where} dropped; reconnecting")
        self._reader = None
        delay, waited = self.retry_s, 0.0
        while not self._closed:
            time.sleep(delay)
            waited += delay
            reader = self._connect()
            if reader is not None:
                self._reader = reader
                self.reconnects += 1
                self._set_status(f"reconnected to {self.where} (reconnect #{self.reconnects})")
                return True
            if self.give_up_s is not None and waited >= self.give_up_s:
                self._set_status(f"gave up on {self.where} after {waited:.1f} s")
                return False
            delay = min(delay * 2, self.max_retry_s)
        return False

    def close(self):
        self._closed = True
        self._reader = None


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
