"""N-MNIST ``.bin`` and ``.bs2`` ("binary spike 2D"): 5 bytes per event, a big-endian 40-bit word.

byte 0 = x, byte 1 = y, bit 7 of byte 2 = polarity, the remaining 23 bits = t (µs). In ``.bin`` files an
event with y == 240 is an overflow marker: it adds 2**23 µs to every later timestamp and is not an event.
The sensor is 34x34.
"""

from __future__ import annotations

import numpy as np

from evstream.errors import FormatError
from evstream.readers import _kernels
from evstream.readers.base import Reader, check_path_size, new_events

SENSOR = (34, 34)


class NmnistReader(Reader):
    format = "nmnist"

    def __init__(self, path, sensor_size=None, blob=None):
        path, self._size = check_path_size(path)
        super().__init__(path, sensor_size or SENSOR, blob)
        self.meta["format"] = self.format

    def _iter_events(self, max_events):
        n_total, rest = divmod(self._size, 5)
        overflow = 0
        for s in range(0, n_total, max_events):
            e = min(n_total, s + max_events)
            raw = self._block(5 * s, np.uint8, 5 * (e - s))
            ev, t, x, y, p = new_events(e - s)
            n, overflow = _kernels.decode_nmnist(raw, overflow, t, x, y, p)
            yield ev[:n], 5 * e
        if rest:
            raise FormatError(f"truncated: {rest} stray bytes after the last whole 5-byte event "
                              f"({n_total} events read)", where=self.path, offset=5 * n_total)
