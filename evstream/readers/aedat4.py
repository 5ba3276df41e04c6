"""AEDAT 4.0 (DV / dv-processing) through ``dv.io.MonoCameraRecording``.

Files may also hold IMU, frame or trigger streams; only the chosen event stream is read (the first event
stream unless ``stream=`` names another). Each batch's ``EventStore.numpy()`` (dv-processing's 16-byte
records) is converted into our packed event type by one numba pass that also checks time order and bounds.

dv-processing refuses a truncated or damaged file outright (its packet table is at the end). Then the
packets before the damage are salvaged with the ``aedat`` decoder (which reads packets in order), delivered,
and the damage is reported as a :class:`~evstream.errors.FormatError`.
"""

from __future__ import annotations

import contextlib
import os
import sys

import numpy as np

from evstream.errors import FormatError
from evstream.events import EVENT_DTYPE
from evstream.readers._kernels import check_events, convert_dv
from evstream.readers.base import Reader, check_path_size


class Aedat4Reader(Reader):
    format = "aedat4"

    def __init__(self, path, sensor_size=None, stream: str | None = None, size: int | None = None):
        import dv_processing as dv

        if size is None:
            path, size = check_path_size(path)
        super().__init__(path, sensor_size, size=size)
        self._damage = None
        self._rec = None
        try:
            rec = dv.io.MonoCameraRecording(str(self.path))
        except Exception as exc:  # dv raises RuntimeError / std::exception subclasses
            self._damage = _first_line(exc)
            self._init_salvage(sensor_size, stream)
            return
        names = list(rec.getStreamNames())
        event_streams = [n for n in names if rec.isStreamOfEventType(n)]
        if stream is None:
            if not event_streams:
                raise FormatError(f"no event stream (streams: {', '.join(names) or 'none'})", where=self.path)
            stream = event_streams[0]
        elif stream not in event_streams:
            raise FormatError(f"no event stream named {stream!r} (event streams: {event_streams})",
                              where=self.path)
        self.stream = stream
        res = rec.getEventResolution()
        self.meta.update(format=self.format, camera=rec.getCameraName(), stream=stream, streams=names)
        if sensor_size is None:
            self.sensor_size = (int(res[0]), int(res[1])) if res is not None else (0, 0)
        self._rec = rec  # reused by the first pass over the events (opening parses the whole index)

    def _init_salvage(self, sensor_size, stream):
        import aedat

        try:
            with _rust_panics_quiet():
                streams = aedat.Decoder(str(self.path)).id_to_stream()
        except BaseException as exc:
            if not _decoder_failed(exc):
                raise
            raise FormatError(f"not a readable AEDAT 4.0 file ({self._damage})", where=self.path) from None
        ids = [i for i, s in streams.items() if s.get("type") == "events"]
        if not ids:
            raise FormatError(f"no event stream, and the file is damaged ({self._damage})", where=self.path)
        self.stream = str(ids[0]) if stream is None else stream
        self._stream_id = ids[0]
        self.meta.update(format=self.format, damaged=self._damage)
        if sensor_size is None:
            self.sensor_size = (int(streams[ids[0]]["width"]), int(streams[ids[0]]["height"]))

    def _iter_salvaged(self, max_events):
        import aedat

        pending, n_pending, n = [], 0, 0
        try:
            for packet in aedat.Decoder(str(self.path)):
                if packet.get("stream_id") != self._stream_id or "events" not in packet:
                    continue
                a = packet["events"]
                ev = np.empty(len(a), EVENT_DTYPE)
                ev["t"], ev["x"], ev["y"], ev["p"] = a["t"], a["x"], a["y"], a["on"]
                pending.append(ev)
                n_pending += len(ev)
                if n_pending >= max_events:
                    n += n_pending
                    yield self._check(np.concatenate(pending))
                    pending, n_pending = [], 0
        except BaseException as exc:  # not GeneratorExit / KeyboardInterrupt: those propagate
            if not _decoder_failed(exc):
                raise
            self._damage = f"{self._damage}; packets end early: {_first_line(exc)}"
        if pending:
            n += n_pending
            yield self._check(np.concatenate(pending))
        raise FormatError(f"truncated or corrupt AEDAT 4.0 ({self._damage}); the {n} events before the damage "
                          f"were read", where=self.path)

    def close(self):
        self._rec = None

    def _iter_events(self, max_events):
        import dv_processing as dv

        if self._damage is not None:
            yield from self._iter_salvaged(max_events)
            return

        rec, self._rec = self._rec, None
        if rec is None:
            rec = dv.io.MonoCameraRecording(str(self.path))
        # Each batch is converted as soon as it is read, while dv's copy of it is still in cache, into one
        # output array sized from the file (untouched pages cost nothing) and grown if that was too small.
        cap = max(1, min(max_events, self._size // 4 + 4096, 1 << 26))
        out, off = np.empty(cap, EVENT_DTYPE), 0
        w, h = self._limits()
        while True:
            try:
                batch = rec.getNextEventBatch(self.stream)
            except Exception as exc:
                if off:
                    yield out[:off], None, None
                raise FormatError(f"corrupt or truncated event packet ({_first_line(exc)})",
                                  where=self.path) from None
            if batch is None:
                if rec.isRunning(self.stream):
                    continue
                break
            a = batch.numpy()
            m = len(a)
            if off + m > len(out):
                out = _grown(out, off, off + m)
            if a.dtype == DV_EVENT:
                n, code, _ = convert_dv(a.view(np.uint64), self._state, out, off, w, h)
            else:  # a layout this code does not know: convert field by field, then check
                part = out[off:off + m]
                part["t"], part["x"], part["y"], part["p"] = a["timestamp"], a["x"], a["y"], a["polarity"]
                n, code, _ = check_events(part["t"], part["x"], part["y"], self._state, w, h)
            if code:
                yield self._decoded(out, off + n, code, None)
                return
            off += m
            if off >= max_events:
                yield out[:off], None, None
                out, off = np.empty(cap, EVENT_DTYPE), 0
        if off:
            yield out[:off], None, None


# dv-processing's EventStore.numpy() records (checked against each batch before the fast conversion)
DV_EVENT = np.dtype({"names": ["timestamp", "x", "y", "polarity"], "formats": ["<i8", "<i2", "<i2", "i1"],
                     "offsets": [0, 8, 10, 12], "itemsize": 16})


def _decoder_failed(exc: BaseException) -> bool:
    """An error of the aedat decoder: an Exception, or a pyo3 PanicException (a BaseException subclass in
    the ``pyo3_runtime`` module, which cannot be imported to name it)."""
    return isinstance(exc, Exception) or type(exc).__module__ == "pyo3_runtime"


@contextlib.contextmanager
def _rust_panics_quiet():
    """Silence the Rust panic hook's stderr report (the panic itself arrives as an exception and becomes our
    one-line error)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _grown(out: np.ndarray, used: int, need: int) -> np.ndarray:
    bigger = np.empty(max(need, 2 * len(out)), EVENT_DTYPE)
    bigger[:used] = out[:used]
    return bigger


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
