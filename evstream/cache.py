"""The on-disk event cache: one ``.npy`` event array per recording, filled by parallel workers.

    cache = EventCache("~/.cache/evstream")
    index = cache.fill(keys, tasks, decode, workers=8, desc="decoding cifar10dvs-train")
    ev = cache.read(index.keys[i])          # one recording's events (a fresh array, one read)

Layout under the cache folder::

    events-v2/ab/<key>.npy      one recording's events (EVENT_DTYPE), a plain .npy file
    events-v2/index-<name>-<hash>.npz   keys, event counts and time spans of one sample list
    events-v2/tmp/              files being written (moved into place by rename)
    events-v2/lock              held (flock) by the one process filling the cache

Safety: every file is written under a temporary name and renamed into place, so a killed run leaves
only whole entries (and stray temporaries, removed by the next filler); a re-run decodes only the
recordings without an entry, so an interrupted fill resumes. Several processes (torchrun ranks, two
commands) may open the same cache: one fills it while the others wait on the lock, then all read.
Entries are immutable once written, so readers never see a partial array.

Memory: a recording is read with one ``readinto`` into a fresh array. Entries are ordinary ``.npy``
files (``np.load(path, mmap_mode="r")`` maps one), but the dataset path does not keep memory maps open:
every page of a long-lived map counts in the process's resident set once touched, so an epoch over a
dataset larger than RAM would grow a mapped process to the dataset's size. Memory stays bounded by the
recordings in flight.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evstream.errors import EvstreamError
from evstream.events import EVENT_DTYPE

VERSION = 2
_MAGIC = b"\x93NUMPY\x01\x00"


def _header(n: int) -> bytes:
    import io

    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(EVENT_DTYPE),
                                             "fortran_order": False, "shape": (n,)})
    return f.getvalue()


_HEAD = len(_header(0))  # numpy pads the header so that its length does not depend on the shape


def default_cache_dir(cache_dir=None) -> Path:
    """``cache_dir``, else ``$EVSTREAM_CACHE``, else ``~/.cache/evstream``."""
    return Path(cache_dir or os.environ.get("EVSTREAM_CACHE", Path.home() / ".cache" / "evstream")).expanduser()


def make_key(*parts) -> str:
    """A cache key: a hash of everything the entry's events depend on."""
    return hashlib.sha1("\0".join(map(str, parts)).encode()).hexdigest()[:24]


def file_key(path, kind: str = "file") -> str:
    """A cache key for a recording: its resolved path, size and modification time (and what is decoded)."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise EvstreamError(f"cannot read recording ({exc.strerror})", where=p) from None
    return make_key(kind, p.resolve(), st.st_size, st.st_mtime_ns)


@contextlib.contextmanager
def atomic_output(path, tmp_dir=None):
    """Yield a temporary path next to ``path`` (or in ``tmp_dir``, same file system); on success it is
    renamed to ``path``, on any error it is removed. Readers see the old file or the whole new one."""
    path = Path(path)
    d = Path(tmp_dir) if tmp_dir else path.parent
    tmp = d / f".{path.name}.{os.getpid()}.tmp"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_npy(path, events: np.ndarray) -> None:
    """``events`` (EVENT_DTYPE) as a .npy v1.0 file at ``path`` (not atomic: see :func:`atomic_output`)."""
    events = np.ascontiguousarray(events, dtype=EVENT_DTYPE)
    head = _header(len(events))
    if len(head) != _HEAD:  # pragma: no cover - numpy's padding rule changed
        raise RuntimeError(f".npy header of {len(head)} bytes, expected {_HEAD}")
    with open(path, "wb") as f:
        f.write(head)
        f.write(memoryview(events.view(np.uint8)))


def read_npy(path) -> np.ndarray:
    """The events of an entry written by :func:`write_npy` (a fresh writable array; one read)."""
    with open(path, "rb", buffering=0) as f:
        head = f.read(_HEAD)
        size = os.fstat(f.fileno()).st_size
        n, rest = divmod(size - _HEAD, EVENT_DTYPE.itemsize)
        if len(head) < _HEAD or not head.startswith(_MAGIC) or rest or f"'shape': ({n},)".encode() not in head:
            raise EvstreamError("corrupt event-cache entry (delete it; the next run decodes the recording again)",
                                where=path)
        out = np.empty(n, EVENT_DTYPE)
        got = f.readinto(memoryview(out.view(np.uint8))) if n else 0
        if got != n * EVENT_DTYPE.itemsize:
            raise EvstreamError(f"event-cache entry shrank while reading ({got} bytes)", where=path)
    return out


@dataclass(frozen=True)
class Index:
    """Keys, event counts and time spans (µs from first to last event; -1 if empty) of a sample list."""

    keys: np.ndarray
    counts: np.ndarray
    spans: np.ndarray


def _span(ev: np.ndarray) -> int:
    return int(ev["t"][-1] - ev["t"][0]) if len(ev) else -1


class EventCache:
    """The cache folder (see the module doc): entries by key, indices by sample-list name."""

    def __init__(self, cache_dir=None):
        self.root = default_cache_dir(cache_dir) / f"events-v{VERSION}"
        self.tmp = self.root / "tmp"
        try:
            self.tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EvstreamError(f"cannot create the event cache ({exc.strerror})", where=self.root) from None

    def entry(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def read(self, key: str) -> np.ndarray:
        try:
            return read_npy(self.entry(key))
        except FileNotFoundError:
            raise EvstreamError("event-cache entry missing (was the cache folder cleaned while in use? run "
                                "the command again to decode the recording again)", where=self.entry(key)) from None

    def write(self, key: str, events: np.ndarray) -> None:
        path = self.entry(key)
        path.parent.mkdir(exist_ok=True)
        with atomic_output(path, self.tmp) as tmp:
            write_npy(tmp, events)

    def index_path(self, name: str, keys) -> Path:
        h = hashlib.sha1("\n".join(keys).encode()).hexdigest()[:16]
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
        return self.root / f"index-{safe}-{h}.npz"

    def load_index(self, path: Path, keys) -> Index | None:
        """The index at ``path`` if it exists, matches ``keys`` and every entry is there."""
        try:
            with np.load(path) as z:
                idx = Index(z["keys"], z["counts"], z["spans"])
        except (OSError, ValueError, KeyError, EOFError):
            return None
        if idx.keys.tolist() != list(keys) or not all(self.entry(k).exists() for k in keys):
            return None
        return idx

    @contextlib.contextmanager
    def lock(self, log=None):
        """Hold the cache's fill lock (waits, saying so, while another process holds it)."""
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if log:
                    log(f"waiting for another process filling the event cache {self.root}")
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # releases the lock

    def _clean_tmp(self) -> None:
        """Remove temporaries of killed fills (only the lock holder writes here)."""
        for p in self.tmp.iterdir():
            with contextlib.suppress(OSError):
                p.unlink()

    def fill(self, name: str, keys: list[str], tasks: list, decode, workers: int | None = None,
             progress: bool = True, log=None) -> Index:
        """Make sure every ``keys[i]`` has an entry (``decode(tasks[i])`` in worker processes otherwise)
        and return the index of the list. ``decode`` must be a module-level function (it is pickled)."""
        from evstream.workers import imap_progress

        log = log or (lambda msg: print(msg, file=sys.stderr))
        path = self.index_path(name, keys)
        idx = self.load_index(path, keys)
        if idx is not None:
            return idx
        with self.lock(log) as fd:
            idx = self.load_index(path, keys)  # filled by the process we waited for
            if idx is not None:
                return idx
            self._clean_tmp()
            counts = np.full(len(keys), -1, np.int64)
            spans = np.full(len(keys), -1, np.int64)
            todo = []
            for i, k in enumerate(keys):
                try:
                    n, s = self._stats(k)
                except (FileNotFoundError, EvstreamError):
                    todo.append(i)
                else:
                    counts[i], spans[i] = n, s
            if todo:
                t0 = time.monotonic()
                jobs = [(str(self.root.parent), keys[i], decode, tasks[i]) for i in todo]
                for pos, (n, s) in imap_progress(_fill_one, jobs, workers, desc=f"caching {name}", unit="file",
                                                 progress=progress and len(jobs) >= 20, initial=len(keys) - len(todo),
                                                 total=len(keys), close_fds=(fd,)):
                    counts[todo[pos]], spans[todo[pos]] = n, s
                if progress and len(todo) >= 20:
                    log(f"cached {len(todo)} recordings of {name} in {time.monotonic() - t0:.1f} s ({self.root})")
            idx = Index(np.array(keys), counts, spans)
            with atomic_output(path, self.tmp) as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, keys=idx.keys, counts=counts, spans=spans)
            return idx

    def _stats(self, key: str) -> tuple[int, int]:
        """Event count and span of an existing entry (header, first and last record only)."""
        p = self.entry(key)
        with open(p, "rb", buffering=0) as f:
            head = f.read(_HEAD)
            size = os.fstat(f.fileno()).st_size
            n, rest = divmod(size - _HEAD, EVENT_DTYPE.itemsize)
            if len(head) < _HEAD or not head.startswith(_MAGIC) or rest or f"'shape': ({n},)".encode() not in head:
                raise EvstreamError("corrupt event-cache entry", where=p)
            if n == 0:
                return 0, -1
            first = np.frombuffer(f.read(EVENT_DTYPE.itemsize), EVENT_DTYPE)
            f.seek(_HEAD + (n - 1) * EVENT_DTYPE.itemsize)
            last = np.frombuffer(f.read(EVENT_DTYPE.itemsize), EVENT_DTYPE)
        return int(n), int(last["t"][0] - first["t"][0])


def _fill_one(job) -> tuple[int, int]:
    cache_dir, key, decode, task = job
    ev = decode(task)
    EventCache(cache_dir).write(key, ev)
    return len(ev), _span(ev)
