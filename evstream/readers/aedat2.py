"""jAER / cAER AEDAT 2.0 and 3.1.

AEDAT 2.0: ``#`` header lines (first ``#!AER-DAT2.0``), then big-endian int32 address + int32 timestamp
(µs). The address layout depends on the chip named in the ``# AEChip:`` / ``HardwareInterface`` line:
- DVS128 (and the original CIFAR10-DVS files): x = (a >> 1) & 0x7F, y = (a >> 8) & 0x7F, p = a & 1;
- DAVIS240/346: bit 31 = 0 for DVS events (APS/IMU samples are skipped), y = (a >> 22) & 0x1FF,
  x = (a >> 12) & 0x3FF, p = (a >> 11) & 1.
AEDAT 3.1: ``#`` header lines ending in ``#!END-HEADER``, then packets of a 28-byte header (type, source,
size, ts offset, ts overflow, capacity, number, valid) and events; polarity packets (type 1) hold 8-byte
events: uint32 data (bit 0 valid, bit 1 polarity, y bits 2-16, x bits 17-31) and int32 timestamp, extended
by the packet's overflow counter.
"""

from __future__ import annotations

import re

import numpy as np

from evstream.errors import FormatError
from evstream.events import EVENT_DTYPE
from evstream.readers import _kernels
from evstream.readers.base import NO_EVENTS, Reader, check_path_size, checked_sensor

CHIPS = {"dvs128": (128, 128), "davis240": (240, 180), "davis346": (346, 260), "dvs240": (240, 180)}


def chip_from_header(lines: list[str]) -> str:
    text = "\n".join(lines).lower()
    squeezed = text.replace(" ", "")
    for key in ("davis346", "davis240", "dvs240", "dvs128"):
        if key in squeezed:
            return key
    m = re.search(r"sourcename|source\s*\d*\s*:\s*(\w+)", text)
    return m.group(1) if m and m.group(1) in CHIPS else "dvs128"


class Aedat2Reader(Reader):
    format = "aedat2"
    _state_size = 2  # last t, DAVIS layout

    def __init__(self, path, sensor_size=None, blob=None, size=None):
        if size is None:
            path, size = check_path_size(path)
        super().__init__(path, sensor_size, blob, size)
        lines, self._data_start = self._header(b"#")
        if not lines or not lines[0].startswith("!AER-DAT2"):
            raise FormatError("no '#!AER-DAT2.0' header: not an AEDAT 2.0 file", where=self.path, offset=0)
        self.chip = chip_from_header(lines[:40])
        self.meta.update(format=self.format, chip=self.chip, header_lines=len(lines))
        if sensor_size is None:
            self.sensor_size = CHIPS.get(self.chip, (128, 128))

    def _iter_events(self, max_events):
        self._state[1] = self.chip != "dvs128"
        yield from self._fixed_records(self._data_start, _kernels.decode_aedat2, max_events, "8-byte event")


class Aedat3Reader(Reader):
    format = "aedat3"
    _PKT = np.dtype([("type", "<i2"), ("source", "<i2"), ("size", "<i4"), ("tsoff", "<i4"),
                     ("tsovf", "<i4"), ("cap", "<i4"), ("num", "<i4"), ("valid", "<i4")])

    def __init__(self, path, sensor_size=None, blob=None, size=None):
        if size is None:
            path, size = check_path_size(path)
        super().__init__(path, sensor_size, blob, size)
        lines, self._data_start = self._header(b"#")
        if not lines or not lines[0].startswith("!AER-DAT3"):
            raise FormatError("no '#!AER-DAT3.1' header: not an AEDAT 3.1 file", where=self.path, offset=0)
        self.chip = chip_from_header(lines)
        size = None
        for line in lines:
            m = re.search(r"sizeX\D*(\d+).*sizeY\D*(\d+)", line)
            if m:
                size = checked_sensor(m.group(1), m.group(2), self.path)
        self.meta.update(format=self.format, chip=self.chip)
        self.sensor_size = sensor_size or size or CHIPS.get(self.chip, (346, 260))

    def _iter_events(self, max_events):
        pos = self._data_start
        pending, n_pending, problem = [], 0, None
        with open(self.path, "rb") as f:
            while pos < self._size:
                f.seek(pos)
                hb = f.read(28)
                if len(hb) < 28:
                    problem = f"truncated packet header ({len(hb)} of 28 bytes)"
                    break
                h = np.frombuffer(hb, self._PKT)[0]
                size, num = int(h["size"]), int(h["num"])
                room = self._size - pos - 28
                if size <= 0 or num < 0:
                    problem = f"corrupt packet header (event size {size}, count {num})"
                    break
                if size * num > room:
                    problem = f"truncated or corrupt packet: {num} events of {size} bytes do not fit the {room} bytes left"
                    break
                body = f.read(size * num)
                if len(body) < size * num:
                    problem = f"the file ended while it was read ({len(body)} of {size * num} bytes)"
                    break
                if int(h["type"]) == 1 and size == 8 and num:
                    raw = np.frombuffer(body, np.dtype([("d", "<u4"), ("t", "<i4")]))
                    d = raw["d"]
                    keep = (d & 1) == 1
                    ev = np.empty(int(keep.sum()), EVENT_DTYPE)
                    ev["t"] = (np.int64(int(h["tsovf"])) << 31) | raw["t"][keep].astype(np.int64)
                    ev["x"] = (d[keep] >> 17) & 0x7FFF
                    ev["y"] = (d[keep] >> 2) & 0x7FFF
                    ev["p"] = (d[keep] >> 1) & 1
                    pending.append(ev)
                    n_pending += len(ev)
                pos += 28 + size * num
                if n_pending >= max_events:
                    if (yield from self._checked_parts(pending, max_events)):
                        return
                    pending, n_pending = [], 0
        if pending and (yield from self._checked_parts(pending, max_events)):
            return
        if problem:
            yield NO_EVENTS, f"{problem}; the {self._n_read} events before it were read", pos
