"""Readers for every event-camera recording format evstream knows, chosen by content.

    from evstream.readers import detect_format, open_reader, read_events
    with open_reader("sample.aedat4") as r:          # r.format, r.sensor_size, r.meta
        for chunk in r.chunks(max_events=1_000_000): # bounded memory
            ...
    chunk = read_events("sample.raw")                # the whole file as one EventChunk

``detect_format`` looks at the magic bytes / header first and at the extension only where a format has no
magic (N-MNIST ``.bin``/``.bs2``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from evstream.errors import FormatError
from evstream.events import EventChunk
from evstream.readers.aedat2 import Aedat2Reader, Aedat3Reader
from evstream.readers.aedat4 import Aedat4Reader
from evstream.readers.base import SMALL_FILE, Reader, header_end, open_checked, pread
from evstream.readers.matlab import MatReader
from evstream.readers.native import Hdf5Reader, NpzReader
from evstream.readers.nmnist import NmnistReader
from evstream.readers.prophesee import DatReader, Evt2Reader, Evt3Reader

HEAD = 4096  # bytes read for format detection
_EVT3 = re.compile(rb"evt 3|format evt3", re.IGNORECASE)
_EVT2 = re.compile(rb"evt 2|format evt2", re.IGNORECASE)
WHOLE_AT_ONCE = 64 << 10  # files up to this size are read whole by the detection read itself

FORMATS: dict[str, type[Reader]] = {
    "aedat4": Aedat4Reader,
    "aedat2": Aedat2Reader,
    "aedat3": Aedat3Reader,
    "dat": DatReader,
    "evt2": Evt2Reader,
    "evt3": Evt3Reader,
    "nmnist": NmnistReader,
    "mat": MatReader,
    "npz": NpzReader,
    "hdf5": Hdf5Reader,
}


def detect_format(path: str | os.PathLike) -> str:
    """Name of the format of ``path`` (a key of :data:`FORMATS`), from its content first."""
    p, fd, size = open_checked(path)
    try:
        head = pread(fd, min(size, HEAD), 0, p)
    finally:
        os.close(fd)
    return _format_of(p, head)


def _format_of(p: Path, head: bytes) -> str:
    ext = p.suffix.lower()
    if head.startswith(b"#!AER-DAT4"):
        return "aedat4"
    if head.startswith(b"#!AER-DAT3"):
        return "aedat3"
    if head.startswith(b"#!AER-DAT2") or head.startswith(b"#!AER-DAT1"):
        return "aedat2"
    if head.startswith(b"% "):
        text = head[:header_end(head[:HEAD], b"% ")]  # the '% ' lines in the first 4 KiB
        if _EVT3.search(text):
            return "evt3"
        if _EVT2.search(text):
            return "evt2"
        if ext == ".raw":
            raise FormatError("Prophesee .raw header names no known event format (EVT 2.0 / 3.0)", where=p)
        return "dat"
    if head.startswith(b"MATLAB 5.0 MAT-file") or (head.startswith(b"\x89HDF") and ext == ".mat") \
            or (head[:128].find(b"MATLAB 7.3") >= 0):
        return "mat"
    if head.startswith(b"\x89HDF"):
        return "hdf5"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "npz"
    if ext in (".bin", ".bs2"):
        return "nmnist"
    shown = head[:8].hex(" ")
    raise FormatError(f"unrecognised event format (first bytes {shown}; extension {ext or 'none'})",
                      where=p, offset=0)


_IN_MEMORY = ("dat", "evt2", "evt3", "nmnist", "aedat2", "aedat3", "aedat4")  # readers that take ``blob``, ``size``
_TAKES_SIZE = _IN_MEMORY


def open_reader(path: str | os.PathLike, format: str | None = None, **options) -> Reader:
    """Open ``path`` with the reader for its format (detected unless ``format`` is given).

    Detection reads the first 4 KiB (a file of at most 64 KiB whole); a small file of a format decoded here
    is read whole, in one system call, and handed to the reader (no second open, stat or read)."""
    p, fd, size = open_checked(path)
    try:
        head = pread(fd, size if size <= WHOLE_AT_ONCE else HEAD, 0, p) if format is None else b""
        fmt = _format_of(p, head) if format is None else format
        if fmt not in FORMATS:
            raise FormatError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})", where=p)
        if fmt in _TAKES_SIZE:
            options["size"] = size
        if fmt in _IN_MEMORY and size <= SMALL_FILE:
            blob = head if len(head) == size else pread(fd, size, 0, p)
            options["blob"], options["size"] = blob, len(blob)
    finally:
        os.close(fd)
    return FORMATS[fmt](p, **options)


def read_events(path: str | os.PathLike, format: str | None = None, **options) -> EventChunk:
    """The whole recording at ``path`` as one :class:`~evstream.events.EventChunk`."""
    with open_reader(path, format, **options) as r:
        return r.read_all()


__all__ = ["FORMATS", "Reader", "detect_format", "open_reader", "read_events"]
