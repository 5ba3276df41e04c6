"""Prophesee recordings: DAT (``*_td.dat``, as in N-Cars), EVT 2.0 and EVT 3.0 ``.raw``.

All three start with ``% `` text header lines (EVT files may or may not end them with ``% end``).
DAT v2: after the header one byte event type and one byte event size, then 8 bytes/event: uint32 t (µs)
and uint32 word with x = bits 0-13, y = bits 14-27, p = bit 28.
EVT 2.0: 32-bit little-endian words; EVT 3.0: 16-bit words (decoded to the spec, t monotonic across
time-high wraps). See :mod:`evstream.readers._kernels`.
"""

from __future__ import annotations

import re

import numpy as np

from evstream.errors import FormatError
from evstream.events import EVENT_DTYPE
from evstream.readers import _kernels
from evstream.readers.base import NO_EVENTS, U1, U2, U4, Reader, check_path_size, checked_sensor

# Sensor sizes by camera generation when the header has no geometry line.
_PLUGIN_SENSORS = {"gen3": (640, 480), "gen31": (640, 480), "gen41": (1280, 720), "imx636": (1280, 720),
                   "imx646": (1280, 720), "imx8": (1280, 720), "gen4": (1280, 720), "genx320": (320, 320)}
_PLUGINS_LONGEST_FIRST = sorted(_PLUGIN_SENSORS, key=len, reverse=True)
ATIS_SENSOR = (304, 240)  # the ATIS/Chronocam sensor of DAT files (N-Cars crops are smaller)


def parse_header(lines: list[str]) -> dict:
    meta = {}
    for line in lines:
        line = line.strip()
        if not line or line == "end":
            continue
        key, _, val = line.partition(" ")
        meta[key] = val.strip()
    return meta


def sensor_from_header(meta: dict, default, where=None):
    """The sensor size the header gives (checked: a damaged size is a one-line FormatError), else
    ``default``."""
    return checked_sensor(*_header_sensor(meta, default), where)


def _header_sensor(meta: dict, default):
    geo = meta.get("geometry") or meta.get("Geometry")
    if geo:
        m = re.match(r"(\d+)\s*x\s*(\d+)", geo)
        if m:
            return m.group(1), m.group(2)
    if "Width" in meta and "Height" in meta:
        return meta["Width"], meta["Height"]
    fmt = meta.get("format", "")
    w = re.search(r"width=(\d+)", fmt)
    h = re.search(r"height=(\d+)", fmt)
    if w and h:
        return w.group(1), h.group(1)
    plugin = meta.get("plugin_name", "").lower()
    for key in _PLUGINS_LONGEST_FIRST:
        if key in plugin:
            return _PLUGIN_SENSORS[key]
    return default


class _PropheseeReader(Reader):
    def __init__(self, path, sensor_size=None, blob=None, size=None):
        if size is None:
            path, size = check_path_size(path)
        super().__init__(path, sensor_size, blob, size)
        lines, self._data_start = self._header(b"% ")
        if not lines:
            raise FormatError("no '% ' header: not a Prophesee file", where=self.path, offset=0)
        self._hdr = parse_header(lines)  # kept apart: the header's own "format" line names the geometry
        self.meta.update(self._hdr)
        self.meta["format"] = self.format


class DatReader(_PropheseeReader):
    format = "dat"

    def __init__(self, path, sensor_size=None, blob=None, size=None):
        super().__init__(path, sensor_size, blob, size)
        tb = self._block(self._data_start, U1, 2).tobytes()
        if len(tb) < 2:
            raise FormatError("truncated after the header (no event type/size bytes)", where=self.path,
                              offset=self._data_start)
        ev_type, ev_size = tb[0], tb[1]
        if ev_size != 8:
            raise FormatError(f"unsupported DAT event size {ev_size} (expected 8)", where=self.path,
                              offset=self._data_start + 1)
        self.meta["ev_type"] = int(ev_type)
        self._first = self._data_start + 2
        if sensor_size is None:
            self.sensor_size = sensor_from_header(self._hdr, ATIS_SENSOR, self.path)

    def _iter_events(self, max_events):
        yield from self._fixed_records(self._first, _kernels.decode_dat, max_events)


class Evt2Reader(_PropheseeReader):
    format = "evt2"
    _state_size = 2  # last t, time high

    def __init__(self, path, sensor_size=None, blob=None, size=None):
        super().__init__(path, sensor_size, blob, size)
        if sensor_size is None:
            self.sensor_size = sensor_from_header(self._hdr, (640, 480), self.path)

    def _iter_events(self, max_events):
        n_words, rest = divmod(self._size - self._data_start, 4)
        w, h = self._limits()
        for s in range(0, n_words, max_events):
            words = self._block(self._data_start + 4 * s, U4, min(max_events, n_words - s))
            out = np.empty(len(words), EVENT_DTYPE)
            n, code, i = _kernels.decode_evt2(words, self._state, out, w, h)
            if code:
                yield self._decoded(out, n, code, self._data_start + 4 * (s + i))
                return
            yield out[:n], None, None
        if rest:
            problem = f"truncated: {rest} stray bytes after the last whole word"
            yield NO_EVENTS, problem, self._data_start + 4 * n_words


class Evt3Reader(_PropheseeReader):
    format = "evt3"
    _state_size = 7  # last t, time high, time low, y, base x, base p, time-high epoch

    def __init__(self, path, sensor_size=None, blob=None, size=None):
        super().__init__(path, sensor_size, blob, size)
        if sensor_size is None:
            self.sensor_size = sensor_from_header(self._hdr, (1280, 720), self.path)

    def _iter_events(self, max_events):
        n_words, rest = divmod(self._size - self._data_start, 2)
        w, h = self._limits()
        step = max(1, min(max_events, 1 << 36) // 12)  # a VECT_12 word can hold 12 events
        for s in range(0, n_words, step):
            words = self._block(self._data_start + 2 * s, U2, min(step, n_words - s))
            out = np.empty(len(words) * 12, EVENT_DTYPE)
            n, code, i = _kernels.decode_evt3(words, self._state, out, w, h)
            if code:
                yield self._decoded(out, n, code, self._data_start + 2 * (s + i))
                return
            yield out[:n], None, None
        if rest:
            yield NO_EVENTS, "truncated: 1 stray byte after the last whole word", self._data_start + 2 * n_words
