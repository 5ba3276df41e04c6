"""evstream's own files: ``.npz`` (arrays ``t``, ``x``, ``y``, ``p``, scalars ``width``, ``height``) and
HDF5 (datasets ``events/t|x|y|p`` or a structured ``events`` dataset, attributes ``width``, ``height``).

Both are read in bounded chunks, and what their headers declare (array lengths, dataset sizes) is checked
against the bytes the file really holds before anything is allocated: a damaged or hostile file gives a
one-line :class:`~evstream.errors.FormatError`, never a huge allocation.
"""

from __future__ import annotations

import math
import zipfile
import zlib

import numpy as np

from evstream.errors import FormatError
from evstream.events import make_events
from evstream.readers.base import NO_EVENTS, Reader, check_path_size, check_values, checked_sensor

FIELDS = "txyp"
MAX_RATIO = 1100  # deflate cannot expand data more than ~1032x; gzip-compressed HDF5 chunks neither
SMALL_MEMBER = 4096  # bytes: the most a scalar member (width, height) may take


def _one_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text or type(exc).__name__


class NpzReader(Reader):
    format = "npz"

    def __init__(self, path, sensor_size=None):
        path, size = check_path_size(path)
        super().__init__(path, sensor_size, size=size)
        try:
            self._zip = zipfile.ZipFile(self.path)
            infos = {i.filename: i for i in self._zip.infolist()}
        except Exception as exc:  # BadZipFile, OSError, EOFError, ValueError, MemoryError on absurd sizes
            raise FormatError(f"not a readable .npz ({_one_line(exc)})", where=self.path) from None
        try:
            missing = [k for k in FIELDS if f"{k}.npy" not in infos]
            if missing:
                raise FormatError(f".npz lacks array(s) {', '.join(missing)}", where=self.path)
            self._arrays = {k: self._member_header(infos[f"{k}.npy"], k) for k in FIELDS}
            lengths = {k: a[0] for k, a in self._arrays.items()}
            if len(set(lengths.values())) != 1:
                raise FormatError(f"arrays t, x, y, p have different lengths {list(lengths.values())}", where=self.path)
            self._n = lengths["t"]
            if sensor_size is None:
                if "width.npy" in infos and "height.npy" in infos:
                    self.sensor_size = checked_sensor(self._scalar(infos["width.npy"]),
                                                      self._scalar(infos["height.npy"]), self.path, ".npz")
                else:
                    self.sensor_size = self._sensor_from_events()
        except BaseException:
            self._zip.close()
            raise
        self.meta["format"] = self.format

    def _member_header(self, info: zipfile.ZipInfo, name: str) -> tuple[int, np.dtype, int]:
        """(length, dtype, header bytes) of a 1-D array member, after checking that its declared sizes fit."""
        if info.header_offset + info.compress_size > self._size:
            raise FormatError(f"array {name} runs past the end of the file (truncated?)", where=self.path)
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size \
                or info.file_size > MAX_RATIO * info.compress_size + 1024:
            raise FormatError(f"array {name} declares {info.file_size} bytes in {info.compress_size} stored bytes",
                              where=self.path)
        try:
            with self._zip.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version not in ((1, 0), (2, 0)):
                    raise ValueError(f".npy version {version[0]}.{version[1]} is not supported")
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, fortran, dtype = read(f, max_header_size=SMALL_MEMBER)
                header = f.tell() if hasattr(f, "tell") else None
        except FormatError:
            raise
        except Exception as exc:
            raise FormatError(f"array {name}: not a readable .npy ({_one_line(exc)})", where=self.path) from None
        if dtype.hasobject or dtype.kind not in "iubf" or len(shape) != 1:
            raise FormatError(f"array {name} must be a 1-D numeric array (it is {dtype}, shape {shape})",
                              where=self.path)
        n = shape[0]
        if header is None or n * dtype.itemsize != info.file_size - header:
            raise FormatError(f"array {name} declares {n} values of {dtype.itemsize} bytes but holds "
                              f"{info.file_size - (header or 0)} bytes", where=self.path)
        return n, dtype, header

    def _scalar(self, info: zipfile.ZipInfo):
        if info.file_size > SMALL_MEMBER:
            raise FormatError(f"{info.filename} is not a scalar", where=self.path)
        try:
            with self._zip.open(info) as f:
                v = np.lib.format.read_array(f, allow_pickle=False)
        except Exception as exc:
            raise FormatError(f"{info.filename}: not a readable .npy ({_one_line(exc)})", where=self.path) from None
        return v.item() if v.size == 1 else v

    def _columns(self, names, max_events):
        """Chunks of the named arrays (dict name -> array), read together, at most ``max_events`` long."""
        files = {}
        try:
            for k in names:
                files[k] = self._zip.open(f"{k}.npy")
                files[k].read(self._arrays[k][2])
            for s in range(0, self._n, max_events):
                m = min(max_events, self._n - s)
                cols = {}
                for k in names:
                    dtype = self._arrays[k][1]
                    raw = files[k].read(m * dtype.itemsize)
                    if len(raw) < m * dtype.itemsize:
                        raise EOFError(f"array {k} ends early")
                    cols[k] = np.frombuffer(raw, dtype)
                yield s, cols
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
            raise FormatError(f"corrupt .npz member ({_one_line(exc)})", where=self.path) from None
        finally:
            for f in files.values():
                f.close()

    def _sensor_from_events(self) -> tuple[int, int]:
        """Without ``width``/``height``: the smallest sensor holding every event (one pass over x and y)."""
        w = h = 0
        for s, c in self._columns("xy", 1 << 22):
            check_values(c, s, self.path)
            if len(c["x"]):
                w = max(w, int(c["x"].max()) + 1)
                h = max(h, int(c["y"].max()) + 1)
        return (w, h)

    def _iter_events(self, max_events):
        parts = self._columns(FIELDS, max_events)
        while True:
            try:
                s, c = next(parts)
            except StopIteration:
                return
            except FormatError as exc:
                yield NO_EVENTS, f"{exc.problem}; the {self._n_read} events before it were read", None
                return
            try:
                check_values(c, s, self.path)
            except FormatError as exc:
                yield NO_EVENTS, exc.problem, None
                return
            if (yield from self._checked_parts([make_events(c["t"], c["x"], c["y"], c["p"])], max_events)):
                return

    def close(self):
        self._zip.close()


class Hdf5Reader(Reader):
    format = "hdf5"

    def __init__(self, path, sensor_size=None):
        import h5py

        path, size = check_path_size(path)
        super().__init__(path, sensor_size, size=size)
        try:
            self._h = h5py.File(self.path, "r")
        except Exception as exc:
            raise FormatError(f"not a readable HDF5 file ({_one_line(exc)})", where=self.path) from None
        try:
            self._open(sensor_size, h5py)
        except BaseException:
            self._h.close()
            raise
        self.meta["format"] = self.format

    def _open(self, sensor_size, h5py):
        try:
            g = self._h.get("events")
            a = dict(self._h.attrs) | (dict(g.attrs) if g is not None else {})
        except Exception as exc:
            raise FormatError(f"corrupt HDF5 file ({_one_line(exc)})", where=self.path) from None
        if g is None:
            raise FormatError("HDF5 file has no 'events' group or dataset", where=self.path)
        if isinstance(g, h5py.Group):
            missing = [k for k in FIELDS if not isinstance(g.get(k), h5py.Dataset)]
            if missing:
                raise FormatError(f"HDF5 group 'events' lacks dataset(s) {', '.join(missing)}", where=self.path)
            self._cols = [g[k] for k in FIELDS]
            for k, d in zip(FIELDS, self._cols):
                if d.ndim != 1 or d.dtype.kind not in "iubf":
                    raise FormatError(f"events/{k} must be a 1-D numeric dataset (it is {d.dtype}, shape "
                                      f"{d.shape})", where=self.path)
            lengths = [len(d) for d in self._cols]
            if len(set(lengths)) != 1:
                raise FormatError(f"events/t, x, y, p have different lengths {lengths}", where=self.path)
            self._datasets = self._cols
        elif isinstance(g, h5py.Dataset):
            names = set(g.dtype.names or ())
            if g.ndim != 1 or not set(FIELDS) <= names:
                raise FormatError(f"the 'events' dataset must be 1-D with fields t, x, y, p (it is {g.dtype}, "
                                  f"shape {g.shape})", where=self.path)
            self._cols = None
            self._datasets = [g]
        else:
            raise FormatError("'events' is neither a group nor a dataset", where=self.path)
        self._n = len(self._datasets[0])
        for d in self._datasets:
            check_storage(d, self._size, self.path)
        if sensor_size is None and "width" in a and "height" in a:
            self.sensor_size = checked_sensor(_item(a["width"]), _item(a["height"]), self.path, "HDF5 attribute")
        self._g = g

    def _iter_events(self, max_events):
        for s in range(0, self._n, max_events):
            sl = slice(s, s + max_events)
            try:
                if self._cols is not None:
                    t, x, y, p = (c[sl] for c in self._cols)
                else:
                    a = self._g[sl]
                    t, x, y, p = a["t"], a["x"], a["y"], a["p"]
                check_values({"t": t, "x": x, "y": y}, s, self.path)
            except FormatError as exc:
                yield NO_EVENTS, exc.problem, None
                return
            except Exception as exc:  # h5py: OSError / ValueError on damaged chunks
                yield NO_EVENTS, f"corrupt HDF5 data ({_one_line(exc)}); the {self._n_read} events before it " \
                                 f"were read", None
                return
            if (yield from self._checked_parts([make_events(t, x, y, p)], max_events)):
                return

    def close(self):
        self._h.close()


def check_storage(d, file_size: int, where) -> None:
    """A one-line error if HDF5 dataset ``d`` declares more data than the file stores for it (reading it
    would hand out fill values, as many as the header likes)."""
    declared = d.size * d.dtype.itemsize
    if declared == 0:
        return
    try:
        stored = d.id.get_storage_size()
        chunks = d.chunks
        n_chunks = d.id.get_num_chunks() if chunks else None
        filtered = bool(chunks) and d.id.get_create_plist().get_nfilters() > 0
    except Exception as exc:
        raise FormatError(f"corrupt HDF5 dataset {d.name} ({_one_line(exc)})", where=where) from None
    expected = math.prod(math.ceil(s / c) for s, c in zip(d.shape, chunks)) if chunks else None
    if (not filtered and stored < declared) or (chunks and n_chunks < expected) \
            or declared > MAX_RATIO * max(stored, 1) or stored > file_size:
        raise FormatError(f"dataset {d.name} declares {d.size} values ({declared} bytes) but the "
                          f"{file_size}-byte file stores {stored} bytes for it", where=where)


def _item(v):
    a = np.asarray(v)
    return a.item() if a.size == 1 else v


__all__ = ["Hdf5Reader", "NpzReader"]
