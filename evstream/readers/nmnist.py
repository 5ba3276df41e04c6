"""N-MNIST ``.bin`` and ``.bs2`` ("binary spike 2D"): 5 bytes per event, a big-endian 40-bit word.

byte 0 = x, byte 1 = y, bit 7 of byte 2 = polarity, the remaining 23 bits = t (µs). In ``.bin`` files an
event with y == 240 is an overflow marker: it adds 2**23 µs to every later timestamp and is not an event.
The sensor is 34x34.
"""

from __future__ import annotations

import numpy as np

from evstream.events import EVENT_DTYPE
from evstream.readers import _kernels
from evstream.readers.base import NO_EVENTS, U1, Reader, check_path_size

SENSOR = (34, 34)


class NmnistReader(Reader):
    format = "nmnist"
    _state_size = 2  # last t, overflow

    def __init__(self, path, sensor_size=None, blob=None, size=None):
        if size is None:
            path, size = check_path_size(path)
        super().__init__(path, sensor_size or SENSOR, blob, size)

    def _iter_events(self, max_events):
        n_total, rest = divmod(self._size, 5)
        w, h = self._limits()
        for s in range(0, n_total, max_events):
            e = min(n_total, s + max_events)
            raw = self._block(5 * s, U1, 5 * (e - s))
            out = np.empty(e - s, EVENT_DTYPE)
            n, code, i = _kernels.decode_nmnist(raw, self._state, out, w, h)
            if code:
                yield self._decoded(out, n, code, 5 * (s + i))
                return
            yield out[:n], None, None
        if rest:
            yield NO_EVENTS, (f"truncated: {rest} stray bytes after the last whole 5-byte event "
                              f"({n_total} events read)"), 5 * n_total
