"""ASL-DVS ``.mat`` files: MATLAB column vectors ``ts``, ``x``, ``y``, ``pol`` on a 240x180 sensor.

MATLAB v5 files are read with scipy, v7.3 (HDF5) files with h5py. MATLAB files cannot be streamed, so the
arrays are loaded once and handed out in chunks.
"""

from __future__ import annotations

import numpy as np

from evstream.errors import FormatError
from evstream.events import make_events
from evstream.readers.base import Reader, check_path

SENSOR = (240, 180)


class MatReader(Reader):
    format = "mat"

    def __init__(self, path, sensor_size=None):
        super().__init__(check_path(path), sensor_size or SENSOR)
        self.meta["format"] = self.format
        self._arrays = None

    def _load(self):
        with open(self.path, "rb") as f:
            head = f.read(128)
        try:
            if head.startswith(b"\x89HDF") or b"MATLAB 7.3" in head:
                import h5py

                with h5py.File(self.path, "r") as h:
                    d = {k: np.asarray(h[k]).ravel() for k in ("ts", "x", "y", "pol") if k in h}
            else:
                from scipy.io import loadmat

                raw = loadmat(self.path, variable_names=["ts", "x", "y", "pol"])
                d = {k: np.asarray(raw[k]).ravel() for k in ("ts", "x", "y", "pol") if k in raw}
        except Exception as exc:
            raise FormatError(f"cannot read MATLAB file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})",
                              where=self.path) from None
        missing = [k for k in ("ts", "x", "y", "pol") if k not in d]
        if missing:
            raise FormatError(f"MATLAB file lacks variable(s) {', '.join(missing)} (ASL-DVS needs ts, x, y, pol)",
                              where=self.path)
        n = {len(v) for v in d.values()}
        if len(n) != 1:
            raise FormatError(f"ts, x, y, pol have different lengths {sorted(n)}", where=self.path)
        return d

    def _iter_events(self, max_events):
        d = self._load()
        n = len(d["ts"])
        for s in range(0, n, max_events):
            sl = slice(s, s + max_events)
            yield self._check(make_events(d["ts"][sl].astype(np.int64), d["x"][sl], d["y"][sl], d["pol"][sl]))
