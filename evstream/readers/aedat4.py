"""AEDAT 4.0 (DV / dv-processing files), decoded here without trusting the file.

Files may also hold IMU, frame or trigger streams; only the chosen event stream is read (the first event
stream unless ``stream=`` names another). The header and every packet size are checked against the file
length before anything is allocated, and LZ4 packets are decompressed and converted by numba kernels that
check every offset (:mod:`evstream.readers.dvpackets`), so a damaged file yields every event before the
damage and then one :class:`~evstream.errors.FormatError` naming the byte offset -- it cannot hang.
ZSTD-compressed files (DV writes them only when asked) are decompressed by the ``aedat`` decoder, packet by
packet, after the same size checks.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys

import numpy as np

from evstream.errors import FormatError
from evstream.events import EVENT_DTYPE
from evstream.readers import dvpackets as dvp
from evstream.readers.base import Reader, check_path_size

WINDOW = 16 << 20  # bytes read at a time from files larger than base.SMALL_FILE


class Aedat4Reader(Reader):
    format = "aedat4"

    def __init__(self, path, sensor_size=None, stream: str | None = None, size: int | None = None,
                 blob: bytes | None = None):
        if size is None:
            path, size = check_path_size(path)
        super().__init__(path, sensor_size, blob, size)
        head = self._bytes(0, min(size, 18))
        if not head.startswith(dvp.MAGIC):
            raise FormatError("no '#!AER-DAT4.0' header: not an AEDAT 4.0 file", where=self.path, offset=0)
        if len(head) < 18:
            raise FormatError("truncated inside the header", where=self.path, offset=len(head))
        hs = struct.unpack_from("<i", head, 14)[0]
        if not 0 < hs <= min(size - 18, dvp.MAX_HEADER):
            raise FormatError(f"not a readable AEDAT 4.0 file: header size {hs} does not fit the {size}-byte file",
                              where=self.path, offset=14)
        try:
            info = dvp.parse_io_header(self._bytes(18, hs))
        except dvp.HeaderProblem as exc:
            raise FormatError(f"not a readable AEDAT 4.0 file: corrupt header ({exc})", where=self.path,
                              offset=18) from None
        self._data_start = 18 + hs
        table = info["data_table"]
        self._end = table if self._data_start <= table <= size else size  # packets end where the index starts
        self._compression = info["compression"]
        streams = info["streams"]
        self._known = np.zeros(max(streams, default=-1) + 1, np.uint8)
        self._known[list(streams)] = 1
        names = [s["name"] for s in streams.values()]
        events = {i: s for i, s in streams.items() if s["type"] == "EVTS"}
        if not events:
            raise FormatError(f"no event stream (streams: {', '.join(names) or 'none'})", where=self.path)
        if stream is None:
            self._stream_id = min(events)
        else:
            ids = [i for i, s in events.items() if stream in (s["name"], str(i))]
            if not ids:
                raise FormatError(f"no event stream named {stream!r} (event streams: "
                                  f"{[s['name'] for s in events.values()]})", where=self.path)
            self._stream_id = ids[0]
        s = events[self._stream_id]
        self.stream = s["name"]
        self.meta.update(format=self.format, camera=s["source"] or None, stream=self.stream, streams=names,
                         compression=dvp.COMPRESSIONS[self._compression])
        if sensor_size is None:
            self.sensor_size = (s["width"], s["height"])

    def _bytes(self, offset: int, n: int) -> bytes:
        if self._blob is not None or self._small():
            return self._load_blob()[offset:offset + n]
        with open(self.path, "rb") as f:
            f.seek(offset)
            return f.read(n)

    def _iter_events(self, max_events):
        if self._compression in (3, 4):
            yield from self._iter_zstd(max_events)
            return
        small = self._blob is not None or self._small()
        with contextlib.ExitStack() as stack:
            f = None if small else stack.enter_context(open(self.path, "rb"))
            yield from self._walk(f, max_events)

    def _window(self, f, pos: int, need: int):
        """(uint8 array, its file offset) holding at least ``need`` bytes from ``pos``; None if the file no
        longer has them (shortened while it was read)."""
        if f is None:
            data, base = np.frombuffer(self._load_blob(), np.uint8), 0
        else:
            f.seek(pos)
            data, base = np.frombuffer(f.read(max(WINDOW, need)), np.uint8), pos
        return (data, base) if base + len(data) >= pos + need else None

    def _walk(self, f, max_events):
        """Decode the packets of the event stream from ``f`` (None: from the blob)."""
        sid = self._stream_id
        pos, end = self._data_start, self._end
        data, base = self._window(f, pos, 0)
        scratch = np.empty(1 << 18, np.uint32)
        cap = max(1, min(max_events, self._size // 4 + 4096, 1 << 26))
        out, n = np.empty(cap, EVENT_DTYPE), 0
        w, h = self._limits()
        lz4 = self._compression in (1, 2)
        while True:
            p, n, code, need = dvp.decode_packets(data, pos - base, end - base, sid, self._known, lz4, scratch,
                                                  self._state, out, n, w, h)
            pos = base + p
            if code == dvp.OK:
                break
            if code == dvp.NEED_DATA and (more := self._window(f, pos, need)) is not None:
                data, base = more
            elif code == dvp.NEED_DATA:
                yield from _pieces(out[:n], max_events)
                yield out[:0], f"the file ended while it was read (shortened by another program?); the " \
                               f"{self._n_read} events before it were read", pos
                return
            elif code == dvp.OUT_FULL:
                if n + need <= max_events:
                    out = _grown(out, n, min(max_events, max(2 * len(out), n + need)))
                elif n:
                    yield from _pieces(out[:n], max_events)
                    out, n = np.empty(cap, EVENT_DTYPE), 0
                else:
                    out = np.empty(need, EVENT_DTYPE)  # one packet larger than a chunk: cut it below
            elif code == dvp.SCRATCH_SMALL and 4 * len(scratch) < dvp.MAX_PACKET:
                scratch = np.empty(min(4 * len(scratch), dvp.MAX_PACKET // 4), np.uint32)
            elif code in (dvp.BAD_TIME, dvp.OUT_OF_SENSOR):
                good, problem, _ = self._decoded(out, n, code, None)
                yield from _pieces(good, max_events)
                yield good[:0], problem, pos
                return
            else:
                yield from _pieces(out[:n], max_events)
                yield out[:0], self._packet_problem(code, need, end - pos - 8), pos
                return
        yield from _pieces(out[:n], max_events)

    def _packet_problem(self, code, size, room) -> str:
        what = dvp.PROBLEMS[code].format(size=size, room=max(room, 0))
        kind = "truncated or corrupt AEDAT 4.0" if code == dvp.BAD_SIZE else "corrupt AEDAT 4.0 packet"
        return f"{kind} ({what}); the {self._n_read} events before it were read"

    def _iter_zstd(self, max_events):
        """ZSTD packets through the ``aedat`` decoder, after every packet size was checked here."""
        import aedat

        n_ours, bad_at = self._packet_chain()
        pending, n_pending, problem, seen = [], 0, None, 0
        try:
            with _rust_panics_quiet():
                packets = iter(aedat.Decoder(str(self.path)))
            while True:
                with _rust_panics_quiet():  # a panic's report would be a second line on stderr
                    packet = next(packets, None)
                if packet is None:
                    break
                if packet.get("stream_id") != self._stream_id or "events" not in packet:
                    continue
                if seen == n_ours:
                    break
                seen += 1
                a = packet["events"]
                ev = np.empty(len(a), EVENT_DTYPE)
                ev["t"], ev["x"], ev["y"], ev["p"] = a["t"], a["x"], a["y"], a["on"] != 0
                pending.append(ev)
                n_pending += len(ev)
                if n_pending >= max_events:
                    if (yield from self._checked_parts(pending, max_events)):
                        return
                    pending, n_pending = [], 0
        except BaseException as exc:  # not GeneratorExit / KeyboardInterrupt: those propagate
            if not _decoder_failed(exc):
                raise
            problem = f"corrupt ZSTD packet ({_first_line(exc)})"
        if pending and (yield from self._checked_parts(pending, max_events)):
            return
        if problem is None and bad_at is not None:
            problem = "truncated or corrupt AEDAT 4.0 (a packet header does not fit the file or its streams)"
        if problem is not None:
            yield np.zeros(0, EVENT_DTYPE), f"{problem}; the {self._n_read} events before it were read", bad_at

    def _packet_chain(self) -> tuple[int, int | None]:
        """(packets of the event stream before the first packet whose size does not fit the file, the
        offset of that packet or None), from the 8-byte packet headers alone."""
        pos, end, n = self._data_start, self._end, 0
        with open(self.path, "rb") as f:
            while pos < end:
                f.seek(pos)
                hb = f.read(8)
                if len(hb) < 8:
                    return n, pos
                sid, size = struct.unpack("<ii", hb)
                if size < 0 or size > end - pos - 8 or not 0 <= sid < len(self._known) or not self._known[sid]:
                    return n, pos
                n += sid == self._stream_id
                pos += 8 + size
        return n, None


def _pieces(events: np.ndarray, max_events: int):
    for s in range(0, len(events), max_events):
        yield events[s:s + max_events], None, None


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


def _grown(out: np.ndarray, used: int, size: int) -> np.ndarray:
    bigger = np.empty(size, EVENT_DTYPE)
    bigger[:used] = out[:used]
    return bigger


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
