"""ASL-DVS ``.mat`` files: MATLAB column vectors ``ts``, ``x``, ``y``, ``pol`` on a 240x180 sensor.

MATLAB v5 files are read with scipy, v7.3 (HDF5) files with h5py. MATLAB files cannot be streamed, so the
arrays are loaded once and handed out in chunks.
"""

from __future__ import annotations

import os

import numpy as np

from evstream.errors import FormatError
from evstream.events import make_events
from evstream.readers.base import NO_EVENTS, Reader, check_path, check_values

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

                from evstream.readers.native import check_storage

                with h5py.File(self.path, "r") as h:
                    d = {}
                    for k in ("ts", "x", "y", "pol"):
                        if isinstance(h.get(k), h5py.Dataset):
                            check_storage(h[k], os.path.getsize(self.path), self.path)
                            d[k] = np.asarray(h[k]).ravel()
            else:
                from scipy.io import loadmat

                raw = loadmat(self.path, variable_names=["ts", "x", "y", "pol"])
                d = {k: np.asarray(raw[k]).ravel() for k in ("ts", "x", "y", "pol") if k in raw}
        except FormatError:
            raise
        except Exception as exc:
            raise FormatError(f"cannot read MATLAB file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})",
                              where=self.path) from None
        missing = [k for k in ("ts", "x", "y", "pol") if k not in d]
        if missing:
            raise FormatError(f"MATLAB file lacks variable(s) {', '.join(missing)} (ASL-DVS needs ts, x, y, pol)",
                              where=self.path)
        odd = [k for k, v in d.items() if v.dtype.kind not in "iubf"]
        if odd:
            raise FormatError(f"MATLAB variable(s) {', '.join(odd)} are not numeric", where=self.path)
        n = {len(v) for v in d.values()}
        if len(n) != 1:
            raise FormatError(f"ts, x, y, pol have different lengths {sorted(n)}", where=self.path)
        return d

    def _iter_events(self, max_events):
        d = self._load()
        n = len(d["ts"])
        for s in range(0, n, max_events):
            sl = slice(s, s + max_events)
            cols = {"t": d["ts"][sl], "x": d["x"][sl], "y": d["y"][sl]}
            try:
                check_values(cols, s, self.path)
            except FormatError as exc:
                yield NO_EVENTS, exc.problem, None
                return
            if (yield from self._checked_parts([make_events(cols["t"].astype(np.int64), cols["x"], cols["y"],
                                                            d["pol"][sl])], max_events)):
                return
