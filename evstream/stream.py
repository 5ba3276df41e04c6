"""What every event source is (files, network streams, cameras, the emulator), and the one closing
behaviour of everything that holds a file, a socket or a device.

    class MySource(Source):
        is_live = True
        def __iter__(self): ...          # EventChunk objects, in time order
        def _close(self): ...            # release what it holds (called once)

A ``Source`` says ``is_live`` (a live stream cannot be paused or sought; it keeps flowing), its
``sensor_size`` (w, h; (0, 0) when unknown), ``duration_us`` (0 when unknown or endless), ``position_us``
(stream time since its first event of what it delivered last; None when it does not know) and whether
it ``can_seek`` (then ``seek(t_us)`` continues from ``t_us`` after its first event) and ``loop`` (replay
from the start at the end). The live pipeline reads these instead of probing for attributes.
"""

from __future__ import annotations

from typing import Iterator


class Closeable:
    """``close()`` is safe to call twice (``_close()`` runs once); ``closed``; a context manager."""

    _closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def _close(self) -> None:
        """Release what is held (subclasses)."""

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Source(Closeable):
    """Base of every event source: iterate ``EventChunk``s; see the module docstring."""

    sensor_size: tuple[int, int] = (0, 0)
    is_live: bool = True
    can_seek: bool = False
    loop: bool = False
    duration_us: int = 0
    position_us: int | None = None
    meta: dict

    def __iter__(self) -> Iterator:
        raise NotImplementedError

    def seek(self, t_us: int) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot seek")
