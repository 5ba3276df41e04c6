"""N-MNIST ``.bin`` and ``.bs2`` ("binary spike 2D"): 5 bytes per event, a big-endian 40-bit word.

byte 0 = x, byte 1 = y, bit 7 of byte 2 = polarity, the remaining 23 bits = t (µs). In ``.bin`` files an
event with y == 240 is an overflow marker: it adds 2**23 µs to every later timestamp and is not an event.
The sensor is 34x34.
"""

from __future__ import annotations

import numpy as np

from evstream.errors import FormatError
from evstream.events import EVENT_DTYPE
from evstream.readers.base import Reader, check_path

SENSOR = (34, 34)


class NmnistReader(Reader):
    format = "nmnist"

    def __init__(self, path, sensor_size=None):
        super().__init__(check_path(path), sensor_size or SENSOR)
        self.meta["format"] = self.format
        self._size = self.path.stat().st_size

    def _iter_events(self, max_events):
        n_total, rest = divmod(self._size, 5)
        mm = np.memmap(self.path, dtype=np.uint8, mode="r", shape=(n_total * 5,)) if n_total \
            else np.zeros(0, np.uint8)
        overflow = np.int64(0)
        for s in range(0, n_total, max_events):
            e = min(n_total, s + max_events)
            raw = np.asarray(mm[5 * s:5 * e]).reshape(-1, 5)
            t = ((raw[:, 2].astype(np.int64) & 0x7F) << 16) | (raw[:, 3].astype(np.int64) << 8) | raw[:, 4]
            is_ovf = raw[:, 1] == 240
            if is_ovf.any():
                t = t + overflow + np.cumsum(is_ovf, dtype=np.int64) * (1 << 23)
                overflow += int(is_ovf.sum()) * (1 << 23)
                keep = ~is_ovf
            else:
                t = t + overflow
                keep = slice(None)
            ev = np.empty(len(t[keep]), EVENT_DTYPE)
            ev["t"] = t[keep]
            ev["x"] = raw[keep, 0]
            ev["y"] = raw[keep, 1]
            ev["p"] = raw[keep, 2] >> 7
            yield ev, 5 * e
        if rest:
            raise FormatError(f"truncated: {rest} stray bytes after the last whole 5-byte event "
                              f"({n_total} events read)", where=self.path, offset=5 * n_total)
