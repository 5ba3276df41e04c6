"""evstream's own files: ``.npz`` (arrays ``t``, ``x``, ``y``, ``p``, scalars ``width``, ``height``) and
HDF5 (datasets ``events/t|x|y|p`` or a structured ``events`` dataset, attributes ``width``, ``height``)."""

from __future__ import annotations

import zipfile

import numpy as np

from evstream.errors import FormatError
from evstream.events import make_events
from evstream.readers.base import Reader, check_path


class NpzReader(Reader):
    format = "npz"

    def __init__(self, path, sensor_size=None):
        super().__init__(check_path(path), sensor_size)
        try:
            self._npz = np.load(self.path, allow_pickle=False)
            keys = set(self._npz.files)
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
            raise FormatError(f"not a readable .npz ({exc})", where=self.path) from None
        missing = {"t", "x", "y", "p"} - keys
        if missing:
            raise FormatError(f".npz lacks array(s) {', '.join(sorted(missing))}", where=self.path)
        if sensor_size is None:
            if {"width", "height"} <= keys:
                self.sensor_size = (int(self._npz["width"]), int(self._npz["height"]))
            else:
                self.sensor_size = (int(self._npz["x"].max(initial=-1)) + 1, int(self._npz["y"].max(initial=-1)) + 1)
        self.meta["format"] = self.format

    def _iter_events(self, max_events):
        try:
            t, x, y, p = (self._npz[k] for k in "txyp")
        except Exception as exc:
            raise FormatError(f"corrupt .npz member ({exc})", where=self.path) from None
        for s in range(0, len(t), max_events):
            sl = slice(s, s + max_events)
            yield self._check(make_events(t[sl], x[sl], y[sl], p[sl]))

    def close(self):
        self._npz.close()


class Hdf5Reader(Reader):
    format = "hdf5"

    def __init__(self, path, sensor_size=None):
        import h5py

        super().__init__(check_path(path), sensor_size)
        try:
            self._h = h5py.File(self.path, "r")
        except OSError as exc:
            raise FormatError(f"not a readable HDF5 file ({exc})", where=self.path) from None
        g = self._h.get("events")
        if g is None:
            raise FormatError("HDF5 file has no 'events' group or dataset", where=self.path)
        self._g = g
        a = dict(self._h.attrs) | dict(g.attrs)
        if sensor_size is None and "width" in a and "height" in a:
            self.sensor_size = (int(a["width"]), int(a["height"]))
        self.meta["format"] = self.format

    def _iter_events(self, max_events):
        g = self._g
        if hasattr(g, "keys"):
            cols = [g[k] for k in "txyp"]
        else:
            cols = None
        n = len(cols[0]) if cols else len(g)
        for s in range(0, n, max_events):
            sl = slice(s, s + max_events)
            if cols:
                yield self._check(make_events(*(c[sl] for c in cols)))
            else:
                a = g[sl]
                yield self._check(make_events(a["t"], a["x"], a["y"], a["p"]))

    def close(self):
        self._h.close()
