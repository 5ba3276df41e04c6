"""Writers: AEDAT 4.0 through dv-processing (files DV itself opens), evstream's ``.npz`` and HDF5.

    with open_writer("out.aedat4", sensor_size=(34, 34)) as w:
        for chunk in source:
            w.write(chunk)
    write_events("out.npz", chunk)

``.npz`` holds arrays ``t``, ``x``, ``y``, ``p`` and scalars ``width``, ``height``. Streaming ``.npz`` writes
spill each chunk to a temporary file so memory stays bounded, and the archive is assembled on close.
Every writer works on a temporary name and renames it into place on ``close()`` (see :mod:`evstream.fileio`).
"""

from __future__ import annotations

import tempfile
import weakref
import zipfile
from pathlib import Path

import numpy as np

from evstream.errors import EvstreamError
from evstream.events import EVENT_DTYPE, EventChunk, as_events, check_in_sensor
from evstream.fileio import check_folder, commit, discard, sweep_stale, temp_name


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
    """Base: ``write(chunk_or_events)``, ``close()``, context manager; checks events fit the sensor.

    Everything goes to a temporary file next to ``path`` (:mod:`evstream.fileio`); :meth:`close` renames it
    to ``path``, :meth:`abort` removes it. Leaving a ``with`` block by an exception (Ctrl-C included)
    aborts: ``path`` never holds a half-written file, and an existing file there is left as it was."""

    def __init__(self, path, sensor_size):
        self.path = check_folder(path)
        self.sensor_size = (int(sensor_size[0]), int(sensor_size[1]))
        self.count = 0
        sweep_stale(self.path)
        self._tmp = temp_name(self.path)
        self._done = False
        # a writer dropped without close()/abort() -- an exception in a subclass's __init__, a signal before
        # its `with` block began -- still removes its temporary file (when collected, or at exit)
        self._cleanup = weakref.finalize(self, discard, self._tmp)

    def write(self, data) -> None:
        events = data.events if isinstance(data, EventChunk) else as_events(np.asarray(data))
        if len(events) == 0:
            return
        check_in_sensor(events, self.sensor_size, where=str(self.path))
        try:
            self._write(events)
        except OSError as exc:  # a full disk, a removed folder
            raise EvstreamError(f"cannot write ({exc.strerror or exc})", where=self.path) from None
        self.count += len(events)

    def _write(self, events):
        raise NotImplementedError

    def _finish(self) -> None:
        """Complete the temporary file."""

    def _release(self) -> None:
        """Let go of everything without completing the file."""

    def close(self) -> None:
        """Complete the file and move it to ``path``."""
        if self._done:
            return
        self._done = True
        try:
            self._finish()
        except BaseException as exc:
            self._release()
            discard(self._tmp)
            if isinstance(exc, OSError):  # a full disk while the file is completed
                raise EvstreamError(f"cannot write ({exc.strerror or exc})", where=self.path) from None
            raise
        self._cleanup.detach()
        commit(self._tmp, self.path)

    def abort(self) -> None:
        """Drop what was written; ``path`` stays as it was."""
        if self._done:
            return
        self._done = True
        self._release()
        discard(self._tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.close()
        else:
            self.abort()


class Aedat4Writer(Writer):
    """AEDAT 4.0 through ``dv.io.MonoCameraWriter`` (LZ4-compressed event packets)."""

    def __init__(self, path, sensor_size, camera_name: str = "evstream"):
        import dv_processing as dv

        super().__init__(path, sensor_size)
        cfg = dv.io.MonoCameraWriter.EventOnlyConfig(camera_name, self.sensor_size)
        try:
            self._w = dv.io.MonoCameraWriter(str(self._tmp), cfg)
        except Exception as exc:
            discard(self._tmp)
            raise EvstreamError(f"cannot create AEDAT4 file ({_first_line(exc)})", where=self.path) from None

    def _write(self, events):
        self._w.writeEvents(to_dv_store(events))

    def _finish(self):
        self._release()

    def _release(self):
        if getattr(self, "_w", None) is not None:
            del self._w  # MonoCameraWriter flushes and closes on destruction
            self._w = None


class NpzWriter(Writer):
    """evstream ``.npz``: chunks go to anonymous temporary files (in the output's folder, gone on any exit,
    even SIGKILL), the archive is built from them on :meth:`close`."""

    def __init__(self, path, sensor_size):
        super().__init__(path, sensor_size)
        self._files = {}
        try:
            for k in "txyp":
                self._files[k] = tempfile.TemporaryFile(dir=self.path.parent, prefix=".evstream-spill-")
        except OSError as exc:
            self._release()
            raise EvstreamError(f"cannot write ({exc.strerror or exc})", where=self.path) from None

    def _write(self, events):
        for k in "txyp":
            self._files[k].write(np.ascontiguousarray(events[k]).tobytes())

    def _finish(self):
        dtypes = {k: EVENT_DTYPE[k] for k in "txyp"}
        with zipfile.ZipFile(self._tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for k in "txyp":
                f = self._files[k]
                f.flush()
                arr = np.memmap(f, dtype=dtypes[k], mode="r") if self.count else np.zeros(0, dtypes[k])
                with z.open(f"{k}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asarray(arr))
                del arr
            for k, v in (("width", self.sensor_size[0]), ("height", self.sensor_size[1])):
                with z.open(f"{k}.npy", "w") as member:
                    np.lib.format.write_array(member, np.asarray(v, dtype=np.int64))
        self._release()

    def _release(self):
        for f in self._files.values():
            f.close()
        self._files = {}


class Hdf5Writer(Writer):
    """HDF5: group ``events`` with 1-D datasets ``t``, ``x``, ``y``, ``p`` (grown chunk by chunk) and the
    attributes ``width``, ``height`` (the layout :class:`~evstream.readers.native.Hdf5Reader` reads)."""

    def __init__(self, path, sensor_size):
        import h5py

        super().__init__(path, sensor_size)
        try:
            self._h = h5py.File(self._tmp, "w")
            g = self._h.create_group("events")
            self._d = {k: g.create_dataset(k, shape=(0,), maxshape=(None,), dtype=EVENT_DTYPE[k], chunks=(65536,))
                       for k in "txyp"}
            self._h.attrs["width"], self._h.attrs["height"] = self.sensor_size
        except OSError as exc:
            self._release()
            discard(self._tmp)
            raise EvstreamError(f"cannot create HDF5 file ({_first_line(exc)})", where=self.path) from None

    def _write(self, events):
        n = self.count
        for k, d in self._d.items():
            d.resize((n + len(events),))
            d[n:] = events[k]

    def _finish(self):
        self._release()

    def _release(self):
        if getattr(self, "_h", None) is not None:
            self._h.close()
            self._h = None


WRITERS = {".aedat4": Aedat4Writer, ".npz": NpzWriter, ".h5": Hdf5Writer, ".hdf5": Hdf5Writer}


def open_writer(path, sensor_size, **options) -> Writer:
    """A writer for ``path`` chosen by its extension (``.aedat4``, ``.npz``, ``.h5`` / ``.hdf5``)."""
    ext = Path(path).suffix.lower()
    if ext not in WRITERS:
        raise EvstreamError(f"cannot write {ext or 'files without extension'}: "
                            f"known outputs are {', '.join(WRITERS)}", where=path)
    return WRITERS[ext](path, sensor_size, **options)


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's text, without dv-processing's source locations (``[file:line]``)."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text.split(" [")[0].strip() or type(exc).__name__


def write_events(path, chunk: EventChunk) -> int:
    """Write one chunk to ``path``; returns the number of events written."""
    with open_writer(path, chunk.sensor_size) as w:
        w.write(chunk)
        return w.count
