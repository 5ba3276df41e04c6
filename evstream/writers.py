"""Writers: AEDAT 4.0 through dv-processing (files DV itself opens) and evstream's ``.npz``.

    with open_writer("out.aedat4", sensor_size=(34, 34)) as w:
        for chunk in source:
            w.write(chunk)
    write_events("out.npz", chunk)

``.npz`` holds arrays ``t``, ``x``, ``y``, ``p`` and scalars ``width``, ``height``. Streaming ``.npz`` writes
spill each chunk to a temporary file so memory stays bounded, and the archive is assembled on close.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from evstream.errors import EvstreamError
from evstream.events import EVENT_DTYPE, EventChunk, as_events, check_in_sensor


def to_dv_store(events: np.ndarray):
    """A ``dv.EventStore`` holding ``events`` (dv-processing has no numpy constructor: this loops)."""
    import dv_processing as dv

    store = dv.EventStore()
    push = store.push_back
    for t, x, y, p in zip(events["t"].tolist(), events["x"].tolist(), events["y"].tolist(),
                          events["p"].tolist()):
        push(t, x, y, bool(p))
    return store


def from_dv_store(store) -> np.ndarray:
    """Our event array from a ``dv.EventStore`` (through its zero-copy ``numpy()`` view)."""
    a = store.numpy()
    ev = np.empty(len(a), EVENT_DTYPE)
    if len(a):
        ev["t"], ev["x"], ev["y"], ev["p"] = a["timestamp"], a["x"], a["y"], a["polarity"]
    return ev


class Writer:
    """Base: ``write(chunk_or_events)``, ``close()``, context manager; checks events fit the sensor."""

    def __init__(self, path, sensor_size):
        self.path = Path(path)
        self.sensor_size = (int(sensor_size[0]), int(sensor_size[1]))
        self.count = 0
        self._last_t = None
        parent = self.path.parent
        if not parent.is_dir():
            raise EvstreamError("cannot write: folder does not exist", where=parent)

    def write(self, data) -> None:
        events = data.events if isinstance(data, EventChunk) else as_events(np.asarray(data))
        if len(events) == 0:
            return
        check_in_sensor(events, self.sensor_size, where=str(self.path))
        self._write(events)
        self.count += len(events)

    def _write(self, events):
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Aedat4Writer(Writer):
    """AEDAT 4.0 through ``dv.io.MonoCameraWriter`` (LZ4-compressed event packets)."""

    def __init__(self, path, sensor_size, camera_name: str = "evstream"):
        import dv_processing as dv

        super().__init__(path, sensor_size)
        cfg = dv.io.MonoCameraWriter.EventOnlyConfig(camera_name, self.sensor_size)
        try:
            self._w = dv.io.MonoCameraWriter(str(self.path), cfg)
        except Exception as exc:
            raise EvstreamError(f"cannot create AEDAT4 file ({str(exc).splitlines()[0]})", where=self.path) from None

    def _write(self, events):
        self._w.writeEvents(to_dv_store(events))

    def close(self):
        if getattr(self, "_w", None) is not None:
            del self._w  # MonoCameraWriter flushes and closes on destruction
            self._w = None


class NpzWriter(Writer):
    """evstream ``.npz``: chunks go to temporary raw files, the archive is built on :meth:`close`."""

    def __init__(self, path, sensor_size):
        super().__init__(path, sensor_size)
        self._tmp = tempfile.TemporaryDirectory(prefix="evstream-npz-")
        self._files = {k: open(os.path.join(self._tmp.name, k), "wb") for k in "txyp"}

    def _write(self, events):
        for k in "txyp":
            self._files[k].write(np.ascontiguousarray(events[k]).tobytes())

    def close(self):
        if self._files is None:
            return
        for f in self._files.values():
            f.close()
        dtypes = {k: EVENT_DTYPE[k] for k in "txyp"}
        with zipfile.ZipFile(self.path, "w", zipfile.ZIP_DEFLATED) as z:
            for k in "txyp":
                arr = np.memmap(os.path.join(self._tmp.name, k), dtype=dtypes[k], mode="r") \
                    if self.count else np.zeros(0, dtypes[k])
                with z.open(f"{k}.npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.asarray(arr))
                del arr
            for k, v in (("width", self.sensor_size[0]), ("height", self.sensor_size[1])):
                with z.open(f"{k}.npy", "w") as f:
                    np.lib.format.write_array(f, np.asarray(v, dtype=np.int64))
        self._files = None
        self._tmp.cleanup()


WRITERS = {".aedat4": Aedat4Writer, ".npz": NpzWriter}


def open_writer(path, sensor_size, **options) -> Writer:
    """A writer for ``path`` chosen by its extension (``.aedat4`` or ``.npz``)."""
    ext = Path(path).suffix.lower()
    if ext not in WRITERS:
        raise EvstreamError(f"cannot write {ext or 'files without extension'}: "
                            f"known outputs are {', '.join(WRITERS)}", where=path)
    return WRITERS[ext](path, sensor_size, **options)


def write_events(path, chunk: EventChunk) -> int:
    """Write one chunk to ``path``; returns the number of events written."""
    with open_writer(path, chunk.sensor_size) as w:
        w.write(chunk)
        return w.count
